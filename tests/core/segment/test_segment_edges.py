"""Segment boundaries snapped to colour edges: masks that wander off an outline come back to it,
and nothing moves where colour gives no evidence."""

import numpy as np
import pytest
from scipy import ndimage

from cgc_core.cameras import Camera
from cgc_core.config import LossConfig
from cgc_core.segment.edges import snap_to_colour
from cgc_core.train.views import make_training_view

TABLE, OBJECT = 1, 2
SNAP = {"band": 2, "window": 7, "ratio": 0.5, "contrast": 0.1}


def scene(object_rgb=(200, 30, 30), table_rgb=(150, 140, 120), noise=4.0, seed=0):
    """A 60x80 view: a 12x10 object on a table, slightly noisy colours, and its true labels."""
    rng = np.random.default_rng(seed)
    truth = np.full((60, 80), TABLE, dtype=np.int32)
    truth[20:32, 30:40] = OBJECT
    image = np.where((truth == OBJECT)[..., None], object_rgb, table_rgb).astype(np.float64)
    image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    return image, truth


def grown(truth, label, pixels):
    out = truth.copy()
    out[ndimage.binary_dilation(truth == label, iterations=pixels)] = label
    return out


@pytest.mark.parametrize("label", [OBJECT, TABLE])
def test_a_mask_dilated_over_its_neighbour_comes_back_to_the_colour_edge(label):
    image, truth = scene()
    wrong = grown(truth, label, 2)  # the object's mask takes a ring of table, or the reverse
    assert (wrong != truth).sum() > 40
    snapped = snap_to_colour(wrong, image, **SNAP)
    assert (snapped != truth).sum() == 0


def test_nothing_moves_where_the_colours_are_alike():
    image, truth = scene(object_rgb=(152, 141, 118))  # an object the colour of the table
    wrong = grown(truth, OBJECT, 2)
    assert np.array_equal(snap_to_colour(wrong, image, **SNAP), wrong)


def test_only_the_band_moves_and_unlabelled_pixels_stay_unlabelled():
    image, truth = scene()
    wrong = grown(truth, OBJECT, 2)
    wrong[0:5, :] = 0           # unlabelled rows, far from the object
    wrong[18, 28:42] = 0        # an unlabelled gap on the object's edge
    wrong[10, 10] = OBJECT      # a stray object pixel far out in the table: beyond any band
    snapped = snap_to_colour(wrong, image, **{**SNAP, "band": 1})
    assert np.array_equal(snapped == 0, wrong == 0)
    moved = snapped != wrong
    assert moved.any()
    # every moved pixel lies within 1 px (diagonals included) of the other segment in the input
    square = np.ones((3, 3), dtype=bool)
    near_other = ndimage.binary_dilation(wrong == TABLE, square) & \
        ndimage.binary_dilation(wrong == OBJECT, square)
    assert not (moved & ~near_other).any()
    assert snapped[10, 10] == TABLE  # a one-pixel island has no interior: colour decides it


def test_band_zero_and_a_single_segment_return_the_input():
    image, truth = scene()
    wrong = grown(truth, OBJECT, 2)
    assert np.array_equal(snap_to_colour(wrong, image, **{**SNAP, "band": 0}), wrong)
    alone = np.full_like(truth, 5)
    assert np.array_equal(snap_to_colour(alone, image, **SNAP), alone)


def test_sizes_must_match():
    image, truth = scene()
    with pytest.raises(ValueError, match="differ in size"):
        snap_to_colour(truth[:, :70], image, **SNAP)


def test_training_views_are_snapped_at_native_resolution_when_the_config_asks():
    image, truth = scene()
    wrong = grown(truth, OBJECT, 2)
    camera = Camera("v", 80, 60, 70.0, 70.0, 40.0, 30.0, np.eye(4))
    as_given = make_training_view(camera, image, wrong, 0)
    snapped = make_training_view(camera, image, wrong, 0, loss=LossConfig())
    off = make_training_view(camera, image, wrong, 0, loss=LossConfig(mask_snap_px=0))
    assert np.array_equal(as_given.segments.numpy(), wrong)
    assert np.array_equal(off.segments.numpy(), wrong)
    assert np.array_equal(snapped.segments.numpy(), truth)
