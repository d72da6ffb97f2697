"""Colour names of Gaussians, from their base colour in CIELAB (no model weights needed).

Each Gaussian's base colour (the SH DC term, what it shows from every direction) is converted to
CIELAB and named after the nearest entry of `NAMED_COLOURS`. An object's colour is the
opacity-weighted vote of its Gaussians, so a two-tone object (a tin with a yellow lid) answers
to both of its colours with the share each covers.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import rgb2lab
from torch import Tensor

from cgc_core.model.sh import C0

NAMED_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (200, 30, 30)),
    ("red", (130, 20, 25)),      # shaded or dark red (what a trained base colour often holds)
    ("orange", (240, 130, 20)),
    ("yellow", (240, 210, 40)),
    ("yellow", (170, 150, 30)),  # shaded yellow, before it reads as olive-brown
    ("green", (40, 160, 50)),
    ("green", (30, 95, 40)),
    ("cyan", (30, 190, 200)),
    ("blue", (40, 70, 200)),
    ("blue", (30, 40, 110)),
    ("purple", (130, 50, 180)),
    ("pink", (240, 120, 170)),
    ("brown", (120, 75, 40)),
    ("white", (240, 240, 240)),
    ("grey", (128, 128, 128)),
    ("black", (25, 25, 25)),
)
"""(name, sRGB) prototypes; a name may have several (a lit and a shaded one), since the colour a
3DGS model learns for a surface includes its shading."""

COLOUR_SYNONYMS = {"gray": "grey", "violet": "purple", "magenta": "pink", "turquoise": "cyan",
                   "maroon": "red", "crimson": "red", "navy": "blue", "olive": "green",
                   "gold": "yellow", "golden": "yellow", "silver": "grey", "tan": "brown"}
"""Other words for the names of `NAMED_COLOURS`."""

COLOUR_WORDS = frozenset(name for name, _ in NAMED_COLOURS) | frozenset(COLOUR_SYNONYMS)

LIGHTNESS_WEIGHT = 0.5
"""L* counts half in the colour distance (as CIE94's textile weighting kL = 2): the same paint in
light and shadow differs mostly in lightness, and must keep its name."""


def base_rgb(splats) -> Tensor:
    """[N, 3] base colour in [0, 1] of each Gaussian (SH DC term, clamped)."""
    sh0 = splats["sh0"].detach()
    return (sh0.reshape(len(sh0), 3) * C0 + 0.5).clamp(0.0, 1.0)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] sRGB in [0, 1] -> [..., 3] CIELAB (D65)."""
    return rgb2lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 1, 3)).reshape(np.shape(rgb))


_NAMES = [name for name, _ in NAMED_COLOURS]
_UNIQUE_NAMES = list(dict.fromkeys(_NAMES))
_PROTOTYPES_LAB = srgb_to_lab(np.array([rgb for _, rgb in NAMED_COLOURS]) / 255.0)
_WEIGHT = np.array([LIGHTNESS_WEIGHT, 1.0, 1.0])


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """[P] index into `colour_name_list()` of the nearest named colour of each [P, 3] sRGB
    colour in [0, 1]."""
    lab = srgb_to_lab(np.asarray(rgb).reshape(-1, 3))
    diff = (lab[:, None, :] - _PROTOTYPES_LAB[None]) * _WEIGHT
    nearest = np.argmin(np.einsum("pkc,pkc->pk", diff, diff), axis=1)
    return np.array([_UNIQUE_NAMES.index(_NAMES[k]) for k in range(len(_NAMES))])[nearest]


def colour_name_list() -> list[str]:
    """The distinct colour names, in the order `colour_names` indexes."""
    return list(_UNIQUE_NAMES)


def colour_shares(rgb: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """{name: weighted share} of the named colours of [P, 3] sRGB colours, largest first;
    shares under 2 % are left out."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) == 0 or weights.sum() <= 0:
        return {}
    votes = np.bincount(colour_names(rgb), weights=weights, minlength=len(_UNIQUE_NAMES))
    votes = votes / votes.sum()
    order = np.argsort(-votes)
    return {_UNIQUE_NAMES[i]: round(float(votes[i]), 4) for i in order if votes[i] >= 0.02}


def canonical_colour(word: str) -> str | None:
    """The name in `NAMED_COLOURS` that `word` means, or None."""
    word = word.lower()
    word = COLOUR_SYNONYMS.get(word, word)
    return word if word in _UNIQUE_NAMES else None


def display_colour(object_id: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per object id (golden-ratio hues), for point clouds and
    markers: the id keeps its colour across re-clustering."""
    import colorsys

    hue = (object_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def opacity_weights(splats) -> np.ndarray:
    """[N] opacity of each Gaussian: its vote in an object's colour."""
    return torch.sigmoid(splats["opacities"].detach()).cpu().numpy().astype(np.float64)
