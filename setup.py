"""pip install of cgc_core (the engine) and the `cgc` command; no ROS needed.

The native CPU rasterizer is a C++ torch extension built here (OpenMP, no CUDA toolkit needed).
Build with `pip install --no-build-isolation -e .` so it compiles against the torch already in the
environment (an isolated build would download a second torch). `scripts/setup.sh` does this.
"""

import os
import platform

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension


def native_arch_flags() -> list[str]:
    """-march=native on x86-64: the rasterizer's per-pixel loops are written to vectorise, and
    AVX2 runs them ~2x faster than the baseline SSE2 (bench/results/render.md). The extension is
    always compiled on the machine that runs it (pip install -e, scripts/setup.sh), so this is
    safe; set CGC_PORTABLE_BUILD=1 for a binary that must also run on older x86-64 CPUs."""
    if os.environ.get("CGC_PORTABLE_BUILD", "0") not in ("", "0"):
        return []
    return ["-march=native"] if platform.machine() in ("x86_64", "AMD64") else []


# -fno-trapping-math / -fno-math-errno change no result: they only let GCC turn the branch-free
# lane loops' selects and sqrt into SIMD (it may not speculate an FP operation that could set a
# flag or errno). -ffp-contract=off keeps GCC from fusing a * b + c into an FMA, which rounds
# differently: forward and backward must make bit-identical skip decisions, and the kernel must
# round like the reference. -ffast-math is deliberately absent for the same reason.
COMPILE_ARGS = [
    "-O3", "-fopenmp", "-std=c++20", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off"
]

setup(
    name="cgc",
    version="0.1.0",
    description=(
        "Contrastive Gaussian Clustering: 3D instance segmentation from inconsistent 2D masks"
    ),
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["cgc_core", "cgc_core.*"]),
    ext_modules=[
        CppExtension(
            name="cgc_core.render._raster_cpu",
            sources=[
                f"cgc_core/render/csrc/{name}.cpp"
                for name in (
                    "bin_cpu", "forward_cpu", "backward_cpu", "project_cpu", "sh_cpu", "bindings"
                )
            ],
            extra_compile_args=COMPILE_ARGS + native_arch_flags(),
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    entry_points={"console_scripts": ["cgc = cgc_core.app.cli:main"]},
)
