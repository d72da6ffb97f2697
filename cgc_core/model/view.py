"""Render a Gaussian model from a camera: colour (from SH) and, when asked, segmentation features.

Colour and features go through the rasterizer in one pass (3 + D channels) so that the feature
iterations of the paper's schedule cost one render, not two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from cgc_core.config import RenderConfig
from cgc_core.model.sh import eval_sh
from cgc_core.render import RenderOutput, rasterize

if TYPE_CHECKING:
    from cgc_core.train.corrections import WorldTransform


@dataclass
class ViewRender:
    rgb: Tensor              # [H, W, 3]
    features: Tensor | None  # [H, W, D] raw alpha-blended features (not normalised)
    alphas: Tensor           # [H, W]
    depths: Tensor | None    # [H, W] alpha-blended z
    raw: RenderOutput        # means2d (for densification), radii


def render_view(splats: torch.nn.ParameterDict, viewmat: Tensor, K: Tensor, width: int,
                height: int, *, sh_degree: int, render: RenderConfig, with_rgb: bool = True,
                with_features: bool = False, with_depth: bool = False,
                background: Tensor | None = None,
                world_transform: WorldTransform | None = None) -> ViewRender:
    """Rasterize the model.

    Args:
        viewmat: [4, 4] world-to-camera (OpenCV axes); K: [3, 3].
        sh_degree: active SH degree for colour.
        background: [3] colour background (features always use 0).
        world_transform: moves the Gaussians before rasterizing (a learned pose correction,
            `train/corrections.py`); colour still sees them from the corrected camera centre.
    """
    means, quats = splats["means"], splats["quats"]
    if world_transform is None:
        cam_centre = torch.linalg.inv(viewmat)[:3, 3]
    else:
        cam_centre = world_transform.camera_centre(viewmat)
        means, quats = world_transform.apply(means, quats)
    if with_rgb:
        dirs = splats["means"] - cam_centre

    # Called by `rasterize` once it has projected: SH colour is then computed only for the
    # Gaussians the projection keeps (the others are never read), which on a CPU is most of
    # what colour costs.
    def colors_of(visible: Tensor) -> Tensor:  # [N] bool -> [N, C]
        channels = []
        if with_rgb:
            channels.append(eval_sh(sh_degree, splats["sh0"], splats["shN"], dirs, visible))
        if with_features:
            channels.append(splats["features"])
        return channels[0] if len(channels) == 1 else torch.cat(channels, dim=1)

    channels = (3 if with_rgb else 0) + (splats["features"].shape[1] if with_features else 0)
    bg = None
    if background is not None and with_rgb:
        bg = torch.cat([background.to(splats["sh0"]),
                        background.new_zeros(channels - 3, dtype=splats["sh0"].dtype)])
    out = rasterize(
        means, quats, splats["log_scales"].exp(),
        torch.sigmoid(splats["opacities"]), colors_of, viewmat, K, width, height,
        background=bg, render_depth=with_depth, near=render.near, far=render.far,
        eps2d=render.eps2d, backend=render.backend)
    rgb = out.colors[..., :3] if with_rgb else None
    features = out.colors[..., (3 if with_rgb else 0):] if with_features else None
    return ViewRender(rgb=rgb, features=features, alphas=out.alphas, depths=out.depths, raw=out)
