"""`colour_quality` with a background: a model trained over a colour (OpenSplat's) is scored
over it."""

import numpy as np
import torch
from PIL import Image

from cgc_core.app.evaluate import colour_quality
from cgc_core.cameras import Camera
from cgc_core.config import RenderConfig
from cgc_core.data import Scene
from cgc_core.model.gaussians import create_gaussians

PURPLE = (0.6130, 0.0101, 0.3984)


def test_background_fills_what_the_model_leaves_empty(tmp_path):
    # One held-out view of a purple wall; the model's only Gaussian lies behind the camera, so
    # the render is the background alone.
    photo = np.empty((24, 32, 3), np.uint8)
    photo[:] = np.round(np.array(PURPLE) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "view.png")
    camera = Camera("view", 32, 24, 30.0, 30.0, 16.0, 12.0, np.eye(4),
                    image_path=tmp_path / "view.png")
    scene = Scene(tmp_path, [camera], [], ["view"])
    splats = create_gaussians(np.array([[0.0, 0.0, -2.0], [0.1, 0.0, -2.0]]), None,
                              feature_dim=4, sh_degree=0, init_opacity=0.5,
                              feature_init_std=0.1, generator=torch.Generator().manual_seed(0))

    on_black = colour_quality(splats, scene, RenderConfig(), 0)
    on_purple = colour_quality(splats, scene, RenderConfig(), 0, torch.tensor(PURPLE))

    assert on_black["psnr"] < 10.0
    assert on_purple["psnr"] > 45.0
    assert on_purple["views"] == 1
