"""Queries on a hand-built model: two objects with orthogonal features, seen by one camera."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cgc_core.cameras import Camera
from cgc_core.config import RenderConfig
from cgc_core.model.gaussians import create_gaussians
from cgc_core.query import (
    connected_part,
    feature_at,
    follow_edges,
    mask_from_feature,
    render_feature_map,
    select_gaussians,
)


def two_blobs():
    rng = np.random.default_rng(0)
    left = rng.normal([-0.5, 0, 3], 0.08, size=(200, 3))
    right = rng.normal([0.5, 0, 3], 0.08, size=(200, 3))
    splats = create_gaussians(np.concatenate([left, right]), None, feature_dim=4, sh_degree=0,
                              init_opacity=0.9, feature_init_std=1.0,
                              generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        splats["features"][:200] = torch.tensor([1.0, 0, 0, 0])
        splats["features"][200:] = torch.tensor([0, 1.0, 0, 0])
        splats["log_scales"][:] = np.log(0.05)
    camera = Camera("view", 64, 48, 40.0, 40.0, 32.0, 24.0, np.eye(4))
    return splats, camera


def test_pixel_prompt_gives_the_whole_object_and_nothing_else():
    splats, camera = two_blobs()
    features = render_feature_map(splats, camera, RenderConfig(backend="reference"))
    assert features.shape == (48, 64, 4)
    # Left blob centre projects to u = 40 * (-0.5 / 3) + 32 = 25.3, v = 24.
    left = feature_at(features, 25.3, 24.0)
    mask = mask_from_feature(features, left, 0.7).numpy()
    cols = np.nonzero(mask)[1]
    assert mask[24, 25] and not mask[24, 38]  # right blob centre: u = 38.7
    assert cols.max() < 32  # nothing on the right half
    assert mask.sum() > 50


def test_feature_selects_the_gaussians_of_one_object():
    splats, _ = two_blobs()
    chosen = select_gaussians(splats, torch.tensor([1.0, 0, 0, 0]), 0.7)
    assert chosen[:200].all() and not chosen[200:].any()
    # With the convex hull, a Gaussian inside the left blob is taken even with a foreign feature.
    with torch.no_grad():
        splats["means"][399] = splats["means"][:200].mean(0)
    hull = select_gaussians(splats, torch.tensor([1.0, 0, 0, 0]), 0.7, hull=True)
    assert hull[399] and hull[:200].all() and not hull[200:399].any()


def test_spatial_filter_separates_look_alike_objects_apart():
    """Two blobs with the SAME feature: Eq. 6 alone masks both; the connected part of the
    selection that holds the prompt's surface point masks only the prompted one."""
    from cgc_core.config import QueryConfig
    from cgc_core.data import Prompt, Scene
    from cgc_core.service.query import FeatureCache, object_mask, prompted_objects

    splats, camera = two_blobs()
    with torch.no_grad():
        splats["features"][:] = torch.tensor([1.0, 0, 0, 0])
    scene = Scene(root=camera.image_path or Path("."), cameras=[camera], train_names=["view"],
                  test_names=[])
    render = RenderConfig(backend="reference")
    prompt = [Prompt("left", "view", (25.3, 24.0))]
    cache = FeatureCache(splats, scene, render)
    eq6 = QueryConfig(mask_reach=0.0)
    plain = object_mask(prompted_objects(prompt, cache, eq6)[0], "view", cache, eq6, 0.7)
    assert plain[24, 25] and plain[24, 38]  # both blobs: they share the feature
    spatial = QueryConfig(spatial_filter=True, selection_threshold=0.7, mask_reach=0.0)
    (obj,) = prompted_objects(prompt, cache, spatial)
    assert obj.part[:200].sum() > 180 and not obj.part[200:].any()
    assert obj.rest[200:].sum() > 180 and not obj.rest[:200].any()
    filtered = object_mask(obj, "view", cache, spatial, 0.7)
    assert filtered[24, 25] and not filtered[24, 38]
    assert np.nonzero(filtered)[1].max() < 32
    assert filtered.sum() > 0.8 * plain[:, :32].sum()  # the prompted blob is kept whole
    # The default `query.mask_reach` keeps the prompted blob's piece too, the other's not.
    near = object_mask(prompted_objects(prompt, cache, QueryConfig())[0], "view", cache,
                       QueryConfig(), 0.7)
    assert near[24, 25] and not near[:, 32:].any()
    assert near.sum() > 0.8 * plain[:, :32].sum()


def test_connected_part_links_overlapping_gaussians_only():
    # A chain of points 1 apart with extent 0.6 (linked), then a gap of 3 (not linked).
    means = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [5, 0, 0], [6, 0, 0]], dtype=float)
    extents = np.full(5, 0.6)
    selected = np.array([True, True, True, True, False])
    part, others = connected_part(means, extents, selected, seed=np.array([0.9, 0.1, 0]))
    assert part.tolist() == [True, True, True, False, False]
    assert others.tolist() == [False, False, False, True, False]
    part, others = connected_part(means, extents, selected, seed=np.array([5.2, 0, 0]))
    assert part.tolist() == [False, False, False, True, False]
    assert others.tolist() == [True, True, True, False, False]


def test_selection_summary_box_centroid_and_score():
    from cgc_core.query import most_opaque, selection_summary

    means = np.array([[0.0, 0, 0], [1, 2, 3], [5, 5, 5]])
    features = np.array([[1.0, 0], [2.0, 0], [0.0, 1]])
    out = selection_summary(means, features, np.array([True, True, False]), np.array([1.0, 0]))
    assert out["count"] == 2 and out["score"] == pytest.approx(1.0)
    np.testing.assert_allclose(out["box_min"], [0, 0, 0])
    np.testing.assert_allclose(out["box_max"], [1, 2, 3])
    np.testing.assert_allclose(out["centroid"], [0.5, 1, 1.5])
    assert selection_summary(means, features, np.zeros(3, bool), np.ones(2))["count"] == 0
    assert sorted(most_opaque(torch.tensor([0.1, 3.0, -2.0, 1.0]), 2).tolist()) == [1, 3]
    assert len(most_opaque(torch.tensor([0.1]), 5)) == 1


def test_a_query_with_several_part_features_selects_the_union_of_their_selections():
    generator = torch.Generator().manual_seed(0)
    feature_map = torch.nn.functional.normalize(torch.randn(12, 10, 16, generator=generator),
                                                dim=-1)
    parts = feature_map[[2, 7], [3, 4]]  # two pixels' features: [2, 16]
    union = mask_from_feature(feature_map, parts[0], 0.6) | mask_from_feature(feature_map,
                                                                             parts[1], 0.6)
    assert torch.equal(mask_from_feature(feature_map, parts, 0.6), union)
    assert union.sum() > mask_from_feature(feature_map, parts[0], 0.6).sum()
    splats = {"features": feature_map.reshape(-1, 16)}
    assert torch.equal(select_gaussians(splats, parts, 0.6), union.reshape(-1))


def test_masks_follow_colour_edges_where_the_features_blur_past_them():
    # A red object on a grey table, its edge between columns 9 and 10; the rendered similarity
    # to its feature falls off smoothly and still passes 0.75 on the table's first column.
    height, width = 16, 24
    columns = torch.arange(width, dtype=torch.float32)
    colour = torch.full((height, width, 3), 0.6)
    colour[:, :10] = torch.tensor([0.8, 0.1, 0.1])
    similarity = torch.sigmoid(-(columns - 11.5) * 1.2).expand(height, width) * 0.9 + 0.05
    raw = similarity >= 0.75
    assert int(raw[0].sum()) == 11  # Eq. 6 alone: a table column in the mask
    refined = follow_edges(similarity, colour, radius=1, eps=1e-3) >= 0.75
    assert torch.equal(refined, torch.zeros_like(refined).index_fill_(1, torch.arange(10), True))
    assert torch.equal(follow_edges(similarity, colour, radius=0, eps=1e-3), similarity)
