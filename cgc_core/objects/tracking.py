"""Objects that keep their identity while the scene changes, and the events that say so.

Re-clustering keeps an object's id while its voxels overlap the previous table's
(`match_objects`). That is enough for a static table, not for one a robot changes:

- an object taken away must leave the table, but only on evidence that it is gone: a removal
  the live session decided from depth (`LiveSession.changes`), never a clustering that merely
  missed it once (no object of a static scene is ever reported removed);
- an object moved elsewhere shares no voxel with its old self: it is matched by what it looks
  like instead (colour, shape and feature), and keeps its id and label;
- anything else new gets a new id.

Each decision is an `ObjectEvent` (appeared / moved / removed, with positions before and after
and a confidence), published by the node on `~/object_events` and written by `cgc stream` to
RUN/events.jsonl. A new object and a removal wait `hold` updates for their other half before
they are announced, since a moved object shows as both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cgc_core.objects.cluster import UNASSIGNED, ObjectInfo, ObjectTable

EVENT_KINDS = ("appeared", "moved", "removed")


@dataclass
class ObjectEvent:
    stamp: float
    """Time of the keyframe or update that decided it (the frames' clock)."""
    id: int
    label: str
    kind: str
    """One of EVENT_KINDS."""
    position_before: list[float] | None
    """[3] the object's centroid before (None when it appeared)."""
    position_after: list[float] | None
    """[3] the object's centroid now (None when it was removed)."""
    confidence: float
    """0-1: for a move, how alike the two are; for a removal, the share of the object the
    removal covered; for an appearance, 1."""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def appearance_similarity(a: ObjectInfo, b: ObjectInfo) -> float:
    """0-1: how alike two objects look, from their colour shares, oriented box sides and mean
    features. A moved object's features are learned anew at its new place and may differ, so
    colour and shape carry most of the weight; unlike colours or unlike shapes alone make two
    objects unlike (0)."""
    names = set(a.color_shares) | set(b.color_shares)
    colour = sum(min(a.color_shares.get(n, 0.0), b.color_shares.get(n, 0.0)) for n in names)
    sides_a, sides_b = np.sort(a.obb_extent), np.sort(b.obb_extent)
    shape = float(np.mean(np.minimum(sides_a, sides_b) / np.maximum(np.maximum(sides_a, sides_b),
                                                                     1e-9)))
    if colour < 0.4 or shape < 0.5:
        return 0.0
    feature = max(0.0, float(np.dot(a.mean_feature, b.mean_feature)))
    return 0.45 * colour + 0.4 * shape + 0.15 * feature


def removal_cover(obj: ObjectInfo, points: np.ndarray, margin: float) -> float:
    """Share of [P, 3] removed points that lie in the object's box grown by `margin`."""
    if len(points) == 0:
        return 0.0
    inside = np.all((points >= obj.aabb_min - margin) & (points <= obj.aabb_max + margin), axis=1)
    return float(inside.mean())


class ObjectTracker:
    """Carries object identity from one clustering of a changing map to the next (module
    docstring)."""

    def __init__(self, hold: int = 3, min_similarity: float = 0.6, min_cover: float = 0.3,
                 margin: float = 0.02, reidentify_reach: float = 0.05):
        """
        Args:
            hold: updates a new object or a removal waits for its other half (a move).
            min_similarity: `appearance_similarity` a new object needs to be a removed one moved.
            min_cover: share of a removal's points inside an object's box that makes it the
                object's removal.
            margin: metres the box is grown by for that test.
            reidentify_reach: metres within which a new cluster that looks like a known object
                missing from the clustering is that object (features drift while the map
                trains, and reclustering then gives it a new id).
        """
        self.hold, self.min_similarity = hold, min_similarity
        self.min_cover, self.margin = min_cover, margin
        self.reidentify_reach = reidentify_reach
        self.known: dict[int, ObjectInfo] = {}
        self.new: dict[int, int] = {}           # id -> update it was first seen
        self.gone: dict[int, tuple[ObjectInfo, int, float]] = {}  # id -> (info, update, cover)
        self.removals_seen = 0
        self.updates = 0

    def _remnant(self, obj: ObjectInfo) -> bool:
        """Whether `obj` stands where an object was just removed (centroids within
        `reidentify_reach`): pruning takes a few keyframes, and what is left meanwhile is no
        object, least of all the removed one moved by a centimetre."""
        return any(np.linalg.norm(old.centroid - obj.centroid) <= self.reidentify_reach
                   for old, _, _ in self.gone.values())

    def _same_place(self, obj: ObjectInfo, current: dict[int, ObjectInfo]) -> ObjectInfo | None:
        """The known object, missing from this clustering, that `obj` is: the same place
        (centroids within `reidentify_reach`) and alike."""
        best, score = None, self.min_similarity
        for object_id, old in self.known.items():
            if object_id in current:
                continue
            if np.linalg.norm(old.centroid - obj.centroid) > self.reidentify_reach:
                continue
            similarity = appearance_similarity(obj, old)
            if similarity >= score:
                best, score = old, similarity
        return best

    @classmethod
    def resumed(cls, table: ObjectTable | None, removals_seen: int, **kwargs) -> ObjectTracker:
        """A tracker for a loaded map: its objects and its removals so far are not news."""
        tracker = cls(**kwargs)
        if table is not None:
            tracker.known = {o.id: o for o in table.objects if not o.background}
        tracker.removals_seen = removals_seen
        return tracker

    def update(self, table: ObjectTable, removals: list[dict], stamp: float
               ) -> tuple[ObjectTable, list[ObjectEvent]]:
        """Take a fresh clustering (matched to the previous table as usual) and the session's
        removals so far; returns the table with identities carried over and the events
        decided now."""
        self.updates += 1
        events: list[ObjectEvent] = []
        objects = {o.id: o for o in table.objects if not o.background}
        fresh = removals[self.removals_seen:] if self.removals_seen <= len(removals) else removals
        self.removals_seen = len(removals)
        for removal in fresh:
            points = np.asarray(removal.get("points", [removal["centre"]]), dtype=float)
            for object_id, old in list(self.known.items()):
                cover = removal_cover(old, points, self.margin)
                now = objects.get(object_id)
                if cover >= self.min_cover and (now is None or now.count < old.count / 2):
                    self.gone[object_id] = (old, self.updates, cover)
                    self.known.pop(object_id)
                    if now is not None:  # what is left of it is a ghost
                        table = _without(table, object_id)
                        objects.pop(object_id)
        for object_id in list(objects):
            if object_id in self.known or object_id in self.new:
                continue
            if self._remnant(objects[object_id]):  # what is left where one was removed: a ghost
                table = _without(table, object_id)
                objects.pop(object_id)
                continue
            again = self._same_place(objects[object_id], objects)
            if again is not None:  # a reclustering gave a known object a new id: not news
                table = _renamed(table, object_id, again)
                objects[again.id] = next(o for o in table.objects if o.id == again.id)
                objects.pop(object_id)
                continue
            self.new[object_id] = self.updates
        # A new object that looks like one just removed is that object, moved.
        for object_id, first in sorted(self.new.items()):
            if object_id not in objects:
                continue
            best, score = None, self.min_similarity
            for gone_id, (old, _, _) in self.gone.items():
                similarity = appearance_similarity(objects[object_id], old)
                if similarity >= score:
                    best, score = gone_id, similarity
            if best is None:
                continue
            old = self.gone.pop(best)[0]
            self.new.pop(object_id)
            table = _renamed(table, object_id, old)
            moved = next(o for o in table.objects if o.id == old.id)
            objects.pop(object_id)
            objects[old.id] = moved
            self.known[old.id] = moved
            events.append(ObjectEvent(stamp, old.id, old.label, "moved", old.centroid.tolist(),
                                      moved.centroid.tolist(), round(score, 3)))
        for object_id, (old, when, cover) in list(self.gone.items()):
            if self.updates - when == self.hold:
                events.append(ObjectEvent(stamp, old.id, old.label, "removed",
                                          old.centroid.tolist(), None, round(cover, 3)))
            if self.updates - when >= 2 * self.hold:  # announced removed; a late move may
                self.gone.pop(object_id)           # still find it until here
        for object_id, first in list(self.new.items()):
            if object_id not in objects:
                self.new.pop(object_id)  # a clustering's passing split: never announced
            elif self.updates - first >= self.hold:
                self.new.pop(object_id)
                self.known[object_id] = objects[object_id]
                events.append(ObjectEvent(stamp, object_id, objects[object_id].label, "appeared",
                                          None, objects[object_id].centroid.tolist(), 1.0))
        for object_id, obj in objects.items():
            if object_id in self.known:
                self.known[object_id] = obj
        return table, events


def _without(table: ObjectTable, object_id: int) -> ObjectTable:
    owner = table.gaussian_object
    if owner is not None:
        owner = np.where(owner == object_id, UNASSIGNED, owner)
    return dataclasses.replace(table, objects=[o for o in table.objects if o.id != object_id],
                               gaussian_object=owner)


def _renamed(table: ObjectTable, object_id: int, old: ObjectInfo) -> ObjectTable:
    """The table with object `object_id` given `old`'s id, label and display colour."""
    objects = []
    for obj in table.objects:
        if obj.id == object_id:
            obj = dataclasses.replace(obj, id=old.id, label=old.label, color=old.color)
        objects.append(obj)
    objects.sort(key=lambda o: o.id)
    owner = table.gaussian_object
    if owner is not None:
        owner = np.where(owner == object_id, old.id, owner)
    return dataclasses.replace(table, objects=objects, gaussian_object=owner)
