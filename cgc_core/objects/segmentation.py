"""Object ids per pixel: what the node publishes as `~/segmentation` for each processed frame."""

from __future__ import annotations

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import RenderConfig
from cgc_core.objects.cluster import ObjectTable
from cgc_core.query import render_feature_map


@torch.no_grad()
def object_id_map(splats, table: ObjectTable, camera: Camera, render: RenderConfig,
                  threshold: float) -> np.ndarray:
    """[H, W] int32 object id of each pixel of `camera` (0: none), from one feature render.

    A pixel belongs to the object with a part feature most similar to its rendered feature,
    when that cosine is at least `threshold` (Eq. 6 against every object at once); background
    objects (table, walls) get their ids too.
    """
    features = render_feature_map(splats, camera, render)  # [H, W, D], unit (0 where empty)
    ids = np.zeros(features.shape[:2], dtype=np.int32)
    if not table.objects:
        return ids
    prototypes, owners = table.prototypes()  # every part of every object
    cosine = features.reshape(-1, features.shape[-1]) @ torch.from_numpy(prototypes).to(features).T
    best, index = cosine.max(dim=1)                                  # [H * W] over parts
    object_ids = torch.from_numpy(owners.astype(np.int32))
    flat = torch.where(best >= threshold, object_ids[index.cpu()].to(best.device),
                       torch.zeros_like(index, dtype=torch.int32))
    return flat.reshape(features.shape[:2]).cpu().numpy()
