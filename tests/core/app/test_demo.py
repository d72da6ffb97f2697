"""`cgc demo` (offline: synth -> train -> eval -> pictures), shortened to a few iterations."""

import json

import pytest

from cgc_core.app.demo import run_demo


@pytest.mark.slow
def test_demo_writes_scene_run_evaluation_and_pictures(tmp_path):
    results = run_demo(tmp_path, seed=1, iterations=30, log=lambda *_: None)
    assert (tmp_path / "scene" / "transforms.json").is_file()
    assert (tmp_path / "run" / "model.ply").is_file()
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["mIoU"] == pytest.approx(results["mIoU"])
    assert saved["pairs"] > 0 and 0.0 <= saved["mIoU"] <= 100.0
    assert "mIoU" in (tmp_path / "eval.md").read_text()
    assert len(list((tmp_path / "renders").glob("*.png"))) == 3
