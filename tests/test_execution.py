"""Execution backends: the smoke study trained in child processes and as Ray tasks gives the local results.

One local Ray cluster of 2 CPUs serves the whole module (Ray starts in ~5-10 s); the studies are cut to
three arms, one per resource family, and stop after evaluation (latency and the note do not depend on
where a run trained).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ray

from lorastudy import execution
from lorastudy.config import ExecutionConfig, arm_spec, load_config
from lorastudy.errors import StudyError
from lorastudy.pipeline import run_study
from lorastudy.training import is_finished, run_path_for

ARMS = "arms=[tfidf_logreg,encoder_lora,decoder_lora]"
RUNS = ("tfidf_logreg__seed42", "encoder_lora__seed42", "decoder_lora__seed42")
UP_TO_EVALUATION = ("data", "train", "evaluate")


def smoke(*overrides: str):
    return load_config("smoke", [ARMS, *overrides])


def comparable_results(run_dir: Path) -> dict:
    """results.json without the fields that legitimately differ between two runs (timestamps, paths)."""
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    results.pop("study", None)
    return results


def run_record(run_dir: Path, run: str) -> dict:
    return json.loads((run_dir / "runs" / run / "run.json").read_text())


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory) -> dict:
    run_dir = run_study(smoke(), output_dir=tmp_path_factory.mktemp("local") / "smoke", stages=UP_TO_EVALUATION)
    assert run_record(run_dir, "encoder_lora__seed42")["peak_memory_scope"] == "study"
    return comparable_results(run_dir)


def test_ray_backend_gives_the_local_results(tmp_path, ray_cluster, local_results):
    run_dir = run_study(smoke("execution.backend=ray"), output_dir=tmp_path / "smoke", stages=UP_TO_EVALUATION)
    assert comparable_results(run_dir) == local_results
    for run in RUNS:
        assert run_record(run_dir, run)["peak_memory_scope"] == "run"
    assert not (run_dir / execution.TOKEN_FILE).exists()


def test_ray_task_killed_once_is_retried_and_returned_files_give_the_local_results(
        tmp_path, monkeypatch, ray_cluster, local_results):
    """Workers that cannot see the run directory (forced here) send their run folders back to the driver."""
    flag = tmp_path / "crashed-once"
    monkeypatch.setenv("LORASTUDY_CRASH_RUN", f"encoder_lora__seed42:{flag}")
    config = smoke("execution.backend=ray", "execution.return_artifacts=true", "execution.max_retries=1")
    run_dir = run_study(config, output_dir=tmp_path / "smoke", stages=UP_TO_EVALUATION)
    assert flag.exists(), "the injected fault never fired"
    assert comparable_results(run_dir) == local_results


def test_process_backend_keeps_finished_runs_when_one_fails_then_resumes_to_the_local_results(
        tmp_path, local_results):
    run_dir = tmp_path / "smoke"
    args = ["run", "--config", "smoke", "--set", ARMS, "--set", "execution.backend=process",
            "--output-dir", str(run_dir), "--stage", "data", "--stage", "train", "--stage", "evaluate"]
    failed = subprocess.run([sys.executable, "-m", "lorastudy.cli", *args], capture_output=True, text=True,
                            env={**os.environ, "LORASTUDY_CRASH_RUN": "decoder_lora__seed42"}, timeout=600)
    assert failed.returncode == 2, failed.stderr[-3000:]
    error = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "decoder_lora__seed42" in error[0] and "2 attempt(s)" in error[0], failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    kept = {run: (run_dir / "runs" / run / "run.json").stat().st_mtime_ns for run in RUNS[:2]}
    assert not (run_dir / "runs" / "decoder_lora__seed42" / "run.json").exists()
    assert not (run_dir / "evaluation").exists()

    run_study(smoke("execution.backend=process"), output_dir=run_dir, stages=UP_TO_EVALUATION)
    assert {run: (run_dir / "runs" / run / "run.json").stat().st_mtime_ns for run in RUNS[:2]} == kept
    assert comparable_results(run_dir) == local_results
    assert run_record(run_dir, "decoder_lora__seed42")["peak_memory_scope"] == "run"


def test_worker_writes_in_place_only_when_it_reads_the_drivers_token(tmp_path):
    from lorastudy.data import prepare_data

    config = smoke()
    data = prepare_data(config, tmp_path)
    spec = arm_spec(config, "tfidf_logreg", 42, data.fingerprint)
    run_path = run_path_for(tmp_path, spec)
    with execution.driver_token(tmp_path) as token:
        in_place = execution.train_in_worker(spec, data, str(tmp_path), config, token)
        assert in_place.files is None and is_finished(run_path, spec)
        shutil.rmtree(run_path)

        elsewhere = execution.train_in_worker(spec, data, str(tmp_path), config, "the token of another driver")
        assert elsewhere.files is not None and {"run.json", "model/tfidf.json"} <= set(elsewhere.files)
        assert not run_path.exists()
        execution._finish(elsewhere, tmp_path, 1, 1)
        assert is_finished(run_path, spec)
        assert (run_path / "model" / "logreg.safetensors").read_bytes() == elsewhere.files["model/logreg.safetensors"]


def test_a_run_no_node_can_host_is_refused(ray_cluster):
    config = smoke("execution.resources.decoder.num_gpus=1")
    specs = [arm_spec(config, arm, 42, "fingerprint") for arm in config.arms]
    with pytest.raises(StudyError, match=r"decoder_lora__seed42 .*execution\.resources\.decoder"):
        execution._check_cluster_fits(ray, specs, config.execution)
    execution._check_cluster_fits(ray, specs, smoke().execution)


def test_ray_backend_without_ray_is_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "no_ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('Ray is blocked for this test')\n")
    run_dir = tmp_path / "smoke"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "lorastudy.cli", "run", "--config", "smoke",
                           "--set", "execution.backend=ray", "--output-dir", str(run_dir)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "lorastudy[ray]" in done.stderr and "Traceback" not in done.stderr
    assert not (run_dir / "data").exists()


def test_execution_config_is_checked():
    assert ExecutionConfig().backend == "local"
    with pytest.raises(StudyError, match="execution.backend"):
        smoke("execution.backend=slurm")
    with pytest.raises(StudyError, match="Unknown config key 'execution.workers'.*max_concurrent"):
        smoke("execution.workers=4")
    with pytest.raises(StudyError, match="execution.resources.encoder.num_gpus"):
        smoke("execution.resources.encoder.num_gpus=-1")
