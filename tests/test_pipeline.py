"""The study end to end on the smoke profile: artifacts, resume, interruption, locking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorastudy.errors import StudyError
from lorastudy.pipeline import study_lock

SMOKE = ["run", "--config", "smoke"]


def lorastudy(args: list[str], env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lorastudy.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def comparable_results(run_dir: Path) -> dict:
    """results.json without the fields that legitimately differ between two runs (timestamps, paths)."""
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    results.pop("study", None)
    return results


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "smoke"
    done = lorastudy([*SMOKE, "--output-dir", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_smoke_study_leaves_every_artifact(reference_run):
    run_dir = reference_run
    assert (run_dir / "config.resolved.yaml").is_file()
    assert (run_dir / "data" / "labels.json").is_file()
    runs = sorted(p.name for p in (run_dir / "runs").iterdir())
    assert runs == sorted(f"{arm}__seed42" for arm in (
        "tfidf_logreg", "encoder_full", "encoder_full_cw", "encoder_lora", "encoder_lora_cw",
        "decoder_lora", "decoder_lora_cw"))
    for run in runs:
        assert (run_dir / "runs" / run / "run.json").is_file()
        assert (run_dir / "runs" / run / "predictions_test.safetensors").is_file()
    assert (run_dir / "evaluation" / "results.json").is_file()
    assert (run_dir / "latency" / "latency.json").is_file()
    assert (run_dir / "note" / "note.html").is_file()
    assert not (run_dir / ".lock").exists()


def test_second_run_skips_finished_work(reference_run):
    before = {p: p.stat().st_mtime_ns for p in (reference_run / "runs").rglob("run.json")}
    again = lorastudy([*SMOKE, "--output-dir", str(reference_run), "--stage", "train"])
    assert again.returncode == 0, again.stderr[-3000:]
    after = {p: p.stat().st_mtime_ns for p in (reference_run / "runs").rglob("run.json")}
    assert before == after


@pytest.mark.parametrize("kill_before", [
    "run.json",                        # while saving the first trained run
    "predictions_test.safetensors",    # after training, before its logits land
    "results.json",                    # during evaluation
    "latency.json",                    # during the benchmark
    "note.md",                         # while writing the note
])
def test_killed_study_resumes_to_identical_results(tmp_path, reference_run, kill_before):
    run_dir = tmp_path / "smoke"
    killed = lorastudy([*SMOKE, "--output-dir", str(run_dir)], {"LORASTUDY_KILL_BEFORE": kill_before})
    assert killed.returncode == -9, f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "runs").rglob("run.json")}

    resumed = lorastudy([*SMOKE, "--output-dir", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name, mtime in finished_before.items():
        assert (run_dir / "runs" / name / "run.json").stat().st_mtime_ns == mtime, f"{name} was redone"
    assert comparable_results(run_dir) == comparable_results(reference_run)
    assert (run_dir / "note" / "note.html").is_file()


def test_lock_refuses_a_second_live_run(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(StudyError, match="Another lorastudy run"):
            with study_lock(tmp_path):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_from_dead_process_is_cleared(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    time.sleep(0.1)
    (tmp_path / ".lock").write_text(str(dead.pid))
    with study_lock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


def test_concurrent_cli_run_is_refused(tmp_path):
    run_dir = tmp_path / "busy"
    run_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run_dir / ".lock").write_text(str(sleeper.pid))
        refused = lorastudy([*SMOKE, "--output-dir", str(run_dir), "--stage", "data"])
        assert refused.returncode == 2
        assert "Another lorastudy run" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
