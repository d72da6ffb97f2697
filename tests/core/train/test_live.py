"""The live session on a real (tiny) synthetic scene: frames in one by one, a model out."""

import time

import numpy as np
import pytest
import torch

from cgc_core.config import CGCConfig, SegmenterConfig, apply_overrides
from cgc_core.data import load_scene
from cgc_core.io import DataError, read_label_png
from cgc_core.segment import make_mask_source
from cgc_core.segment.edges import snap_as_configured
from cgc_core.train.live import LiveSession


def live_config(**live):
    return apply_overrides(CGCConfig(), {
        "model": {"sh_degree": 1},
        "loss": {"clustering_every": 5, "regularization_every": 0, "min_cluster_pixels": 20},
        "train": {"iterations": 200, "max_resolution": 0, "densify_from": 10,
                  "densify_every": 10, "opacity_reset_every": 0},
        "live": {"grow_points": 300, **live},
    })


def frames(scene_dir, with_segments=True):
    scene = load_scene(scene_dir)
    for name in scene.train_names:
        cam = scene.camera(name)
        segments = read_label_png(scene_dir / "masks_inconsistent" / f"{name}.png") \
            if with_segments else None
        yield cam, scene.load_image(cam), scene.load_depth(cam), segments


def project(cam, points):
    w2c = cam.world_to_cam
    p = points @ w2c[:3, :3].T + w2c[:3, 3]
    return p[:, 0] / p[:, 2] * cam.fx + cam.cx, p[:, 1] / p[:, 2] * cam.fy + cam.cy, p[:, 2]


def test_first_keyframe_seeds_gaussians_on_the_measured_depth(tiny_scene):
    session = LiveSession(live_config(), device="cpu")
    cam, image, depth, segments = next(frames(tiny_scene))
    session.add_frame(cam, image, depth, segments)
    assert session.snapshot() is None  # nothing happens until the training side takes the frame
    session.process_frames()
    snap = session.snapshot()
    means = snap.splats["means"].double().numpy()
    assert 0 < len(means) <= 300
    u, v, z = project(cam, means)
    rows, cols = np.floor(v).astype(int), np.floor(u).astype(int)
    assert np.allclose(z, depth[rows, cols], rtol=1e-4)


def test_keyframe_segments_are_snapped_to_colour_edges_whichever_way_they_arrive(tiny_scene):
    # Masks given with the frame, and masks the segmenter worker attaches later, train alike:
    # both with boundaries moved to the image's colour edges (`loss.mask_snap_px`).
    config = live_config()
    cam, image, depth, segments = next(frames(tiny_scene))
    snapped = snap_as_configured(segments, image, config.loss)
    assert (snapped != segments).sum() > 10  # the scene's masks do wander off the edges
    with_frame = LiveSession(config, device="cpu")
    with_frame.add_frame(cam, image, depth, segments)
    with_frame.process_frames()
    later = LiveSession(config, device="cpu", mask_source=lambda image, name: segments)
    later.add_frame(cam, image, depth, keyframe=True)
    later.process_frames()  # the worker is not started: attach as it would
    assert later.attach_segments(later.keyframes[0].id, later.mask_source(image, cam.name))
    for session in (with_frame, later):
        assert np.array_equal(session.keyframes[0].view.segments.numpy(), snapped)


@pytest.mark.slow
def test_without_depth_gaussians_go_on_the_prior_point_cloud(tiny_scene):
    scene = load_scene(tiny_scene)
    session = LiveSession(live_config(), device="cpu", prior_points=scene.points,
                          prior_colors=scene.point_colors)
    cam, image, _, segments = next(frames(tiny_scene))
    session.add_frame(cam, image, None, segments)
    session.process_frames()
    means = session.snapshot().splats["means"].double().numpy()
    distance = np.linalg.norm(means[:, None] - scene.points[None], axis=-1).min(axis=1)
    assert distance.max() < 1e-5


def test_without_depth_or_prior_gaussians_go_on_rays_at_the_configured_depth(tiny_scene):
    session = LiveSession(live_config(default_depth=2.5, rays_depth_spread=1.0), device="cpu")
    cam, image, _, segments = next(frames(tiny_scene))
    session.add_frame(cam, image, None, segments)
    session.process_frames()
    _, _, z = project(cam, session.snapshot().splats["means"].double().numpy())
    assert np.allclose(z, 2.5, rtol=1e-4)
    # By default the guess is spread log-uniformly over [2.5 / 2, 2.5 * 2].
    session = LiveSession(live_config(default_depth=2.5), device="cpu")
    session.add_frame(cam, image, None, segments)
    session.process_frames()
    _, _, z = project(cam, session.snapshot().splats["means"].double().numpy())
    assert z.min() >= 1.25 - 1e-4 and z.max() <= 5.0 + 1e-4
    assert z.min() < 1.5 and z.max() > 4.0  # spread over the range, not at one depth
    assert abs(np.median(np.log(z)) - np.log(2.5)) < 0.15


def test_stream_trains_and_never_exceeds_the_gaussian_cap(tiny_scene):
    config = apply_overrides(live_config(), {"model": {"max_gaussians": 500}})
    session = LiveSession(config, device="cpu")
    for frame in frames(tiny_scene):
        session.add_frame(*frame)
        for _ in range(5):
            session.step()
            assert session.stats().num_gaussians <= 500
    stats = session.stats()
    assert stats.keyframes >= 2 and stats.step == 5 * 8
    assert all(r["iteration_at_keyframe"] <= stats.step for r in session.timeline)


def test_full_keyframe_buffer_forgets_a_redundant_one_never_the_newest(tiny_scene):
    session = LiveSession(live_config(max_keyframes=3, timeline_length=4), device="cpu")
    names = []
    for cam, image, depth, segments in frames(tiny_scene):
        session.add_frame(cam, image, depth, segments, keyframe=True)
        session.process_frames()
        names.append(cam.name)
        assert session.keyframes[-1].camera.name == cam.name
    stats = session.stats()
    assert stats.keyframes == 3 and stats.keyframes_evicted == len(names) - 3
    assert len(session.trainer.views) == 3
    # The timeline keeps the newest records only: a long run must not grow it without end.
    assert len(names) > 4
    assert [r["name"] for r in session.timeline] == names[-4:]


def test_queue_drops_the_oldest_frame_when_full(tiny_scene):
    session = LiveSession(live_config(frame_queue=2), device="cpu")
    all_frames = list(frames(tiny_scene))[:5]
    for frame in all_frames:
        session.add_frame(*frame, keyframe=True)
    assert session.stats().frames_dropped == 3
    session.process_frames()
    assert [k.camera.name for k in session.keyframes] == [f[0].name for f in all_frames[3:]]


def test_segments_from_the_mask_source_arrive_later_in_a_worker(tiny_scene):
    source = make_mask_source(SegmenterConfig(kind="felzenszwalb"))
    session = LiveSession(live_config(), device="cpu", mask_source=source)
    session.start()
    try:
        for cam, image, depth, _ in frames(tiny_scene, with_segments=False):
            session.add_frame(cam, image, depth, keyframe=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                session.stats().keyframes < 8 or session.stats().segments_pending):
            time.sleep(0.05)
    finally:
        session.stop()
    assert session.stats().keyframes == 8 and session.stats().segments_pending == 0
    for keyframe in session.keyframes:
        assert keyframe.view.segments is not None and int(keyframe.view.segments.max()) > 1
        record = keyframe.record
        assert record["segments"] >= record["keyframe"] >= record["arrival"]


@pytest.mark.slow
def test_training_thread_keeps_add_frame_fast_and_readers_waiting_at_most_an_iteration(
        tiny_scene):
    session = LiveSession(live_config(), device="cpu")
    all_frames = list(frames(tiny_scene))
    session.add_frame(*all_frames[0])
    session.start()
    waits, add_times = [], []
    try:
        for frame in all_frames[1:] * 4:
            start = time.perf_counter()
            session.add_frame(*frame)
            add_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            snap = session.snapshot()
            waits.append(time.perf_counter() - start)
            assert snap is None or len({v.shape[0] for v in snap.splats.values()}) == 1
            time.sleep(0.02)
        steps_before = session.stats().step
        time.sleep(0.5)
        assert session.stats().step > steps_before  # it trains in the background
    finally:
        session.stop()
    # Iteration time on this model, measured the same way, bounds how long a reader may wait.
    start = time.perf_counter()
    for _ in range(5):
        session.step()
    iteration = (time.perf_counter() - start) / 5
    assert float(np.median(add_times)) < 0.005
    assert max(waits) < 3 * iteration + 0.05


def test_snapshot_is_a_detached_copy_that_training_does_not_change(tiny_scene):
    session = LiveSession(live_config(), device="cpu")
    for frame in list(frames(tiny_scene))[:3]:
        session.add_frame(*frame)
    session.step()
    snap = session.snapshot()
    kept = {k: v.clone() for k, v in snap.splats.items()}
    assert session.snapshot() is snap  # unchanged model, same snapshot
    for _ in range(5):
        session.step()
    assert all(torch.equal(kept[k], snap.splats[k]) for k in kept)
    assert session.snapshot().version > snap.version
    assert not any(v.requires_grad for v in snap.splats.values())


def test_save_and_load_give_the_same_session(tiny_scene, tmp_path):
    session = LiveSession(live_config(), device="cpu")
    for frame in list(frames(tiny_scene))[:4]:
        session.add_frame(*frame)
    for _ in range(15):
        session.step()
    session.save(tmp_path / "session.pt")
    loaded = LiveSession.load(tmp_path / "session.pt", device="cpu")
    a, b = session.snapshot(), loaded.snapshot()
    assert a.step == b.step and [c.name for c in a.keyframes] == [c.name for c in b.keyframes]
    assert all(torch.equal(a.splats[k], b.splats[k]) for k in a.splats)
    for x, y in zip(session.keyframes, loaded.keyframes):
        assert torch.equal(x.view.segments, y.view.segments)
        assert np.allclose(x.camera.cam_to_world, y.camera.cam_to_world)
    # Both continue identically: the optimiser, random state and schedule came back too.
    for _ in range(3):
        session.step()
        loaded.step()
    assert torch.equal(session.snapshot().splats["means"], loaded.snapshot().splats["means"])


class Payload:
    def __reduce__(self):
        return (print, ("code from a file ran",))


def test_load_refuses_files_that_would_run_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"version": 1, "trainer": Payload()}, path)
    with pytest.raises(DataError):
        LiveSession.load(path, device="cpu")


def test_load_refuses_a_truncated_file(tiny_scene, tmp_path):
    session = LiveSession(live_config(), device="cpu")
    session.add_frame(*next(frames(tiny_scene)))
    session.step()
    session.save(tmp_path / "s.pt")
    data = (tmp_path / "s.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        LiveSession.load(tmp_path / "cut.pt", device="cpu")


def test_snapshots_skip_the_model_just_after_an_opacity_reset(tiny_scene):
    config = apply_overrides(live_config(reset_hold_iterations=4),
                             {"train": {"opacity_reset_every": 10, "scale_schedule": False}})
    session = LiveSession(config, device="cpu")
    session.add_frame(*next(frames(tiny_scene)))
    ceiling = float(torch.sigmoid(torch.tensor(
        np.log(2 * 0.005 / (1 - 2 * 0.005)))))  # where a reset clamps opacities
    for _ in range(9):
        session.step()
    before = session.snapshot()
    session.step()  # step 10 resets the model's opacities
    model = torch.sigmoid(session.trainer.splats["opacities"].detach())
    assert float(model.max()) <= ceiling + 1e-6
    held = session.snapshot()
    assert float(torch.sigmoid(held.splats["opacities"]).max()) > 2 * ceiling
    assert held.step == 10 and held.version > before.version
    assert session.snapshot(latest=True) is not held  # who asks for it gets the model as it is
    for _ in range(3):
        session.step()
        assert session.snapshot() is held
    session.step()  # step 14 = 10 + 4: the held copy is released
    assert session.snapshot() is not held and session.snapshot().step == 14


def test_a_session_saved_while_it_holds_a_snapshot_serves_the_same_one_when_loaded(
        tiny_scene, tmp_path):
    # The node saves the objects clustered from the held snapshot beside the model: a loaded map
    # must serve that snapshot until the hold ends, or it would cluster into other objects.
    config = apply_overrides(live_config(reset_hold_iterations=4),
                             {"train": {"opacity_reset_every": 10, "scale_schedule": False}})
    session = LiveSession(config, device="cpu")
    session.add_frame(*next(frames(tiny_scene)))
    for _ in range(11):
        session.step()  # step 10 reset the opacities; 11 is inside the hold
    held = session.snapshot()
    assert held.step == 10
    session.save(tmp_path / "held.pt")
    loaded = LiveSession.load(tmp_path / "held.pt", device="cpu")
    served = loaded.snapshot()
    assert served.step == 10 and [c.name for c in served.keyframes] == \
        [c.name for c in held.keyframes]
    assert all(torch.equal(served.splats[k], held.splats[k]) for k in held.splats)
    latest = loaded.snapshot(latest=True)
    assert latest.step == 11 and not torch.equal(latest.splats["opacities"],
                                                 held.splats["opacities"])
    for _ in range(3):  # released at step 14, as in the session that was saved
        loaded.step()
    assert loaded.snapshot().step == 14
    # Saved after the hold: nothing held comes back.
    loaded.save(tmp_path / "after.pt")
    assert LiveSession.load(tmp_path / "after.pt", device="cpu").snapshot().step == 14


def test_a_session_told_its_end_makes_no_opacity_reset_it_cannot_recover_from(tiny_scene):
    # As `cgc stream --iterations N` does: with resets every 10 iterations, one at step 10 of a
    # 12-iteration run would leave every opacity at 0.01 in the model written.
    config = apply_overrides(live_config(), {"train": {"opacity_reset_every": 10,
                                                       "scale_schedule": False}})
    session = LiveSession(config, device="cpu")
    scene_frames = frames(tiny_scene)
    session.add_frame(*next(scene_frames))
    session.process_frames()
    session.settle_by(12)
    session.add_frame(*next(scene_frames))  # a keyframe after it extends nothing
    session.train(12, progress=False)
    assert session.stats().step == 12
    ceiling = 2 * config.train.prune_opacity  # where a reset clamps opacities
    assert float(torch.sigmoid(session.trainer.splats["opacities"].detach()).median()) > \
        5 * ceiling


def test_without_depth_the_young_map_moves_to_where_the_cameras_look(tiny_scene):
    # A capture without depth, in units no default guesses: `default_depth` 0.25 where the
    # table is about a metre away. Once the keyframes' axes meet, the map is grown again there.
    depth_error = {}
    for axes in (True, False):
        session = LiveSession(live_config(default_depth=0.25, depth_from_axes=axes,
                                          rays_depth_spread=1.0),
                              device="cpu")
        for cam, image, _, segments in list(frames(tiny_scene))[:4]:
            session.add_frame(cam, image, None, segments, keyframe=True)
        session.process_frames()
        assert len(session.keyframes) == 4
        cam, _, depth, _ = next(frames(tiny_scene))
        u, v, z = project(cam, session.snapshot().splats["means"].double().numpy())
        inside = (z > 0) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        measured = depth[v[inside].astype(int), u[inside].astype(int)]
        depth_error[axes] = float(np.median(np.abs(z[inside] - measured) / measured))
    assert depth_error[False] > 0.5  # every Gaussian on rays at the wrong guess
    assert depth_error[True] < 0.5 * depth_error[False], depth_error


def test_a_stream_told_its_end_stops_densifying_as_long_before_it_as_a_planned_run(tiny_scene):
    """`cgc stream` after its last frame: densification ends where a planned run's would leave
    the same quiet tail (iterations - densify_until: 100 of a 200-iteration schedule), not a
    few iterations before the end, so that the newest Gaussians are trained too."""
    config = apply_overrides(live_config(), {"train": {"scale_schedule": True,
                                                       "opacity_reset_every": 3000}})
    session = LiveSession(config, device="cpu")
    assert (session.config.train.densify_until, session.config.train.opacity_reset_every) == \
        (100, 20)  # scaled from 15000 and 3000 of 30000 to the 200 planned here
    scene_frames = frames(tiny_scene)
    session.add_frame(*next(scene_frames))
    session.process_frames()
    session.train(20, progress=False)
    session.add_frame(*next(scene_frames))
    session.process_frames()
    assert session.stats().keyframes == 2
    densifier = session.trainer.densifier
    assert densifier.until == 120  # open-ended: a planned run's length after the keyframe
    session.settle_by(170)
    assert densifier.until == 70  # 100 before the end (half a reset interval: 160)
    session.settle_by(80)
    assert densifier.until == 20  # never before now
