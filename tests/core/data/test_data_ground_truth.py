"""LERF-Mask style masks and prompt files."""

import json

import numpy as np
import pytest
from PIL import Image

from cgc_core.data import SceneError, load_scene
from cgc_core.data.ground_truth import (
    Prompt,
    check_prompts,
    load_gt_masks,
    load_prompts,
    read_binary_mask,
    write_gt_mask,
    write_prompts,
)


def test_masks_round_trip_in_both_encodings(tmp_path):
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    write_gt_mask(tmp_path, "f1", "mug", mask)
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "test_mask" / "f1" / "cup.png")  # 0/1
    Image.fromarray(np.stack([mask * 255] * 3, -1).astype(np.uint8)).save(
        tmp_path / "test_mask" / "f1" / "rgb.png")
    gt = load_gt_masks(tmp_path)
    assert list(gt) == ["f1"] and sorted(gt["f1"]) == ["cup", "mug", "rgb"]
    for name in ("cup", "mug", "rgb"):
        np.testing.assert_array_equal(gt["f1"][name], mask)
    assert load_gt_masks(tmp_path / "elsewhere") == {}


def test_broken_mask_names_the_file(tmp_path):
    bad = tmp_path / "test_mask" / "f1" / "mug.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    with pytest.raises(SceneError, match="mug.png"):
        load_gt_masks(tmp_path)
    with pytest.raises(SceneError, match="missing.png"):
        read_binary_mask(tmp_path / "missing.png")


def test_prompts_round_trip(tmp_path):
    prompts = [Prompt("mug", "frame_0001", (10.5, 20.5)), Prompt("duck", "f", (0, 3), "a duck")]
    write_prompts(tmp_path / "prompts.json", prompts)
    assert load_prompts(tmp_path / "prompts.json") == prompts


@pytest.mark.parametrize("content, fragment", [
    ('{"id": "x"}', "list"),
    ('[{"frame": "f", "point": [1, 2]}]', "'id'"),
    ('[{"id": "a", "point": [1, 2]}]', "'frame'"),
    ('[{"id": "a", "frame": "f", "point": [1]}]', "point"),
    ('[{"id": "a", "frame": "f", "point": [-1, 2]}]', "point"),
    ('[{"id": "a", "frame": "f", "point": ["1", 2]}]', "point"),
    ('[{"id": "a", "frame": "f", "point": [1, 2], "text": 5}]', "text"),
    ('[{"id": "a", "frame": "f", "point": [1, 2]}, {"id": "a", "frame": "g", "point": [0, 0]}]',
     "duplicate"),
    ('[{"id": "a", ', "JSON"),
])
def test_bad_prompts_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "prompts.json"
    path.write_text(content)
    with pytest.raises(SceneError) as info:
        load_prompts(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_prompts_checked_against_a_scene(synth_root, tmp_path):
    scene = load_scene(synth_root)
    prompts = load_prompts(synth_root / "prompts.json")
    check_prompts(prompts, scene, synth_root / "prompts.json")
    cam = scene.cameras[0]
    with pytest.raises(SceneError, match="unknown frame"):
        check_prompts([Prompt("x", "nope", (1, 1))], scene, "p.json")
    with pytest.raises(SceneError, match="outside"):
        check_prompts([Prompt("x", cam.name, (cam.width, 1))], scene, "p.json")
    assert json.loads((synth_root / "prompts.json").read_text())[0]["point"][0] % 1 == 0.5
