"""The one query pipeline: a pixel, a text or a view -> the object's feature -> its mask in a
view, the Gaussians it selects, their points and box.

Every face calls it: the node's `~/segment_object`, `cgc segment / eval / objects / extract`,
the report and the benches, so that a prompt means the same object everywhere.

    pixel_object(splats, camera, u, v, ...)   the feature under a pixel (the discriminative
                                              feature), the surface point there, the whole
                                              object's parts (`query.whole_objects`) and the
                                              spatial filter's connected part (`spatial_filter`)
    text_object(table, text, ...)             the object a text names (labels, colour, size and
                                              position words, DINO / CLIP)
    object_mask(obj, frame, features, ...)    [H, W] its mask in a view (Eq. 6, edges steered)
    select_object(splats, obj, threshold)     its Gaussians cut as `cgc extract` cuts them,
                                              their points, box and score

"Renders nothing" is a feature of norm 0 under the pixel (the command's rule; the node used to
refuse norm < 0.5 of a unit map, which only differs for features under 1e-8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import ObjectsConfig, QueryConfig, RenderConfig
from cgc_core.data import Prompt, Scene
from cgc_core.lens import cover_camera, raw_size, raw_to_cover, render_on_raw, to_raw
from cgc_core.objects.cluster import ObjectTable, cluster_objects
from cgc_core.objects.extract import extract_object, pixel_prompt
from cgc_core.objects.grounding import ground_text
from cgc_core.query import (
    connected_part,
    cosine_to,
    feature_at,
    pieces_within_reach,
    prompt_mask,
    render_feature_and_colour,
    selection_shares,
    selection_summary,
    surface_of,
    surface_point,
)

MAX_TEXT = 256
"""Longest text query or label accepted (characters)."""

MIN_ANCHOR = 20
"""Fewest Gaussians of a prompted object's own (`PromptedObject.anchor`) that `QueryConfig.
mask_reach` relies on: a map trained for a minute may hold two near the prompt's surface point,
which say nothing of where the object ends."""


class QueryError(ValueError):
    """A request the pipeline cannot answer; the text says why (a service answers it)."""


class OneView:
    """The `scene` of a FeatureCache that holds one camera (a request's own view)."""

    def __init__(self, camera: Camera):
        self._camera = camera

    def camera(self, name: str) -> Camera:
        return self._camera


class FeatureCache:
    """Normalised feature maps [H, W, D] and rendered colour [H, W, 3], rendered once per frame:
    a run's queries reuse views. For a camera with a lens they lie on the raw image's grid
    (`cgc_core.lens`), as its prompts and ground truth do."""

    def __init__(self, splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig):
        self.splats, self.scene, self.render = splats, scene, render
        self._maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._unit: torch.Tensor | None = None

    def _render(self, frame: str) -> tuple[torch.Tensor, torch.Tensor]:
        if frame not in self._maps:
            camera = self.scene.camera(frame)
            if camera.lens is None:
                self._maps[frame] = render_feature_and_colour(self.splats, camera, self.render)
            else:  # a distorted camera: maps on the raw image's grid, where prompts and masks are
                features, colour = render_feature_and_colour(self.splats, cover_camera(camera),
                                                             self.render)
                self._maps[frame] = (torch.nn.functional.normalize(
                    to_raw(camera, features), dim=-1, eps=1e-8), to_raw(camera, colour))
        return self._maps[frame]

    def __call__(self, frame: str) -> torch.Tensor:
        """[H, W, D] the frame's unit feature map."""
        return self._render(frame)[0]

    def colour(self, frame: str) -> torch.Tensor:
        """[H, W, 3] the frame's rendered colour (the guide of `QueryConfig.edge_radius`)."""
        return self._render(frame)[1]

    def unit_features(self) -> torch.Tensor:
        """[N, D] the Gaussians' own features, normalised once for every prompt and view."""
        if self._unit is None:
            self._unit = torch.nn.functional.normalize(self.splats["features"].detach(), dim=-1,
                                                       eps=1e-8)
        return self._unit


@dataclass
class PromptedObject:
    """What a pixel prompt selects: its feature and, with the spatial filter, its Gaussians."""

    id: str
    feature: torch.Tensor
    """[D] the discriminative feature under the prompt pixel, or [P, D] that one first and then
    the other parts' of an object merged from parts (`QueryConfig.whole_objects`), or a text
    query's object's part features."""
    part: torch.Tensor | None = None
    """[N] bool, the connected part of the selection that holds the prompt's surface point;
    None without `QueryConfig.spatial_filter` (or where the prompt pixel shows nothing)."""
    rest: torch.Tensor | None = None
    """[N] bool, the selected Gaussians of other objects apart from it (`connected_part`)."""
    seed: np.ndarray | None = None
    """[3] the world point of the surface under the prompt pixel, when it was rendered."""
    object_id: int | None = None
    """The table's object a text query found."""
    anchor: np.ndarray | None = None
    """[M, 4] the prompted object's own Gaussians (`SpatialFilter.part_at`: centre and largest
    standard deviation) with `QueryConfig.mask_reach`: its mask keeps the pieces near them."""


class SpatialFilter:
    """`QueryConfig.spatial_filter` for one model: the Gaussians a feature selects, split into
    the connected part that holds a prompt's surface point and the rest (`connected_part`)."""

    @torch.no_grad()
    def __init__(self, splats, query: QueryConfig):
        self.query = query
        self.unit = torch.nn.functional.normalize(splats["features"], dim=-1, eps=1e-8)
        self.opaque = torch.sigmoid(splats["opacities"]) >= query.selection_min_opacity
        self.means = splats["means"].detach().cpu().numpy()
        self.stds = splats["log_scales"].detach().exp().amax(dim=-1).cpu().numpy()
        self.extents = query.connect_radius_scale * self.stds

    def selection(self, feature: torch.Tensor) -> np.ndarray:
        """[N] bool, the opaque Gaussians within `selection_threshold` of `feature` [D] or
        [P, D]."""
        return ((cosine_to(self.unit, feature) >= self.query.selection_threshold)
                & self.opaque).cpu().numpy()

    def part_at(self, feature: torch.Tensor, seed: np.ndarray) -> np.ndarray | None:
        """`anchor_of` the connected part of the selection by `feature` that holds `seed` (the
        prompted object's own Gaussians)."""
        part, _ = connected_part(self.means, self.extents, self.selection(feature), seed)
        return self.anchor_of(part)

    def anchor_of(self, members: np.ndarray) -> np.ndarray | None:
        """`PromptedObject.anchor` of an object's own Gaussians `members` [N] bool: [M, 4]
        centre x, y, z and largest standard deviation (its surface may lie that far from its
        centre); None for fewer than `MIN_ANCHOR`, too few to say where the object is (an
        early map)."""
        if int(members.sum()) < MIN_ANCHOR:
            return None
        return np.column_stack([self.means[members], self.stds[members]])

    def split(self, feature: torch.Tensor, seed: np.ndarray | None):
        """([N] bool part, [N] bool rest) of the selection by `feature` [D] or [P, D], or
        (None, None) without a seed or with nothing apart."""
        if seed is None:
            return None, None
        part, rest = connected_part(self.means, self.extents, self.selection(feature), seed)
        if not rest.any():
            return None, None
        device = self.opaque.device
        return torch.from_numpy(part).to(device), torch.from_numpy(rest).to(device)


def pixel_object(splats, camera: Camera, u: float, v: float, *, render: RenderConfig,
                 query: QueryConfig, table: ObjectTable | None = None,
                 feature_map: torch.Tensor | None = None, spatial: SpatialFilter | None = None,
                 selection_threshold: float | None = None, prompt_id: str = "",
                 with_seed: bool = False) -> PromptedObject:
    """The object under pixel (u = column, v = row) of `camera` (of its raw image when it has a
    lens: `feature_map` is then on the raw grid too, as `FeatureCache` gives it).

    Args:
        table: the model's objects; a prompt on one part of an object merged from parts (a lid
            on its tin) takes the whole object when `query.whole_objects`.
        feature_map: [H, W, D] the view's rendered unit features when the caller has them (a
            mask follows); None renders features and depth once here (`pixel_prompt`).
        spatial: the model's `SpatialFilter` when `query.spatial_filter`.
        selection_threshold: the cosine that makes a part the prompt's object (None:
            `query.selection_threshold`; `cgc extract --threshold` gives its own).
        with_seed: find the surface point under the pixel even when neither `whole_objects`
            nor `spatial` needs it (`select_object` cuts the object that holds it).

    Raises QueryError for a pixel outside the view or where the model renders nothing.
    """
    width, height = raw_size(camera)
    if not (0 <= u < width and 0 <= v < height):
        raise QueryError(f"pixel ({u}, {v}) lies outside the {width}x{height} view")
    whole = table is not None and query.whole_objects and table.has_merged_objects
    # Renders below see the raw pixel through the pinhole view that covers the raw image.
    view = camera if camera.lens is None else cover_camera(camera)
    view_u, view_v = raw_to_cover(camera, u, v)
    if feature_map is None:
        try:
            feature, seed = pixel_prompt(splats, view, view_u, view_v, render)
        except ValueError as error:
            raise QueryError(str(error)) from None
    else:
        feature = feature_at(feature_map, u, v)
        if float(feature.norm()) == 0.0:
            raise QueryError(f"the model renders nothing at pixel ({u}, {v}) of this view")
        seed = (surface_point(splats, view, view_u, view_v, render)
                if whole or spatial is not None or with_seed or query.mask_reach > 0
                else None)
    if whole:
        feature = table.whole_object_features(
            feature, query.selection_threshold if selection_threshold is None
            else selection_threshold, seed)
    part, rest = (spatial.split(feature, seed) if spatial is not None and query.spatial_filter
                  else (None, None))
    anchor = None
    if query.mask_reach > 0 and seed is not None:
        anchor = (spatial or SpatialFilter(splats, query)).part_at(feature, seed)
    return PromptedObject(prompt_id, feature, part, rest, seed, anchor=anchor)


def text_object(table: ObjectTable | None, text: str, objects: ObjectsConfig, *,
                view: Camera | None = None, model_scorers: dict | None = None) -> PromptedObject:
    """The object a text names (`ground_text`), as its part features; QueryError naming the
    best candidates when none or several fit."""
    text = text.strip()
    if not text:
        raise QueryError("empty text query (set use_pixel for a pixel prompt)")
    if len(text) > MAX_TEXT:
        raise QueryError(f"text query longer than {MAX_TEXT} characters")
    if table is None or not table.objects:
        raise QueryError("no objects yet: the map has not been clustered")
    try:
        answer = ground_text(table, text, objects, view=view, model_scorers=model_scorers)
    except (ValueError, FileNotFoundError) as error:
        raise QueryError(str(error)) from None
    if not answer.found:
        best = ", ".join(f"{i}: {score:.2f}" for i, score in answer.candidates) or "none"
        raise QueryError(f"{answer.status}: {answer.message} (best: {best})")
    return PromptedObject(text, torch.from_numpy(answer.object.part_features).float(),
                          object_id=int(answer.object.id))


def prompted_objects(prompts: list[Prompt], features: FeatureCache, query: QueryConfig,
                     objects: ObjectsConfig | None = None) -> list[PromptedObject]:
    """One `PromptedObject` per prompt, in order; `objects` clusters the model for
    `QueryConfig.whole_objects` (None: the defaults). Gaussians' own features are compared at
    `query.selection_threshold` (whole objects, spatial filter); masks take their threshold in
    `object_mask`. A prompt where the model renders nothing keeps its (zero) feature: its mask
    is empty, which is what an evaluation must score."""
    splats, scene, render = features.splats, features.scene, features.render
    table = (cluster_objects(splats, objects or ObjectsConfig())
             if query.whole_objects and prompts else None)
    spatial = SpatialFilter(splats, query) \
        if query.spatial_filter or query.mask_reach > 0 else None  # per model
    found = []
    for p in prompts:
        feature_map = features(p.frame)
        try:
            obj = pixel_object(splats, scene.camera(p.frame), p.point[0], p.point[1],
                               render=render, query=query, table=table,
                               feature_map=feature_map, spatial=spatial, prompt_id=p.id)
        except QueryError:
            obj = PromptedObject(p.id, feature_at(feature_map, p.point[0], p.point[1]))
        found.append(obj)
    return found


def object_mask(obj: PromptedObject, frame: str, features: FeatureCache, query: QueryConfig,
                threshold: float) -> np.ndarray:
    """[H, W] bool mask of `obj` in `frame`: Eq. 6 (on the similarity map steered to colour
    edges, `QueryConfig.edge_radius`), less (spatial filter) the pixels that
    selected Gaussians of other objects apart explain mostly (at least half of the colour, and
    more than the prompted object), less (`QueryConfig.mask_reach`) the pieces whose rendered
    surface lies far from the object's own Gaussians."""
    mask = prompt_mask(features(frame), features.colour(frame), obj.feature, threshold, query)
    if obj.part is not None:
        selections = torch.stack([obj.part, obj.rest], dim=1)
        shares = render_on_raw(features.scene.camera(frame), lambda view: selection_shares(
            features.splats, selections, view, features.render))
        other = (shares[..., 1] >= 0.5) & (shares[..., 1] > shares[..., 0])
        mask &= ~other
    mask = mask.cpu().numpy()
    if obj.anchor is not None and query.mask_reach > 0 and mask.any():
        similar = cosine_to(features.unit_features(), obj.feature) >= threshold
        surface = render_on_raw(features.scene.camera(frame), lambda view: surface_of(
            features.splats, similar, view, features.render)).cpu().numpy()
        mask = pieces_within_reach(mask, surface, obj.anchor, query.mask_reach)
    return mask


def segment_prompts(splats: torch.nn.ParameterDict, scene: Scene, prompts: list[Prompt],
                    render: RenderConfig, query: QueryConfig, threshold: float,
                    objects_config: ObjectsConfig | None = None) -> dict[str, np.ndarray]:
    """{prompt id: [H, W] bool mask in the prompt's own frame}."""
    features = FeatureCache(splats, scene, render)
    objects = prompted_objects(prompts, features, query, objects_config)
    return {obj.id: object_mask(obj, p.frame, features, query, threshold)
            for p, obj in zip(prompts, objects)}


@dataclass
class Selection:
    """The Gaussians a query selects, as a service returns them."""

    selected: np.ndarray              # [N] bool
    points: np.ndarray                # [M, 3] their centres (M = selected.sum())
    summary: dict                     # `selection_summary`: count, centroid, box, score


@torch.no_grad()
def select_object(splats, obj: PromptedObject, threshold: float,
                  objects: ObjectsConfig | None = None,
                  members: np.ndarray | None = None) -> Selection:
    """The object's Gaussians as `cgc extract` cuts them (`extract_object` without views): those
    within cosine `threshold` of its feature(s), of them the connected part that holds the
    prompt's surface point (`obj.seed`) or most of `members` [N] bool (a table object's
    Gaussians), whatever lies inside that part's hull, less statistical outliers. Look-alikes
    elsewhere and stray Gaussians stay out of the cloud a robot grasps from. Empty (count 0)
    when no opaque Gaussian reaches the threshold."""
    objects = objects or ObjectsConfig()
    means = splats["means"].detach().cpu().numpy()
    features = splats["features"].detach().cpu().numpy()
    try:
        cut = extract_object(splats, obj.feature, threshold, objects, seed=obj.seed,
                             members=members)
        selected = cut.mask
    except ValueError:  # nothing reaches the threshold
        selected = np.zeros(len(means), dtype=bool)
    # The cloud is its opaque Gaussians' centres (`extract_object`'s points without views).
    opaque = torch.sigmoid(splats["opacities"].detach()).cpu().numpy() >= objects.min_opacity
    summary = selection_summary(means, features, selected & opaque, obj.feature.cpu().numpy())
    return Selection(selected, means[selected & opaque], summary)
