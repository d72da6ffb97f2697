"""Depth proposals and the fallback at a working size: a table seen at an angle with boxes on it,
all the same colour, so only depth can tell them apart."""

import time

import numpy as np
import pytest

from cgc_core.config import SegmenterConfig
from cgc_core.segment import make_mask_source
from cgc_core.segment.classical import resample_nearest, working_size
from cgc_core.segment.depth import backproject, depth_clusters, depth_regions, support_planes

FX = FY = 280.0
HEIGHT, WIDTH = 120, 160
BOXES = [(40, 80, 20, 60, 0.75), (50, 100, 90, 140, 0.9)]  # rows, cols, depth in metres


def tabletop(height: int = HEIGHT, width: int = WIDTH) -> tuple[np.ndarray, np.ndarray,
                                                                   list[np.ndarray]]:
    """([H, W] depth, [3, 3] K, [H, W] bool per box): a plane tilted 40 degrees away from the
    camera (1.2 m deep at the centre), and fronto-parallel boxes standing in front of it."""
    s = width / WIDTH
    fx, cx, cy = FX * s, width / 2, height / 2
    u = (np.arange(width) + 0.5 - cx) / fx
    v = (np.arange(height) + 0.5 - cy) / fx
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    tilt = np.deg2rad(40)
    normal = np.array([0.0, -np.cos(tilt), -np.sin(tilt)])  # the table rises towards the top
    offset = -normal @ np.array([0.0, 0.0, 1.2])
    depth = -offset / (rays @ normal)
    boxes = []
    for r0, r1, c0, c1, z in BOXES:
        mask = np.zeros((height, width), dtype=bool)
        mask[round(r0 * s):round(r1 * s), round(c0 * s):round(c1 * s)] = True
        depth[mask] = z
        boxes.append(mask)
    K = np.array([[fx, 0, cx], [0, fx, cy], [0, 0, 1.0]])
    return depth.astype(np.float32), K, boxes


def main_label(ids: np.ndarray, mask: np.ndarray) -> tuple[int, float]:
    """The most common id inside `mask` and the share of `mask` it covers."""
    values, counts = np.unique(ids[mask], return_counts=True)
    return int(values[counts.argmax()]), counts.max() / mask.sum()


def test_support_plane_is_the_table_not_the_boxes():
    depth, K, boxes = tabletop()
    points = backproject(depth, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    planes = support_planes(points, threshold=0.01, min_fraction=0.1, max_planes=3)
    table = ~(boxes[0] | boxes[1])
    assert (planes[table] == 1).mean() > 0.99
    # the boxes are planes too, but each holds less than 10 % of the view... except the larger
    # one (15 %): it may be found as a second plane, never as part of the table
    assert np.all(planes[boxes[0] | boxes[1]] != 1)


def test_depth_clusters_break_at_depth_jumps_only():
    depth = np.full((20, 30), 1.0)
    depth[:, 15:] = 1.1                      # a 10 cm step: two clusters at edge_ratio 0.02
    depth[5:8, 2:5] = 1.005                  # a 5 mm bump on the left: the same cluster
    keep = np.ones(depth.shape, dtype=bool)
    keep[:, 10] = False                      # a column left out cuts the left part in two
    clusters = depth_clusters(depth, keep, edge_ratio=0.02)
    assert clusters[0, 0] == clusters[6, 3]
    assert len({clusters[0, 0], clusters[0, 12], clusters[0, 20]}) == 3
    assert np.all(clusters[:, 10] == 0)
    assert set(np.unique(clusters)) == {0, 1, 2, 3}


@pytest.mark.parametrize("bad", [0.0, np.nan, np.inf])
def test_each_box_and_the_table_are_one_region_each_with_invalid_depth(bad):
    depth, K, boxes = tabletop()
    hole = np.zeros(depth.shape, dtype=bool)
    hole[5:15, 5:25] = True                   # REP 118: 0, NaN and inf are all invalid
    depth[hole] = bad
    regions = depth_regions(depth, K[0, 0], K[1, 1], K[0, 2], K[1, 2], plane_threshold=0.01,
                            plane_min_fraction=0.1, max_planes=3, edge_ratio=0.02, min_size=30)
    assert np.all(regions[hole] == 0)
    table = ~(boxes[0] | boxes[1] | hole)
    found = [main_label(regions, mask) for mask in (table, *boxes)]
    assert all(share > 0.97 and label > 0 for label, share in found)
    assert len({label for label, _ in found}) == 3


def test_fallback_separates_same_coloured_boxes_by_depth_only():
    depth, K, boxes = tabletop()
    image = np.full((HEIGHT, WIDTH, 3), 120, dtype=np.uint8)   # one colour: nothing to see
    image += np.random.default_rng(0).integers(0, 4, image.shape, dtype=np.uint8)
    source = make_mask_source(SegmenterConfig())
    colour_only = source(image, "view")
    with_depth = source(image, "view", depth=depth, intrinsics=K)
    table = ~(boxes[0] | boxes[1])
    colour_labels = {main_label(colour_only, mask)[0] for mask in (table, *boxes)}
    assert len(colour_labels) == 1                     # colour sees one surface
    found = [main_label(with_depth, mask) for mask in (table, *boxes)]
    assert len({label for label, _ in found}) == 3     # depth: the table and two boxes
    assert all(share > 0.95 for _, share in found)
    off = make_mask_source(SegmenterConfig(depth_proposals=False))
    assert np.array_equal(off(image, "view", depth=depth, intrinsics=K), colour_only)


def test_colour_fills_where_depth_is_missing():
    depth, K, boxes = tabletop()
    image = np.full((HEIGHT, WIDTH, 3), 120, dtype=np.uint8)
    image[boxes[0]] = (220, 40, 40)
    depth[boxes[0]] = 0.0                               # a black or shiny box: no depth
    source = make_mask_source(SegmenterConfig())
    ids = source(image, "view", depth=depth, intrinsics=K)
    label, share = main_label(ids, boxes[0])
    # its colour segment labels it, as without depth (a 2-pixel rim of blurred colour is left
    # unlabelled either way: drop_thin_segments)
    assert label > 0 and share > 0.75
    assert share == main_label(source(image, "view"), boxes[0])[1]
    assert (ids[~boxes[0]] == label).mean() < 0.01


def test_depth_at_another_resolution_is_resampled_and_another_aspect_refused():
    """A live keyframe keeps depth at training size: half-resolution depth separates the boxes
    as full-resolution depth does; depth of another shape is a programming error."""
    depth, K, boxes = tabletop()
    image = np.full((HEIGHT, WIDTH, 3), 120, dtype=np.uint8)
    source = make_mask_source(SegmenterConfig())
    half = source(image, "view", depth=depth[1::2, 1::2], intrinsics=K)
    table = ~(boxes[0] | boxes[1])
    found = [main_label(half, mask) for mask in (table, *boxes)]
    assert len({label for label, _ in found}) == 3 and all(share > 0.9 for _, share in found)
    with pytest.raises(ValueError, match="differ in aspect"):
        source(image, "view", depth=depth[:, :100], intrinsics=K)


def test_working_size_keeps_aspect_and_never_upscales():
    assert working_size(1920, 1080, 76_800) == (370, 208)
    assert working_size(240, 320, 76_800) == (240, 320)
    assert working_size(100, 100, 76_800) == (100, 100)
    assert working_size(1920, 1080, 0) == (1920, 1080)
    ids = np.arange(6).reshape(2, 3)
    assert np.array_equal(resample_nearest(ids, (4, 6)),
                          np.repeat(np.repeat(ids, 2, axis=0), 2, axis=1))


def test_large_image_gives_as_many_segments_as_its_small_copy(rectangles, assert_id_map):
    """Segment sizes are relative to the image: 4x the pixels, about the same segments, and the
    labels come back at full size; without the working size it fragments far more."""
    small, _ = rectangles(240, 320)
    texture = np.random.default_rng(2).integers(-40, 41, (480, 640, 3))
    large = np.clip(rectangles(480, 640)[0].astype(int) + texture, 0, 255).astype(np.uint8)
    source = make_mask_source(SegmenterConfig())
    ids = source(large, "large")
    assert_id_map(ids, (480, 640))
    full = make_mask_source(SegmenterConfig(working_pixels=0))(large, "large")
    assert ids.max() <= 3 * max(source(small, "small").max(), 4)
    assert full.max() > 3 * ids.max()


def test_a_1080p_view_segments_in_about_a_second(assert_id_map):
    """The issue's budget is 1 s on 2 cores (bench/bench_segments.py measures it); the test
    allows 3 s for a loaded machine."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (1920, 1080, 3), dtype=np.uint8)
    depth, K, _ = tabletop(1920, 1080)
    source = make_mask_source(SegmenterConfig())
    start = time.perf_counter()
    ids = source(image, "big", depth=depth, intrinsics=K)
    assert time.perf_counter() - start < 3.0
    assert_id_map(ids, (1920, 1080))


def test_training_segments_each_view_with_its_depth(tiny_scene, tmp_path):
    """`cgc train` without --masks hands the fallback each view's depth and K (the tiny scene has
    depth), caches the maps, and reads the cache back next time."""
    from cgc_core.app.masks import segment_maps
    from cgc_core.config import CGCConfig
    from cgc_core.data import load_scene
    from cgc_core.segment.classical import FelzenszwalbMaskSource

    scene = load_scene(tiny_scene)
    names = scene.train_names[:3]
    maps = segment_maps(scene, names, None, CGCConfig(), tmp_path, log=lambda text: None)
    source = FelzenszwalbMaskSource(SegmenterConfig())
    for name in names:
        camera = scene.camera(name)
        image, depth = scene.load_image(camera), scene.load_depth(camera)
        assert depth is not None and np.array_equal(
            maps[name], source(image, name, depth=depth, intrinsics=camera.K))
        assert (tmp_path / f"{name}.png").is_file()
    colour_only = [source(scene.load_image(scene.camera(n)), n) for n in names]
    assert any(not np.array_equal(maps[n], c) for n, c in zip(names, colour_only))
    again = segment_maps(scene, names, None, CGCConfig(), tmp_path, log=lambda text: None)
    assert all(np.array_equal(again[n], maps[n]) for n in names)
