"""Execution backends: the smoke study trained in child processes and as Ray tasks gives the local results.

One local Ray cluster of 2 CPUs serves the whole module (Ray starts in ~5-10 s); the studies are cut to
two arms (TF-IDF and decoder LoRA), and stop after evaluation (latency and the note do not depend on
where a run trained).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import ray
from typer.testing import CliRunner

from lorastudy.study import execution
from lorastudy.cli import app
from lorastudy.study.config import ExecutionConfig
from lorastudy.study.arms import arm_spec
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError
from lorastudy.pipeline import run_study
from lorastudy.study.training import is_finished, run_path_for

ARMS = "arms=[tfidf_logreg,decoder_lora]"
RUNS = ("tfidf_logreg__seed42", "decoder_lora__seed42")
UP_TO_EVALUATION = ("data", "train", "evaluate")
runner = CliRunner()


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
    assert run_record(run_dir, "decoder_lora__seed42")["peak_memory_scope"] == "study"
    return comparable_results(run_dir)


def test_ray_backend_gives_the_local_results(tmp_path, monkeypatch, capsys, ray_cluster, local_results):
    monkeypatch.chdir(tmp_path)  # a relative run directory: the workers start in another folder
    run_dir = run_study(smoke("execution.backend=ray"), output_dir="smoke", stages=UP_TO_EVALUATION)
    assert comparable_results(run_dir) == local_results
    for run in RUNS:
        assert run_record(run_dir, run)["peak_memory_scope"] == "run"
    assert not (run_dir / execution.TOKEN_FILE).exists()
    printed = capsys.readouterr().out
    assert printed.count("peak memory") == len(RUNS) and "returned to the driver" not in printed, printed
    assert printed.count("val macro F1") == len(RUNS), printed


@pytest.mark.slow  # in `pytest -m slow`: CI's time budget keeps the Ray backend's equivalence test
def test_ray_task_killed_once_is_retried_and_returned_files_give_the_local_results(
        tmp_path, monkeypatch, capsys, ray_cluster, local_results):
    """Workers that cannot see the run directory (forced here) send their run folders back to the driver."""
    flag = tmp_path / "crashed-once"
    monkeypatch.setenv("LORASTUDY_CRASH_RUN", f"decoder_lora__seed42:{flag}")
    config = smoke("execution.backend=ray", "execution.return_artifacts=true", "execution.max_retries=1")
    run_dir = run_study(config, output_dir=tmp_path / "smoke", stages=UP_TO_EVALUATION)
    assert flag.exists(), "the injected fault never fired"
    assert comparable_results(run_dir) == local_results
    assert capsys.readouterr().out.count("returned to the driver") == len(RUNS)


def test_process_backend_keeps_finished_runs_when_one_fails_then_resumes_to_the_local_results(
        tmp_path, monkeypatch, local_results):
    run_dir = tmp_path / "smoke"
    monkeypatch.setenv("LORASTUDY_CRASH_RUN", "decoder_lora__seed42")  # every attempt of this run is killed
    failed = runner.invoke(app, ["run", "--config", "smoke", "--set", ARMS, "--set", "execution.backend=process",
                                 "--set", "execution.max_concurrent=2",  # the two runs at once: one crash, one kept
                                 "--output-dir", str(run_dir), "--stage", "data", "--stage", "train"])
    assert failed.exit_code == 2, failed.output[-3000:]
    error = [line for line in failed.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "decoder_lora__seed42" in error[0] and "2 attempt(s)" in error[0], failed.output[-3000:]
    assert "Traceback" not in failed.output
    kept = (run_dir / "runs" / "tfidf_logreg__seed42" / "run.json").stat().st_mtime_ns
    assert not (run_dir / "runs" / "decoder_lora__seed42" / "run.json").exists()

    monkeypatch.delenv("LORASTUDY_CRASH_RUN")
    run_study(smoke("execution.backend=process"), output_dir=run_dir, stages=UP_TO_EVALUATION)
    assert (run_dir / "runs" / "tfidf_logreg__seed42" / "run.json").stat().st_mtime_ns == kept
    assert comparable_results(run_dir) == local_results
    assert run_record(run_dir, "decoder_lora__seed42")["peak_memory_scope"] == "run"


@pytest.mark.parametrize("backend", ["local", "process"])
def test_each_finished_run_is_reported_once(tmp_path, capsys, backend):
    """One line per finished run, from the driver, with its numbers; the Ray backend is checked above."""
    run_study(smoke(f"execution.backend={backend}"), output_dir=tmp_path / "smoke", stages=("data", "train"))
    printed = capsys.readouterr().out
    for index, run in enumerate(RUNS, start=1):
        assert printed.count(f"{run}: val macro F1") == 1, printed
        assert f"[{index}/{len(RUNS)}] {run}: val macro F1" in printed, printed
    assert printed.count("peak memory") == len(RUNS), printed
    run_study(smoke(f"execution.backend={backend}"), output_dir=tmp_path / "smoke", stages=("train",))
    again = capsys.readouterr().out
    assert "val macro F1" not in again and again.count("finished earlier") == len(RUNS), again


def test_worker_writes_in_place_only_when_it_reads_the_drivers_token(tmp_path):
    from lorastudy.study.data import prepare_data

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
        execution.report_run(elsewhere, tmp_path, 1, 1)
        assert is_finished(run_path, spec)
        assert (run_path / "model" / "logreg.safetensors").read_bytes() == elsewhere.files["model/logreg.safetensors"]


def test_runs_get_a_gpu_by_default_only_where_the_cluster_has_gpus():
    config = smoke()
    tfidf, decoder = (arm_spec(config, arm, 42, "fingerprint") for arm in config.arms)
    gpu_node, cpu_node = [{"CPU": 8.0, "GPU": 2.0}], [{"CPU": 2.0}]
    assert execution._resources(decoder, config.execution, gpu_node).num_gpus == 1
    assert execution._resources(tfidf, config.execution, gpu_node).num_gpus == 0
    assert execution._resources(decoder, config.execution, cpu_node).num_gpus == 0
    halves = smoke("execution.resources.decoder.num_gpus=0.5").execution
    assert execution._resources(decoder, halves, gpu_node).num_gpus == 0.5


def test_a_run_no_node_can_host_is_refused():
    config = smoke("execution.resources.decoder.num_gpus=1")
    specs = [arm_spec(config, arm, 42, "fingerprint") for arm in config.arms]
    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 1.0}]
    with pytest.raises(StudyError, match=r"decoder_lora__seed42 asks for \(largest node: 2 CPU, 0 GPU\)"
                                         r".*execution\.resources\.decoder\.num_cpus/num_gpus"):
        execution._check_cluster_fits(nodes, specs, config.execution)
    with pytest.raises(StudyError, match=r"the 4 CPU and 0 GPU that tfidf_logreg__seed42"):
        execution._check_cluster_fits(nodes, specs, smoke("execution.resources.tfidf.num_cpus=4").execution)
    execution._check_cluster_fits(nodes, specs, smoke().execution)


def test_a_cluster_that_is_not_there_is_one_line():
    class NoCluster:
        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs):
            raise ConnectionError("Could not find any running Ray instance.\nPlease specify the one to connect to.")

    with pytest.raises(StudyError, match=r"^Could not join the Ray cluster at 'auto': Could not find any running "
                                         r"Ray instance\. Fix: start it") as raised:
        execution.join_or_start(NoCluster(), "auto")
    assert "\n" not in raised.value.one_line()


def test_ray_backend_without_ray_is_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    run_dir = tmp_path / "smoke"
    done = runner.invoke(app, ["run", "--config", "smoke", "--set", "execution.backend=ray", "--output-dir", str(run_dir)])
    assert done.exit_code == 2
    assert done.output.strip().count("\n") == 0, done.output
    assert done.output.startswith("error:") and "lorastudy[ray]" in done.output and "Traceback" not in done.output
    assert not (run_dir / "data").exists()


def test_execution_config_is_checked():
    assert ExecutionConfig().backend == "local"
    with pytest.raises(StudyError, match="execution.backend"):
        smoke("execution.backend=slurm")
    with pytest.raises(StudyError, match="Unknown config key 'execution.workers'.*max_concurrent"):
        smoke("execution.workers=4")
    with pytest.raises(StudyError, match="execution.resources.encoder.num_gpus"):
        smoke("execution.resources.encoder.num_gpus=-1")
