"""The `cgc` command end to end on a real tiny scene, and its one-line errors (exit code 2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cgc_core.app.cli import main

TRAIN_ARGS = ["--iterations", "40", "--quiet", "--device", "cpu"]


def fast_config(tmp_path) -> str:
    path = tmp_path / "fast.yaml"
    path.write_text("model:\n  sh_degree: 1\nloss:\n  clustering_every: 2\n"
                    "  regularization_every: 10\n  regularization_samples: 64\n"
                    "  min_cluster_pixels: 20\ntrain:\n  densify_from: 20\n"
                    "  densify_every: 20\n")
    return str(path)


@pytest.fixture(scope="module")
def trained_run(tiny_scene, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    run = tmp / "run"
    code = main(["train", str(tiny_scene), "--out", str(run), "--masks",
                 str(tiny_scene / "masks_inconsistent"), "--config", fast_config(tmp), *TRAIN_ARGS])
    assert code == 0
    return run


def test_train_writes_a_run(trained_run):
    assert (trained_run / "model.ply").is_file()
    assert (trained_run / "checkpoint.pt").is_file()
    info = json.loads((trained_run / "run.json").read_text())
    assert info["iterations"] == 40 and info["num_gaussians"] > 0


def test_segment_writes_one_mask_per_prompt(trained_run, tiny_scene, tmp_path):
    prompts = json.loads((tiny_scene / "prompts.json").read_text())
    assert main(["segment", str(trained_run), "--prompts", str(tiny_scene / "prompts.json"),
                 "--out", str(tmp_path / "masks")]) == 0
    for prompt in prompts:
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{prompt['id']}.png"))
        assert mask.shape == (48, 64)
        assert set(np.unique(mask)) <= {0, 255}
        u, v = prompt["point"]
        # The prompt pixel itself always has cosine 1 with its own feature.
        assert mask[int(v), int(u)] == 255


def test_eval_prints_a_table(trained_run, capsys):
    assert main(["eval", str(trained_run)]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "mBIoU" in out


def test_render_writes_pictures(trained_run, tiny_scene, tmp_path):
    frame = json.loads((tiny_scene / "prompts.json").read_text())[0]["frame"]
    assert main(["render", str(trained_run), "--frame", frame, "--out", str(tmp_path)]) == 0
    for suffix in ("colour", "features_pca", "masks"):
        image = Image.open(tmp_path / f"{frame}_{suffix}.png")
        assert image.size == (64, 48) and image.mode == "RGB"


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tiny_scene, tmp_path):
    run = tmp_path / "run"
    config = fast_config(tmp_path)
    masks = str(tiny_scene / "masks_inconsistent")
    assert main(["train", str(tiny_scene), "--out", str(run), "--masks", masks, "--config", config,
                 "--iterations", "10", "--quiet"]) == 0
    assert main(["train", str(tiny_scene), "--out", str(run), "--masks", masks, "--config", config,
                 "--iterations", "20", "--quiet", "--resume"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["iterations"] == 20


@pytest.mark.slow
def test_stream_writes_a_run_that_the_other_commands_read(tiny_scene, tmp_path, capsys):
    run = tmp_path / "streamed"
    assert main(["stream", str(tiny_scene), "--out", str(run), "--masks",
                 str(tiny_scene / "masks_inconsistent"), "--rate", "40", "--config",
                 fast_config(tmp_path), "--eval-every", "0.2", *TRAIN_ARGS]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["iterations"] == 40 and info["num_gaussians"] > 0 and info["streamed"]
    stream = json.loads((run / "stream.json").read_text())
    assert stream["frames"] == 8 and 1 <= len(stream["keyframes"]) <= 8
    for record in stream["keyframes"]:
        assert record["keyframe"] >= record["arrival"] >= 0
        assert record["iteration_at_segments"] == record["iteration_at_keyframe"]  # given masks
    assert stream["quality"] and 0 <= stream["quality"][-1]["mIoU"] <= 100
    assert stream["quality"][-1]["iteration"] == 40
    assert main(["eval", str(run)]) == 0
    assert "mIoU" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "/no/such/scene", "--out", "{tmp}/r"], "/no/such/scene"),
        (["train", "{scene}", "--out", "{tmp}/r", "--iterations", "0"], "--iterations"),
        (["train", "{scene}", "--out", "{tmp}/r", "--masks", "{tmp}/nomasks"], "nomasks"),
        (
            ["train", "{scene}", "--out", "{tmp}/r", "--config", "{tmp}/missing.yaml"],
            "missing.yaml",
        ),
        (
            ["segment", "{tmp}/norun", "--prompts", "{scene}/prompts.json", "--out", "{tmp}/o"],
            "run.json",
        ),
        (["render", "{run}", "--frame", "no_such_frame", "--out", "{tmp}/o"], "no_such_frame"),
        (["eval", "{run}", "--threshold", "3"], "--threshold"),
        (["stream", "{scene}", "--out", "{tmp}/r", "--rate", "0"], "--rate"),
        (["stream", "{scene}", "--out", "{tmp}/r", "--masks", "{tmp}/nomasks"], "nomasks"),
        (["stream", "/no/such/scene", "--out", "{tmp}/r"], "/no/such/scene"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, tiny_scene, trained_run, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, scene=tiny_scene, run=trained_run) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_scene_without_poses_is_an_error(tmp_path, capsys):
    scene = tmp_path / "scene"
    (scene / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(scene / "images" / "a.png")
    (scene / "transforms.json").write_text(
        json.dumps(
            {
                "fl_x": 10,
                "fl_y": 10,
                "cx": 4,
                "cy": 4,
                "w": 8,
                "h": 8,
                "frames": [{"file_path": "images/a.png"}],
            }
        )
    )
    assert main(["train", str(scene), "--out", str(tmp_path / "r")]) == 2
    assert "transforms.json" in capsys.readouterr().err


def test_console_script_reports_usage_errors_with_code_2():
    cgc = Path(sys.executable).parent / "cgc"
    result = subprocess.run(
        [str(cgc), "train"], capture_output=True, text=True, env={**os.environ}, timeout=120
    )
    assert result.returncode == 2 and "--out" in result.stderr


@pytest.mark.slow
def test_training_is_reproducible_across_processes(tiny_scene, tmp_path):
    """Same scene, seed and config in two fresh processes (with different hash seeds, so that any
    dependence on set or dict-of-str order would show) -> byte-identical models."""
    cgc = Path(sys.executable).parent / "cgc"
    config = fast_config(tmp_path)
    models = []
    for run, hash_seed in (("a", "1"), ("b", "2")):
        out = tmp_path / run
        result = subprocess.run(
            [
                str(cgc),
                "train",
                str(tiny_scene),
                "--out",
                str(out),
                "--masks",
                str(tiny_scene / "masks_inconsistent"),
                "--config",
                config,
                *TRAIN_ARGS,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        models.append((out / "model.ply").read_bytes())
    assert models[0] == models[1]


class _Payload:
    """Unpickling this runs a shell command: what a checkpoint must never be able to do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _corrupt(kind: str, scene: Path, run: Path, tmp: Path) -> tuple[list[str], str]:
    """Copies of the scene or run with one bad file; returns (argv, what the error must name)."""
    import shutil

    import torch

    if kind == "corrupt png":
        bad = tmp / "scene"
        shutil.copytree(scene, bad)
        image = sorted((bad / "images").iterdir())[0]
        image.write_bytes(image.read_bytes()[:100])  # a PNG cut short
        return ["train", str(bad), "--out", str(tmp / "r"), "--masks",
                str(bad / "masks_inconsistent"), *TRAIN_ARGS], image.name
    bad = tmp / "run"
    shutil.copytree(run, bad)
    if kind == "truncated checkpoint":
        data = (bad / "checkpoint.pt").read_bytes()
        (bad / "checkpoint.pt").write_bytes(data[: len(data) // 3])
        return ["train", str(scene), "--out", str(bad), "--resume", *TRAIN_ARGS], "checkpoint"
    if kind == "pickle checkpoint":
        torch.save({"step": _Payload(tmp / "pwned")}, bad / "checkpoint.pt")
        return ["train", str(scene), "--out", str(bad), "--resume", *TRAIN_ARGS], "checkpoint"
    if kind == "foreign model":
        shutil.copy(sorted((scene / "images").iterdir())[0], bad / "model.ply")  # a PNG
        return ["eval", str(bad)], "model.ply"
    if kind == "truncated model":
        data = (bad / "model.ply").read_bytes()
        (bad / "model.ply").write_bytes(data[: len(data) // 2])
        return ["eval", str(bad)], "model.ply"
    if kind == "garbage run.json":
        (bad / "run.json").write_bytes(b"\x00\xff not json")
        return ["eval", str(bad)], "run.json"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["corrupt png", "truncated checkpoint", "pickle checkpoint",
                                  "foreign model", "truncated model", "garbage run.json"])
def test_bad_files_are_one_line_errors(kind, tiny_scene, trained_run, tmp_path, capsys):
    argv, names = _corrupt(kind, tiny_scene, trained_run, tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and names in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "pwned").exists()  # nothing in the file ran


def test_every_file_written_gets_the_users_permissions(trained_run, tiny_scene, tmp_path):
    """Run folder (model.ply, checkpoint.pt, run.json, ...), masks and pictures: 0666 less the
    umask, as any new file, never mkstemp's 0600 (issue 15). The render runs under an unusual
    umask, so that a fixed mode would show."""
    import stat

    def modes(folder: Path) -> dict[str, int]:
        return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode)
                for p in folder.rglob("*") if p.is_file()}

    old = os.umask(0o022)
    os.umask(old)
    written = modes(trained_run)
    assert {"model.ply", "checkpoint.pt", "run.json"} <= set(written)
    assert set(written.values()) == {0o666 & ~old}, written
    frame = sorted((tiny_scene / "images").iterdir())[0].stem
    old = os.umask(0o007)
    try:
        assert main(["render", str(trained_run), "--frame", frame, "--out",
                     str(tmp_path / "pictures")]) == 0
    finally:
        os.umask(old)
    pictures = modes(tmp_path / "pictures")
    assert pictures and set(pictures.values()) == {0o660}, pictures
