"""The live session: posed frames in, one by one; a trained model out, at any moment.

    session = LiveSession(config)            # or LiveSession.load(path)
    session.start()                          # training in its own thread (or call step())
    session.add_frame(camera, image, depth=depth, segments=None, stamp=t)   # returns at once
    snap = session.snapshot()                # consistent, detached copy for rendering / queries
    session.save(path); session.stop()

Data flow: `add_frame` checks the frame and puts it in a bounded queue (oldest dropped). The
training thread takes frames from it, decides which become keyframes (`keyframes.py`), grows the
model where a new keyframe shows it empty or wrong (`growth.py`), and trains the one `Trainer` on
the keyframes. Keyframes without segments train colour at once and join the contrastive loss when
the mask source, running in its own worker, delivers their segments.

Offline `cgc train` is the special case "all frames in, then train" (`session_from_scene`): every
frame is a keyframe, the model is seeded from the whole scene, and the schedule is planned.

Threads: the model belongs to `Trainer.lock`, held for one iteration, one frame's keyframe
decision or one growth at a time; the frame queue has a lock of its own, so `add_frame` never
waits for training.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig, apply_overrides, without_retired
from cgc_core.devices import resolve_device
from cgc_core.geometry import depth_at
from cgc_core.io import DataError, atomic_path
from cgc_core.model.sh import num_sh_bases
from cgc_core.model.view import render_view
from cgc_core.render.project import project_gaussians
from cgc_core.segment.base import MaskSource
from cgc_core.train.changes import (
    ChangeVotes,
    FreedSpace,
    arrived_points,
    depth_evidence,
    footprint,
    later_word,
    saw_free_space,
    saw_region,
    thickness,
)
from cgc_core.train.densify import append_gaussians, remove_gaussians
from cgc_core.train.frames import FrameRejected, check_frame
from cgc_core.train.growth import (
    axes_meeting_point,
    depth_in_view,
    gaussian_rows,
    new_gaussians,
    pixels_to_fill,
    prior_points_in_view,
)
from cgc_core.train.keyframes import (
    KeyframeEvidence,
    keyframe_reason,
    median_depth,
    most_redundant,
    pose_change,
    visible_overlap,
)
from cgc_core.train.schedule import planned_iterations, planned_resolution, scaled_schedule
from cgc_core.train.trainer import StepStats, Trainer, load_checkpoint
from cgc_core.train.views import TrainingView, make_training_view, scene_extent

__all__ = ["FrameRejected", "LiveSession", "LiveStats", "Snapshot"]

SESSION_VERSION = 1


@dataclass
class Frame:
    camera: Camera
    image: np.ndarray                 # [H, W, 3] uint8
    depth: np.ndarray | None          # [H, W] float32 metres
    segments: np.ndarray | None       # [H, W] int segment ids
    stamp: float
    index: int                        # 1-based count of accepted frames
    arrival: float                    # monotonic seconds
    keyframe: bool | None             # None: the session decides


@dataclass
class Keyframe:
    id: int
    camera: Camera                    # native resolution
    view: TrainingView                # training resolution, the one the trainer uses
    depth: torch.Tensor | None        # [h, w] metres at training resolution
    record: dict = field(default_factory=dict)
    image: np.ndarray | None = None   # native image, kept only until its segments arrive


@dataclass(frozen=True)
class Snapshot:
    """A consistent, read-only copy of the model at one moment."""

    version: int
    """Grows whenever the model changes; equal versions hold equal models."""
    step: int
    splats: dict[str, torch.Tensor]
    """Detached copies: means [N, 3], quats [N, 4], log_scales [N, 3], opacities [N], sh0
    [N, 1, 3], shN [N, K-1, 3], features [N, D]."""
    keyframes: list[Camera]
    sh_degree: int


@dataclass
class LiveStats:
    frames_received: int
    frames_dropped: int
    frames_rejected: int
    rejected: dict[str, int]
    keyframes: int
    keyframes_evicted: int
    segments_pending: int
    num_gaussians: int
    step: int
    iterations_per_second: float
    keyframes_retired: int = 0
    """Keyframes retired because they saw something that has since changed (`live.
    change_keyframes` "retire")."""
    keyframes_masked: int = 0
    """Times a keyframe had a changed region left out of its loss (`live.change_keyframes`
    "mask")."""
    removals: int = 0
    """Removals decided (`LiveSession.changes`)."""
    removals_refuted: int = 0
    """Candidate removals that a later keyframe refuted (it measured a surface where depth had
    seen through: noise or pose error): pruned, nothing recorded, no keyframe retired."""
    removal_candidates: dict = field(default_factory=dict)
    """What became of each region that depth saw through (`live.forget_changes`), counted by
    outcome: `regions` freed in all; `sheets` thinner than `change_min_thickness`; `recorded`
    removals; `floaters` hugging a surface (`change_free_margin`); `refuted` and `unconfirmed`
    by the later keyframes (none spoke within `change_region_window`); `waiting` for one."""
    arrivals: int = 0
    """Surfaces put down where older keyframes had measured free space, confirmed by a later
    keyframe (`live.change_arrivals`); those keyframes stopped training them
    (`live.change_keyframes`)."""
    pose_corrections: dict = field(default_factory=dict)
    """The keyframes' learned pose corrections: count, median and max rotation (degrees) and
    translation (mm); empty before any keyframe trained (`corrections_summary`)."""


class LiveSession:
    def __init__(self, config: CGCConfig, *, device: str | torch.device = "auto",
                 mask_source: MaskSource | None = None, prior_points: np.ndarray | None = None,
                 prior_colors: np.ndarray | None = None,
                 seed_points: tuple[np.ndarray, np.ndarray | None] | None = None,
                 extent: float | None = None, iterations: int | None = None):
        """
        Args:
            config: the whole configuration; `live` and the training schedule apply.
            device: torch device ("auto": CUDA when available).
            mask_source: segments keyframes that arrive without segments (in a worker thread).
            prior_points: [P, 3] world points (a SLAM map, lidar) to place new Gaussians on when
                a frame has no depth; prior_colors: [P, 3] uint8 or None.
            seed_points: (points [P, 3], colours [P, 3] uint8 or None) to create the model from
                before any frame (offline training); None: the first keyframe creates it.
            extent: the scene extent when known (offline); None: estimated from the keyframes.
            iterations: planned total (offline: the learning rate decays toward it); None:
                open-ended, the live schedule.
        """
        self.device = resolve_device(device, "train.device") if isinstance(device, str) \
            else torch.device(device)
        reference = iterations if iterations is not None else planned_iterations(config,
                                                                                  self.device)
        self.config = scaled_schedule(config, reference)
        self._planned = reference  # the schedule's length (`settle_by`'s quiet tail)
        self.resolution = planned_resolution(config, self.device)
        self.iterations = iterations
        self.mask_source = mask_source
        self.prior_points = None if prior_points is None else np.asarray(prior_points, float)
        self.prior_colors = prior_colors
        self._prior_used = None if prior_points is None else np.zeros(len(prior_points), bool)
        self._fixed_extent = extent if extent is not None else (config.live.extent or None)
        self.lock = threading.RLock()          # the model's lock (shared with the trainer)
        self._queue_lock = threading.Lock()
        self._queue: collections.deque[Frame] = collections.deque()
        self._frame_ready = threading.Condition(self._queue_lock)
        self._counts = collections.Counter()
        self._rejected = collections.Counter()
        self._frames_since_keyframe = 0
        self._next_keyframe_id = 0
        self.keyframes: list[Keyframe] = []
        self.timeline: list[dict] = []
        """One record per keyframe made (the last `live.timeline_length`): arrival, keyframe and
        segments times (seconds since the session began) and the iteration count at each."""
        self.trainer: Trainer | None = None
        self._version = 0
        self._snapshot: Snapshot | None = None
        self._held: Snapshot | None = None  # served instead while the model recovers
        self._held_until = 0
        self._settled = False  # `settle_by` fixed the end of densification
        self._settled_by = 0     # ... at this iteration
        self._step_times: collections.deque[float] = collections.deque(maxlen=50)
        self._started = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._segment_jobs: collections.deque[int] = collections.deque()
        self._segment_ready = threading.Condition(threading.Lock())
        self._segment_thread: threading.Thread | None = None
        self._generator = torch.Generator().manual_seed(config.train.seed + 1)
        self._pending_removals: list[tuple[np.ndarray, dict]] = []  # (region, keyframe record)
        self._pending_arrivals: list[tuple[torch.Tensor, dict]] = []  # (points, keyframe record)
        self._axes_point: np.ndarray | None = None  # where the keyframes' axes meet
        # A map seeded before any frame (offline: from the scene's points or depth) or loaded
        # trained is never grown again from the axes.
        self._may_regrow = seed_points is None
        self._votes = ChangeVotes(self.config.live)
        self._freed = FreedSpace(self.config.live)
        self.changes: list[dict] = []
        """One record per removal decided (`_forget_changes`): keyframe, stamp, Gaussians
        forgotten, their centre and box, keyframes retired or masked; the last
        `timeline_length`."""
        self.arrivals: list[dict] = []
        """One record per surface put down and confirmed (`_confirm_arrivals`): keyframe,
        confirming keyframe, stamp, centre, keyframes retired or masked; the last
        `timeline_length`."""
        if seed_points is not None:
            self._create_trainer(points=seed_points[0], colors=seed_points[1],
                                 extent=self._fixed_extent or 1.0)

    # ------------------------------------------------------------------ frames in

    def add_frame(self, camera: Camera, image: np.ndarray, depth: np.ndarray | None = None,
                  segments: np.ndarray | None = None, stamp: float | None = None, *,
                  keyframe: bool | None = None) -> None:
        """Queue a posed frame and return at once.

        Args:
            camera: intrinsics and camera-to-world pose (OpenCV axes) at the image's size.
            image: [H, W, 3] uint8 RGB.
            depth: [H, W] metres along the optical axis (0: invalid), or None.
            segments: [H, W] segment ids (0: unlabelled), or None to have the mask source cut
                the frame if it becomes a keyframe.
            stamp: the frame's time (seconds); default: arrival time.
            keyframe: force (True) or forbid (False) a keyframe; None: the session decides.

        Raises:
            FrameRejected: the frame is malformed (the message says how); it is counted and
                nothing in the session changes.
        """
        try:
            check_frame(camera, image, depth, segments, stamp, self.config.live)
        except FrameRejected as error:
            with self._queue_lock:
                self._counts["rejected"] += 1
                self._rejected[error.reason] += 1
            raise
        now = time.monotonic()
        with self._queue_lock:
            self._counts["received"] += 1
            frame = Frame(camera, image, depth, segments,
                          stamp if stamp is not None else now - self._started,
                          self._counts["received"], now, keyframe)
            if len(self._queue) >= max(1, self.config.live.frame_queue):
                self._queue.popleft()
                self._counts["dropped"] += 1
            self._queue.append(frame)
            self._frame_ready.notify()

    def process_frames(self) -> int:
        """Take every queued frame through the keyframe decision now; returns how many."""
        count = 0
        while True:
            with self._queue_lock:
                if not self._queue:
                    return count
                frame = self._queue.popleft()
            self._ingest(frame)
            count += 1

    # ------------------------------------------------------------------ training

    def step(self) -> StepStats | None:
        """Process queued frames, then one training iteration (None: no keyframe yet)."""
        self.process_frames()
        if self.trainer is None or not self.trainer.views:
            return None
        with self.lock:
            stats = self.trainer.step()
            self._version += 1
        self._step_times.append(time.monotonic())
        return stats

    def settle_by(self, last: int) -> None:
        """The session will stop at iteration `last`: densification and opacity resets end
        as long before it as a planned run's do before its end (`iterations - densify_until`:
        the second half of the CPU schedule), and at least `opacity_reset_every / 2`, so that
        the final model has recovered from its last reset (a reset clamps every opacity to 0.01;
        `cgc stream --iterations 300` used to write such a model) and its newest Gaussians are
        trained as long as a planned run's (the streams of robot 1002-1005 densified until 100
        iterations before the end: 91.3 mIoU on average without part merging, 92.2 with this
        tail; docs/results.md). New keyframes after this call do not extend them
        again. The learning rates of the centres and the pose corrections decay toward `last`
        from here (`Trainer.plan_end`), as a planned run's do."""
        with self.lock:
            if self.trainer is None:
                return
            t = self.config.train
            quiet = max(t.opacity_reset_every // 2, self._planned - t.densify_until)
            densifier = self.trainer.densifier
            densifier.until = min(densifier.until, max(last - quiet, self.trainer.step_count))
            self.trainer.plan_end(last)
            self._settled = True
            self._settled_by = last

    def train(self, until: int, **kwargs) -> StepStats | None:
        """Iterate in this thread until `until` iterations in all (`Trainer.train`'s options)."""
        self.process_frames()
        if self.trainer is None:
            raise RuntimeError("no keyframe yet: add frames before training")
        on_step = kwargs.pop("on_step", None)

        def stepped(stats: StepStats) -> None:
            with self.lock:
                self._version += 1
            self._step_times.append(time.monotonic())
            if on_step is not None:
                on_step(stats)

        return self.trainer.train(until, on_step=stepped, **kwargs)

    def start(self) -> None:
        """Train in a background thread (and segment in another) until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cgc-train", daemon=True)
        self._thread.start()
        if self.mask_source is not None and self._segment_thread is None:
            self._segment_thread = threading.Thread(target=self._segment_worker,
                                                    name="cgc-segment", daemon=True)
            self._segment_thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._queue_lock:
            self._frame_ready.notify_all()
        with self._segment_ready:
            self._segment_ready.notify_all()
        for thread in (self._thread, self._segment_thread):
            if thread is not None:
                # bounded, as every other join of a face's shutdown: a stuck step must not keep
                # the process from exiting (the threads are daemons)
                thread.join(timeout=30)
        self._thread = self._segment_thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.step() is None:
                with self._queue_lock:
                    if not self._queue and not self._stop.is_set():
                        self._frame_ready.wait(timeout=0.05)
            # Let a waiting reader (snapshot, query) take the model between iterations.
            time.sleep(0)

    # ------------------------------------------------------------------ reading

    def snapshot(self, *, latest: bool = False) -> Snapshot | None:
        """The model now, as detached copies (None before the first keyframe). Taken under the
        model's lock, so it never shows a half-finished densification; for
        `live.reset_hold_iterations` after an opacity reset, the model from just before it
        (unless `latest`)."""
        with self.lock:
            if self.trainer is None:
                return None
            if self._held is not None and not latest:
                if self.trainer.step_count < self._held_until:
                    return self._held
                self._held = None
            if self._snapshot is None or self._snapshot.version != self._version:
                self._snapshot = Snapshot(
                    version=self._version, step=self.trainer.step_count,
                    splats={k: v.detach().clone() for k, v in self.trainer.splats.items()},
                    keyframes=[kf.camera for kf in self.keyframes],
                    sh_degree=self.trainer.sh_degree)
            return self._snapshot

    def _hold_snapshot(self) -> None:
        # Never longer than half the reset interval, or a short schedule would only ever serve
        # held copies.
        hold = min(self.config.live.reset_hold_iterations,
                   self.config.train.opacity_reset_every // 2)
        if hold > 0:
            self._version += 1  # the optimiser step just changed the model
            self._held = None
            self._held = self.snapshot()
            self._held_until = self.trainer.step_count + hold

    def stats(self) -> LiveStats:
        with self._queue_lock:
            counts, rejected = dict(self._counts), dict(self._rejected)
        times = list(self._step_times)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and \
            times[-1] > times[0] else 0.0
        trainer = self.trainer
        return LiveStats(
            frames_received=counts.get("received", 0), frames_dropped=counts.get("dropped", 0),
            frames_rejected=counts.get("rejected", 0), rejected=rejected,
            keyframes=len(self.keyframes), keyframes_evicted=counts.get("evicted", 0),
            segments_pending=len(self._segment_jobs),
            num_gaussians=0 if trainer is None else int(trainer.splats["means"].shape[0]),
            step=0 if trainer is None else trainer.step_count, iterations_per_second=rate,
            keyframes_retired=counts.get("retired", 0), removals=len(self.changes),
            keyframes_masked=counts.get("masked", 0),
            removals_refuted=counts.get("removals_refuted", 0),
            removal_candidates={
                "regions": counts.get("removal_regions", 0),
                "sheets": counts.get("removal_sheets", 0),
                "recorded": counts.get("removals_recorded", 0),
                "floaters": counts.get("removals_floaters", 0),
                "refuted": counts.get("removals_refuted", 0),
                "unconfirmed": counts.get("removals_unconfirmed", 0),
                "waiting": len(self._pending_removals)},
            arrivals=len(self.arrivals),
            pose_corrections={} if trainer is None else corrections_summary(
                trainer.view_corrections()))

    def elapsed(self) -> float:
        """Seconds since the session began (the clock of `timeline`)."""
        return time.monotonic() - self._started

    # ------------------------------------------------------------------ keyframes

    def _ingest(self, frame: Frame) -> None:
        """Keyframe decision for one frame, then (for a keyframe) buffer, growth, segmentation."""
        self._frames_since_keyframe += 1
        if frame.keyframe is False or (
                frame.keyframe is None and self.keyframes
                and self._frames_since_keyframe < self.config.live.min_keyframe_gap):
            return
        view = make_training_view(frame.camera, frame.image, frame.segments, self.resolution,
                                  self.device, loss=self.config.loss)
        depth = None if frame.depth is None else torch.from_numpy(
            depth_at(frame.depth, view.height, view.width)).to(self.device)
        view.depth = depth  # the depth term of the loss (`loss.depth_weight`)
        decide = frame.keyframe is None and bool(self.keyframes)
        with self.lock:
            needs_render = self.trainer is not None and (decide or self.config.live.grow)
            render = self._render(view) if needs_render else None
            if decide:
                evidence = self._evidence(frame.camera, depth, render)
                if keyframe_reason(evidence, self.config.live) is None:
                    return
            self._add_keyframe(frame, view, depth, render)

    def _render(self, view: TrainingView):
        with torch.no_grad():
            return render_view(self.trainer.splats, view.viewmat, view.K, view.width, view.height,
                               sh_degree=self.trainer.sh_degree, render=self.config.render,
                               with_depth=True)

    def _visible(self, view: TrainingView) -> torch.Tensor:
        splats = self.trainer.splats
        with torch.no_grad():
            projection = project_gaussians(splats["means"], splats["quats"],
                                           splats["log_scales"].exp(), view.viewmat, view.K,
                                           view.width, view.height, near=self.config.render.near,
                                           far=self.config.render.far)
        return projection.radii > 0

    def _evidence(self, camera: Camera, depth, render) -> KeyframeEvidence:
        last = self.keyframes[-1]
        translation, rotation = pose_change(last.camera.cam_to_world, camera.cam_to_world)
        measured = median_depth(depth)
        if measured <= 0:
            surface = render.depths / render.alphas.clamp_min(1e-6)
            measured = median_depth(torch.where(render.alphas > 0.5, surface,
                                                torch.zeros_like(surface)))
        visible = render.raw.radii > 0
        last_visible = self._visible(last.view)
        return KeyframeEvidence(
            translation=translation, rotation_deg=rotation, median_depth=measured,
            overlap=visible_overlap(visible, last_visible),
            empty_fraction=float((render.alphas < self.config.live.keyframe_alpha).float().mean()))

    def _add_keyframe(self, frame: Frame, view: TrainingView, depth, render) -> None:
        now = self.elapsed()
        keyframe = Keyframe(self._next_keyframe_id, frame.camera, view, depth)
        self._next_keyframe_id += 1
        keyframe.record = {
            "id": keyframe.id, "name": frame.camera.name, "stamp": frame.stamp,
            "arrival": round(frame.arrival - self._started, 3), "keyframe": round(now, 3),
            "iteration_at_keyframe": 0 if self.trainer is None else self.trainer.step_count,
            "segments": round(now, 3) if view.segments is not None else None,
            "iteration_at_segments": None}
        if view.segments is not None:
            keyframe.record["iteration_at_segments"] = keyframe.record["iteration_at_keyframe"]
        self._frames_since_keyframe = 0
        if self.trainer is None:
            self._create_trainer_from_frame(view, depth)
        else:
            if self.config.live.forget_changes and depth is not None and self._pending_removals:
                self._confirm_removals(keyframe.record, view, depth)
            if self.config.live.forget_changes and depth is not None and render is not None \
                    and self._forget_changes(keyframe.record, view, depth, render):
                render = self._render(view)  # growth fills what the removal uncovered
            if self.config.live.forget_changes and self.config.live.change_arrivals \
                    and depth is not None and render is not None:
                self._confirm_arrivals(keyframe.record, view, depth)
                self._note_arrival(keyframe.record, view, depth, render)
            if self.config.live.grow:
                self._grow(view, depth, render)
        self.keyframes.append(keyframe)
        self.timeline.append(keyframe.record)
        if len(self.timeline) > self.config.live.timeline_length:
            del self.timeline[:len(self.timeline) - self.config.live.timeline_length]
        self.trainer.add_view(view)
        self._meet_axes()
        self._update_extent()
        if self.iterations is None and not self._settled:
            # Open-ended: densification and resets go on for a planned run's length after the
            # newest keyframe, so they last as long as new views come.
            self.trainer.densifier.until = self.trainer.step_count + \
                self.config.train.densify_until
        if len(self.keyframes) > max(2, self.config.live.max_keyframes):
            self._evict()
        self._version += 1
        if view.segments is None and self.mask_source is not None:
            with self._segment_ready:
                self._segment_jobs.append(keyframe.id)
                keyframe.image = frame.image
                self._segment_ready.notify()

    def _forget_changes(self, record: dict, view: TrainingView, depth, render) -> bool:
        """Prune what this keyframe's depth, with the ones before it, sees through; once the
        pruned add up to an object's worth, record the removal and retire the keyframes that
        saw it in place (`cgc_core.train.changes`). True when anything was pruned."""
        trainer, live = self.trainer, self.config.live
        means = trainer.splats["means"].detach()
        evidence = depth_evidence(means, view.viewmat, view.K, depth, render.alphas,
                                  render.depths, live)
        forget = self._votes.vote(means.cpu().numpy(), evidence)
        if not forget.any():
            return False
        gone = means[torch.from_numpy(forget).to(means.device)].cpu().numpy()
        remove_gaussians(trainer.splats, trainer.optimizers,
                         torch.from_numpy(~forget).to(means.device))
        trainer.densifier.state.reset(trainer.splats["means"].shape[0], self.device)
        self._votes.forget_voxels(gone)
        self._version += 1
        for region in self._freed.add(gone, record["id"]):
            self._counts["removal_regions"] += 1
            if thickness(region) < live.change_min_thickness:
                self._counts["floaters_cleared"] += len(region)  # a sheet, not an object
                self._counts["removal_sheets"] += 1
                continue
            self._pending_removals.append((region, dict(record)))
        return True

    def _confirm_removals(self, record: dict, view: TrainingView, depth) -> None:
        """A removal waits for a later keyframe's word before it is recorded and retires
        keyframes: one that measures free space where its Gaussians were confirms it, one that
        measures a surface there refutes it (what depth saw through was noise or pose error,
        often on a surface seen at a grazing angle: its Gaussians are pruned, growth puts them
        back, and no keyframe retires). Retiring on the first word alone took 33 of a static
        robot scene's 58 keyframes once (docs/results.md, issue 28)."""
        self._pending_removals = self._settle(
            self._pending_removals, record, view, depth, "through", "removals",
            lambda region, noted: self._record_removal(region, noted, record["id"]))

    def _note_arrival(self, record: dict, view: TrainingView, depth, render) -> None:
        """Keep what this keyframe measures well in front of the map for a later keyframe to
        confirm (`_confirm_arrivals`)."""
        live = self.config.live
        points = arrived_points(depth, render.alphas, render.depths, view.viewmat, view.K, live)
        if len(points) < live.change_region_points:
            return
        # a thousand points tell which keyframes saw free space there, and where, as well as
        # all do
        points = points[::max(1, len(points) // 1000)]
        self._pending_arrivals.append((points, dict(record)))

    def _confirm_arrivals(self, record: dict, view: TrainingView, depth) -> None:
        """A surface put down (`_note_arrival`) that this later keyframe measures in place too
        stops the older keyframes that measured free space there from training it
        (`_set_aside`): they would train it away. One this keyframe sees through was passing
        by."""
        self._pending_arrivals = self._settle(
            self._pending_arrivals, record, view, depth, "in place", "arrivals",
            lambda points, noted: self._record_arrival(points, noted, record["id"]))

    def _settle(self, pending: list, record: dict, view: TrainingView, depth, expect: str,
                kind: str, confirm) -> list:
        """Hear this later keyframe (`record`, `view`, `depth`) on each pending change
        ([(points [P, 3], the noting keyframe's record)]): `confirm(points, noted)` when it
        measured them `expect` ("through" or "in place", `later_word`), count `kind`_refuted when
        it said otherwise; keyframes that see neither leave a change waiting, for
        `change_region_window` keyframes at most. Returns the changes still waiting."""
        live, waiting = self.config.live, []
        for points, noted in pending:
            word = later_word(torch.as_tensor(points, dtype=torch.float32, device=self.device),
                              view.viewmat, view.K, depth, live)
            if word == expect:
                confirm(points, noted)
            elif word is not None:
                self._counts[f"{kind}_refuted"] += 1
            elif record["id"] - noted["id"] < live.change_region_window:
                waiting.append((points, noted))
            else:
                self._counts[f"{kind}_unconfirmed"] += 1
        return waiting

    def _record_arrival(self, points: torch.Tensor, noted: dict, confirmed_by: int) -> None:
        live = self.config.live
        need = max(1, int(np.ceil(live.change_stale_share * len(points))))
        stale = [i for i, kf in enumerate(self.keyframes)
                 if kf.id < noted["id"] and kf.depth is not None
                 and saw_free_space(points, kf.view.viewmat, kf.view.K, kf.depth, live, need)]
        if not stale:
            return
        self.arrivals.append({
            "keyframe": noted["id"], "confirmed_by": confirmed_by, "stamp": noted["stamp"],
            "centre": points.mean(0).cpu().numpy().round(4).tolist(),
            **self._set_aside(stale, points, "through")})
        del self.arrivals[:-live.timeline_length]

    def _record_removal(self, region: np.ndarray, record: dict, confirmed_by: int) -> None:
        points = torch.from_numpy(region).float().to(self.device)
        stale, floaters = self._stale_keyframes(points)
        if floaters and not stale:
            # Keyframes saw it only as near a surface as the see-through margin allows, and
            # free space just behind it: floaters hugging a surface, pruned; nothing was there.
            self._counts["floaters_cleared"] += len(region)
            self._counts["removals_floaters"] += 1
            return
        self._counts["removals_recorded"] += 1
        self.changes.append({
            "kind": "removed", "keyframe": record["id"], "stamp": record["stamp"],
            "time": record["keyframe"], "confirmed_by": confirmed_by,
            "gaussians": int(len(region)), "centre": region.mean(0).round(4).tolist(),
            "box": [region.min(0).round(4).tolist(), region.max(0).round(4).tolist()],
            **self._set_aside(stale, points, "in place"),
            # what the object tracker tests objects against (`cgc_core.objects.tracking`)
            "points": region[::max(1, len(region) // 200)].round(4).tolist()})
        del self.changes[:-self.config.live.timeline_length]

    def _stale_keyframes(self, region: torch.Tensor) -> tuple[list[int], bool]:
        """(indices of the keyframes that saw at least `change_stale_share` of [P, 3] `region` in
        place: they would train it back; whether others did only within the see-through
        margin, while measuring free space just behind it: `change_free_margin`).

        The see-through margin (`change_min_margin`, 3 cm) lets a keyframe that measured a table
        count a sheet of floaters 1-3 cm above it as "in place"; a removed object's Gaussians
        lie inside or on what was measured, never in front of it by more than a centimetre.
        Measured on the false removals of a static robot stream (seed 1005: 3 removals that
        retired 15 keyframes and cost 27 mIoU) against the true ones of the changes family
        (docs/results.md, issue 28)."""
        live = self.config.live
        need = max(1, int(np.ceil(live.change_stale_share * len(region))))
        seen = [None if kf.depth is None else
                saw_region(region, kf.view.viewmat, kf.view.K, kf.depth, live, need)
                for kf in self.keyframes]
        stale = [index for index, how in enumerate(seen) if how == "in place"]
        floaters = "free" in seen
        return stale, floaters

    def _set_aside(self, stale: list[int], points: torch.Tensor, how: str) -> dict:
        """Stop the keyframes at indices `stale` (ascending) from training a changed region, by
        `live.change_keyframes`: mask the pixels where they measured [P, 3] `points` `how`
        ("in place" for a removal, "through" for an arrival), or retire them. Returns the
        record's {"retired_keyframes": ids, "masked_keyframes": ids}."""
        live = self.config.live
        if live.change_keyframes == "retire":
            return {"retired_keyframes": self._retire(stale), "masked_keyframes": []}
        masked = []
        for index in stale:
            keyframe = self.keyframes[index]
            pixels = footprint(points, keyframe.view.viewmat, keyframe.view.K, keyframe.depth,
                               live, how, live.change_mask_px)
            if bool(pixels.any()):
                _mask_keyframe(keyframe, pixels)
                masked.append(keyframe.id)
        self._counts["masked"] += len(masked)
        self._version += 1
        return {"retired_keyframes": [], "masked_keyframes": masked}

    def _retire(self, stale: list[int]) -> list[int]:
        """Retire the keyframes at indices `stale` (ascending); returns their ids."""
        ids = [self.keyframes[i].id for i in stale]
        for index in reversed(stale):
            del self.keyframes[index]
            self.trainer.remove_view(index)
        self._counts["retired"] += len(stale)
        return ids

    def _evict(self) -> None:
        depth_scale = self.trainer.extent
        index = most_redundant([kf.camera.cam_to_world for kf in self.keyframes], depth_scale)
        del self.keyframes[index]
        self.trainer.remove_view(index)
        self._counts["evicted"] += 1

    def _update_extent(self) -> None:
        if self._fixed_extent is not None:
            return
        estimate = scene_extent([kf.camera for kf in self.keyframes])
        first_depth = median_depth(self.keyframes[0].depth)
        estimate = max(estimate, first_depth)
        if estimate > self.trainer.extent:
            self.trainer.set_extent(estimate)

    # ------------------------------------------------------------------ growth

    def _fallback_depth(self, render, camera: Camera) -> float:
        """Depth for new Gaussians on pixels without a measured one: the median rendered depth,
        else the depth of where the keyframes' axes meet, else `live.default_depth`."""
        if render is not None:
            surface = render.depths / render.alphas.clamp_min(1e-6)
            rendered = median_depth(torch.where(render.alphas > 0.5, surface,
                                                torch.zeros_like(surface)))
            if rendered > 0:
                return rendered
        if self._axes_point is not None:
            depth = depth_in_view(self._axes_point, camera)
            if depth > self.config.render.near:
                return depth
        return self.config.live.default_depth

    def _without_depth(self) -> bool:
        return self.prior_points is None and all(k.depth is None for k in self.keyframes)

    def _meet_axes(self) -> None:
        """Without depth, find where the young map's keyframes look (`live.depth_from_axes`);
        the first time it is found far from where the map was guessed, grow the map again
        from its keyframes at that depth."""
        live = self.config.live
        if not live.depth_from_axes or self._axes_point is not None \
                or len(self.keyframes) > live.axes_max_keyframes or not self._without_depth():
            return
        point = axes_meeting_point([k.camera.cam_to_world for k in self.keyframes],
                                   live.axes_min_angle_deg, self.config.render.near)
        if point is None:
            return
        self._axes_point = point
        depths = [depth_in_view(point, k.camera) for k in self.keyframes]
        ratio = float(np.median(depths)) / live.default_depth
        if 1 / 1.5 <= ratio <= 1.5 or not self._may_regrow:
            return
        views = [k.view for k in self.keyframes]
        self._create_trainer_from_frame(views[0], None)
        for view in views[1:]:
            self._grow(view, None, self._render(view))
        for view in views:
            view.correction = None  # learned against the discarded map
            self.trainer.add_view(view)
        self._held = None
        if self._settled:
            self.settle_by(self._settled_by)
        self._counts["regrown_from_axes"] += 1

    def _growth_rows(self, view: TrainingView, depth, render) -> dict | None:
        live, model = self.config.live, self.config.model
        if render is None:
            fill = torch.ones(view.height, view.width, dtype=torch.bool, device=view.image.device)
        else:
            fill = pixels_to_fill(render.alphas, render.depths, depth, live)
        if depth is None and self.prior_points is not None:
            rows = self._prior_rows(view, fill)
            if rows is not None:
                return rows
        return new_gaussians(view.camera, view.image.cpu(), fill.cpu(),
                             None if depth is None else depth.cpu(),
                             self._fallback_depth(render, view.camera), live.grow_points, live,
                             model.feature_dim, num_sh_bases(model.sh_degree), self._generator)

    def _prior_rows(self, view: TrainingView, fill) -> dict | None:
        live, model = self.config.live, self.config.model
        hits = prior_points_in_view(self.prior_points, view.camera, fill.cpu().numpy())
        hits = hits[~self._prior_used[hits]]
        if len(hits) == 0:
            return None
        pick = torch.randperm(len(hits), generator=self._generator)[:live.grow_points].numpy()
        hits = hits[pick]
        self._prior_used[hits] = True
        means = torch.tensor(self.prior_points[hits], dtype=torch.float32)
        rgb = torch.full((len(hits), 3), 0.5) if self.prior_colors is None else \
            torch.tensor(np.asarray(self.prior_colors)[hits], dtype=torch.float32) / 255.0
        cam = view.camera
        z = (means @ torch.tensor(cam.world_to_cam[:3, :3].T, dtype=torch.float32)
             + torch.tensor(cam.world_to_cam[:3, 3], dtype=torch.float32))[:, 2]
        scale = z / cam.fx * np.sqrt(max(1.0, float(fill.sum()) / len(hits)))
        return gaussian_rows(means, rgb, scale, live, model.feature_dim,
                             num_sh_bases(model.sh_degree), self._generator)

    def _grow(self, view: TrainingView, depth, render) -> None:
        rows = self._growth_rows(view, depth, render)
        if rows is None:
            return
        trainer = self.trainer
        # The cap is never exceeded, not even for a moment: the least opaque go first.
        fit = trainer.densifier.make_room(trainer.splats, trainer.optimizers,
                                          len(rows["means"]))
        append_gaussians(trainer.splats, trainer.optimizers, {k: v[:fit] for k, v in rows.items()})
        trainer.densifier.state.reset(trainer.splats["means"].shape[0], self.device)

    def _create_trainer_from_frame(self, view: TrainingView, depth) -> None:
        rows = self._growth_rows(view, depth, None)
        extent = self._fixed_extent or max(median_depth(depth),
                                           self._fallback_depth(None, view.camera))
        self._create_trainer(splats=rows, extent=extent)

    def _create_trainer(self, *, extent: float, points=None, colors=None, splats=None) -> None:
        self.trainer = Trainer(self.config, [], points=points, colors=colors, splats=splats,
                               extent=extent, iterations=self.iterations, device=self.device,
                               favour_newest=self.iterations is None)
        self.trainer.lock = self.lock
        self.trainer.before_opacity_reset = self._hold_snapshot
        self.trainer.densifier.make_room(self.trainer.splats, self.trainer.optimizers, 0)

    # ------------------------------------------------------------------ segmentation worker

    def _segment_worker(self) -> None:
        while not self._stop.is_set():
            with self._segment_ready:
                while not self._segment_jobs and not self._stop.is_set():
                    self._segment_ready.wait(timeout=0.5)
                if self._stop.is_set():
                    return
                keyframe_id = self._segment_jobs[0]
            with self.lock:
                keyframe = next((k for k in self.keyframes if k.id == keyframe_id), None)
            if keyframe is not None:
                # depth (training size) lets the fallback cut objects apart by depth
                depth = None if keyframe.depth is None else keyframe.depth.cpu().numpy()
                segments = self.mask_source(keyframe.image, keyframe.camera.name, depth=depth,
                                            intrinsics=keyframe.camera.K)
                self.attach_segments(keyframe_id, segments)
            with self._segment_ready:
                self._segment_jobs.popleft()

    def attach_segments(self, keyframe_id: int, segments: np.ndarray) -> bool:
        """Give a keyframe its segment map [H, W] (native size); False when it was evicted."""
        with self.lock:
            keyframe = next((k for k in self.keyframes if k.id == keyframe_id), None)
            if keyframe is None:
                return False
            camera, image = keyframe.camera, keyframe.image
        # Outside the model's lock: snapping a large map to colour takes up to a second, and
        # training must not wait for it.
        resized = make_training_view(camera, image, segments, self.resolution, self.device,
                                     loss=self.config.loss)
        with self.lock:
            if not any(k is keyframe for k in self.keyframes):
                return False  # evicted meanwhile
            segments = resized.segments
            if segments is not None and keyframe.view.ignore is not None:
                segments = torch.where(keyframe.view.ignore, torch.zeros_like(segments), segments)
            keyframe.view.segments = segments
            keyframe.record["segments"] = round(self.elapsed(), 3)
            keyframe.record["iteration_at_segments"] = self.trainer.step_count
            keyframe.image = None
            return True

    # ------------------------------------------------------------------ save / load

    def state_dict(self) -> dict:
        """Everything to resume: model, optimiser, keyframes (poses, images and segments at
        training resolution), timeline and counters. Tensors, numbers and strings only."""
        with self.lock:
            if self.trainer is None:
                raise RuntimeError("nothing to save: no keyframe yet")
            return {
                "version": SESSION_VERSION,
                "trainer": self.trainer.state_dict(),
                "densify_until": self.trainer.densifier.until,
                "keyframes": [_keyframe_state(k) for k in self.keyframes],
                "next_keyframe_id": self._next_keyframe_id,
                "timeline": list(self.timeline),
                "counts": dict(self._counts),
                "resolution": self.resolution,
                "held": self._held_state(),
                "changes": list(self.changes),
                "arrivals": list(self.arrivals),
                "change_votes": self._votes.state_dict(),
                "freed_space": self._freed.state_dict(),
            }

    def _held_state(self) -> dict | None:
        """The snapshot served while the model recovers from an opacity reset: objects clustered
        from it are saved beside the model, so a loaded session must serve it too."""
        held = self._held
        if held is None or self.trainer.step_count >= self._held_until:
            return None
        return {"step": held.step, "until": self._held_until, "sh_degree": held.sh_degree,
                "keyframes": len(held.keyframes),
                "splats": {k: v.cpu() for k, v in held.splats.items()}}

    def save(self, path: Path) -> None:
        """Atomic: a crash mid-write leaves the previous file intact."""
        state = self.state_dict()
        with atomic_path(Path(path)) as tmp:
            torch.save(state, tmp)

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("version") != SESSION_VERSION:
            raise DataError(f"not a cgc live session (version {_get(state, 'version')})")
        with self.lock:
            keyframes = [_keyframe_from_state(k, self.device) for k in state["keyframes"]]
            if self.trainer is None:
                self._create_trainer(points=np.zeros((1, 3)), colors=None,
                                     extent=state["trainer"]["extent"])
            self.trainer.views = [k.view for k in keyframes]
            self.trainer.load_state_dict(state["trainer"])
            self.trainer.densifier.until = int(state["densify_until"])
            self.keyframes = keyframes
            self._next_keyframe_id = int(state["next_keyframe_id"])
            self.timeline = list(state["timeline"])
            self._counts = collections.Counter(state["counts"])
            self.resolution = int(state["resolution"])
            self.changes = list(state.get("changes", []))  # absent before issue 28
            self.arrivals = list(state.get("arrivals", []))
            self._votes.load_state_dict(state.get("change_votes", {}))
            self._freed.load_state_dict(state.get("freed_space", {}))
            self._may_regrow = False
            if self._without_depth():  # new Gaussians in empty space go where the axes meet
                self._axes_point = axes_meeting_point(
                    [k.camera.cam_to_world for k in keyframes],
                    self.config.live.axes_min_angle_deg, self.config.render.near)
            self._version += 1
            self._snapshot = self._held = None
            held = state.get("held")  # absent in files from before it was saved
            if held is not None:
                self._held = Snapshot(
                    version=self._version, step=int(held["step"]),
                    splats={k: v.to(self.device) for k, v in held["splats"].items()},
                    keyframes=[k.camera for k in keyframes[:int(held["keyframes"])]],
                    sh_degree=int(held["sh_degree"]))
                self._held_until = int(held["until"])

    @classmethod
    def load(cls, path: Path, *, config: CGCConfig | None = None,
             device: str | torch.device = "auto",
             mask_source: MaskSource | None = None) -> LiveSession:
        """A session saved by `save`, read without executing code from the file.

        Args:
            config: overrides the saved configuration (default: the saved one).
        """
        state = load_checkpoint(Path(path))
        if not isinstance(state, dict) or "trainer" not in state:
            raise DataError(f"{path}: not a cgc live session file")
        if config is None:
            config = apply_overrides(CGCConfig(), without_retired(state["trainer"]["config"]))
        iterations = state["trainer"]["iterations"]
        session = cls(config, device=device, mask_source=mask_source, iterations=iterations,
                      extent=None)
        session.load_state_dict(state)
        return session

    def reset(self) -> None:
        """Forget the model, the keyframes and the queued frames (counters stay)."""
        with self.lock, self._queue_lock:
            self._queue.clear()
            self.trainer = None
            self.keyframes = []
            self.timeline = []
            self._frames_since_keyframe = 0
            self._snapshot = self._held = None
            self._settled = False
            self.changes = []
            self.arrivals = []
            self._axes_point = None
            self._pending_removals = []
            self._pending_arrivals = []
            self._may_regrow = True
            self._votes = ChangeVotes(self.config.live)
            self._freed = FreedSpace(self.config.live)
            self._version += 1
            if self._prior_used is not None:
                self._prior_used[:] = False


def corrections_summary(corrections: list[dict | None]) -> dict:
    """Median and largest pose correction over the views that have one (`view_corrections`)."""
    known = [c for c in corrections if c is not None]
    if not known:
        return {}
    rotation = [c["rotation_deg"] for c in known]
    translation = [c["translation_mm"] for c in known]
    return {"views": len(known),
            "median_rotation_deg": round(float(np.median(rotation)), 4),
            "max_rotation_deg": round(float(np.max(rotation)), 4),
            "median_translation_mm": round(float(np.median(translation)), 3),
            "max_translation_mm": round(float(np.max(translation)), 3)}


def _mask_keyframe(keyframe: Keyframe, pixels: torch.Tensor) -> None:
    """Leave [H, W] bool `pixels` out of the keyframe's losses from now on: its colour
    (`TrainingView.ignore`), depth (invalid there, so change detection no longer reads it
    either) and segments (unlabelled)."""
    view = keyframe.view
    view.ignore = pixels if view.ignore is None else view.ignore | pixels
    if keyframe.depth is not None:
        keyframe.depth = torch.where(pixels, torch.zeros_like(keyframe.depth), keyframe.depth)
        view.depth = keyframe.depth
    if view.segments is not None:
        view.segments = torch.where(pixels, torch.zeros_like(view.segments), view.segments)


def _get(state, key):
    return state.get(key) if isinstance(state, dict) else None


def _camera_state(cam: Camera) -> dict:
    return {"name": cam.name, "width": cam.width, "height": cam.height, "fx": cam.fx,
            "fy": cam.fy, "cx": cam.cx, "cy": cam.cy,
            "cam_to_world": torch.tensor(cam.cam_to_world)}


def _camera_from_state(c: dict) -> Camera:
    return Camera(c["name"], int(c["width"]), int(c["height"]), float(c["fx"]), float(c["fy"]),
                  float(c["cx"]), float(c["cy"]), c["cam_to_world"].numpy().astype(np.float64))


def _keyframe_state(keyframe: Keyframe) -> dict:
    view = keyframe.view
    return {
        "id": keyframe.id,
        "camera": _camera_state(keyframe.camera),
        "view_camera": _camera_state(view.camera),
        "area_scale": view.area_scale,
        "image": (view.image * 255).round().to(torch.uint8).cpu(),
        "segments": None if view.segments is None else view.segments.to(torch.int32).cpu(),
        "depth": None if keyframe.depth is None else keyframe.depth.cpu(),
        "ignore": None if view.ignore is None else view.ignore.cpu(),
        "record": dict(keyframe.record),
    }


def _keyframe_from_state(state: dict, device) -> Keyframe:
    camera = _camera_from_state(state["camera"])
    view = make_training_view(_camera_from_state(state["view_camera"]), state["image"].numpy(),
                              None if state["segments"] is None else state["segments"].numpy(),
                              0, device)
    view.area_scale = float(state["area_scale"])
    depth = None if state["depth"] is None else state["depth"].to(device)
    view.depth = depth
    ignore = state.get("ignore")  # absent before changed regions were masked
    view.ignore = None if ignore is None else ignore.to(device)
    return Keyframe(int(state["id"]), camera, view, depth, record=dict(state["record"]))
