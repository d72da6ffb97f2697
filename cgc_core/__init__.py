"""cgc_core: Contrastive Gaussian Clustering engine (pure Python + PyTorch, no ROS)."""

import os

# Idle OpenMP threads that spin (libgomp's default) starve everything else on a small shared
# machine: with two processes on 2 cores, 2-thread renders ran up to 20x slower. Passive waiting
# costs nothing measurable here. It must be set before torch loads its OpenMP runtime, so it only
# takes effect when cgc_core is imported first (the `cgc` command, the ROS node); users may
# override it in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
