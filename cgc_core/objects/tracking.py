"""Objects that keep their identity while the scene changes, and the events that say so.

Re-clustering keeps an object's id while its voxels overlap the previous table's
(`match_objects`). That is enough for a static table, not for one a robot changes:

- an object taken away must leave the table, but only on evidence that it is gone: a removal
  the live session decided from depth (`LiveSession.changes`), never a clustering that merely
  missed it once (no object of a static scene is ever reported removed); once the removals
  have seen through half of what the object was, it is gone, whatever the clustering still
  finds there while pruning catches up;
- an object taken away while another is put down beside it may never be seen through, and
  the clustering hands the newcomer its id by overlap: once what carries an id has looked
  unlike the object at its fullest for several clusterings in a row, the object is gone too
  (colour and shape are the evidence there, not depth);
- an object moved elsewhere shares no voxel with its old self: it is matched by what it looks
  like instead (colour, shape and feature), and keeps its id and label. Its first clusterings
  at the new place often take in some table, so a newcomer already partly like a removed
  object waits for its likeness to grow while that object can still be found. A newcomer that
  shares a few voxels with the removed object's place is clustered with its remnant, and is
  not it;
- anything else new gets a new id.

Each decision is an `ObjectEvent` (appeared / moved / removed, with positions before and after
and a confidence), published by the node on `~/object_events` and written by `cgc stream` to
RUN/events.jsonl. A moved object shows as a removal and a new object, in either order: a new
object waits `hold` updates for a removal it may be the other half of, and a removal waits
`hold_removed` updates for a new object. A planner should hear of a removal soon, and a moved
object's new place is often learned later than its old place is seen through; so a removed
object stays findable for `late_moves` updates after it was announced, and a "moved" event may
follow its "removed" one (the object was found again elsewhere).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cgc_core.objects.cluster import UNASSIGNED, ObjectInfo, ObjectTable
from cgc_core.objects.colors import display_colour
from cgc_core.objects.voxels import voxel_keys

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


def place_share(obj: ObjectInfo, old: ObjectInfo) -> float:
    """Share of `obj`'s voxels on the place where `old` stood (its voxels)."""
    return np.intersect1d(obj.voxels, old.voxels).size / max(len(obj.voxels), 1)


def cleared_voxels(obj: ObjectInfo, points: np.ndarray, voxel_size: float) -> np.ndarray:
    """[V'] the voxel keys of `obj` that hold some of [P, 3] removed points (Gaussians the camera
    saw through, forgotten from the same map the object was clustered from)."""
    if len(points) == 0 or len(obj.voxels) == 0:
        return np.zeros(0, np.int64)
    return np.intersect1d(obj.voxels, voxel_keys(points, voxel_size))


def removal_cover(obj: ObjectInfo, points: np.ndarray, margin: float) -> float:
    """Share of [P, 3] removed points that lie in the object's box grown by `margin`."""
    if len(points) == 0:
        return 0.0
    inside = np.all((points >= obj.aabb_min - margin) & (points <= obj.aabb_max + margin), axis=1)
    return float(inside.mean())


class ObjectTracker:
    """Carries object identity from one clustering of a changing map to the next (module
    docstring)."""

    def __init__(self, hold: int = 2, hold_removed: int = 1, late_moves: int = 6,
                 min_similarity: float = 0.6, min_cover: float = 0.3, margin: float = 0.02,
                 reidentify_reach: float = 0.05, max_move: float = 1.0,
                 cleared_share: float | None = None, move_similarity: float = 0.7,
                 min_cleared: float = 0.2, maybe_moved_similarity: float = 0.5,
                 swap_similarity: float = 0.3, swap_updates: int = 3,
                 min_slid_share: float = 0.5):
        """
        Args:
            hold: updates a new object waits for a removal it may be the moved half of, and
                must stay in the clustering meanwhile, before it is announced as appeared.
            hold_removed: updates a removal waits for a new object that is it moved.
            late_moves: updates after its removal in which a removed object found elsewhere is
                still announced as moved (with its old id and label).
            min_similarity: `appearance_similarity` that makes a cluster at the same place the same
                object (its id kept or given back).
            min_cover: share of a removal's points inside an object's box that makes it the
                object's removal.
            margin: metres the box is grown by for that test.
            reidentify_reach: metres within which a new cluster that looks like a known object
                missing from the clustering is that object (features drift while the map
                trains, and reclustering then gives it a new id).
            max_move: metres: an object found farther from where one was removed is another
                object, however alike (a removal and an appearance are announced instead).
            cleared_share: share of an object's voxels (as it looked at its fullest) that the
                removals have seen through which makes it gone, whatever now carries its id:
                depth that sees through half an object is the evidence; waiting until the
                clustering no longer finds it there takes keyframes while pruning and the
                training catch up, and an object put down beside it may carry its id meanwhile.
                None (the default): off, objects are measured as last clustered and a suspect
                still found in place stands. On, it decided 1102's removal a keyframe sooner,
                but on a static robot scene (seed 1002) it reported two standing young objects
                removed after one removal of floaters near them
                (bench/results/changes_static_thin_1002.md).
            min_cleared: share of an object's own voxels that the removals must have seen
                through (removed Gaussians inside them) before a removal near it makes it a
                suspect: a removal in its box is not enough. A young map's objects are large
                and flicker between clusterings; on a static robot scene, one removal 14-16 cm
                from two such objects' centres, inside their boxes, had them reported removed
                (bench/results/changes_static_final_1002.md).
            move_similarity: `appearance_similarity` a new object elsewhere needs to be a removed
                one moved. Higher than `min_similarity`: what stands beside a removed object,
                clustered with its remnant, shares its colours and size (0.64 for a duck put
                down 9 cm from a removed block, in a replay of seed 1100's clusterings, against
                0.72-0.81 for the moved objects themselves).
            maybe_moved_similarity: `appearance_similarity` to a removed object, still findable,
                that keeps a new object waiting past `hold` (at most while that removal can
                still be matched, `hold_removed + late_moves` updates): a moved object's first
                clusterings at its new place take in some of the table around it, and its
                likeness grows as the map learns it (seed 1100's red sphere: 0.56, 0.59, 0.69,
                0.71 over four clusterings; announced as new at 0.59 it was never found).
            swap_similarity: `appearance_similarity` to the object at its fullest below which
                what carries its id is another object. Taken away while another is put down
                near it, an object may never be seen through (its depth lies in the newcomer's
                shadow, or the map trains it away first), and the clustering hands the
                newcomer its id by overlap: seed 1100's removed blue block was reported as a
                yellow duck, at similarity 0 for six clusterings, and never removed.
            swap_updates: clusterings in a row in which it must be so: on a static robot
                scene (seed 1002) one clustering gave a fragment of an object its id, alike 0
                for once.
            min_slid_share: share of a new object's voxels on a removed object's old place
                from which it may be that object slid (`_could_be`); below it, and above none,
                it is a newcomer with the removed object's remnant.
        """
        self.hold, self.hold_removed, self.late_moves = hold, hold_removed, late_moves
        self.min_similarity = min_similarity
        self.min_cover, self.margin = min_cover, margin
        self.reidentify_reach, self.max_move = reidentify_reach, max_move
        self.cleared_share, self.move_similarity = cleared_share, move_similarity
        self.min_cleared = min_cleared
        self.maybe_moved_similarity = maybe_moved_similarity
        self.swap_similarity, self.swap_updates = swap_similarity, swap_updates
        self.min_slid_share = min_slid_share
        self.unlike: dict[int, int] = {}  # id -> clusterings in a row unlike its reference
        self.reference: dict[int, ObjectInfo] = {}  # id -> the object at its fullest
        self.cleared: dict[int, np.ndarray] = {}    # id -> its reference voxels seen through
        self.known: dict[int, ObjectInfo] = {}
        self.new: dict[int, int] = {}           # id -> update it was first seen
        self.gone: dict[int, tuple[ObjectInfo, int, float]] = {}  # id -> (info, update, cover)
        self.suspects: dict[int, tuple[ObjectInfo, int, float]] = {}  # the same, before it
        self.moved_from: dict[int, ObjectInfo] = {}  # id -> the object where it was before
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

    @property
    def settle_updates(self) -> int:
        """Updates of an unchanging map after which every pending decision was announced."""
        return max(self.hold, self.hold_removed) + 1

    def _still(self, old: ObjectInfo, now: ObjectInfo) -> bool:
        """Whether `now`, which carries `old`'s id by overlap, is still that object: in the same
        place (centroids within `reidentify_reach`) and alike. An object put down where another
        was taken away overlaps it, and inherits its id from the clustering."""
        return np.linalg.norm(old.centroid - now.centroid) <= self.reidentify_reach and \
            appearance_similarity(old, now) >= self.min_similarity

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
        objects = {o.id: o for o in table.objects if not o.background}
        fresh = removals[self.removals_seen:] if self.removals_seen <= len(removals) else removals
        self.removals_seen = len(removals)
        self._suspect(fresh, table.voxel_size)
        table = self._resolve_suspects(table, objects)
        table = self._resolve_swaps(table, objects)
        table = self._sort_newcomers(table, objects)
        table, events = self._match_moves(table, objects, stamp)
        events += self._announce(objects, stamp)
        for object_id, obj in objects.items():
            if object_id in self.known:
                # the fullest of its clusterings that were alike the one before: a clustering
                # that once lumped it with a neighbour is no measure of what it is
                steady = appearance_similarity(obj, self.known[object_id]) >= self.min_similarity
                self.known[object_id] = obj
                reference = self.reference.get(object_id)
                if object_id not in self.suspects and \
                        (reference is None or (steady and obj.count >= reference.count)):
                    self.reference[object_id] = obj
        return table, events

    def _reference(self, object_id: int) -> ObjectInfo:
        """The known object as it looked at its fullest: a removal starts before the first
        clustering that shows it, and an object half taken (or half trained) is a poor measure
        of what was there."""
        if self.cleared_share is None:
            return self.known[object_id]
        return self.reference.get(object_id, self.known[object_id])

    def _cleared_enough(self, object_id: int, reference: ObjectInfo) -> bool:
        cleared = self.cleared.get(object_id)
        return self.cleared_share is not None and cleared is not None and \
            len(reference.voxels) > 0 and \
            len(cleared) >= self.cleared_share * len(reference.voxels)

    def _suspect(self, removals: list[dict], voxel_size: float) -> None:
        """Known objects that a fresh removal covers, or that removals have seen through for
        the most part, become suspects."""
        for removal in removals:
            points = np.asarray(removal.get("points", [removal["centre"]]), dtype=float)
            for object_id in self.known:
                old = self._reference(object_id)
                moved_from = self.moved_from.get(object_id)
                if moved_from is not None and \
                        removal_cover(moved_from, points, self.margin) >= self.min_cover:
                    continue  # the rest of the place it was moved from, cleared
                hit = cleared_voxels(old, points, voxel_size)
                if len(hit):
                    self.cleared[object_id] = np.union1d(self.cleared.get(object_id, hit), hit)
                cover = removal_cover(old, points, self.margin)
                seen_through = len(self.cleared.get(object_id, ())) >= \
                    self.min_cleared * len(old.voxels)
                if object_id not in self.suspects and ((cover >= self.min_cover and seen_through)
                                                       or self._cleared_enough(object_id, old)):
                    self.suspects[object_id] = (old, self.updates, cover)

    def _resolve_suspects(self, table: ObjectTable, objects: dict[int, ObjectInfo]
                          ) -> ObjectTable:
        """A suspect is watched against what it was: a removal goes in bites, and meanwhile
        what is left, or another object put down there, carries its id. Once what carries it
        is no longer it, the object is gone: a remnant is dropped, another object gets a new
        id. `objects` is updated in place."""
        for object_id, (old, when, cover) in list(self.suspects.items()):
            now = objects.get(object_id)
            if object_id not in self.known:
                self.suspects.pop(object_id)
                continue
            cleared = self._cleared_enough(object_id, old)
            if not cleared and now is not None and now.count >= old.count / 2 and \
                    self._still(old, now):
                if self.updates - when >= self.late_moves:
                    self.suspects.pop(object_id)  # the removal took a bite of it: it stands
                    self.cleared.pop(object_id, None)
                continue
            self.suspects.pop(object_id)
            self.cleared.pop(object_id, None)
            self.reference.pop(object_id, None)
            self.gone[object_id] = (old, self.updates, cover)
            self.known.pop(object_id)
            if now is None:
                continue
            objects.pop(object_id)
            if now.count < old.count / 2:  # what is left of it is a ghost
                table = _without(table, object_id)
            else:  # another object took its place (and, by overlap, its id): a new one
                table, now = _fresh(table, object_id)
                objects[now.id] = now
        return table

    def _resolve_swaps(self, table: ObjectTable, objects: dict[int, ObjectInfo]
                       ) -> ObjectTable:
        """A known object whose id another object carries (`swap_similarity`, `swap_updates`)
        is gone: it is removed (findable for a late move), and the carrier gets a new id.
        `objects` is updated in place."""
        for object_id in list(objects):
            reference = self.reference.get(object_id)
            if object_id not in self.known or object_id in self.suspects or reference is None:
                continue
            now = objects[object_id]
            if appearance_similarity(now, reference) >= self.swap_similarity:
                self.unlike.pop(object_id, None)
                continue
            self.unlike[object_id] = self.unlike.get(object_id, 0) + 1
            if self.unlike[object_id] < self.swap_updates:
                continue
            self.unlike.pop(object_id)
            kept = np.intersect1d(reference.voxels, now.voxels).size
            cover = 1.0 - kept / max(len(reference.voxels), 1)  # how much of it is no more
            self.gone[object_id] = (reference, self.updates, cover)
            self.known.pop(object_id)
            self.reference.pop(object_id)
            objects.pop(object_id)
            table, fresh = _fresh(table, object_id)
            objects[fresh.id] = fresh
        return table

    def _sort_newcomers(self, table: ObjectTable, objects: dict[int, ObjectInfo]
                        ) -> ObjectTable:
        """Ids this tracker does not know: a remnant of a removed object (dropped), a known
        object that reclustering renamed (given its id back), or a new object (held)."""
        for object_id in list(objects):
            if object_id in self.known or object_id in self.new:
                continue
            if self._remnant(objects[object_id]):
                table = _without(table, object_id)
                objects.pop(object_id)
                continue
            again = self._same_place(objects[object_id], objects)
            if again is not None:
                table = _renamed(table, object_id, again)
                objects[again.id] = next(o for o in table.objects if o.id == again.id)
                objects.pop(object_id)
                continue
            self.new[object_id] = self.updates
        return table

    def _match_moves(self, table: ObjectTable, objects: dict[int, ObjectInfo], stamp: float
                     ) -> tuple[ObjectTable, list[ObjectEvent]]:
        """A new object that looks like one just removed, not too far away, is that object
        moved. It must have stayed for two clusterings: a young map's clusterings flicker with
        passing fragments (of a floor seen from afar, say) that may look alike."""
        events = []
        pairs = []  # (similarity, new id, gone id): the most alike pair is decided first
        for object_id, first in self.new.items():
            if object_id not in objects or first == self.updates:
                continue
            for gone_id, (old, _, _) in self.gone.items():
                if not self._could_be(objects[object_id], old):
                    continue
                similarity = appearance_similarity(objects[object_id], old)
                if similarity >= self.move_similarity:
                    pairs.append((similarity, object_id, gone_id))
        for score, object_id, best in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
            if object_id not in self.new or best not in self.gone:
                continue  # one of the two was taken by a more alike pair
            old = self.gone.pop(best)[0]
            self.new.pop(object_id)
            table = _renamed(table, object_id, old)
            moved = next(o for o in table.objects if o.id == old.id)
            objects.pop(object_id)
            objects[old.id] = moved
            self.known[old.id] = moved
            self.moved_from[old.id] = old
            events.append(ObjectEvent(stamp, old.id, old.label, "moved", old.centroid.tolist(),
                                      moved.centroid.tolist(), round(score, 3)))
        return table, events

    def _maybe_moved(self, obj: ObjectInfo) -> bool:
        """Whether a new object may yet prove to be a removed object moved: it is within
        `max_move` of one still findable, clear of the place that one stood (no shared voxel),
        and already somewhat like it. What stands partly on the old place is its remnant
        clustered with a newcomer (seed 1101: a teddy put down 10 cm from a removed red
        sphere, with the sphere's remnant, grew to 0.76 alike while it waited)."""
        return any(self._within_move(obj, old) and place_share(obj, old) == 0 and
                   appearance_similarity(obj, old) >= self.maybe_moved_similarity
                   for old, _, _ in self.gone.values())

    def _within_move(self, obj: ObjectInfo, old: ObjectInfo) -> bool:
        return np.linalg.norm(obj.centroid - old.centroid) <= self.max_move

    def _could_be(self, obj: ObjectInfo, old: ObjectInfo) -> bool:
        """Whether a new object stands where a removed one could have been moved to: within
        `max_move`, and either clear of its old place or mostly on it (slid by less than its
        own size, as a tray moved 14 cm shares 55 % of its voxels with where it stood). One
        that shares a few of its voxels with the old place is a newcomer clustered with the
        removed object's remnant (seed 1101: a teddy put down 10 cm from a removed red sphere,
        alike 0.73, was taken for the sphere moved)."""
        if not self._within_move(obj, old):
            return False
        shared = place_share(obj, old)
        return shared == 0 or shared >= self.min_slid_share

    def _announce(self, objects: dict[int, ObjectInfo], stamp: float) -> list[ObjectEvent]:
        """Removals and new objects whose hold is over."""
        events = []
        for object_id, (old, when, cover) in list(self.gone.items()):
            if self.updates - when == self.hold_removed:
                events.append(ObjectEvent(stamp, old.id, old.label, "removed",
                                          old.centroid.tolist(), None, round(cover, 3)))
            if self.updates - when >= self.hold_removed + self.late_moves:
                self.gone.pop(object_id)  # announced removed; a late move found it until here
        for object_id, first in list(self.new.items()):
            if object_id not in objects:
                self.new.pop(object_id)  # a clustering's passing split: never announced
            elif self.updates - first >= self.hold and not self._maybe_moved(objects[object_id]):
                self.new.pop(object_id)
                self.known[object_id] = objects[object_id]
                events.append(ObjectEvent(stamp, object_id, objects[object_id].label, "appeared",
                                          None, objects[object_id].centroid.tolist(), 1.0))
        return events


def _without(table: ObjectTable, object_id: int) -> ObjectTable:
    owner = table.gaussian_object
    if owner is not None:
        owner = np.where(owner == object_id, UNASSIGNED, owner)
    return dataclasses.replace(table, objects=[o for o in table.objects if o.id != object_id],
                               gaussian_object=owner)


def _fresh(table: ObjectTable, object_id: int) -> tuple[ObjectTable, ObjectInfo]:
    """The table with object `object_id` given the next unused id (no label), and the object."""
    new_id = table.next_id
    renamed = next(o for o in table.objects if o.id == object_id)
    renamed = dataclasses.replace(renamed, id=new_id, label="", color=display_colour(new_id))
    objects = sorted([o for o in table.objects if o.id != object_id] + [renamed],
                     key=lambda o: o.id)
    owner = table.gaussian_object
    if owner is not None:
        owner = np.where(owner == object_id, new_id, owner)
    return dataclasses.replace(table, objects=objects, gaussian_object=owner,
                               next_id=new_id + 1), renamed


def _renamed(table: ObjectTable, object_id: int, old: ObjectInfo) -> ObjectTable:
    """The table with object `object_id` given `old`'s id, label and display colour."""
    objects = []
    for obj in table.objects:
        if obj.id == object_id:
            # a label given since (to the id the clustering handed out) wins over the old one
            obj = dataclasses.replace(obj, id=old.id, label=obj.label or old.label,
                                      color=old.color)
        objects.append(obj)
    objects.sort(key=lambda o: o.id)
    owner = table.gaussian_object
    if owner is not None:
        owner = np.where(owner == object_id, old.id, owner)
    return dataclasses.replace(table, objects=objects, gaussian_object=owner)
