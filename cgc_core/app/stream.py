"""`cgc stream`: play a scene's training views into a live session at a frame rate, as a camera
would, then train on to the planned iterations, and write RUN/ exactly as `cgc train` does.

RUN/stream.json adds what only a stream has: per keyframe, when it arrived, became a keyframe
and got its segments (seconds since the stream began, and the iteration count at each), the
removals the session decided, and, when the scene has ground truth, the held-out mIoU sampled
along the way.

The objects are followed while the frames come (`cgc_core.objects.tracking`): RUN/events.jsonl
gets one line per object that appeared, moved or was removed, and RUN/objects.json the final
table, ids carried through the changes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cgc_core.app.evaluate import evaluate_run
from cgc_core.app.masks import segment_maps
from cgc_core.app.run_folder import Run, write_run
from cgc_core.config import CGCConfig
from cgc_core.data import Scene, load_scene
from cgc_core.devices import resolve_device
from cgc_core.io import DataError, atomic_path, write_json
from cgc_core.objects.cluster import cluster_objects
from cgc_core.objects.store import save_object_table
from cgc_core.objects.tracking import ObjectTracker
from cgc_core.segment import make_mask_source
from cgc_core.train.live import LiveSession
from cgc_core.train.schedule import planned_iterations, with_scene_resolution

STREAM_FILE = "stream.json"
EVENTS_FILE = "events.jsonl"
TRACK_PERIOD = 2.0
"""Seconds between the object clusterings that follow the objects while frames come."""


class Progress:
    """One status line: frames received, keyframes, Gaussians, it/s (redrawn on a terminal,
    printed every `every` seconds into a log)."""

    def __init__(self, session: LiveSession, total: int, enabled: bool, every: float = 10.0):
        self.session, self.total, self.enabled = session, total, enabled
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else every
        self.last = 0.0

    def show(self, force: bool = False, note: str = "") -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.every):
            return
        self.last = now
        s = self.session.stats()
        line = (f"stream: {s.frames_received} frames ({s.frames_dropped} dropped), "
                f"{s.keyframes} keyframes, {s.segments_pending} segmenting, "
                f"{s.num_gaussians} Gaussians, it {s.step}/{self.total}, "
                f"{s.iterations_per_second:.1f} it/s{note}")
        print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


def stream_scene(scene_path: Path, out: Path, *, config: CGCConfig,
                 masks_dir: Path | None = None, rate: float = 1.0, iterations: int | None = None,
                 eval_every: float = 30.0, progress: bool = True,
                 iterations_per_frame: int = 0,
                 log: Callable[[str], None] = print,
                 on_start: Callable[[LiveSession], None] | None = None) -> Run:
    """Stream the scene's training views (file order) at `rate` frames per second of wall clock
    into a live session training in its own thread, then train on until `iterations` (default:
    what `cgc train` would run) in this thread.

    Args:
        masks_dir: the frames' segments as PNGs (as `cgc train --masks`); None: the configured
            mask source segments keyframes in the session's worker.
        eval_every: seconds between held-out mIoU samples (0: none; needs test_mask/).
        iterations_per_frame: hold each frame back until the session has trained this many
            iterations per frame sent (0: never): plays the frames at the pace of a machine
            that trains that fast (a GPU), whatever this one does.
        on_start: called with the session just before the first frame (benchmark probes).
    """
    if rate <= 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    scene = load_scene(scene_path)
    if not scene.train_names:
        raise DataError(f"{scene_path}: the scene has no training views")
    device = resolve_device(config.train.device, "train.device")
    total = iterations or planned_iterations(config, device)
    config = with_scene_resolution(config, device, max(max(c.width, c.height)
                                                       for c in scene.train_cameras))
    out.mkdir(parents=True, exist_ok=True)
    segments = None if masks_dir is None else segment_maps(scene, scene.train_names, masks_dir,
                                                           config, out / "masks", log=log)
    has_depth = scene.load_depth(scene.camera(scene.train_names[0])) is not None
    session = LiveSession(
        config, device=device,
        mask_source=None if segments is not None else make_mask_source(config.segmenter),
        prior_points=None if has_depth else scene.points,
        prior_colors=None if has_depth else scene.point_colors)
    quality = _QualitySampler(session, scene, eval_every)
    tracker = _Tracking(session, config, out / EVENTS_FILE)
    bar = Progress(session, total, progress)
    log(f"streaming {len(scene.train_names)} frames at {rate:g} frames/s on {device}, then "
        f"training to {total} iterations")
    if on_start is not None:
        on_start(session)
    start = time.monotonic()
    session.start()
    try:
        for i, name in enumerate(scene.train_names):
            _wait_until(start + i / rate, bar, quality)
            while iterations_per_frame and session.stats().keyframes and \
                    session.stats().step < i * iterations_per_frame:
                _wait_until(time.monotonic() + 0.05, bar, quality)
            tracker.maybe_update()
            cam = scene.camera(name)
            session.add_frame(cam, scene.load_image(cam), scene.load_depth(cam),
                              None if segments is None else segments[name], stamp=i / rate)
        while session.stats().segments_pending and session.stats().step < total:
            _wait_until(time.monotonic() + 0.5, bar, quality)
    finally:
        session.stop()
    streamed = time.monotonic() - start

    def on_step(_stats) -> None:
        bar.show()
        quality.maybe_sample()

    if session.trainer is None:
        raise DataError(f"{scene_path}: no frame became a keyframe")
    session.settle_by(total)  # the run written has recovered from its last opacity reset
    session.train(max(total, session.trainer.step_count), progress=False, on_step=on_step)
    bar.show(force=True)
    bar.close()
    quality.sample(latest=True)
    table = tracker.finish()
    save_object_table(out, table)
    seconds = time.monotonic() - start
    stats = session.stats()
    write_json(out / STREAM_FILE, {
        "rate": rate, "frames": stats.frames_received, "frames_dropped": stats.frames_dropped,
        "keyframes_evicted": stats.keyframes_evicted, "stream_seconds": round(streamed, 2),
        "pose_corrections": stats.pose_corrections,
        "iterations_per_frame": iterations_per_frame,
        "keyframes_retired": stats.keyframes_retired,
        "keyframes_masked": stats.keyframes_masked,
        "removals": [{k: v for k, v in c.items() if k != "points"} for c in session.changes],
        "removals_refuted": stats.removals_refuted,
        "removal_candidates": stats.removal_candidates,
        "arrivals": session.arrivals,
        "object_events": len(tracker.events),
        "total_seconds": round(seconds, 2), "keyframes": session.timeline,
        "quality": quality.samples})
    log(f"streamed in {streamed:.0f} s, trained in {seconds:.0f} s in all: "
        f"{len(session.keyframes)} keyframes")
    return write_run(out, session, scene, {
        "scene": str(Path(scene_path).resolve()),
        "masks": None if masks_dir is None else str(Path(masks_dir).resolve()),
        "train_seconds": round(seconds, 2), "streamed": True}, log=log)


class _Tracking:
    """Objects followed through the stream: every `TRACK_PERIOD` seconds after a new keyframe,
    cluster the session's model and let the `ObjectTracker` decide what appeared, moved or was
    removed; each event goes to RUN/events.jsonl at once, with the keyframe count at the
    decision."""

    def __init__(self, session: LiveSession, config: CGCConfig, path: Path):
        self.session, self.config, self.path = session, config, path
        self.tracker = ObjectTracker()
        self.table = None
        self.events: list[dict] = []
        self.last, self.keyframes_seen = 0.0, 0
        with atomic_path(path) as tmp:
            tmp.write_text("")

    def maybe_update(self) -> None:
        made = len(self.session.timeline)
        # A removal just decided is looked at now: a planner waits for its event.
        removal = len(self.session.changes) > self.tracker.removals_seen
        if made == self.keyframes_seen or (time.monotonic() - self.last < TRACK_PERIOD
                                           and not removal):
            return
        self.update()

    def update(self):
        snapshot = self.session.snapshot(latest=True)
        if snapshot is None:
            return None
        self.keyframes_seen = len(self.session.timeline)
        stamp = self.session.timeline[-1]["stamp"] if self.session.timeline else 0.0
        table = cluster_objects(snapshot.splats, self.config.objects, previous=self.table)
        self.table, events = self.tracker.update(table, list(self.session.changes), stamp)
        with self.path.open("a") as out:
            for event in events:
                record = {**event.to_json(), "keyframes": self.keyframes_seen,
                          "iteration": snapshot.step}
                self.events.append(record)
                out.write(json.dumps(record) + "\n")
        self.last = time.monotonic()
        return self.table

    def finish(self):
        """The final model's table, after every pending decision was given its hold."""
        for _ in range(self.tracker.settle_updates):
            self.update()
        return self.table


def _wait_until(deadline: float, bar: Progress, quality: _QualitySampler) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        bar.show()
        quality.maybe_sample()
        time.sleep(min(left, 0.1))


class _QualitySampler:
    """Held-out mIoU of the session's snapshots, every `every` seconds (when ground truth
    exists)."""

    def __init__(self, session: LiveSession, scene: Scene, every: float):
        self.session, self.scene, self.every = session, scene, every
        self.enabled = every > 0 and (scene.root / "test_mask").is_dir() and \
            (scene.root / "prompts.json").is_file()
        self.samples: list[dict] = []
        self.last = time.monotonic()

    def maybe_sample(self) -> None:
        if self.enabled and time.monotonic() - self.last >= self.every:
            self.sample()

    def sample(self, latest: bool = False) -> None:
        if not self.enabled:
            return
        snapshot = self.session.snapshot(latest=latest)
        if snapshot is None:
            return
        config = self.session.config
        results = evaluate_run(snapshot.splats, self.scene, config.render,
                               config.query.threshold, config.query, config.objects)
        self.samples.append({"time": round(self.session.elapsed(), 2), "iteration": snapshot.step,
                             "keyframes": len(snapshot.keyframes),
                             "mIoU": round(results["mIoU"], 2),
                             "mBIoU": round(results["mBIoU"], 2)})
        self.last = time.monotonic()
