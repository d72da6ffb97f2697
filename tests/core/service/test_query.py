"""The one query pipeline (`cgc_core.service.query`) on hand-built models: the object a pixel
prompt names, in 3D (the cloud `~/segment_object` returns) and in a view's mask."""

import dataclasses

import numpy as np
import torch
from box_scenes import (
    Box,
    boxes_model,
    camera_looking_at,
    gaussians,
    model_with_hidden_plate_and_outlier,
    project_pixel,
    unit_feature,
)

from cgc_core.config import ObjectsConfig, QueryConfig, RenderConfig
from cgc_core.objects import extract_object
from cgc_core.query import pieces_within_reach, surface_of
from cgc_core.service.query import (
    MIN_ANCHOR,
    FeatureCache,
    OneView,
    PromptedObject,
    SpatialFilter,
    object_mask,
    pixel_object,
    select_object,
)

THRESHOLD = 0.75


def test_the_services_cloud_is_the_object_under_the_pixel_cut_as_cgc_extract_cuts_it():
    # `~/segment_object` and `cgc extract` answer one prompt with one cloud: the look-alike box
    # with the same feature and the stray Gaussian beside the prompted box stay out of it.
    model, owner = model_with_hidden_plate_and_outlier()
    camera = camera_looking_at((0.25, 0.0, 0.05), (0.25, -0.8, 0.5))
    render, query = RenderConfig(backend="cpu"), QueryConfig()
    features = FeatureCache(model, OneView(camera), render)
    for box in (0, 1):
        u, v = project_pixel(camera, (0.5 * box, -0.05, 0.05))  # the box's front face
        obj = pixel_object(model, camera, u, v, render=render, query=query,
                           feature_map=features(camera.name), with_seed=True)
        selection = select_object(model, obj, THRESHOLD, ObjectsConfig())
        assert selection.selected[owner == box].all(), box
        assert not selection.selected[owner == 1 - box].any(), box
        assert not selection.selected[owner == -2].any(), box
        assert selection.summary["count"] == len(selection.points) == selection.selected.sum()
        cut = extract_object(model, obj.feature, THRESHOLD, ObjectsConfig(), seed=obj.seed)
        np.testing.assert_array_equal(selection.points, cut.points)
    # A text query's object (a feature, no surface point): the part with most of the table's
    # Gaussians of it.
    obj = PromptedObject("box 1", torch.from_numpy(unit_feature(0)).float(), object_id=2)
    selection = select_object(model, obj, THRESHOLD, ObjectsConfig(), members=owner == 1)
    assert selection.selected[owner == 1].all() and not selection.selected[owner == 0].any()
    # Nothing near the feature: an empty answer, not an error.
    obj.feature = torch.from_numpy(unit_feature(9)).float()
    assert select_object(model, obj, THRESHOLD).summary["count"] == 0


def test_the_surface_of_some_gaussians_is_where_they_render_behind_a_floater_too():
    # Box 1 seen through a half-transparent veil of other Gaussians halfway to the camera: the
    # pixel's own blended depth lies between them; box 1's surface stays on its face.
    camera = camera_looking_at((0.25, 0.0, 0.05), (0.25, -0.8, 0.5))
    render = RenderConfig(backend="cpu")
    point = np.array([0.5, -0.05, 0.03])  # box 1's front face (y = -0.05)
    u, v = project_pixel(camera, point)
    centre = 0.5 * (camera.cam_to_world[:3, 3] + point)
    grid = np.stack(np.meshgrid(np.linspace(-0.1, 0.1, 21), np.linspace(-0.1, 0.1, 21)),
                    -1).reshape(-1, 2)
    veil = gaussians(centre + np.column_stack([grid[:, 0], np.zeros(len(grid)), grid[:, 1]]),
                     unit_feature(5), (0.2, 0.2, 0.9), opacity=0.08, std=0.01,
                     rng=np.random.default_rng(2))
    boxes = [Box((0.0, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), (0.8, 0.1, 0.1)),
             Box((0.5, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), (0.8, 0.1, 0.1))]
    model, owner = boxes_model(boxes, extra=[veil])
    everything = torch.ones(len(owner), dtype=torch.bool)
    whole = surface_of(model, everything, camera, render)[int(v), int(u)].numpy()
    box1 = surface_of(model, torch.from_numpy(owner == 1), camera, render)
    alone = box1[int(v), int(u)].numpy()
    assert whole[3] > 0.99 and 0.2 < alone[3] < 0.8  # the veil hides part of the box
    assert np.linalg.norm(whole[:3] - point) > 0.1     # the blend: off the box
    assert abs(alone[1] + 0.05) < 0.006, alone          # on the face, a pixel (1.3 cm) off
    assert np.linalg.norm(alone[:3] - point) < 0.025, alone
    empty = box1[0, 0].numpy()
    assert empty[3] < 1e-6 and not empty[:3].any()     # nothing of it there


def test_pieces_of_a_mask_that_mostly_do_not_show_the_object_are_dropped_whole():
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:6, 1:5] = True     # shows the object
    mask[2:6, 12:18] = True   # far, bar one pixel near it (most pixels, not any, decide)
    surface = np.zeros((10, 20, 4))
    surface[..., 3] = 0.8
    surface[:, 10:, :3] = [2.0, 0.0, 0.0]
    surface[3, 13, :3] = [0.0, 0.0, 0.01]
    surface[2, 1:5, 3] = 0.0  # a row where the object's Gaussians render nothing: still its piece
    kept = pieces_within_reach(mask, surface, np.zeros((1, 4)), reach=0.05)
    np.testing.assert_array_equal(kept[:, :10], mask[:, :10])
    assert not kept[:, 10:].any()
    assert pieces_within_reach(mask, surface, np.zeros((1, 4)), reach=3.0).sum() == mask.sum()
    surface[..., 3] = 0.0  # nothing of the object's similar Gaussians anywhere: nothing kept
    assert not pieces_within_reach(mask, surface, np.zeros((1, 4)), reach=3.0).any()


def test_mask_reach_drops_a_look_alike_apart_from_a_prompts_mask_and_keeps_the_object():
    # Boxes 0 and 1 share a feature 0.5 m apart: Eq. 6 masks both in any view that shows them;
    # `query.mask_reach` keeps the one whose surface lies at the prompted object's Gaussians.
    model, owner = model_with_hidden_plate_and_outlier()
    camera = camera_looking_at((0.25, 0.0, 0.05), (0.25, -0.8, 0.5))
    render = RenderConfig(backend="cpu")
    features = FeatureCache(model, OneView(camera), render)
    u, v = project_pixel(camera, (0.0, -0.05, 0.05))  # box 0's front face
    box0 = np.zeros((camera.height, camera.width), dtype=bool)
    box1 = np.zeros_like(box0)
    for x, y, z in np.random.default_rng(1).uniform(-0.05, 0.05, (400, 3)):
        for box, centre in ((box0, 0.0), (box1, 0.5)):  # pixels each box covers
            pu, pv = project_pixel(camera, (centre + x, y, 0.05 + z))
            box[int(pv), int(pu)] = True
    masks = {}
    for reach in (0.0, 0.05):
        query = dataclasses.replace(QueryConfig(), mask_reach=reach)
        obj = pixel_object(model, camera, u, v, render=render, query=query,
                           feature_map=features(camera.name))
        masks[reach] = object_mask(obj, camera.name, features, query, 0.6)
    assert (masks[0.0] & box0).sum() > 0.8 * box0.sum()
    assert (masks[0.0] & box1).sum() > 0.8 * box1.sum()   # Eq. 6 alone: the look-alike too
    assert (masks[0.05] & box0).sum() == (masks[0.0] & box0).sum()
    assert not (masks[0.05] & box1).any()


def test_a_listed_objects_mask_keeps_to_its_own_gaussians_and_an_early_map_keeps_eq6():
    # A text query names an object of the table: its mask is anchored on that object's
    # Gaussians (`SpatialFilter.anchor_of`, as the map service does), not on a pixel's part.
    model, owner = model_with_hidden_plate_and_outlier()
    camera = camera_looking_at((0.25, 0.0, 0.05), (0.25, -0.8, 0.5))
    render, query = RenderConfig(backend="cpu"), QueryConfig()
    features = FeatureCache(model, OneView(camera), render)
    feature = model["features"][np.flatnonzero(owner == 0)].mean(dim=0).detach()
    spatial = SpatialFilter(model, query)
    masks = {}
    for anchored_on in (0, 1, None):
        anchor = None if anchored_on is None else spatial.anchor_of(owner == anchored_on)
        obj = PromptedObject("the box", feature, object_id=0, anchor=anchor)
        masks[anchored_on] = object_mask(obj, camera.name, features, query, 0.6)
    both = masks[None]  # no anchor: Eq. 6 alone masks the two boxes that share the feature
    assert masks[0].any() and masks[1].any()
    assert not (masks[0] & masks[1]).any() and ((masks[0] | masks[1]) == both).all()
    few = np.zeros(len(owner), dtype=bool)
    few[np.flatnonzero(owner == 0)[:MIN_ANCHOR - 1]] = True
    assert spatial.anchor_of(few) is None  # too few to say where the object is: no rule
