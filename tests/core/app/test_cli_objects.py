"""`cgc objects / extract / label` end to end on a RUN folder written by hand: a real scene
(the session's tiny synthetic one, for its cameras) and a hand-built model of two boxes on its
table, so the commands' answers are known without training."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from cgc_core.app.cli import main
from cgc_core.config import CGCConfig
from cgc_core.data import load_scene
from cgc_core.model.gaussians import save_ply

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "objects"))
from box_scenes import Box, boxes_model, project_pixel, unit_feature  # noqa: E402

TABLE_TOP = 0.625
RED_CENTRE = (-0.15, 0.0, TABLE_TOP + 0.05)
MARGIN = 0.045
"""Extracted points come from the object's rendered surface in the scene's 64x48 views: a pixel
there spans about 2 cm, and the rendered edge lies past the outer Gaussians' centres (the
boxes are 30 cm apart, so this still tells them apart; bench_objects measures accuracy)."""
BLUE_CENTRE = (0.15, 0.0, TABLE_TOP + 0.06)


@pytest.fixture(scope="module")
def run_dir(tiny_scene, tmp_path_factory):
    run = tmp_path_factory.mktemp("objects_run")
    model, _ = boxes_model([Box(RED_CENTRE, (0.1, 0.1, 0.1), unit_feature(0), (0.8, 0.1, 0.1)),
                            Box(BLUE_CENTRE, (0.12, 0.12, 0.12), unit_feature(1),
                                (0.1, 0.2, 0.8))], spacing=0.012, std=0.008)
    save_ply(model, run / "model.ply")
    config = asdict(CGCConfig())
    config["render"]["backend"] = "cpu"
    config["objects"]["surface_scale"] = 1.0  # the tiny scene's 64x48 views, at full size
    (run / "run.json").write_text(json.dumps({"scene": str(tiny_scene), "config": config}))
    return run


def objects_json(run_dir, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["objects", str(run_dir), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_objects_lists_the_boxes_and_label_persists(run_dir, capsys):
    objects = objects_json(run_dir, capsys)
    assert sorted(o["color_name"] for o in objects) == ["blue", "red"]
    red = next(o for o in objects if o["color_name"] == "red")
    np.testing.assert_allclose(red["centroid"], RED_CENTRE, atol=0.01)
    assert main(["label", str(run_dir), str(red["id"]), "Red Mug"]) == 0
    again = objects_json(run_dir, capsys)
    assert next(o for o in again if o["id"] == red["id"])["label"] == "Red Mug"
    assert main(["objects", str(run_dir)]) == 0
    assert "Red Mug" in capsys.readouterr().out


def test_extract_by_text_writes_points_splats_and_render(run_dir, tmp_path, capsys):
    frame = load_scene(json.loads((run_dir / "run.json").read_text())["scene"]).test_names[0]
    out, splats, png = tmp_path / "red.ply", tmp_path / "red_splat.ply", tmp_path / "red.png"
    assert main(["extract", str(run_dir), "--text", "the red one", "--out", str(out),
                 "--splats", str(splats), "--render-frame", frame, "--render-out", str(png)]) == 0
    vertex = PlyData.read(str(out))["vertex"]
    xyz = np.column_stack([vertex["x"], vertex["y"], vertex["z"]])
    assert len(xyz) > 100
    assert (np.abs(xyz - RED_CENTRE) <= 0.05 + MARGIN).all()  # on the red box, world frame
    assert np.median(np.abs(xyz - RED_CENTRE).max(axis=1)) == pytest.approx(0.05, abs=0.02)
    # exactly the red box's Gaussians: a 10 x 10 x 10 grid's surface, 1000 - 8 ** 3
    assert len(PlyData.read(str(splats))["vertex"]) == 488
    assert png.is_file()


def test_extract_by_pixel_and_by_id(run_dir, tmp_path, capsys):
    scene = load_scene(json.loads((run_dir / "run.json").read_text())["scene"])
    camera = scene.camera(scene.test_names[0])
    u, v = project_pixel(camera, BLUE_CENTRE)
    out = tmp_path / "blue.ply"
    assert main(["extract", str(run_dir), "--frame", camera.name, "--point", str(u), str(v),
                 "--out", str(out)]) == 0
    xyz = np.column_stack([PlyData.read(str(out))["vertex"][c] for c in "xyz"])
    assert (np.abs(xyz - BLUE_CENTRE) <= 0.06 + MARGIN).all()
    blue = next(o for o in objects_json(run_dir, capsys) if o["color_name"] == "blue")
    assert main(["extract", str(run_dir), "--id", str(blue["id"]), "--out", str(out)]) == 0
    assert len(PlyData.read(str(out))["vertex"]) == len(xyz)


@pytest.mark.parametrize("args, message", [
    (["--id", "999"], "unknown object id 999"),
    (["--frame", "FRAME", "--point", "5000", "5"], "outside"),
    (["--text", "the purple one"], "no object matches"),
    (["--text", "the cup"], "no enabled backend knows 'cup'"),
    (["--frame", "no_such_frame", "--point", "1", "1"], "unknown frame"),
])
def test_extract_errors_are_one_line_and_exit_2(run_dir, tmp_path, capsys, args, message):
    scene = load_scene(json.loads((run_dir / "run.json").read_text())["scene"])
    args = [scene.test_names[0] if a == "FRAME" else a for a in args]
    assert main(["extract", str(run_dir), *args, "--out", str(tmp_path / "x.ply")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert not (tmp_path / "x.ply").exists()


def test_label_of_an_unknown_id_exits_2(run_dir, capsys):
    assert main(["label", str(run_dir), "999", "x"]) == 2
    assert "unknown object id" in capsys.readouterr().err


def test_a_config_file_overrides_the_runs_objects_settings(run_dir, tmp_path, capsys):
    config = tmp_path / "labels_only.yaml"
    config.write_text("objects:\n  grounding: labels\n")
    assert main(["extract", str(run_dir), "--text", "the blue one", "--out",
                 str(tmp_path / "x.ply"), "--config", str(config)]) == 2
    assert "no enabled backend knows 'blue'" in capsys.readouterr().err
    config.write_text("objects:\n  grounding: yolo\n")
    assert main(["extract", str(run_dir), "--text", "red", "--out", str(tmp_path / "x.ply"),
                 "--config", str(config)]) == 2
    assert "unknown grounding backend" in capsys.readouterr().err
