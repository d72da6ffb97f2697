"""Shared helpers of the mask-source tests, as fixtures (tests run with --import-mode=importlib,
so a helper module beside them would not be importable).

Images: coloured rectangles on a plain background."""

import numpy as np
import pytest

RECTANGLES = [  # (row0, row1, col0, col1, RGB): well separated, strongly different colours
    (4, 28, 4, 30, (230, 30, 30)),
    (6, 40, 38, 60, (30, 200, 40)),
    (32, 46, 8, 32, (40, 60, 230)),
]
BACKGROUND = (128, 128, 128)


def rectangles_image(height: int = 48, width: int = 64, noise: int = 6,
                     seed: int = 0) -> np.ndarray:
    """[H, W, 3] uint8: RECTANGLES (scaled to the size) on BACKGROUND, with mild pixel noise so
    the segmenters see a camera-like image rather than flat colour."""
    sy, sx = height / 48, width / 64
    image = np.empty((height, width, 3), dtype=np.int16)
    image[:] = BACKGROUND
    for r0, r1, c0, c1, colour in RECTANGLES:
        image[round(r0 * sy):round(r1 * sy), round(c0 * sx):round(c1 * sx)] = colour
    rng = np.random.default_rng(seed)
    image += rng.integers(-noise, noise + 1, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def rectangle_masks(height: int = 48, width: int = 64) -> list[np.ndarray]:
    """[H, W] bool per rectangle, at the same scale as `rectangles_image`."""
    sy, sx = height / 48, width / 64
    masks = []
    for r0, r1, c0, c1, _ in RECTANGLES:
        mask = np.zeros((height, width), dtype=bool)
        mask[round(r0 * sy):round(r1 * sy), round(c0 * sx):round(c1 * sx)] = True
        masks.append(mask)
    return masks


def check_id_map(ids: np.ndarray, shape: tuple[int, int]) -> None:
    """The MaskSource contract: [H, W] int32, ids 0..n with every id in 1..n present."""
    assert ids.shape == shape
    assert ids.dtype == np.int32
    present = np.unique(ids)
    assert present.min() >= 0
    positive = present[present > 0]
    assert np.array_equal(positive, np.arange(1, len(positive) + 1))


@pytest.fixture
def image() -> np.ndarray:
    """[48, 64, 3] uint8 rectangles image."""
    return rectangles_image()


@pytest.fixture
def rectangles():
    """The image factory: rectangles(height, width) -> ([H, W, 3] uint8, list of [H, W] bool)."""
    return lambda height=48, width=64: (rectangles_image(height, width),
                                        rectangle_masks(height, width))


@pytest.fixture
def assert_id_map():
    """The MaskSource contract check: assert_id_map(ids, (H, W))."""
    return check_id_map
