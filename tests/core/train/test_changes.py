"""Change detection on analytic geometry: a box in front of a wall, seen by a pinhole camera
along +z, with the depth a sensor would measure after the box was taken away, while it stands,
with the robot family's noise, and with a pose error."""

import numpy as np
import torch

from cgc_core.config import LiveConfig
from cgc_core.train.changes import (
    ChangeVotes,
    FreedSpace,
    arrived_points,
    depth_agreement,
    depth_evidence,
    depth_margin,
    later_word,
    saw_free_space,
    saw_in_place,
    saw_region,
    thickness,
)

W, H, F = 80, 60, 70.0
K = torch.tensor([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]])
VIEWMAT = torch.eye(4)
WALL_Z, BOX_Z = 1.2, 0.8
BOX = (slice(20, 40), slice(30, 50))  # rows, cols of the box's face in the image


def grid_points(rows: slice, cols: slice, z: float) -> torch.Tensor:
    """One Gaussian centre per pixel centre of the block, at depth z."""
    v, u = torch.meshgrid(torch.arange(rows.start, rows.stop) + 0.5,
                          torch.arange(cols.start, cols.stop) + 0.5, indexing="ij")
    x, y = (u - W / 2) / F * z, (v - H / 2) / F * z
    return torch.stack([x, y, torch.full_like(x, z)], -1).reshape(-1, 3)


WALL = grid_points(slice(0, H), slice(0, W), WALL_Z)
BOX_FACE = grid_points(*BOX, BOX_Z)
MEANS = torch.cat([WALL, BOX_FACE])
IS_BOX = torch.cat([torch.zeros(len(WALL), dtype=torch.bool),
                    torch.ones(len(BOX_FACE), dtype=torch.bool)])


def rendered_map() -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas, alpha-blended depth) of the map with the box in it."""
    depth = torch.full((H, W), WALL_Z)
    depth[BOX] = BOX_Z
    return torch.ones(H, W), depth


def evidence(measured, config=LiveConfig()):
    alphas, depth = rendered_map()
    return depth_evidence(MEANS, VIEWMAT, K, measured, alphas, depth, config)


def test_a_box_taken_away_is_seen_through_and_the_wall_behind_it_is_confirmed():
    measured = torch.full((H, W), WALL_Z)  # the box is gone: the wall everywhere
    found = evidence(measured)
    # The eroded see-through region: every box Gaussian but a 2-pixel rim.
    inner = grid_points(slice(22, 38), slice(32, 48), BOX_Z)
    assert found.through[IS_BOX].sum() >= len(inner)
    assert not found.through[~IS_BOX].any()
    assert found.confirmed[~IS_BOX].all()
    assert not found.confirmed[IS_BOX].any()


def test_a_box_in_place_with_the_sensors_noise_and_holes_gives_no_evidence_of_removal():
    rng = np.random.default_rng(0)
    truth = torch.full((H, W), WALL_Z)
    truth[BOX] = BOX_Z
    sigma = LiveConfig().change_noise_at_1m * truth.square()
    measured = truth + sigma * torch.from_numpy(rng.standard_normal((H, W))).float()
    measured[torch.from_numpy(rng.random((H, W)) < 0.02)] = 0.0  # holes (REP 118: invalid)
    measured[0, 0], measured[0, 1] = float("nan"), float("inf")
    found = evidence(measured)
    assert not found.through.any()
    assert found.confirmed.float().mean() > 0.9


def test_something_in_front_of_the_box_is_occlusion_not_removal():
    measured = torch.full((H, W), WALL_Z)
    measured[BOX] = 0.5  # a hand in front of the box
    assert not evidence(measured).through.any()


def test_a_pose_error_that_shifts_the_silhouette_two_pixels_is_not_taken_for_removal():
    measured = torch.full((H, W), WALL_Z)
    measured[20:40, 32:52] = BOX_Z  # the box seen 2 pixels to the right
    assert not evidence(measured).through.any()


def test_the_margin_grows_with_the_sensors_noise_and_has_a_floor():
    config = LiveConfig()
    z = torch.tensor([0.5, 1.0, 4.0])
    margin = depth_margin(z, config)
    assert margin[0] == config.change_min_margin
    assert torch.isclose(margin[2], torch.tensor(config.change_sigmas * 0.0025 * 16))


def test_gaussians_go_only_after_keyframes_in_a_row_saw_through_them():
    config = LiveConfig(change_min_views=2)
    votes = ChangeVotes(config)
    gone = torch.full((H, W), WALL_Z)
    in_place = torch.full((H, W), WALL_Z)
    in_place[BOX] = BOX_Z
    means = MEANS.numpy()
    assert not votes.vote(means, evidence(gone, config)).any()       # one view: not yet
    assert not votes.vote(means, evidence(in_place, config)).any()   # seen in place: start over
    assert not votes.vote(means, evidence(gone, config)).any()
    forget = votes.vote(means, evidence(gone, config))               # two in a row
    assert forget[IS_BOX.numpy()].mean() > 0.6
    assert not forget[~IS_BOX.numpy()].any()


def test_a_keyframe_that_saw_the_box_in_place_is_found_and_one_that_did_not_is_not():
    config = LiveConfig()
    in_place = torch.full((H, W), WALL_Z)
    in_place[BOX] = BOX_Z
    after = torch.full((H, W), WALL_Z)
    assert saw_in_place(BOX_FACE, VIEWMAT, K, in_place, config) == len(BOX_FACE)
    assert saw_in_place(BOX_FACE, VIEWMAT, K, after, config) == 0
    # What confirms a removal, and what refutes it: free space where the box was, or the box.
    assert depth_agreement(BOX_FACE, VIEWMAT, K, after, config) == (0, len(BOX_FACE))
    assert depth_agreement(BOX_FACE, VIEWMAT, K, in_place, config) == (len(BOX_FACE), 0)
    nearer = torch.full((H, W), WALL_Z)
    nearer[BOX] = BOX_Z - 0.2  # something in front of it: neither
    assert depth_agreement(BOX_FACE, VIEWMAT, K, nearer, config) == (0, 0)


def test_an_object_forgotten_in_bites_makes_one_removal_and_scattered_floaters_none():
    config = LiveConfig(change_region_points=30, change_region_window=5,
                        change_region_reach=0.03)
    rng = np.random.default_rng(0)
    freed = FreedSpace(config)
    # Floaters: 12 keyframes of 4 forgotten Gaussians each, scattered over a 2 m room.
    for keyframe in range(12):
        assert freed.add(rng.uniform(-1, 1, (4, 3)), keyframe) == []
    # An object 6 cm across forgotten over three keyframes, 12 Gaussians at a time.
    ball = rng.standard_normal((36, 3))
    ball = np.array([0.3, 0.1, 0.7]) + 0.03 * ball / np.linalg.norm(ball, axis=1, keepdims=True)
    assert freed.add(ball[:12], 20) == []
    assert freed.add(ball[12:24], 21) == []
    regions = freed.add(ball[24:], 22)
    assert len(regions) == 1 and len(regions[0]) == 36
    assert np.allclose(regions[0].mean(0), ball.mean(0))
    # Bites further apart in time than the window never add up.
    late = FreedSpace(config)
    for keyframe, bite in zip((0, 10, 20), np.split(ball, 3)):
        assert late.add(bite, keyframe) == []


def test_a_sheet_of_floaters_is_thin_and_an_object_is_not_whichever_way_they_lie():
    # The static robot scene's false removal: 37 Gaussians in a 14 x 10 cm patch 1.7 cm thick
    # over the table; a removed object's bites are 2.2 cm thick and more.
    rng = np.random.default_rng(0)
    sheet = rng.uniform([-0.07, -0.05, -0.0085], [0.07, 0.05, 0.0085], (37, 3))
    ball = rng.standard_normal((36, 3))
    ball = 0.03 * ball / np.linalg.norm(ball, axis=1, keepdims=True)
    tilt = np.array([[1, 0, 0], [0, np.cos(0.7), -np.sin(0.7)], [0, np.sin(0.7), np.cos(0.7)]])
    config = LiveConfig()
    for rotation in (np.eye(3), tilt):
        assert thickness(sheet @ rotation.T) < config.change_min_thickness
        assert thickness(ball @ rotation.T) > 2 * config.change_min_thickness


def wall_only_map() -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas, alpha-blended depth) of a map made before the box was put down."""
    return torch.ones(H, W), torch.full((H, W), WALL_Z)


def test_a_box_put_down_in_front_of_the_mapped_wall_arrives_where_it_stands():
    measured = torch.full((H, W), WALL_Z)
    measured[BOX] = BOX_Z
    points = arrived_points(measured, *wall_only_map(), VIEWMAT, K, LiveConfig())
    inner = grid_points(slice(22, 38), slice(32, 48), BOX_Z)  # the box's face but a 2-pixel rim
    assert len(points) == len(inner)
    assert torch.allclose(points, inner, atol=1e-5)
    # The keyframe that measured the wall there saw free space where the box now stands; one
    # that measures the box sees it in place.
    wall = torch.full((H, W), WALL_Z)
    assert depth_agreement(points, VIEWMAT, K, wall, LiveConfig()) == (0, len(points))
    assert depth_agreement(points, VIEWMAT, K, measured, LiveConfig()) == (len(points), 0)


def test_nothing_arrives_from_the_sensors_noise_and_holes_a_pose_error_or_an_empty_map():
    config = LiveConfig()
    rng = np.random.default_rng(1)
    truth = torch.full((H, W), WALL_Z)
    truth[BOX] = BOX_Z
    sigma = config.change_noise_at_1m * truth.square()
    noisy = truth + sigma * torch.from_numpy(rng.standard_normal((H, W))).float()
    noisy[torch.from_numpy(rng.random((H, W)) < 0.02)] = 0.0
    noisy[0, 0] = float("nan")
    assert len(arrived_points(noisy, *rendered_map(), VIEWMAT, K, config)) == 0
    shifted = torch.full((H, W), WALL_Z)
    shifted[20:40, 32:52] = BOX_Z  # the box seen 2 pixels to the right
    assert len(arrived_points(shifted, *rendered_map(), VIEWMAT, K, config)) == 0
    # where the map has nothing yet (alpha 0), a measured surface is growth's, not an arrival
    empty = (torch.zeros(H, W), torch.zeros(H, W))
    assert len(arrived_points(truth, *empty, VIEWMAT, K, config)) == 0


def test_a_keyframe_that_saw_the_box_retires_one_that_saw_floaters_over_the_wall_does_not():
    config = LiveConfig()
    in_place = torch.full((H, W), WALL_Z)
    in_place[BOX] = BOX_Z
    need = len(BOX_FACE) // 5
    # Gaussians on the box's face: the keyframe that measured the box would train them back.
    assert saw_region(BOX_FACE, VIEWMAT, K, in_place, config, need) == "in place"
    # ... and Gaussians 1 cm inside it (a Gaussian's centre lies within what it draws).
    inside = BOX_FACE * (BOX_Z + 0.01) / BOX_Z
    assert saw_region(inside, VIEWMAT, K, in_place, config, need) == "in place"
    # A sheet of floaters 2 cm in front of the wall: within the 3 cm see-through margin of a
    # keyframe that measured only the wall, yet free space lies just behind them.
    floaters = grid_points(*BOX, WALL_Z - 0.02)
    wall = torch.full((H, W), WALL_Z)
    assert saw_in_place(floaters, VIEWMAT, K, wall, config) == len(floaters)
    assert saw_region(floaters, VIEWMAT, K, wall, config, need) == "free"
    # A keyframe that measured the wall behind the box's place far off saw neither.
    assert saw_region(BOX_FACE, VIEWMAT, K, wall, config, need) is None


def test_free_space_where_a_box_now_stands_but_not_behind_a_side_seen_only_now():
    config = LiveConfig()
    wall = torch.full((H, W), WALL_Z)
    # The keyframe saw the wall where the box now stands: free space at its face.
    assert saw_free_space(BOX_FACE, VIEWMAT, K, wall, config, need=len(BOX_FACE) // 5)
    # The box's back, 5 cm behind its face, found by a later keyframe from behind: this one
    # measured the face in front of it (hidden), but for a rim of columns past the silhouette
    # (a pose error), where it measured the wall behind.
    back = grid_points(*BOX, BOX_Z + 0.05)
    box = torch.full((H, W), WALL_Z)
    box[20:40, 36:50] = BOX_Z  # the face seen 6 pixels narrower: 30 % of the back "seen through"
    assert not saw_free_space(back, VIEWMAT, K, box, config, need=len(back) // 5)


def test_a_later_keyframe_says_through_in_place_both_or_nothing():
    config = LiveConfig()
    wall = torch.full((H, W), WALL_Z)
    box = torch.full((H, W), WALL_Z)
    box[BOX] = BOX_Z
    assert later_word(BOX_FACE, VIEWMAT, K, wall, config) == "through"
    assert later_word(BOX_FACE, VIEWMAT, K, box, config) == "in place"
    half = wall.clone()
    half[20:40, 30:40] = BOX_Z  # the box's left half still there, its right half gone
    assert later_word(BOX_FACE, VIEWMAT, K, half, config) == "both"
    nothing = torch.zeros(H, W)  # no valid depth: it did not see the place
    assert later_word(BOX_FACE, VIEWMAT, K, nothing, config) is None
