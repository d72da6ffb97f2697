"""scripts/gpu_check.sh: its CPU-only mode runs here (the GPU steps need a GPU, see the script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def run_script(*args: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENV": str(Path(sys.executable).parents[1])}
    return subprocess.run(["bash", str(SCRIPT), "--skip-setup", "--results", str(results), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_cpu_dry_run_runs_the_cpu_parity_and_lists_the_gpu_steps(tmp_path):
    done = run_script("--cpu-dry-run", "--iterations", "30000", results=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "gpu_check_cpu_dry_run.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 5, summary  # header, the CPU parity, four GPU steps
    assert "| pass |" in rows[1] and "torch stages" in rows[1]
    assert all("not run (no GPU)" in row for row in rows[2:]), summary
    for command in ("-m gpu tests", "bench/bench_render.py", "--iterations 30000",
                    "--set train.device=cuda", "bench/bench_main_job.py"):
        assert command in summary, command
    log = (tmp_path / "gpu_check_parity_cpu.log").read_text()
    assert " passed" in log and " failed" not in log, log[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is missing")
def test_without_cuda_the_gpu_mode_refuses_to_start(tmp_path):
    done = run_script(results=tmp_path)
    assert done.returncode == 2
    assert "--cpu-dry-run" in done.stderr
    assert not (tmp_path / "gpu_check.md").exists()
