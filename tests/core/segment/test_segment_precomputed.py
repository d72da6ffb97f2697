"""Masks from disk: `<masks_dir>/<stem>.png`, 8- or 16-bit, renumbered, with file-naming errors."""

import numpy as np
import pytest
from PIL import Image

from cgc_core.config import SegmenterConfig
from cgc_core.io import DataError
from cgc_core.segment import make_mask_source


def source_for(folder):
    return make_mask_source(SegmenterConfig(kind="precomputed", masks_dir=str(folder)))


def test_8_and_16_bit_masks_are_renumbered(tmp_path, image, assert_id_map):
    labels8 = np.zeros((48, 64), dtype=np.uint8)
    labels8[:10] = 200
    labels8[30:, 5:9] = 17
    Image.fromarray(labels8).save(tmp_path / "a.png")
    labels16 = np.zeros((48, 64), dtype=np.uint16)
    labels16[:, :20] = 40000
    labels16[:, 20:30] = 300
    labels16[0, 0] = 9
    Image.fromarray(labels16).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode.startswith("I")   # really 16-bit on disk
    source = source_for(tmp_path)

    ids = source(image, "a")
    assert_id_map(ids, (48, 64))
    expected = np.zeros((48, 64), dtype=np.int32)
    expected[:10] = 2
    expected[30:, 5:9] = 1
    assert np.array_equal(ids, expected)

    ids = source(image, "b")
    assert_id_map(ids, (48, 64))
    assert ids.max() == 3 and ids[0, 0] == 1 and ids[5, 25] == 2 and ids[5, 5] == 3
    assert np.all(ids[:, 30:] == 0)


def test_missing_mask_names_the_expected_path(tmp_path, image):
    with pytest.raises(DataError, match=r"frame_7.*" + str(tmp_path / "frame_7.png")):
        source_for(tmp_path)(image, "frame_7")


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        source_for(tmp_path / "nowhere")


def test_wrong_size_names_file_and_both_sizes(tmp_path, image):
    Image.fromarray(np.ones((40, 50), dtype=np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.png.*50x40.*64x48"):
        source_for(tmp_path)(image, "a")


def test_rgb_mask_is_refused(tmp_path, image):
    Image.fromarray(np.zeros((48, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.png.*single-channel"):
        source_for(tmp_path)(image, "a")


def test_corrupt_mask_is_named(tmp_path, image):
    Image.fromarray(np.ones((48, 64), dtype=np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[:len(data) // 2])      # truncated mid-stream
    (tmp_path / "b.png").write_bytes(b"not a png at all")
    for name in ("a", "b"):
        with pytest.raises(DataError, match=rf"{name}\.png"):
            source_for(tmp_path)(image, name)
