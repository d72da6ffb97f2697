"""The live session on a table that changes between two passes (`cgc synth` family `changes`,
tiny): what was taken away or moved is forgotten and the keyframes that saw it retire."""

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


def config(forget: bool):
    # At 128x96 an object holds a fraction of the Gaussians it has at 320x240: a removal is an
    # object's worth of them at this size.
    return apply_overrides(CGCConfig(), {"model": {"sh_degree": 1},
                                         "train": {"max_resolution": 0},
                                         "live": {"forget_changes": forget,
                                                  "change_region_points": 15}})


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
def test_what_was_taken_away_or_moved_is_forgotten_and_its_keyframes_retire(changing_scene,
                                                                            tmp_path):
    names = load_scene(changing_scene).train_names
    first = [n for n in names if n.startswith("p1_")]
    second = [n for n in names if n.startswith("p2_")]
    changes = json.loads((changing_scene / "synth.json").read_text())["changes"]
    session = LiveSession(config(True), device="cpu")
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
    # The first pass's keyframes saw it in place: they retire; the second pass's stay.
    retired = {i for c in session.changes for i in c["retired_keyframes"]}
    assert retired and all(session.keyframes[0].id > i for i in retired)
    assert session.stats().keyframes_retired == len(retired)
    # Less is left where things were than when nothing is forgotten.
    left = sum(gaussians_at(session, s) for s in spots)
    left_kept = sum(gaussians_at(kept, s) for s in spots)
    assert left < left_kept, (left, left_kept)
