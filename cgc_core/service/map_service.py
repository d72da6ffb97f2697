"""The map service: a live session, its object table and its map folder, behind one object.

Every face of cgc calls this and nothing below it: the node (`cgc_ros`) turns messages into
these calls and the answers back into messages; a unit test drives it with plain objects.

    service = MapService(config, settings, inputs, log)
    service.start()                       # the session trains; objects cluster in background
    service.arrived(t, image)             # frames: admitted, matched, decoded, trained on
    for arrival, image, frame in service.take_ready(): ...   # accepted, to publish
    service.segment_object(Query(...))    # the one query pipeline (cgc_core.service.query)
    service.list_objects() / label() / save(name) / load(name) / reset()

Threads: one worker (the face's) calls everything above; a background thread clusters
snapshots every `cluster_period` and leaves the table for the worker to swap in
(`take_clustering`); another copies the model for requests every `SNAPSHOT_PERIOD`, so that a
request never waits under the model's lock for the training iteration under way.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig
from cgc_core.data.messages import ConversionError, stamp_seconds
from cgc_core.io import DataError
from cgc_core.lens import cover_camera, raw_size, to_raw
from cgc_core.objects.cluster import ObjectInfo, ObjectTable, cluster_objects, match_objects
from cgc_core.objects.models import model_scorers
from cgc_core.objects.segmentation import object_id_map
from cgc_core.objects.tracking import ObjectEvent, ObjectTracker
from cgc_core.query import cosine_to, most_opaque
from cgc_core.segment import make_mask_source
from cgc_core.service import maps
from cgc_core.service.buffers import RateLimitedLog, RequestQueue
from cgc_core.service.frames import Frame, FrameInputs, FrameIntake, FrameRejected
from cgc_core.service.query import (
    FeatureCache,
    OneView,
    PromptedObject,
    QueryError,
    Selection,
    SpatialFilter,
    object_mask,
    pixel_object,
    select_object,
    text_object,
)
from cgc_core.service.settings import NodeSettings
from cgc_core.train.live import LiveSession

MAX_REQUEST_SIDE = 2048
"""Largest view (pixels on a side) a request may ask a mask in: rendering 16-D features at
8192x8192 would take gigabytes and minutes, and block the worker."""
SNAPSHOT_PERIOD = 0.25
"""Seconds between the model copies a background thread takes for requests: a request reads
the latest finished iteration at most one iteration and this long old."""
UNASSIGNED_RGB = (128, 128, 128)


@dataclass
class Query:
    """A request for one object: a pixel (`use_pixel`, u, v) or a text, in `camera` (None: the
    latest keyframe), at `threshold` (0: the configured ones)."""

    use_pixel: bool
    u: float = 0.0
    v: float = 0.0
    text: str = ""
    threshold: float = 0.0
    camera: Camera | None = None


@dataclass
class Answer:
    """What a query found: the mask in the view, the Gaussians selected, the nearest object."""

    camera: Camera
    mask: np.ndarray                  # [H, W] bool
    selection: Selection
    object: ObjectInfo | None
    threshold: float
    selection_threshold: float


def check_view(camera: Camera) -> Camera:
    if camera.width > MAX_REQUEST_SIDE or camera.height > MAX_REQUEST_SIDE:
        raise QueryError(f"camera_info is {camera.width}x{camera.height}: requests are limited "
                         f"to {MAX_REQUEST_SIDE} pixels on a side")
    return camera


class MapService:
    def __init__(self, config: CGCConfig, settings: NodeSettings, inputs: FrameInputs,
                 log: Callable[[str], None]):
        self.config, self.settings, self.inputs = config, settings, inputs
        self.requests = RequestQueue(settings.service_queue_length)
        self.counts: collections.Counter = collections.Counter()
        self.latency = {name: collections.deque(maxlen=100)
                        for name in ("wait_ms", "segmentation_ms", "cluster_ms",
                                     "segment_object_ms", "model_wait_ms")}
        """Recent figures: an image's wait in the queue, image to its segmentation published,
        one clustering, a `segment_object` request, and of it the wait for the model."""
        self.report = RateLimitedLog(log)
        self.intake = FrameIntake(settings, inputs, self.counts, self.report,
                                  self.latency["wait_ms"])
        self.session = self._new_session()
        self.table: ObjectTable | None = None
        self.clustered_splats = None
        """The model the table was clustered from: segmentation renders it (no wait for the
        training thread's lock), with the table's own prototypes."""
        self.objects_changed = True
        self.tracker = ObjectTracker()
        """Carries ids through objects taken away and moved (`cgc_core.objects.tracking`)."""
        self.events: collections.deque[ObjectEvent] = collections.deque(maxlen=1000)
        """Object events decided and not yet taken by the face (`take_events`)."""
        self._clustered_version = -1
        self._cluster_due = 0.0
        self.autosave_due = time.monotonic() + settings.autosave_period
        self._generation = 0
        """Bumped whenever the map is replaced or clustered on request: a background clustering
        begun before is then dropped."""
        self._clustering = None
        self._clustering_lock = threading.Lock()
        self._served = None
        """(epoch, session, snapshot): the model's latest copy for requests."""
        self._epoch = 0
        """Bumped when the map is cleared or replaced: a copy of the map before is not served."""
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._cluster_loop, name="cgc-cluster",
                                          daemon=True),
                         threading.Thread(target=self._snapshot_loop, name="cgc-snapshot",
                                          daemon=True)]

    # ------------------------------------------------------------------ life cycle

    def _new_session(self, path: Path | None = None) -> LiveSession:
        # With external segments the service's own mask source stays idle.
        mask_source = None if self.settings.external_segments else make_mask_source(
            self.config.segmenter)
        if path is not None:
            return LiveSession.load(path, config=self.config, device=self.config.train.device,
                                    mask_source=mask_source)
        return LiveSession(self.config, device=self.config.train.device,
                           mask_source=mask_source)

    def start(self) -> None:
        self.session.start()
        for thread in self._threads:
            thread.start()

    def halt(self) -> None:
        """Tell the background threads to stop (`stop` waits for them): a face stopping its
        own threads first lets these finish their work meanwhile."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        self.session.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ frames

    def arrived(self, arrival: float, image) -> None:
        """An image taken from the face's queue (`FrameIntake.arrived`)."""
        self.intake.arrived(arrival, image)

    def take_ready(self):
        """(arrival, image, frame) of each waiting image whose companions came, handed to the
        session; frames refused on the way are counted and logged, not returned."""
        for arrival, image, companions in self.intake.ready():
            frame = self._add(image, companions)
            if frame is not None:
                yield arrival, image, frame

    def _add(self, image, companions) -> Frame | None:
        try:
            frame = self.intake.decode(image, *companions)
            self.session.add_frame(frame.camera, frame.rgb, frame.depth, frame.segments,
                                   stamp=frame.stamp, keyframe=frame.keyframe)
        except (ConversionError, FrameRejected) as error:
            self.intake.refuse(stamp_seconds(image.header), error)
            return None
        self.counts["frames_accepted"] += 1
        return frame

    # ------------------------------------------------------------------ objects

    def object_features(self):
        """(object ids [K], part features [K, D], colours [K, 3]) of the current table: one row
        per part of each object (`ObjectTable.prototypes`)."""
        objects = [] if self.table is None else self.table.objects
        if not objects:
            return np.zeros(0, np.int64), torch.zeros(0, 1), np.zeros((0, 3), np.uint8)
        features, ids = self.table.prototypes()
        color_of = {o.id: o.color for o in objects}
        colors = np.array([color_of[int(i)] for i in ids], dtype=np.uint8).reshape(-1, 3)
        return ids, torch.from_numpy(features), colors

    def segmentation(self, camera: Camera) -> tuple[np.ndarray, dict[int, tuple]]:
        """([H, W] object ids rendered at `camera`, 0 = none; {id: colour}); on the raw image's
        grid for a camera with a lens (`cgc_core.lens`), as the image the node received."""
        width, height = raw_size(camera)
        ids = np.zeros((height, width), dtype=np.int64)
        object_ids, _, colors = self.object_features()
        palette = {int(i): c for i, c in zip(object_ids, colors)}
        splats, table = self.clustered_splats, self.table
        if len(object_ids) == 0 or splats is None:
            return ids, palette
        target = camera if camera.lens is None else cover_camera(camera)
        side, cap = max(target.width, target.height), self.settings.segmentation_max_side
        view = target.scaled(cap / side) if 0 < cap < side else target
        # The model the objects were clustered from, with their own prototypes: no wait for
        # the training thread's lock (a frame waited seconds for it on busy cores).
        ids = object_id_map(splats, table, view, self.config.render, self.config.query.threshold)
        if camera.lens is not None:  # ids, not colours: nearest, onto the raw grid
            ids = to_raw(camera, torch.as_tensor(np.asarray(ids)), nearest=True).numpy()
        elif view is not camera:  # nearest neighbour back to the image's size: ids, not colours
            rows = np.minimum((np.arange(camera.height) + 0.5) * view.height / camera.height,
                              view.height - 1).astype(np.int64)
            cols = np.minimum((np.arange(camera.width) + 0.5) * view.width / camera.width,
                              view.width - 1).astype(np.int64)
            ids = ids[rows[:, None], cols[None, :]]
        return ids, palette

    def clusters(self) -> tuple[np.ndarray, np.ndarray] | None:
        """([M, 3] points, [M, 3] uint8 colours) of the `cluster_max_points` most opaque
        Gaussians coloured by object, or None before the first clustering."""
        splats = self.clustered_splats
        if self.table is None or self.table.gaussian_object is None or splats is None:
            return None
        keep = most_opaque(splats["opacities"], self.settings.cluster_max_points).cpu().numpy()
        owner = self.table.gaussian_object[keep]
        colors = np.tile(np.array(UNASSIGNED_RGB, dtype=np.uint8), (len(keep), 1))
        for obj in self.table.objects:
            colors[owner == obj.id] = obj.color
        return splats["means"][keep].cpu().numpy(), colors

    def _cluster_loop(self) -> None:
        """Every `cluster_period`, cluster a snapshot into objects (seconds on a CPU, which the
        frames must not wait for) and leave it for the worker; only the worker swaps it in."""
        removals_clustered = 0
        while not self._stop.wait(0.05):
            # A removal just decided is clustered now: a planner waits for its event.
            removals = len(self.session.changes)
            if time.monotonic() < self._cluster_due and removals <= removals_clustered:
                continue
            removals_clustered = removals
            try:
                generation, previous = self._generation, self.table
                snapshot = self.session.snapshot()
                if snapshot is None or snapshot.version == self._clustered_version:
                    continue
                table = self._cluster(snapshot, previous)
                with self._clustering_lock:
                    self._clustering = (generation, snapshot, table)
            except Exception as error:  # counted and logged; the next period tries again
                self.counts["internal_errors"] += 1
                self.report(f"cluster:{type(error).__name__}", f"clustering failed: {error}")
            self._cluster_due = time.monotonic() + self.settings.cluster_period

    def _snapshot_loop(self) -> None:
        """Every `SNAPSHOT_PERIOD`, a copy of the model for requests: the training thread holds
        the model's lock for a whole iteration (1.7 s at 100k Gaussians on busy cores), and
        this thread does that waiting instead of a request."""
        while not self._stop.wait(SNAPSHOT_PERIOD):
            epoch, session = self._epoch, self.session
            try:
                snapshot = session.snapshot()
            except Exception as error:  # counted and logged; the next period tries again
                self.counts["internal_errors"] += 1
                self.report(f"snapshot:{type(error).__name__}", f"model copy failed: {error}")
                continue
            self._served = None if snapshot is None else (epoch, session, snapshot)

    def snapshot(self):
        snapshot = self.session.snapshot()
        if snapshot is None:
            raise QueryError("no map yet: no keyframe has been received")
        return snapshot

    def served_snapshot(self):
        """The model for a request: the background copy when it is of the current map, else the
        session's own (waiting for the lock)."""
        started = time.monotonic()
        served = self._served
        if served is not None and served[0] == self._epoch and served[1] is self.session:
            snapshot = served[2]
        else:
            snapshot = self.snapshot()
        self.latency["model_wait_ms"].append(1000 * (time.monotonic() - started))
        return snapshot

    def _cluster(self, snapshot, previous):
        started = time.monotonic()
        table = cluster_objects(snapshot.splats, self.config.objects, previous=previous)
        self.latency["cluster_ms"].append(1000 * (time.monotonic() - started))
        return table

    def take_clustering(self) -> None:
        """On the worker: swap in a finished background clustering, unless the map changed
        since it began. Labels given meanwhile are kept (`carry_labels`)."""
        with self._clustering_lock:
            result, self._clustering = self._clustering, None
        if result is None or result[0] != self._generation:
            return
        _, snapshot, table = result
        self._use(snapshot, table)

    def carry_labels(self, current: ObjectTable, table: ObjectTable) -> None:
        """Labels given to `current` go to `table`, by id; a labelled object whose id the new
        clustering no longer has passes its label to the new object that overlaps it
        (`match_objects`), so that a label is found again by its text. A label with no object
        left is counted and logged."""
        labels = {o.id: o.label for o in current.objects}
        new = {o.id: o for o in table.objects}
        for object_id, label in labels.items():
            if object_id in new:  # removed labels ("") stay removed
                new[object_id].label = label
        lost = {i: label for i, label in labels.items() if label and i not in new}
        if not lost:
            return
        for new_id, old_id in match_objects(table.objects, current, self.config.objects).items():
            if old_id in lost and not new[new_id].label:
                new[new_id].label = lost.pop(old_id)
        for old_id, label in lost.items():
            self.counts["labels_dropped"] += 1
            self.report("label_dropped", f"label '{label}' dropped: object {old_id} is gone "
                        "from the new clustering and no new object overlaps it")

    def _use(self, snapshot, table) -> None:
        if self.config.live.forget_changes:
            timeline = self.session.timeline
            table, events = self.tracker.update(table, list(self.session.changes),
                                                timeline[-1]["stamp"] if timeline else 0.0)
            self.events.extend(events)
            self.counts["object_events"] += len(events)
        # After the tracker: it gives a renamed object its known id back, and a label given to
        # that object (under either id) must follow it.
        if self.table is not None and table is not self.table:
            self.carry_labels(self.table, table)
        self.table = table
        self._clustered_version = snapshot.version
        self.clustered_splats = snapshot.splats
        self.objects_changed = True

    def recluster(self) -> None:
        """Cluster the current model now (a request asked, or the map was saved or loaded); ids
        and labels carry over from the current table by overlap."""
        snapshot = self.session.snapshot()
        if snapshot is None:
            return
        self._generation += 1  # a background clustering under way is now stale
        if snapshot.version != self._clustered_version or self.table is None:
            self._use(snapshot, self._cluster(snapshot, self.table))

    # ------------------------------------------------------------------ requests

    def thresholds(self, value: float) -> tuple[float, float]:
        """(mask threshold, Gaussians' threshold) of a request: its own for both, or with 0 the
        configured `query.threshold` and `query.selection_threshold`."""
        query = self.config.query
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise QueryError(f"threshold must lie in (0, 1] (0: the configured "
                             f"{query.threshold:g} for the mask, {query.selection_threshold:g} "
                             f"for the Gaussians), got {value}")
        return (value, value) if value > 0 else (query.threshold, query.selection_threshold)

    def segment_object(self, query: Query) -> Answer:
        """The one query pipeline on the served model: the object's mask in the view, the
        Gaussians it selects and the nearest object of the table."""
        started = time.monotonic()
        try:
            return self._segment_object(query)
        finally:
            self.latency["segment_object_ms"].append(1000 * (time.monotonic() - started))

    def _segment_object(self, query: Query) -> Answer:
        snapshot = self.served_snapshot()
        threshold, selection_threshold = self.thresholds(query.threshold)
        if query.camera is not None:
            camera = check_view(query.camera)
        elif snapshot.keyframes:
            camera = snapshot.keyframes[-1]
        else:
            raise QueryError("no map yet: no keyframe has been received")
        config = self.config
        features = FeatureCache(snapshot.splats, OneView(camera), config.render)
        if query.use_pixel:
            spatial = SpatialFilter(snapshot.splats, config.query) \
                if config.query.spatial_filter else None
            obj = pixel_object(snapshot.splats, camera, query.u, query.v, render=config.render,
                               query=config.query, table=self.table,
                               feature_map=features(camera.name), spatial=spatial,
                               with_seed=True)  # the cloud is the object under the pixel
        else:
            obj = text_object(self.table, query.text, config.objects,
                              view=snapshot.keyframes[-1],  # position words: latest keyframe
                              model_scorers=self._model_scorers(snapshot))
        members = None
        if obj.object_id is not None and snapshot.version == self._clustered_version \
                and self.table.gaussian_object is not None:
            # A text query's object, as clustered on this very model (its Gaussians' rows):
            # its mask keeps to where they lie, as a pixel prompt's to its connected part.
            members = self.table.members(obj.object_id)
            if config.query.mask_reach > 0:
                obj = replace(obj, anchor=SpatialFilter(
                    snapshot.splats, config.query).anchor_of(members))
        mask = object_mask(obj, camera.name, features, config.query, threshold)
        selection = select_object(snapshot.splats, obj, selection_threshold, config.objects,
                                  members)
        return Answer(camera, mask, selection, self._nearest_object(obj),
                      threshold, selection_threshold)

    def _model_scorers(self, snapshot):
        """Grounding DINO / CLIP scorers over `objects.model_views` keyframes spread evenly (as
        `cgc objects` takes training views), when the config enables them."""
        objects = self.config.objects
        if not {"dino", "clip"} & {b.strip() for b in objects.grounding.split(",")}:
            return {}
        with self.session.lock:
            chosen = spread(self.session.keyframes, objects.model_views)
            keyframes = [(k.view.camera, (k.view.image * 255).round().byte().cpu().numpy())
                         for k in chosen]
        return model_scorers(objects, snapshot.splats, self.table, keyframes, self.config.render)

    def _nearest_object(self, obj: PromptedObject) -> ObjectInfo | None:
        ids, features, _ = self.object_features()
        if len(ids) == 0:
            return None
        unit = torch.nn.functional.normalize(features, dim=-1)
        best = int(torch.argmax(cosine_to(unit, obj.feature.cpu())))
        return self.table.get(int(ids[best]))

    def list_objects(self, recluster: bool) -> list[ObjectInfo]:
        if recluster or self.table is None:
            self.snapshot()  # "no map yet" when there is none
            self.recluster()
        return [] if self.table is None else list(self.table.objects)

    def label(self, object_id: int, label: str) -> ObjectInfo:
        if self.table is None:
            self.snapshot()  # "no map yet" when there is none
            raise QueryError("no objects yet: call list_objects first or wait for the map")
        if len(label) > maps.MAX_TEXT:
            raise QueryError(f"label longer than {maps.MAX_TEXT} characters")
        try:
            obj = self.table.get(int(object_id))
        except ValueError as error:
            raise QueryError(str(error)) from None
        obj.label = label.strip()
        return obj

    def save(self, name: str) -> Path:
        """Save the map as folder `name` of the map directory: each file atomically, the model
        first, so that a crash at any moment leaves a complete model, old or new, loadable."""
        path = maps.map_path(self.settings.map_directory, name)
        self.snapshot()
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob(".*.tmp*"):  # a save killed mid-write left it; only we write here
            stale.unlink(missing_ok=True)
        # Model and objects of one moment: pause training, cluster the model as it is, save both.
        self.session.stop()
        try:
            self.recluster()
            self.session.save(path / maps.CHECKPOINT_FILE)
            (path / maps.LEGACY_SESSION_FILE).unlink(missing_ok=True)  # an older save's
            if self.table is not None:
                maps.write_objects(path, self.table)
        finally:
            self.session.start()
        self.counts["maps_saved"] += 1
        return path

    def autosave(self) -> None:
        if self.session.snapshot() is None:
            return  # nothing to save yet
        self.save(self.settings.autosave_name)
        self.counts["autosaves"] += 1

    def load(self, name: str) -> Path:
        """Load folder `name` of the map directory (a map the node saved or a `cgc train` /
        `cgc stream` run); a file that cannot be read leaves the current map as it was."""
        root = self.settings.map_directory
        path = maps.map_path(root, name)
        try:
            checkpoint = maps.checkpoint_of(path)
        except DataError:
            raise QueryError(f"no saved map '{name}' in {root}") from None
        for file in (checkpoint, path / maps.OBJECTS_FILE):  # a symlinked file must stay in too
            if file.exists() and not file.resolve().is_relative_to(Path(root).resolve()):
                raise QueryError(f"'{name}/{file.name}' leads out of the map directory")
        try:
            session = self._new_session(checkpoint)
            table = maps.read_objects(path)
        except Exception as error:  # an untrusted file: whatever it holds, keep the map
            detail = str(error) if isinstance(error, DataError) else \
                f"not a cgc map ({type(error).__name__}: {error})"
            raise QueryError(f"cannot load '{name}': {detail[:300]}; the current map is "
                             "kept") from None
        self.session.stop()
        self.session = session
        self._epoch += 1  # after the swap: a copy begun before it is not served
        self.table, self.clustered_splats, self._clustered_version = table, None, -1
        self.tracker = ObjectTracker.resumed(table, len(session.changes))
        # Cluster the model exactly as saved, before training moves it: ids and labels carry
        # over from the saved table (the same model overlaps it fully).
        self.recluster()
        self.session.start()
        return path

    def reset(self) -> None:
        self.session.reset()
        self._epoch += 1  # after the reset: a copy begun before it is not served
        self._generation += 1
        self.table, self.clustered_splats, self._clustered_version = None, None, -1
        self.tracker = ObjectTracker()
        self.objects_changed = True

    def take_events(self) -> list[ObjectEvent]:
        """The object events decided since the last call, oldest first."""
        events = []
        while self.events:
            events.append(self.events.popleft())
        return events

    def status(self, frames) -> dict:
        """The counters, queue, session and latency figures of `~/status` (`frames`: the
        face's DropOldestQueue of images)."""
        stats = self.session.stats()
        status = dict(self.counts)
        status.update({
            "queue_length": len(frames), "queue_bound": self.settings.queue_length,
            "queue_high_water": frames.high_water, "frames_dropped": frames.dropped,
            "requests_refused": self.requests.refused,
            "requests_timed_out": self.requests.timed_out,
            "session": {"frames_received": stats.frames_received,
                        "frames_dropped": stats.frames_dropped,
                        "frames_rejected": stats.frames_rejected, "keyframes": stats.keyframes,
                        "segments_pending": stats.segments_pending,
                        "num_gaussians": stats.num_gaussians, "step": stats.step,
                        "iterations_per_second": round(stats.iterations_per_second, 2),
                        "pose_corrections": stats.pose_corrections,
                        "removals": stats.removals,
                        "removals_refuted": stats.removals_refuted,
                        "arrivals": stats.arrivals,
                        "keyframes_retired": stats.keyframes_retired,
                        "keyframes_masked": stats.keyframes_masked},
            "objects": 0 if self.table is None else len(self.table.objects),
            "latency_ms": {name.removesuffix("_ms"): {
                "last": round(values[-1], 1), "max": round(max(values), 1),
                "median": round(float(np.median(values)), 1)}
                for name, values in self.latency.items() if values},
        })
        return status


def spread(items: list, count: int) -> list:
    """`count` items evenly spread over `items` (all of them when there are fewer)."""
    if count <= 0 or not items:
        return []
    index = np.unique(np.linspace(0, len(items) - 1, min(count, len(items))).round())
    return [items[int(i)] for i in index]
