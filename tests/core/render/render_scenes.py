"""Random Gaussian scenes for the render tests (plain functions, no fixtures: tests read alone)."""

from __future__ import annotations

import math

import torch

WIDTH, HEIGHT = 70, 45
"""Image size of the parity tests: 5 x 3 tiles, the last column and row partial."""


def look_at_viewmat(dtype=torch.float32) -> torch.Tensor:
    """[4, 4] world-to-camera of a camera slightly rotated about y and x, 0.2 m off the origin."""
    ay, ax = 0.1, -0.05
    ry = torch.tensor(
        [[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]]
    )
    rx = torch.tensor(
        [[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]]
    )
    view = torch.eye(4, dtype=torch.float64)
    view[:3, :3] = (rx @ ry).double()
    view[:3, 3] = torch.tensor([0.05, -0.1, 0.2], dtype=torch.float64)
    return view.to(dtype)


def intrinsics(width: int, height: int, dtype=torch.float32) -> torch.Tensor:
    """[3, 3] pinhole intrinsics with a ~60 degree horizontal field of view."""
    f = 0.87 * width
    return torch.tensor(
        [[f, 0, width / 2 - 0.3], [0, f * 1.01, height / 2 + 0.2], [0, 0, 1]], dtype=dtype
    )


def random_scene(
    n: int,
    channels: int,
    seed: int,
    dtype=torch.float32,
    *,
    depth=(1.0, 4.0),
    log_scale=(-4.5, -2.0),
    spread=0.7,
    opacity=(0.05, 0.95),
) -> dict:
    """Gaussians in front of the camera filling the view (camera z in `depth`), spread opacities.

    Returns a dict of leaf tensors (requires_grad) keyed like `rasterize`'s arguments.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)

    z = uniform((n,), *depth)
    xy = uniform((n, 2), -spread, spread) * z[:, None]
    cam_points = torch.cat([xy, z[:, None]], dim=1)
    view = look_at_viewmat(torch.float64)
    means = (cam_points - view[:3, 3]) @ view[:3, :3]  # camera -> world
    scene = {
        "means": means,
        "quats": torch.randn((n, 4), generator=gen, dtype=torch.float64),
        "scales": torch.exp(uniform((n, 3), *log_scale)),
        "opacities": uniform((n,), *opacity),
        "colors": uniform((n, channels), 0.0, 1.0),
    }
    return {k: v.to(dtype).requires_grad_(True) for k, v in scene.items()}


def leaves(scene: dict) -> list[torch.Tensor]:
    """The differentiable parameters of a scene, in a fixed order."""
    return [scene[k] for k in ("means", "quats", "scales", "opacities", "colors")]


def hard_scene(channels: int, dtype: torch.dtype, seed: int) -> dict:
    """Random Gaussians plus the edge cases of the module docstring, three Gaussians at one depth
    (their blend depends on the tie rule) and two whose alpha hits the 0.99 clamp, as leaf
    tensors."""
    base = random_scene(120, channels, seed, torch.float64)
    view = look_at_viewmat(torch.float64)
    gen = torch.Generator().manual_seed(seed + 100)

    def cam_to_world(points):
        return (points - view[:3, 3]) @ view[:3, :3]

    def block(cam_points, log_scale, opacity):
        n = cam_points.shape[0]
        return {
            "means": cam_to_world(cam_points),
            "quats": torch.randn((n, 4), generator=gen, dtype=torch.float64),
            "scales": torch.full((n, 3), log_scale, dtype=torch.float64).exp(),
            "opacities": torch.full((n,), opacity, dtype=torch.float64),
            "colors": torch.rand((n, channels), generator=gen, dtype=torch.float64),
        }

    jitter = lambda n, s: s * torch.randn((n, 3), generator=gen, dtype=torch.float64)  # noqa: E731
    blocks = [
        {k: v.detach() for k, v in base.items()},
        block(
            torch.tensor([[0.1, 0.0, -2.0], [0.0, 0.2, -0.5], [0.0, 0.0, 0.005]]), -2.5, 0.8
        ),  # behind / near
        block(
            torch.tensor([[30.0, 0.0, 2.0], [-25.0, 5.0, 2.0], [0.0, -40.0, 3.0]]), -3.0, 0.8
        ),  # off-screen
        block(torch.tensor([[0.0, 0.0, 3.0], [0.3, -0.2, 5.0]]), 0.7, 0.3),  # huge
        block(torch.tensor([[0.05, 0.02, 2.0]]) + jitter(6, 0.3), -9.0, 0.9),  # tiny
        block(
            torch.tensor([[0.0, 0.0, 1.5]]) + jitter(25, 0.04) * torch.tensor([1.0, 1.0, 4.0]),
            -2.3,
            0.97,
        ),  # stack
        block(
            torch.tensor([[-0.3, 0.2, 2.0]]).expand(3, 3), -2.5, 0.6
        ),  # equal depths: index order decides
        block(
            torch.tensor([[0.4, 0.1, 1.2], [-0.1, -0.3, 1.1]]), -1.5, 0.995
        ),  # alpha clamped at 0.99
    ]
    scene = {k: torch.cat([b[k] for b in blocks]) for k in blocks[0]}
    return {k: v.to(dtype).requires_grad_(True) for k, v in scene.items()}
