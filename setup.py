"""pip install of cgc_core (the engine) and the `cgc` command; no ROS needed.

The native CPU rasterizer is a C++ torch extension built here (OpenMP, no CUDA toolkit needed).
Build with `pip install --no-build-isolation -e .` so it compiles against the torch already in the
environment (an isolated build would download a second torch). `scripts/setup.sh` does this.
"""

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    name="cgc",
    version="0.1.0",
    description="Contrastive Gaussian Clustering: 3D instance segmentation from inconsistent 2D masks",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["cgc_core", "cgc_core.*"]),
    ext_modules=[
        CppExtension(
            name="cgc_core.render._raster_cpu",
            sources=["cgc_core/render/csrc/raster_cpu.cpp"],
            extra_compile_args=["-O3", "-fopenmp", "-std=c++20"],
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    entry_points={"console_scripts": ["cgc = cgc_core.cli:main"]},
)
