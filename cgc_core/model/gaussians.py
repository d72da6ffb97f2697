"""The Gaussian model: 3DGS parameters plus a view-independent segmentation feature per Gaussian.

Parameters live in a `torch.nn.ParameterDict` (gsplat style) under these names:
    means      [N, 3]      world positions
    quats      [N, 4]      rotations, wxyz, unnormalised
    log_scales [N, 3]      log of the per-axis standard deviations
    opacities  [N]         logit of opacity
    sh0        [N, 1, 3]   DC colour coefficient
    shN        [N, K-1, 3] higher SH bands (K = (sh_degree + 1)^2)
    features   [N, D]      segmentation feature (paper: D = 16), no SH: view-independent
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from scipy.spatial import cKDTree

from cgc_core.io import DataError, atomic_path
from cgc_core.model.sh import num_sh_bases, rgb_to_sh0

PARAM_NAMES = ("means", "quats", "log_scales", "opacities", "sh0", "shN", "features")


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def create_gaussians(
    points: np.ndarray,
    colors: np.ndarray | None,
    *,
    feature_dim: int,
    sh_degree: int,
    init_opacity: float,
    feature_init_std: float,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.nn.ParameterDict:
    """Gaussians centred on a point cloud (3DGS initialisation).

    Args:
        points: [P, 3] world positions (COLMAP points, depth back-projection, or random).
        colors: [P, 3] uint8 RGB, or None for grey.
        generator: seeds the random segmentation features (the paper starts from random ones).
        feature_init_std: their standard deviation.
    Scales start at the mean distance to the 3 nearest neighbours (isotropic), rotations at
    identity, opacity at `init_opacity`.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"need a non-empty [P, 3] point cloud, got shape {points.shape}")
    n = len(points)
    k = min(4, n)
    if n > 1:
        dists, _ = cKDTree(points).query(points, k=k)
        mean_dist = np.sqrt(np.mean(np.square(dists[:, 1:]), axis=1))
        mean_dist = np.maximum(mean_dist, 1e-7)
    else:
        mean_dist = np.full(1, 0.01)
    rgb = np.full((n, 3), 0.5) if colors is None else np.asarray(colors, np.float64) / 255.0
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    sh0 = rgb_to_sh0(torch.tensor(rgb, dtype=torch.float32)).unsqueeze(1)
    features = torch.randn(n, feature_dim, generator=generator) * feature_init_std
    params = {
        "means": torch.tensor(points, dtype=torch.float32),
        "quats": quats,
        "log_scales": torch.log(torch.tensor(mean_dist, dtype=torch.float32))[:, None].repeat(1, 3),
        "opacities": torch.full((n,), _logit(init_opacity)),
        "sh0": sh0,
        "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3),
        "features": features,
    }
    return torch.nn.ParameterDict(
        {name: torch.nn.Parameter(value.to(device)) for name, value in params.items()}
    )


def sh_degree_of(splats: torch.nn.ParameterDict) -> int:
    return int(round(math.sqrt(splats["shN"].shape[1] + 1))) - 1


# ---------------------------------------------------------------- PLY (3DGS layout + f_seg_*)


def save_ply(splats: torch.nn.ParameterDict, path: str | Path) -> None:
    """Write the standard 3DGS PLY (so splat viewers open it) plus `f_seg_0..D-1` properties.

    3DGS stores f_rest channel-major: all of red's higher bands, then green's, then blue's.
    """
    with torch.no_grad():
        means = splats["means"].detach().cpu().numpy()
        n = len(means)
        sh_rest = splats["shN"].detach().cpu().transpose(1, 2).reshape(n, -1).numpy()
        columns = {
            "x": means[:, 0],
            "y": means[:, 1],
            "z": means[:, 2],
            "nx": np.zeros(n),
            "ny": np.zeros(n),
            "nz": np.zeros(n),
        }
        sh0 = splats["sh0"].detach().cpu().reshape(n, 3).numpy()
        for i in range(3):
            columns[f"f_dc_{i}"] = sh0[:, i]
        for i in range(sh_rest.shape[1]):
            columns[f"f_rest_{i}"] = sh_rest[:, i]
        columns["opacity"] = splats["opacities"].detach().cpu().numpy()
        scales = splats["log_scales"].detach().cpu().numpy()
        for i in range(3):
            columns[f"scale_{i}"] = scales[:, i]
        quats = splats["quats"].detach().cpu().numpy()
        for i in range(4):
            columns[f"rot_{i}"] = quats[:, i]
        features = splats["features"].detach().cpu().numpy()
        for i in range(features.shape[1]):
            columns[f"f_seg_{i}"] = features[:, i]
    vertex = np.empty(n, dtype=[(name, "f4") for name in columns])
    for name, values in columns.items():
        vertex[name] = values
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp))


def load_ply(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.ParameterDict:
    """Read a PLY written by `save_ply` (or a plain 3DGS PLY: features then start at zero)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        vertex = PlyData.read(str(path))["vertex"].data
    except Exception as error:  # plyfile raises several unrelated types on bad input
        raise DataError(f"cannot read Gaussian PLY {path}: {error}") from None
    names = vertex.dtype.names
    required = [
        "x",
        "y",
        "z",
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    missing = [name for name in required if name not in names]
    if missing:
        raise DataError(f"{path}: not a 3DGS PLY (missing {', '.join(missing)})")

    def stack(prefix: str) -> np.ndarray:
        cols = sorted(
            (name for name in names if name.startswith(prefix)),
            key=lambda name: int(name[len(prefix) :]),
        )
        return (
            np.stack([vertex[name] for name in cols], axis=1)
            if cols
            else np.zeros((len(vertex), 0))
        )

    n = len(vertex)
    rest = stack("f_rest_")
    shN = torch.tensor(rest, dtype=torch.float32).reshape(n, 3, -1).transpose(1, 2)
    params = {
        "means": torch.tensor(np.stack([vertex["x"], vertex["y"], vertex["z"]], 1)),
        "quats": torch.tensor(stack("rot_")),
        "log_scales": torch.tensor(stack("scale_")),
        "opacities": torch.tensor(np.asarray(vertex["opacity"])),
        "sh0": torch.tensor(stack("f_dc_")).reshape(n, 1, 3),
        "shN": shN.contiguous(),
        "features": torch.tensor(stack("f_seg_")),
    }
    return torch.nn.ParameterDict(
        {k: torch.nn.Parameter(v.to(torch.float32).to(device)) for k, v in params.items()}
    )


def subset(splats, mask: np.ndarray) -> dict[str, torch.Tensor]:
    """The rows `mask` [N] bool of every parameter, detached."""
    index = torch.from_numpy(np.flatnonzero(mask)).to(splats["means"].device)
    return {name: splats[name].detach()[index] for name in PARAM_NAMES if name in splats}
