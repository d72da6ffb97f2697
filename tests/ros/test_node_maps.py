"""The node's maps and services under abuse, with real ROS 2 processes and real files: requests
before any map, invalid fields of every kind, names that try to leave the map directory, the
permissions of what is written, autosave, a SIGKILL in the middle of a save, and truncated or
foreign (code-executing pickle) map files.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent



class Payload:
    """Unpickling this runs a shell command: what a map file must never be able to do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from cgc_core.data.synth import make_synthetic_scene

    return make_synthetic_scene(tmp_path_factory.mktemp("scene"), seed=0, width=160,
                                height=120, n_train=4, n_test=1)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_requests_are_validated_and_no_map_is_lost(ros_python, ros_env, run_script, cgc_nodes,
                                                    scene, tmp_path, ros_namespace):
    maps, outside = tmp_path / "maps", tmp_path / "outside"
    maps.mkdir()
    outside.mkdir()
    (maps / "link").symlink_to(outside)  # a symlink escape to try
    common = ("pose_source:=topic", "external_segments:=true", f"map_directory:={maps}",
              "publish_rate:=2.0", "max_stamp_skew:=600.0")
    node = cgc_nodes(ros_namespace, *common, "autosave_period:=2.0")
    loop = None
    try:

        # Before any frame: a clear "no map yet" from every service that needs one.
        early = run_script("map_driver.py", ros_namespace, str(scene), "empty", timeout=90)
        for name, result in early.items():
            assert not result["success"] and "no map yet" in result["message"], (name, result)
        assert not (maps / "early").exists()

        fed = run_script("map_driver.py", ros_namespace, str(scene), "feed", timeout=180)
        assert fed["listed"]["success"], fed
        invalid = fed["invalid"]
        assert len(invalid) >= 30
        for name, result in invalid.items():
            assert not result["success"] and result["message"], (name, result)
        assert "limited to 2048 pixels" in invalid["view 5000x5000"]["message"]
        assert "threshold must lie in" in invalid["threshold NaN"]["message"]
        assert "longer than 256" in invalid["text too long"]["message"]
        assert "leads out of the map directory" in invalid["save 'link/inside_link'"]["message"]
        assert "must be relative" in invalid["save '/tmp/cgc_absolute'"]["message"]
        assert list(outside.iterdir()) == [] and not (tmp_path / "escape").exists()
        assert fed["status"].get("internal_errors", 0) == 0

        # The saved map: complete, and with the user's normal permissions (not mkstemp's 0600).
        assert fed["saved"]["success"], fed["saved"]
        good = maps / "good"
        assert sorted(p.name for p in good.iterdir()) == ["checkpoint.pt", "objects.json"]
        for path in (good, *good.iterdir()):
            want = (0o777 if path.is_dir() else 0o666) & ~_umask()
            assert stat.S_IMODE(path.stat().st_mode) == want, path
        # Autosave, every 2 s while the map exists.
        deadline = time.monotonic() + 30
        while not (maps / "autosave" / "checkpoint.pt").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (maps / "autosave" / "checkpoint.pt").is_file()
        torch.load(maps / "autosave" / "checkpoint.pt", weights_only=True)

        # SIGKILL the node while it writes the model: the map on disk stays the previous one.
        loop = subprocess.Popen([ros_python, str(HERE / "map_driver.py"), ros_namespace,
                                 str(scene), "save-loop"], cwd=HERE, env=ros_env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        seen, deadline = [], time.monotonic() + 90
        while not seen and time.monotonic() < deadline and node.poll() is None:
            seen = [n for n in os.listdir(good) if n.startswith(".checkpoint.")]
            if seen:
                os.killpg(node.pid, signal.SIGKILL)
            else:
                time.sleep(0.0002)
        assert seen, "no save was caught writing within 90 s"
        assert node.wait(timeout=10) == -signal.SIGKILL
        left = [n for n in os.listdir(good) if n.startswith(".checkpoint.")]
        assert left, "the save had finished when the kill landed; not a mid-save kill"
        state = torch.load(good / "checkpoint.pt", weights_only=True)  # the previous map, whole
        assert "trainer" in state and state["keyframes"]
        os.killpg(loop.pid, signal.SIGKILL)

        # Files that are not maps: a truncated one and a pickle that would run a command.
        (maps / "truncated").mkdir()
        data = (good / "checkpoint.pt").read_bytes()
        (maps / "truncated" / "checkpoint.pt").write_bytes(data[: len(data) // 2])
        marker = tmp_path / "pwned"
        (maps / "foreign").mkdir()
        torch.save({"version": 1, "trainer": Payload(marker)}, maps / "foreign" / "checkpoint.pt")

        second = cgc_nodes(ros_namespace + "_b", *common)
        loaded = run_script("map_driver.py", ros_namespace + "_b", str(scene), "loads",
                            timeout=120)
        for name in ("truncated", "foreign"):
            assert not loaded[name]["success"], loaded
            assert "the current map is kept" in loaded[name]["message"], loaded
        assert not marker.exists()  # nothing in the file ran
        assert loaded["good"]["success"], loaded
        objects = loaded["good"]["objects_after"]
        assert objects and objects > 0
        for name in ("truncated after good", "foreign after good"):
            assert not loaded[name]["success"], loaded
            assert loaded[name]["objects_after"] == objects  # the current map, kept
        assert not loaded["missing"]["success"] and "no saved map" in \
            loaded["missing"]["message"]
        assert not marker.exists()
        assert second.poll() is None
    finally:
        if loop is not None:
            if loop.poll() is None:
                os.killpg(loop.pid, signal.SIGKILL)
            loop.wait(timeout=10)
            loop.stdout.close()


@pytest.mark.slow
def test_slow_requests_are_refused_or_timed_out_and_frames_go_on(run_script, cgc_nodes, scene,
                                                                  tmp_path, ros_namespace):
    cgc_nodes(ros_namespace, "pose_source:=topic", "external_segments:=true",
              f"map_directory:={tmp_path}", "publish_rate:=2.0", "service_timeout:=0.5",
              "service_queue_length:=1")
    out = run_script("map_driver.py", ros_namespace, str(scene), "flood", timeout=150)
    answers = out["answers"]
    assert all(a is not None for a in answers), answers  # every caller got an answer ...
    assert max(a["seconds"] for a in answers) < 10.0, answers  # ... promptly
    refused = [a for a in answers if "already wait" in a["message"]]
    timed_out = [a for a in answers if "did not answer within 0.5 s" in a["message"]]
    assert refused and timed_out, answers
    assert all(not a["success"] for a in refused + timed_out)
    status = out["status"]
    assert status["requests_refused"] >= len(refused)
    assert status["requests_timed_out"] >= len(timed_out)
    # Frames sent meanwhile: the bounded queue dropped the oldest while the worker rendered, and
    # the newest was still segmented.
    assert out["during"][-1] in out["segmented_during"], out
    assert status["frames_dropped"] + len(out["segmented_during"]) >= len(out["during"])
    assert out["listed"]["success"]
