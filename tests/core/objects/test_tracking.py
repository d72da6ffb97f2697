"""Object identity through changes, on real clusterings of point-cloud 'maps': a red box and a
blue ball on a table; then the box taken away, or the ball moved 30 cm.

(Points exactly on a surface put every point on the convex hull, and the minimal oriented box
takes seconds then: these surfaces have a map's few millimetres of thickness.)"""

import numpy as np
import torch

from cgc_core.config import ObjectsConfig
from cgc_core.objects.cluster import cluster_objects
from cgc_core.objects.tracking import ObjectTracker, appearance_similarity, removal_cover

RED, BLUE, GREY = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9), (0.5, 0.5, 0.5)


def box_surface(centre, sides, n, rng):
    """n points on the surface of an axis-aligned box."""
    points = rng.uniform(-0.5, 0.5, size=(n, 3)) * sides
    axis = rng.integers(0, 3, n)
    points[np.arange(n), axis] = np.sign(points[np.arange(n), axis]) * sides[axis] / 2
    return points + centre + rng.normal(0, 0.003, (n, 3))  # a map's surfaces have thickness


def ball_surface(centre, radius, n, rng):
    d = rng.standard_normal((n, 3))
    return centre + radius * d / np.linalg.norm(d, axis=1, keepdims=True) + \
        rng.normal(0, 0.003, (n, 3))


def splats(parts, rng):
    """Gaussians of (points, rgb, feature direction) parts, as cluster_objects reads them."""
    means, colours, features = [], [], []
    for points, rgb, feature in parts:
        means.append(points)
        colours.append(np.tile(rgb, (len(points), 1)))
        f = np.tile(feature, (len(points), 1)) + 0.02 * rng.standard_normal((len(points), 16))
        features.append(f)
    means, colours = np.concatenate(means), np.concatenate(colours)
    n = len(means)
    sh0 = (colours - 0.5) / 0.28209479177387814
    return {"means": torch.tensor(means, dtype=torch.float32),
            "opacities": torch.full((n,), 4.0), "sh0": torch.tensor(sh0[:, None],
                                                                     dtype=torch.float32),
            "features": torch.tensor(np.concatenate(features), dtype=torch.float32),
            "log_scales": torch.full((n, 3), -5.0), "quats": torch.tensor([[1.0, 0, 0, 0]] * n)}


def directions(seed):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((3, 16))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


TABLE_F, BOX_F, BALL_F = directions(0)
BOX_AT, BALL_AT, BALL_MOVED_TO = np.array([0.1, 0, 0.05]), np.array([-0.15, 0, 0.04]), \
    np.array([-0.15, 0.3, 0.04])


def scene(rng, box=True, ball_at=BALL_AT, ball_feature=BALL_F):
    # a table top with a sensor's roughness (a plane of exactly zero thickness is a degenerate
    # case for the minimal oriented box, seconds per call)
    table = np.column_stack([rng.uniform(-0.6, 0.6, 3000), rng.uniform(-0.4, 0.4, 3000),
                             rng.normal(0.0, 0.003, 3000)])
    parts = [(table, GREY, TABLE_F), (ball_surface(ball_at, 0.04, 400, rng), BLUE, ball_feature)]
    if box:
        parts.append((box_surface(BOX_AT, np.array([0.08, 0.06, 0.1]), 500, rng), RED, BOX_F))
    return splats(parts, rng)


def removal_of(centre, rng):
    points = box_surface(centre, np.array([0.08, 0.06, 0.1]), 120, rng)
    return {"centre": centre.tolist(), "points": points.tolist()}


CONFIG = ObjectsConfig()


def objects_near(table, point, reach=0.06):
    return [o for o in table.objects if not o.background
            and np.linalg.norm(o.centroid[:2] - point[:2]) < reach]


def track(tracker, table, removals, updates):
    events = []
    for _ in range(updates):
        table, new = tracker.update(table, removals, stamp=1.0)
        events += new
    return table, events


def tracked(seed, tracker=None):
    """(rng, tracker, table): the scene clustered and followed until its objects appeared."""
    rng = np.random.default_rng(seed)
    tracker = ObjectTracker(hold=2) if tracker is None else tracker
    table, _ = track(tracker, cluster_objects(scene(rng), CONFIG), [], 3)
    return rng, tracker, table


def test_a_static_map_reclustered_again_and_again_reports_only_its_objects_appearing():
    rng = np.random.default_rng(1)
    tracker, table, events = ObjectTracker(hold=2), None, []
    for _ in range(6):  # a new sample of the same scene each time, as training moves it
        table = cluster_objects(scene(rng), CONFIG, previous=table)
        table, new = tracker.update(table, [], stamp=0.0)
        events += new
    kinds = [e.kind for e in events]
    assert kinds.count("appeared") == 2 and "removed" not in kinds and "moved" not in kinds


def test_a_removed_object_leaves_the_table_only_on_evidence_of_its_removal():
    rng, tracker, table = tracked(2)
    box_id = objects_near(table, BOX_AT)[0].id
    # The box is gone from the map, but no removal was decided: a clustering that missed it
    # says nothing.
    missed = cluster_objects(scene(rng, box=False), CONFIG, previous=table)
    _, events = track(tracker, missed, [], 3)
    assert not [e for e in events if e.kind == "removed"]
    removal = removal_of(BOX_AT, rng)
    gone = cluster_objects(scene(rng, box=False), CONFIG, previous=table)
    gone, events = track(tracker, gone, [removal], 3)
    removed = [e for e in events if e.kind == "removed"]
    assert [e.id for e in removed] == [box_id]
    assert np.linalg.norm(np.array(removed[0].position_before) - BOX_AT) < 0.03
    assert not objects_near(gone, BOX_AT)


def test_a_moved_object_keeps_its_id_and_label_even_with_features_learned_anew():
    rng, tracker, table = tracked(3)
    ball = objects_near(table, BALL_AT)[0]
    ball.label = "blue ball"
    new_feature = directions(7)[0]  # the new Gaussians learned another feature
    moved = cluster_objects(scene(rng, ball_at=BALL_MOVED_TO, ball_feature=new_feature), CONFIG,
                            previous=table)
    assert objects_near(moved, BALL_MOVED_TO)[0].id != ball.id  # overlap alone loses it
    moved, events = track(tracker, moved, [removal_of(BALL_AT, rng)], 3)
    found = objects_near(moved, BALL_MOVED_TO)
    assert [(o.id, o.label) for o in found] == [(ball.id, "blue ball")]
    assert [(e.kind, e.id) for e in events] == [("moved", ball.id)]
    assert np.linalg.norm(np.array(events[0].position_after) - BALL_MOVED_TO) < 0.03
    assert not objects_near(moved, BALL_AT)


def test_objects_of_other_colour_and_shape_are_not_taken_for_one_another():
    rng = np.random.default_rng(4)
    table = cluster_objects(scene(rng), CONFIG)
    box, ball = objects_near(table, BOX_AT)[0], objects_near(table, BALL_AT)[0]
    again = cluster_objects(scene(rng), CONFIG)
    same_ball = objects_near(again, BALL_AT)[0]
    assert appearance_similarity(ball, same_ball) > 0.8
    assert appearance_similarity(ball, box) < ObjectTracker().min_similarity


def test_an_object_whose_features_drifted_keeps_its_id_without_an_event():
    rng, tracker, table = tracked(5)
    ball = objects_near(table, BALL_AT)[0]
    # Training moved the ball's feature far from the one the table knows: reclustering alone
    # gives it a new id, the tracker gives it its own back.
    drifted = cluster_objects(scene(rng, ball_feature=directions(9)[0]), CONFIG, previous=table)
    assert objects_near(drifted, BALL_AT)[0].id != ball.id
    drifted, events = track(tracker, drifted, [], 3)
    assert [o.id for o in objects_near(drifted, BALL_AT)] == [ball.id]
    assert events == []


def test_what_is_left_where_an_object_was_removed_is_neither_listed_nor_a_move():
    rng, tracker, table = tracked(6)
    box_id = objects_near(table, BOX_AT)[0].id
    # A removal is decided while a third of the box is still in the map, clustered anew.
    rest = splats([(box_surface(BOX_AT, np.array([0.08, 0.06, 0.1]), 500, rng)[:170], RED,
                    directions(11)[0])], rng)
    whole = scene(rng, box=False)
    mixed = {k: torch.cat([whole[k], rest[k]]) for k in whole}
    table = cluster_objects(mixed, CONFIG, previous=table)
    table, events = track(tracker, table, [removal_of(BOX_AT, rng)], 3)
    assert not objects_near(table, BOX_AT)
    assert [(e.kind, e.id) for e in events] == [("removed", box_id)]


YELLOW = (0.9, 0.85, 0.1)


def yellow_ball_beside_the_box(rng):
    """(where, splats of the scene without the box but with a yellow ball 9 cm from where it
    stood, plus the first `remnant` of the box's Gaussians): the ball's new Gaussians take the
    features around them (the box's)."""
    ball_at = BOX_AT + np.array([0.09, 0.0, -0.01])
    table_only = scene(rng, box=False)

    def with_ball(remnant: int):
        box = box_surface(BOX_AT, np.array([0.08, 0.06, 0.1]), 500, rng)[:remnant]
        parts = [(ball_surface(ball_at, 0.045, 400, rng), YELLOW, BOX_F)]
        if remnant:
            parts.append((box, RED, BOX_F))
        extra = splats(parts, rng)
        return {k: torch.cat([table_only[k], extra[k]]) for k in table_only}

    return ball_at, with_ball


def test_an_object_put_down_where_one_was_taken_away_gets_a_new_id():
    rng, tracker, table = tracked(7)
    box_id = objects_near(table, BOX_AT)[0].id
    # A yellow ball is put down 9 cm from where the box stood, while a removal takes the box
    # in bites: the ball's new Gaussians take the features around them, so the clustering
    # joins it to the box's remnant, and then hands the ball alone the box's id by overlap.
    ball_at, with_ball = yellow_ball_beside_the_box(rng)

    mixed = cluster_objects(with_ball(300), CONFIG, previous=table)
    assert [o.id for o in objects_near(mixed, (BOX_AT + ball_at) / 2, 0.1)] == [box_id]
    mixed, events = tracker.update(mixed, [removal_of(BOX_AT, rng)], stamp=1.0)
    alone = cluster_objects(with_ball(0), CONFIG, previous=mixed)
    alone, more = track(tracker, alone, [removal_of(BOX_AT, rng)], 4)
    [newcomer] = objects_near(alone, ball_at)
    assert newcomer.id != box_id and newcomer.label == ""
    assert [(e.kind, e.id) for e in events + more] == [("removed", box_id),
                                                       ("appeared", newcomer.id)]


def test_a_removal_is_announced_at_the_next_update_and_a_later_find_is_a_move():
    rng, tracker, table = tracked(8)
    ball = objects_near(table, BALL_AT)[0]
    gone = cluster_objects(scene(rng, ball_at=BALL_AT + 5.0), CONFIG, previous=table)  # far
    gone, events = track(tracker, gone, [removal_of(BALL_AT, rng)], 2)
    assert [(e.kind, e.id) for e in events] == [("removed", ball.id)]
    # Its new place is learned a few clusterings later: the same ball, moved, not a new one.
    found = cluster_objects(scene(rng, ball_at=BALL_MOVED_TO), CONFIG, previous=gone)
    found, events = track(tracker, found, [removal_of(BALL_AT, rng)], 3)
    assert [(e.kind, e.id) for e in events] == [("moved", ball.id)]
    assert [o.id for o in objects_near(found, BALL_MOVED_TO)] == [ball.id]


def test_a_look_alike_too_far_away_is_another_object():
    rng, tracker, table = tracked(9)
    ball = objects_near(table, BALL_AT)[0]
    far = BALL_AT + np.array([0.0, 0.0, 0.0]) + np.array([1.5, 0.0, 0.0])
    moved = cluster_objects(scene(rng, ball_at=far), CONFIG, previous=table)
    moved, events = track(tracker, moved, [removal_of(BALL_AT, rng)], 4)
    kinds = {(e.kind, e.id == ball.id) for e in events}
    assert kinds == {("removed", True), ("appeared", False)}


def test_the_rest_of_a_large_objects_old_place_cleared_after_its_move_is_no_removal():
    rng = np.random.default_rng(10)
    sides, tray_at, tray_to = np.array([0.25, 0.18, 0.08]), np.array([0.2, 0.0, 0.04]), \
        np.array([0.2, 0.14, 0.04])
    new_feature = directions(12)[0]

    def with_tray(at, feature, remnant=None):
        parts = scene(rng, box=False)
        pieces = [(box_surface(at, sides, 1500, rng), YELLOW, feature)]
        if remnant is not None:  # what is left of the old place, learned as part of the tray
            old = box_surface(tray_at, sides, 1500, rng)
            pieces.append((old[old[:, 1] > remnant], YELLOW, feature))
        tray = splats(pieces, rng)
        return {k: torch.cat([parts[k], tray[k]]) for k in parts}

    def removal(at, sides):
        points = box_surface(at, sides, 200, rng)
        return {"centre": list(at), "points": points.tolist()}

    tracker = ObjectTracker()
    table, _ = track(tracker, cluster_objects(with_tray(tray_at, BOX_F), CONFIG), [], 4)
    tray_id = objects_near(table, tray_at)[0].id
    removals = [removal(tray_at + np.array([0.0, -0.06, 0.0]), np.array([0.25, 0.06, 0.08]))]
    moved = cluster_objects(with_tray(tray_to, new_feature, remnant=-0.08), CONFIG,
                            previous=table)
    moved, events = track(tracker, moved, removals, 3)
    assert [(e.kind, e.id) for e in events] == [("moved", tray_id)]
    # The rest of the old place is cleared: the tray's cluster loses it and its centre jumps.
    removals.append(removal(tray_at + np.array([0.0, 0.0, 0.0]), np.array([0.25, 0.1, 0.08])))
    cleared = cluster_objects(with_tray(tray_to, new_feature), CONFIG, previous=moved)
    cleared, events = track(tracker, cleared, removals, 4)
    assert events == [] and [o.id for o in objects_near(cleared, tray_to)] == [tray_id]


def test_an_object_seen_through_for_the_most_part_is_removed_while_the_map_still_holds_it():
    # `cleared_share` is off by default (it took standing objects of a static scene for
    # removed); this is what it does when on.
    rng, tracker, table = tracked(13, ObjectTracker(cleared_share=0.5))
    box = objects_near(table, BOX_AT)[0]
    # Depth saw through most of the box, but pruning and training have not caught up: the
    # clustering still finds the whole box there, alike and under its id. The removal's points
    # are the box's own surface (the Gaussians forgotten), most of its voxels.
    still = cluster_objects(scene(rng), CONFIG, previous=table)
    assert objects_near(still, BOX_AT)[0].id == box.id
    points = box_surface(BOX_AT, np.array([0.08, 0.06, 0.1]), 3000, rng)
    removal = {"centre": BOX_AT.tolist(), "points": points.tolist()}
    still, events = track(tracker, still, [removal], 2)
    assert [(e.kind, e.id) for e in events] == [("removed", box.id)]
    assert not objects_near(still, BOX_AT)
    # A bite of a few voxels is no such evidence: the ball stays.
    rng, tracker, table = tracked(14, ObjectTracker(cleared_share=0.5))
    ball = objects_near(table, BALL_AT)[0]
    bite = ball_surface(BALL_AT, 0.04, 400, rng)
    bite = bite[bite[:, 2] > BALL_AT[2] + 0.035]
    again = cluster_objects(scene(rng), CONFIG, previous=table)
    again, events = track(tracker, again, [{"centre": BALL_AT.tolist(),
                                            "points": bite.tolist()}], 3)
    assert events == [] and [o.id for o in objects_near(again, BALL_AT)] == [ball.id]


def test_of_two_new_objects_the_more_alike_is_the_moved_one():
    rng, tracker, table = tracked(15)
    ball = objects_near(table, BALL_AT)[0]
    # The ball is moved, and a bigger blue ball is put down elsewhere in the same clustering.
    decoy_at = np.array([0.35, -0.25, 0.06])
    base = scene(rng, ball_at=BALL_MOVED_TO)
    decoy = splats([(ball_surface(decoy_at, 0.06, 500, rng), BLUE, directions(16)[0])], rng)
    both = {k: torch.cat([base[k], decoy[k]]) for k in base}
    both = cluster_objects(both, CONFIG, previous=table)
    [moved], [other] = objects_near(both, BALL_MOVED_TO), objects_near(both, decoy_at)
    assert appearance_similarity(other, ball) >= ObjectTracker().move_similarity
    assert appearance_similarity(moved, ball) > appearance_similarity(other, ball)
    both, events = track(tracker, both, [removal_of(BALL_AT, rng)], 4)
    assert [o.id for o in objects_near(both, BALL_MOVED_TO)] == [ball.id]
    assert ("moved", ball.id) in [(e.kind, e.id) for e in events]
    assert [o.id for o in objects_near(both, decoy_at)] != [ball.id]


def test_an_object_only_partly_like_a_removed_one_is_not_it_moved():
    rng, tracker, table = tracked(17)
    box = objects_near(table, BOX_AT)[0]
    # Elsewhere, a box of the same size, half red and half yellow: what a new object clustered
    # with a removed object's remnant looks like. Alike in size, and in half its colour.
    at = np.array([0.1, 0.3, 0.05])
    half = box_surface(at, np.array([0.08, 0.06, 0.1]), 500, rng)
    base = scene(rng, box=False)
    extra = splats([(half[:250], RED, directions(18)[0]), (half[250:], YELLOW, directions(18)[0])],
                   rng)
    mixed = cluster_objects({k: torch.cat([base[k], extra[k]]) for k in base}, CONFIG,
                            previous=table)
    [other] = objects_near(mixed, at)
    similarity = appearance_similarity(other, box)
    assert ObjectTracker().min_similarity <= similarity < ObjectTracker().move_similarity
    # Half alike, it waits while the box can still be found moved, then is announced as new.
    wait = tracker.hold_removed + tracker.late_moves + 2
    mixed, events = track(tracker, mixed, [removal_of(BOX_AT, rng)], wait)
    assert sorted((e.kind, e.id == box.id) for e in events) == [("appeared", False),
                                                                ("removed", True)]


def test_a_removal_in_an_objects_box_but_not_in_its_voxels_is_no_evidence_it_is_gone():
    # A young map's objects flicker between clusterings. A removal nearby, with a third of its
    # points in the box's grown box but all of those in one corner voxel, makes the box no
    # suspect: when the next clustering misses the box, nothing is reported removed.
    rng, tracker, table = tracked(19)
    box = objects_near(table, BOX_AT)[0]
    corner = BOX_AT + np.array([0.04, 0.03, 0.05])  # the box's top corner
    inside = corner + rng.uniform(-0.004, 0.004, (10, 3))
    outside = BOX_AT + np.array([0.0, 0.2, 0.0]) + rng.uniform(-0.02, 0.02, (20, 3))
    points = np.concatenate([inside, outside])
    assert removal_cover(box, points, ObjectTracker().margin) >= ObjectTracker().min_cover
    missing = cluster_objects(scene(rng, box=False), CONFIG, previous=table)
    _, events = track(tracker, missing, [{"centre": corner.tolist(),
                                          "points": points.tolist()}], 3)
    assert ("removed", box.id) not in [(e.kind, e.id) for e in events]
    # The same removal over the box's own surface is the evidence.
    rng, tracker, table = tracked(19)
    box = objects_near(table, BOX_AT)[0]
    missing = cluster_objects(scene(rng, box=False), CONFIG, previous=table)
    _, events = track(tracker, missing, [removal_of(BOX_AT, rng)], 3)
    assert ("removed", box.id) in [(e.kind, e.id) for e in events]


def test_a_moved_object_first_clustered_with_some_table_is_still_found_as_it_grows_alike():
    rng, tracker, table = tracked(21)
    ball = objects_near(table, BALL_AT)[0]
    # The ball's first clusterings at its new place take in a patch of the table under it
    # (same feature), so it looks only partly like the ball; the map then learns it.
    patch = np.column_stack([rng.uniform(-0.08, 0.08, 400), rng.uniform(-0.08, 0.08, 400),
                             rng.normal(0.0, 0.003, 400)]) + BALL_MOVED_TO * [1, 1, 0]

    def moved(with_patch: bool, previous):
        base = scene(rng, ball_at=BALL_MOVED_TO)
        if with_patch:
            extra = splats([(patch, GREY, BALL_F)], rng)
            base = {k: torch.cat([base[k], extra[k]]) for k in base}
        return cluster_objects(base, CONFIG, previous=previous)

    young = moved(True, table)
    [found] = objects_near(young, BALL_MOVED_TO)
    tracker_copy = ObjectTracker(hold=2)
    assert tracker_copy.maybe_moved_similarity <= appearance_similarity(found, ball) \
        < tracker_copy.move_similarity
    events = []
    for _ in range(4):  # longer than `hold`: before, it was announced as a new object here
        young, new = tracker.update(moved(True, young), [removal_of(BALL_AT, rng)], stamp=1.0)
        events += new
    assert [(e.kind, e.id) for e in events] == [("removed", ball.id)]
    grown, more = track(tracker, moved(False, young), [removal_of(BALL_AT, rng)], 2)
    assert [(e.kind, e.id) for e in more] == [("moved", ball.id)]
    assert [o.id for o in objects_near(grown, BALL_MOVED_TO)] == [ball.id]


def test_an_object_whose_id_another_carries_is_removed_without_depth_evidence():
    rng, tracker, table = tracked(22)
    box_id = objects_near(table, BOX_AT)[0].id
    # The box is taken away and a yellow ball put down beside it; no depth ever sees through
    # the box's place. Joined to the box's remnant first, the ball then carries its id alone.
    ball_at, with_ball = yellow_ball_beside_the_box(rng)

    # (the remnant is small: the box at its fullest stays the measure of what it was)
    mixed, events = tracker.update(cluster_objects(with_ball(80), CONFIG, previous=table), [],
                                   stamp=1.0)
    alone = cluster_objects(with_ball(0), CONFIG, previous=mixed)
    assert [o.id for o in objects_near(alone, ball_at)] == [box_id]
    # One such clustering is no evidence (a fragment may carry an id once)...
    once, more = tracker.update(alone, [], stamp=1.0)
    events += more
    assert events == []
    # ... clusterings in a row are.
    for _ in range(4):
        once, more = tracker.update(cluster_objects(with_ball(0), CONFIG, previous=once), [],
                                    stamp=1.0)
        events += more
    [newcomer] = objects_near(once, ball_at)
    assert newcomer.id != box_id
    assert [(e.kind, e.id) for e in events] == [("removed", box_id), ("appeared", newcomer.id)]


def test_a_look_alike_put_down_by_a_removed_objects_remnant_is_not_it_moved():
    rng, tracker, table = tracked(23)
    ball = objects_near(table, BALL_AT)[0]
    # The ball is taken away (depth saw through it) and a look-alike put down 8.5 cm off; what
    # is left of the ball on that side is clustered with the newcomer, which so shares a few
    # voxels with the ball's old place.
    new_at = BALL_AT + np.array([0.0, 0.085, 0.0])
    base = scene(rng, ball_at=BALL_AT + 5.0)  # (the scene's own ball far off the table)
    remnant = ball_surface(BALL_AT, 0.04, 400, rng)
    remnant = remnant[remnant[:, 1] > BALL_AT[1] + 0.02]
    extra = splats([(ball_surface(new_at, 0.045, 400, rng), BLUE, BALL_F),
                    (remnant, BLUE, BALL_F)], rng)
    both = cluster_objects({k: torch.cat([base[k], extra[k]]) for k in base}, CONFIG,
                           previous=table)
    [newcomer] = objects_near(both, new_at, 0.08)
    shared = np.intersect1d(newcomer.voxels, ball.voxels).size / len(newcomer.voxels)
    assert appearance_similarity(newcomer, ball) >= tracker.move_similarity
    assert 0 < shared < tracker.min_slid_share
    both, events = track(tracker, both, [removal_of(BALL_AT, rng)],
                         tracker.hold_removed + tracker.late_moves + 2)
    [newcomer] = objects_near(both, new_at, 0.08)
    assert newcomer.id != ball.id
    kinds = [(e.kind, e.id) for e in events]
    assert ("removed", ball.id) in kinds and ("appeared", newcomer.id) in kinds
    assert "moved" not in [kind for kind, _ in kinds]
