"""The live session on a table that changes between two passes (`cgc synth` family `changes`,
tiny): what was taken away or moved is forgotten, what was put down is kept, and the keyframes
that saw the old layout stop training the changed regions."""

import json

import numpy as np
import pytest

from cgc_core.config import CGCConfig, apply_overrides
from cgc_core.data import load_scene
from cgc_core.data.synth import make_synthetic_scene
from cgc_core.io import read_label_png
from cgc_core.train.live import LiveSession

ITERATIONS_PER_FRAME = 25


@pytest.fixture(scope="module")
def changing_scene(tmp_path_factory):
    out = tmp_path_factory.mktemp("changing_scene")
    make_synthetic_scene(out, seed=1100, width=128, height=96, n_train=10, n_test=2)
    return out


def config(forget: bool, **live):
    # At 128x96 an object holds a fraction of the Gaussians it has at 320x240: a removal is an
    # object's worth of them at this size.
    return apply_overrides(CGCConfig(), {"model": {"sh_degree": 1},
                                         "train": {"max_resolution": 0},
                                         "live": {"forget_changes": forget,
                                                  "change_region_points": 15, **live}})


def play(session, scene_dir, names):
    scene = load_scene(scene_dir)
    for name in names:
        cam = scene.camera(name)
        session.add_frame(cam, scene.load_image(cam), scene.load_depth(cam),
                          read_label_png(scene_dir / "masks_inconsistent" / f"{name}.png"))
        session.process_frames()
        for _ in range(ITERATIONS_PER_FRAME):
            session.step()


def gaussians_at(session, position, reach=0.04):
    """Gaussians above the table top within `reach` (horizontally) of a spot."""
    means = session.snapshot().splats["means"].numpy()
    near = np.linalg.norm(means[:, :2] - np.asarray(position)[:2], axis=1) < reach
    return int((near & (means[:, 2] > 0.635)).sum())


@pytest.mark.slow
@pytest.mark.parametrize("keyframes", ["retire", "mask"])
def test_what_changed_is_forgotten_and_old_keyframes_stop_training_it(changing_scene, tmp_path,
                                                                      keyframes):
    names = load_scene(changing_scene).train_names
    first = [n for n in names if n.startswith("p1_")]
    second = [n for n in names if n.startswith("p2_")]
    changes = json.loads((changing_scene / "synth.json").read_text())["changes"]
    # "mask" with arrivals on: what was put down is kept too (both off by default)
    options = {"change_keyframes": keyframes, "change_arrivals": keyframes == "mask"}
    session = LiveSession(config(True, **options), device="cpu")
    play(session, changing_scene, first)
    assert session.changes == []  # nothing changed during the first pass
    session.save(tmp_path / "first.pt")
    kept = LiveSession.load(tmp_path / "first.pt", config=config(False), device="cpu")
    play(session, changing_scene, second)
    play(kept, changing_scene, second)

    assert session.changes and kept.changes == []
    spots = [changes["removed"]["position"], changes["moved"]["before"]]
    # Each removal lies at a spot where something was taken away from.
    for removal in session.changes:
        assert min(np.linalg.norm(np.subtract(removal["centre"][:2], s[:2])) for s in spots) \
            < 0.08, (removal["centre"], spots)
    first_ids = {r["id"] for r in session.timeline if r["name"].startswith("p1_")}
    # The first pass's keyframes saw it in place: they retire, or the region leaves their
    # losses (masked); the second pass's are untouched.
    stats = session.stats()
    # Every region depth saw through is accounted for by one outcome (stream.json says which).
    outcomes = dict(stats.removal_candidates)
    assert outcomes["recorded"] == len(session.changes) == stats.removals, outcomes
    assert outcomes.pop("regions") == sum(outcomes.values()) > 0, stats.removal_candidates
    key = "masked_keyframes" if keyframes == "mask" else "retired_keyframes"
    set_aside = {i for c in session.changes for i in c[key]}
    assert set_aside and set_aside <= first_ids, session.changes
    if keyframes == "retire":
        assert stats.keyframes_retired == len(set_aside) and stats.keyframes_masked == 0
        assert session.arrivals == []
    else:
        assert stats.keyframes_retired == 0
        # What was put down (the added object, the moved one's new place) stands where
        # first-pass keyframes measured free space: it leaves their losses too, once a later
        # keyframe saw it there.
        for spot in (changes["added"]["position"], changes["moved"]["after"]):
            near = [a for a in session.arrivals
                    if np.linalg.norm(np.subtract(a["centre"][:2], spot[:2])) < 0.08]
            assert any(set(a["masked_keyframes"]) & first_ids for a in near), \
                (spot, session.arrivals)
            assert all(a["confirmed_by"] > a["keyframe"] and a["retired_keyframes"] == []
                       for a in near)
        masked_views = [kf for kf in session.keyframes if kf.view.ignore is not None]
        assert masked_views and all((kf.view.depth[kf.view.ignore] == 0).all()
                                    for kf in masked_views)
        assert stats.keyframes_masked == \
            sum(len(r["masked_keyframes"]) for r in session.changes + session.arrivals)
        assert stats.arrivals == len(session.arrivals)
    # Less is left where things were than when nothing is forgotten.
    left = sum(gaussians_at(session, s) for s in spots)
    left_kept = sum(gaussians_at(kept, s) for s in spots)
    assert left < left_kept, (left, left_kept)
