"""Speed of the CGC loss terms on the CPU (forward + backward, median of several runs).

- contrastive clustering (Eq. 3) on a 320 x 240 x 16 feature map with 30 segments,
  with every pixel (the paper) and with `max_pixels_per_segment`;
- spatial similarity (Eq. 4) with N Gaussians and M samples (paper: K = 2, L = 5), on a
  Gaussian blob and, as the worst case for the convex-hull search, on points all lying on a
  sphere (then every point is a hull vertex).

    .venv/bin/python bench/bench_losses.py [--n 100000] [--m 2048] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.config import LossConfig  # noqa: E402
from cgc_core.losses import (  # noqa: E402
    contrastive_clustering,
    hull_layer_candidates,
    spatial_similarity_loss,
)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--m", type=int, default=LossConfig.regularization_samples)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default). On a shared, oversubscribed "
                             "machine 1 thread times far more steadily.")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = LossConfig()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    h, w, d = 240, 320, 16
    features = torch.randn(h, w, d, requires_grad=True)
    segments = torch.zeros(h, w, dtype=torch.long)
    for i in range(5):
        for j in range(6):
            segments[i * 48:(i + 1) * 48, j * 53:(j + 1) * 53] = i * 6 + j + 1
    for limit in (None, 512):
        def step():
            features.grad = None
            result = contrastive_clustering(
                features, segments, min_pixels=cfg.min_cluster_pixels,
                temperature_eps=cfg.temperature_eps, temperature_scale=cfg.temperature_scale,
                temperature_range=(cfg.temperature_min, cfg.temperature_max),
                cluster_balance=cfg.cluster_balance, max_pixels_per_segment=limit)
            result.loss.backward()
        seconds = timed(step, args.repeats)
        print(f"contrastive {w}x{h}x{d}, 30 segments, max_pixels_per_segment={limit}: "
              f"{1000 * seconds:.1f} ms (forward + backward)")

    rng = np.random.default_rng(0)
    blob = rng.normal(size=(args.n, 3)) * np.array([2.0, 1.0, 0.3])
    sphere = rng.normal(size=(args.n, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    for name, points in (("blob", blob), ("sphere (worst case)", sphere)):
        means = torch.tensor(points, dtype=torch.float32)
        feats = torch.randn(args.n, d, requires_grad=True)
        generator = torch.Generator().manual_seed(0)

        def step():
            feats.grad = None
            loss = spatial_similarity_loss(
                means, feats, num_samples=args.m, near_k=cfg.near_k, far_l=cfg.far_l,
                near_weight=cfg.near_weight, far_weight=cfg.far_weight,
                use_similarity=True, use_dissimilarity=True, generator=generator)
            loss.backward()
        seconds = timed(step, args.repeats)
        start = time.perf_counter()
        candidates = hull_layer_candidates(points, cfg.far_l)
        hull_seconds = time.perf_counter() - start
        print(f"spatial N={args.n} M={args.m} K={cfg.near_k} L={cfg.far_l}, {name}: "
              f"{1000 * seconds:.0f} ms (forward + backward); {cfg.far_l} hull layers: "
              f"{len(candidates)} candidates in {1000 * hull_seconds:.0f} ms")


if __name__ == "__main__":
    main()
