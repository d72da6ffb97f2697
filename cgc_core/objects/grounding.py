"""Text -> object, through one interface with backends chosen by config (`ObjectsConfig.grounding`).

Each backend scores every candidate object in [0, 1] for the words it understands; the scores of
all backends that understood something multiply. Size and position words are relative: they rank
the objects that the other words allow ("the big blue one": the biggest of the blue ones).
Backends:

- labels: an object whose whole label is the query (`exact_label`: any words, numbers
  included), else query words found in an object's label (names users give, case-insensitive
  tokens);
- attributes (no weights): colour words (the share of the object's Gaussians whose base colour
  has that name), size words (box volume relative to the largest / smallest), position words
  relative to a view (left, right, nearest, farthest);
- dino / clip (`cgc_core.objects.models`), when their weights are on disk.

A query word that no enabled backend understands makes the answer "not found" (with the
candidates the other words give): skipping it could name the wrong object. The answer is "found"
only when the best object scores at least `min_score` and leads the second
by `ambiguity_margin`; otherwise "ambiguous" or "not found", with the best candidates and their
scores. Background objects are candidates only when a label names them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cgc_core.cameras import Camera
from cgc_core.config import ObjectsConfig
from cgc_core.objects.cluster import ObjectInfo, ObjectTable
from cgc_core.objects.colors import canonical_colour

FOUND, AMBIGUOUS, NOT_FOUND = "found", "ambiguous", "not_found"

STOPWORDS = frozenset(
    "the a an one ones object objects thing things item of me give find show get with that "
    "is are it please points point cloud which to in on at this those these".split())
LARGE_WORDS = frozenset("large larger largest big bigger biggest huge".split())
SMALL_WORDS = frozenset("small smaller smallest little tiny tinier tiniest".split())
LEFT_WORDS = frozenset("left leftmost".split())
RIGHT_WORDS = frozenset("right rightmost".split())
NEAR_WORDS = frozenset("near nearest nearer closest closer front".split())
FAR_WORDS = frozenset("far farthest furthest farther further back".split())
POSITION_WORDS = LEFT_WORDS | RIGHT_WORDS | NEAR_WORDS | FAR_WORDS


@dataclass
class GroundingResult:
    """The answer to a text query."""

    status: str
    """'found', 'ambiguous' or 'not_found'."""
    object: ObjectInfo | None
    """The object, only when found."""
    candidates: list[tuple[int, float]]
    """(object id, score) of the best candidates, best first (at most 5)."""
    message: str
    """One line for a user: what matched, or why nothing did."""
    understood: list[str] = field(default_factory=list)
    """The query words some backend used."""

    @property
    def found(self) -> bool:
        return self.status == FOUND


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of `text` ('Red_Mug' -> ['red', 'mug'])."""
    return re.findall(r"[a-z0-9]+", text.lower())


Scores = dict[int, float]
"""{object id: score in [0, 1]} from one backend."""


def label_scores(objects: list[ObjectInfo], words: list[str]) -> tuple[Scores | None, list[str]]:
    """Share of the label words of the query found in each object's label tokens; None when no
    query word occurs in any label."""
    label_words = {w for o in objects for w in tokens(o.label)}
    used = [w for w in words if w in label_words]
    if not used:
        return None, []
    return {o.id: len(set(used) & set(tokens(o.label))) / len(set(used)) for o in objects}, used


def exact_label(objects: list[ObjectInfo], text: str) -> GroundingResult | None:
    """The object whose whole label is the query (same word tokens, in order, case and
    punctuation aside): found when one object has it, ambiguous when several do; None when no
    label is the query. A label is always found again by its own text, whatever its words:
    numbers ("124"), stop words ("the one") or words another backend reads ("red")."""
    words = tokens(text)
    if not words:
        return None
    same = [o for o in objects if o.label and tokens(o.label) == words]
    if not same:
        return None
    ranked = [(o.id, 1.0) for o in same[:5]]
    if len(same) > 1:
        return GroundingResult(AMBIGUOUS, None, ranked, f"{len(same)} objects are labelled "
                               f"{text!r}: {', '.join(str(o.id) for o in same)}", words)
    return GroundingResult(FOUND, same[0], ranked, f"{text!r} -> object {same[0].id} (its "
                           "label)", words)


def colour_scores(objects: list[ObjectInfo], words: list[str],
                  colour_full_share: float) -> tuple[Scores | None, list[str]]:
    """Per colour word, the share of each object's opacity with that colour name, over
    `colour_full_share` and capped at 1 (several colour words: their shares add, as "red and
    yellow")."""
    colours = [canonical_colour(w) for w in words if canonical_colour(w)]
    if not colours:
        return None, []
    scores = {o.id: min(1.0, sum(o.color_shares.get(c, 0.0) for c in set(colours))
                        / colour_full_share) for o in objects}
    return scores, [w for w in words if canonical_colour(w)]


def size_scores(objects: list[ObjectInfo], words: list[str]) -> tuple[Scores | None, list[str]]:
    """Large words: volume / largest volume; small words: smallest volume / volume (box volumes,
    so the ranks order objects by size)."""
    used = [w for w in words if w in LARGE_WORDS | SMALL_WORDS]
    if not used or not objects:
        return None, []
    volumes = np.array([max(o.volume, 1e-12) for o in objects])
    large = sum(w in LARGE_WORDS for w in used) >= sum(w in SMALL_WORDS for w in used)
    score = volumes / volumes.max() if large else volumes.min() / volumes
    return {o.id: float(s) for o, s in zip(objects, score)}, used


def position_scores(objects: list[ObjectInfo], words: list[str],
                    view: Camera | None) -> tuple[Scores | None, list[str]]:
    """Left / right: rank of the centroid's horizontal image coordinate in `view`, spread to
    [0, 1]; nearest / farthest: nearest distance / distance (and the inverse). ValueError when
    position words come without a view."""
    used = [w for w in words if w in POSITION_WORDS]
    if not used or not objects:
        return None, []
    if view is None:
        raise ValueError(f"position words ({', '.join(used)}) need a view to be relative to")
    world_to_cam = view.world_to_cam
    centroids = np.array([o.centroid for o in objects])
    local = centroids @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    total = np.ones(len(objects))
    for word in used:
        if word in LEFT_WORDS | RIGHT_WORDS:
            x = local[:, 0] / np.maximum(local[:, 2], 1e-6)  # image-plane x, right positive
            spread = x.max() - x.min()
            s = np.ones(len(objects)) if spread == 0 else (x - x.min()) / spread
            total *= 1.0 - s if word in LEFT_WORDS else s
        else:
            distance = np.linalg.norm(local, axis=1)
            nearest = distance.min() / np.maximum(distance, 1e-9)
            total *= nearest if word in NEAR_WORDS else distance / distance.max()
    return {o.id: float(s) for o, s in zip(objects, total)}, used


ModelScorer = Callable[[list[ObjectInfo], str], Scores]
"""A weights-based backend: (candidate objects, the whole query) -> scores."""


def ground_text(table: ObjectTable, text: str, config: ObjectsConfig, *, view: Camera | None = None,
                model_scorers: dict[str, ModelScorer] | None = None) -> GroundingResult:
    """The object a text query means, or why there is none.

    Args:
        table: the clustered objects.
        view: the camera position words are relative to (None: position words are an error).
        model_scorers: {'dino' | 'clip': scorer} for the weights-based backends that are enabled
            in `config.grounding` (`cgc_core.objects.models.model_scorers` builds them).
    """
    backends = {b.strip() for b in config.grounding.split(",") if b.strip()}
    unknown = backends - {"labels", "attributes", "dino", "clip"}
    if unknown:
        raise ValueError(f"unknown grounding backend(s): {', '.join(sorted(unknown))}")
    if "labels" in backends:
        exact = exact_label(table.objects, text)
        if exact is not None:
            return exact
    words = [w for w in tokens(text) if w not in STOPWORDS]
    if not words:
        return GroundingResult(NOT_FOUND, None, [], f"nothing to look for in {text!r}")
    labels, label_words = (label_scores(table.objects, words) if "labels" in backends
                           else (None, []))
    named_background = {i for i, s in (labels or {}).items() if s > 0}
    candidates = [o for o in table.objects if not o.background or o.id in named_background]
    factors: list[Scores] = [] if labels is None else [labels]
    understood = list(label_words)
    if "attributes" in backends:
        scores, used = colour_scores(candidates, words, config.colour_full_share)
        if scores is not None:
            factors.append(scores)
            understood += used
    read_whole_text = False
    for name, scorer in (model_scorers or {}).items():
        if name in backends and candidates:
            factors.append(scorer(candidates, text))
            read_whole_text = True
    # Size and position words rank among the objects the other words allow: "the big blue one"
    # is the biggest of the blue ones, not big and blue each on its own.
    total = {o.id: float(np.prod([f.get(o.id, 0.0) for f in factors])) for o in candidates}
    pool = [o for o in candidates if total[o.id] >= config.min_score] if factors else candidates
    if "attributes" in backends:
        relative = []
        for scores, used in (size_scores(pool, words), position_scores(pool, words, view)):
            if scores is not None:
                relative.append(scores)
                understood += used
        if not pool:  # nothing left to rank; the words were understood all the same
            understood += [w for w in words if w in LARGE_WORDS | SMALL_WORDS | POSITION_WORDS]
        if relative:
            factors += relative
            total = {i: t * float(np.prod([f.get(i, 0.0) for f in relative]))
                     for i, t in total.items()}
    if not candidates:
        return GroundingResult(NOT_FOUND, None, [], "the model has no objects", understood)
    if not factors:
        unknown_words = ", ".join(repr(w) for w in words)
        return GroundingResult(NOT_FOUND, None, [],
                               f"no enabled backend knows {unknown_words} (enabled: "
                               f"{', '.join(sorted(backends))}; label an object, or configure "
                               f"dino / clip)", understood)
    ranked = sorted(total.items(), key=lambda item: -item[1])[:5]
    ignored = [] if read_whole_text else [w for w in words if w not in understood]
    best_id, best = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    listing = ", ".join(f"{i}: {s:.2f}" for i, s in ranked)
    if ignored:  # an answer that skipped a word may be the wrong object: say so, pick nothing
        return GroundingResult(NOT_FOUND, None, ranked,
                               f"no enabled backend knows {', '.join(repr(w) for w in ignored)} "
                               f"(label an object, or configure dino / clip); by the other words: "
                               f"{listing}", understood)
    if best < config.min_score:
        return GroundingResult(NOT_FOUND, None, ranked,
                               f"no object matches {text!r} well enough (best {listing})",
                               understood)
    if best - second < config.ambiguity_margin:
        return GroundingResult(AMBIGUOUS, None, ranked,
                               f"{text!r} fits several objects equally (scores {listing})",
                               understood)
    obj = table.get(best_id)
    return GroundingResult(FOUND, obj, ranked,
                           f"{text!r} -> object {best_id} (score {best:.2f}; next {second:.2f})"
                           f"", understood)
