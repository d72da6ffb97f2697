"""Pixel prompts on a trained model: the feature under each prompt, and its mask in any view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cgc_core.config import ObjectsConfig, QueryConfig, RenderConfig
from cgc_core.data import Prompt, Scene
from cgc_core.objects.cluster import cluster_objects
from cgc_core.query import (
    connected_part,
    cosine_to,
    feature_at,
    prompt_mask,
    render_feature_and_colour,
    selection_shares,
    surface_point,
)


class FeatureCache:
    """Normalised feature maps [H, W, D] and rendered colour [H, W, 3], rendered once per frame:
    a run's queries reuse views."""

    def __init__(self, splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig):
        self.splats, self.scene, self.render = splats, scene, render
        self._maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _render(self, frame: str) -> tuple[torch.Tensor, torch.Tensor]:
        if frame not in self._maps:
            self._maps[frame] = render_feature_and_colour(self.splats, self.scene.camera(frame),
                                                          self.render)
        return self._maps[frame]

    def __call__(self, frame: str) -> torch.Tensor:
        """[H, W, D] the frame's unit feature map."""
        return self._render(frame)[0]

    def colour(self, frame: str) -> torch.Tensor:
        """[H, W, 3] the frame's rendered colour (the guide of `QueryConfig.edge_radius`)."""
        return self._render(frame)[1]


@dataclass
class PromptedObject:
    """What a pixel prompt selects: its feature and, with the spatial filter, its Gaussians."""

    id: str
    feature: torch.Tensor
    """[D] the discriminative feature under the prompt pixel, or [P, D] that one first and then
    the other parts' of an object merged from parts (`QueryConfig.whole_objects`)."""
    part: torch.Tensor | None
    """[N] bool, the connected part of the selection that holds the prompt's surface point;
    None without `QueryConfig.spatial_filter` (or where the prompt pixel shows nothing)."""
    rest: torch.Tensor | None
    """[N] bool, the selected Gaussians of other objects apart from it (`connected_part`)."""


def prompted_objects(prompts: list[Prompt], features: FeatureCache, query: QueryConfig,
                     objects: ObjectsConfig | None = None) -> list[PromptedObject]:
    """One `PromptedObject` per prompt, in order; `objects` clusters the model for
    `QueryConfig.whole_objects` (None: the defaults). Gaussians' own features are compared at
    `query.selection_threshold` (whole objects, spatial filter); masks take their threshold in
    `object_mask`."""
    splats, scene, render = features.splats, features.scene, features.render
    table = (cluster_objects(splats, objects or ObjectsConfig())
             if query.whole_objects and prompts else None)
    if table is not None and not table.has_merged_objects:
        table = None  # nothing to take whole: no surface point to render
    if query.spatial_filter:  # per model, not per prompt
        with torch.no_grad():
            unit = torch.nn.functional.normalize(splats["features"], dim=-1, eps=1e-8)
            opaque = torch.sigmoid(splats["opacities"]) >= query.selection_min_opacity
            means = splats["means"].detach().cpu().numpy()
            extents = (query.connect_radius_scale
                       * splats["log_scales"].detach().exp().amax(dim=-1).cpu().numpy())
    objects = []
    for p in prompts:
        feature = feature_at(features(p.frame), p.point[0], p.point[1])
        part = rest = None
        seed = (surface_point(splats, scene.camera(p.frame), p.point[0], p.point[1], render)
                if query.spatial_filter or table is not None else None)
        if table is not None:
            feature = table.whole_object_features(feature, query.selection_threshold, seed)
        if query.spatial_filter:
            if seed is not None:
                selected = (cosine_to(unit, feature) >= query.selection_threshold) & opaque
                part, rest = connected_part(means, extents, selected.cpu().numpy(), seed)
                if rest.any():
                    part = torch.from_numpy(part).to(selected.device)
                    rest = torch.from_numpy(rest).to(selected.device)
                else:
                    part = rest = None
        objects.append(PromptedObject(p.id, feature, part, rest))
    return objects


def object_mask(obj: PromptedObject, frame: str, features: FeatureCache, query: QueryConfig,
                threshold: float) -> np.ndarray:
    """[H, W] bool mask of `obj` in `frame`: Eq. 6 (on the similarity map steered to colour
    edges, `QueryConfig.edge_radius`), less (spatial filter) the pixels that
    selected Gaussians of other objects apart explain mostly (at least half of the colour, and
    more than the prompted object)."""
    mask = prompt_mask(features(frame), features.colour(frame), obj.feature, threshold, query)
    if obj.part is not None:
        shares = selection_shares(features.splats, torch.stack([obj.part, obj.rest], dim=1),
                                  features.scene.camera(frame), features.render)
        other = (shares[..., 1] >= 0.5) & (shares[..., 1] > shares[..., 0])
        mask &= ~other
    return mask.cpu().numpy()


def segment_prompts(splats: torch.nn.ParameterDict, scene: Scene, prompts: list[Prompt],
                    render: RenderConfig, query: QueryConfig, threshold: float,
                    objects_config: ObjectsConfig | None = None) -> dict[str, np.ndarray]:
    """{prompt id: [H, W] bool mask in the prompt's own frame}."""
    features = FeatureCache(splats, scene, render)
    objects = prompted_objects(prompts, features, query, objects_config)
    return {obj.id: object_mask(obj, p.frame, features, query, threshold)
            for p, obj in zip(prompts, objects)}
