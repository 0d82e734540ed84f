"""The study end to end on the smoke profile: artifacts, resume, interruption, locking."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lorastudy.core.errors import StudyError
from lorastudy.core.lock import study_lock

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
    with study_lock(run_dir):  # released when the run ended
        pass


def test_second_run_skips_finished_work(reference_run):
    before = {p: p.stat().st_mtime_ns for p in (reference_run / "runs").rglob("run.json")}
    again = lorastudy([*SMOKE, "--output-dir", str(reference_run), "--stage", "train"])
    assert again.returncode == 0, again.stderr[-3000:]
    after = {p: p.stat().st_mtime_ns for p in (reference_run / "runs").rglob("run.json")}
    assert before == after


AFTER_TRAINING = ("results.json", "latency.json", "note.md")


@pytest.mark.parametrize("kill_before", [
    "run.json",                        # while saving the first trained run
    pytest.param("predictions_test.safetensors", marks=pytest.mark.slow),  # after training, before its logits land
    "results.json",                    # during evaluation
    pytest.param("latency.json", marks=pytest.mark.slow),  # during the benchmark
    pytest.param("note.md", marks=pytest.mark.slow),       # while writing the note
])  # the slow ones run with `pytest -m slow`: CI's time budget keeps one kill during training and one after it
def test_killed_study_resumes_to_identical_results(tmp_path, reference_run, kill_before):
    run_dir = tmp_path / "smoke"
    if kill_before in AFTER_TRAINING:  # what is killed comes after training: start from the reference's trained runs
        shutil.copytree(reference_run, run_dir, ignore=shutil.ignore_patterns("evaluation", "latency", "note"))
    killed = lorastudy([*SMOKE, "--output-dir", str(run_dir)], {"LORASTUDY_KILL_BEFORE": kill_before})
    assert killed.returncode == -9, f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "runs").rglob("run.json")}

    resumed = lorastudy([*SMOKE, "--output-dir", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name, mtime in finished_before.items():
        assert (run_dir / "runs" / name / "run.json").stat().st_mtime_ns == mtime, f"{name} was redone"
    assert comparable_results(run_dir) == comparable_results(reference_run)
    assert (run_dir / "note" / "note.html").is_file()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from lorastudy.core.lock import study_lock
from lorastudy.core.errors import StudyError
start_at, hold_s = float(sys.argv[2]), float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))
try:
    with study_lock(Path(sys.argv[1])):
        print("owner", flush=True)
        time.sleep(hold_s)
except StudyError:
    print("refused", flush=True)
"""


def lock_process(run_dir: Path, hold_s: float = 60, start_at: float = 0) -> subprocess.Popen:
    """A separate process that tries to take the run directory's lock (at `start_at`) and holds it `hold_s`."""
    return subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir), str(start_at), str(hold_s)],
                            stdout=subprocess.PIPE, text=True)


@pytest.fixture
def holder(tmp_path):
    process = lock_process(tmp_path)
    assert process.stdout.readline().strip() == "owner"
    yield process
    process.kill()
    process.wait()


def test_lock_refuses_a_second_live_run(tmp_path, holder):
    with pytest.raises(StudyError, match="Another lorastudy run"):
        with study_lock(tmp_path):
            pass


def test_a_holder_is_protected_before_and_after_it_writes_anything(tmp_path, holder):
    """The old pid-file lock had a window (created, pid not yet written) in which a second run read an
    empty file, called it stale, deleted it and took the directory too."""
    (tmp_path / ".lock").write_text("")
    with pytest.raises(StudyError, match="Another lorastudy run"):
        with study_lock(tmp_path):
            pass


def test_lock_of_a_killed_process_does_not_block(tmp_path, holder):
    holder.kill()
    holder.wait()
    with study_lock(tmp_path):
        pass


def test_two_racing_runs_never_both_own_the_directory(tmp_path):
    for round_ in range(3):
        run_dir = tmp_path / f"round{round_}"
        run_dir.mkdir()
        start_at = time.time() + 1.5  # both processes are up and importing by then
        racers = [lock_process(run_dir, hold_s=1.0, start_at=start_at) for _ in range(2)]
        outcomes = sorted(racer.communicate(timeout=60)[0].strip() for racer in racers)
        assert outcomes == ["owner", "refused"], f"round {round_}: {outcomes}"


def test_concurrent_cli_run_is_refused(tmp_path, holder):
    refused = lorastudy([*SMOKE, "--output-dir", str(tmp_path), "--stage", "data"])
    assert refused.returncode == 2
    assert "Another lorastudy run" in refused.stderr
    assert "Traceback" not in refused.stderr
