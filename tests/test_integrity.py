"""Damaged artifacts: every kind, damaged three ways in a finished smoke study, is detected and redone by its
stage, and the study ends with the undamaged run's results; where nothing can redo it, one line names it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lorastudy.core import artifacts, integrity
from lorastudy.cli import app

# One arm per kind of saved model (TF-IDF coefficients, full weights, LoRA adapter + head) keeps reruns short.
STUDY = ["--config", "smoke", "--set", "arms=[tfidf_logreg,encoder_full,encoder_lora]"]

# Each kind of artifact the tool reads back, by its path in the run directory.
ARTIFACTS = {
    "predictions": "runs/encoder_lora__seed42/predictions_test.safetensors",
    "full weights": "runs/encoder_full__seed42/model/model.safetensors",
    "adapter and head": "runs/encoder_lora__seed42/model/adapter_model.safetensors",
    "tokenizer": "runs/encoder_full__seed42/model/tokenizer.json",
    "tfidf coefficients": "runs/tfidf_logreg__seed42/model/logreg.safetensors",
    "run record": "runs/tfidf_logreg__seed42/run.json",
    "dataset": "data/dataset.parquet",
    "labels": "data/labels.json",
    "results": "evaluation/results.json",
    "latency": "latency/latency.json",
    "manifest": "manifest.json",
    "resolved config": "config.resolved.yaml",
}
# Evaluation rewrites results.json on every `run`, so its state needs no line; a deleted resolved config is
# simply written again. Every other damaged artifact is named in one line as it is redone.
def named_when_redone(relpath: str, how: str) -> bool:
    return relpath != "evaluation/results.json" and not (how == "delete" and relpath == "config.resolved.yaml")


runner = CliRunner()


def invoke(args: list[str]):
    return runner.invoke(app, args, catch_exceptions=True)


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":  # same size, so only the sha256 can tell
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:
        path.unlink()


def comparable_results(run_dir: Path) -> dict:
    """results.json without the fields that legitimately differ between two runs (timestamps, paths)."""
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    results.pop("study", None)
    return results


def run_mtimes(run_dir: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "runs").glob("*/run.json")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "smoke"
    done = invoke(["run", *STUDY, "--output-dir", str(run_dir)])
    assert done.exit_code == 0, done.output
    return run_dir


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    """A private copy of the finished study, timestamps kept, to damage."""
    return Path(shutil.copytree(finished, tmp_path / "smoke"))


@pytest.mark.parametrize("how", ["truncate", pytest.param("garbage", marks=pytest.mark.slow),
                                 pytest.param("delete", marks=pytest.mark.slow)])  # CI's budget: truncation of each
@pytest.mark.parametrize("kind", list(ARTIFACTS))
def test_damaged_artifact_is_redone_and_results_are_unchanged(finished, copy, kind, how):
    relpath = ARTIFACTS[kind]
    before = run_mtimes(copy)
    damage(copy / relpath, how)

    again = invoke(["run", *STUDY, "--output-dir", str(copy)])

    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    if named_when_redone(relpath, how):
        assert relpath in again.output, f"no line names {relpath}:\n{again.output}"
    assert integrity.verify_run_dir(copy).problems == []
    assert comparable_results(copy) == comparable_results(finished)
    after = run_mtimes(copy)
    redone = {name for name in before if after[name] != before[name]}
    assert redone == ({relpath.split("/")[1]} if relpath.startswith("runs/") else set())


def test_edited_run_record_that_is_still_json_is_damaged(copy):
    path = copy / "runs" / "encoder_full__seed42" / "run.json"
    record = json.loads(path.read_text())
    record["best_val_macro_f1"] = 0.99
    path.write_text(json.dumps(record))
    states = {s.path: s for s in integrity.verify_run_dir(copy).states}
    assert states["runs/encoder_full__seed42/run.json"].state == "damaged"
    assert "record_sha256" in states["runs/encoder_full__seed42/run.json"].detail


def test_report_alone_names_a_damaged_input_and_the_command_that_rebuilds_it(copy):
    damage(copy / "evaluation" / "results.json", "garbage")
    note_before = (copy / "note" / "note.md").read_bytes()
    result = invoke(["report", str(copy)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "evaluation/results.json is damaged" in errors[0]
    assert f"--output-dir {copy} --stage evaluate" in errors[0]
    assert (copy / "note" / "note.md").read_bytes() == note_before


def test_report_alone_refuses_a_damaged_run_record(copy):
    damage(copy / "runs" / "encoder_lora__seed42" / "run.json", "truncate")
    result = invoke(["report", str(copy)])
    assert result.exit_code == 2, result.output
    assert "runs/encoder_lora__seed42/run.json is damaged" in result.output
    assert "--stage train" in result.output


def test_evaluate_alone_names_a_damaged_prediction(copy):
    damage(copy / ARTIFACTS["predictions"], "truncate")
    result = invoke(["run", *STUDY, "--output-dir", str(copy), "--stage", "evaluate"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert ARTIFACTS["predictions"] in errors[0] and "--stage train" in errors[0]


def test_benchmarking_a_run_with_a_damaged_adapter_is_one_line(copy):
    damage(copy / ARTIFACTS["adapter and head"], "truncate")
    result = invoke(["bench", str(copy / "runs" / "encoder_lora__seed42"), "--config", "smoke"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert "LoRA adapter" in errors[0] and str(copy / "runs" / "encoder_lora__seed42" / "model") in errors[0]


def test_verify_a_clean_run_directory(finished):
    result = invoke(["verify", str(finished)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    listed = lines[:-1]
    assert listed and all(line.startswith("ok ") for line in listed)
    assert any(ARTIFACTS["adapter and head"] in line for line in listed)
    assert any(ARTIFACTS["latency"] in line for line in listed)
    assert lines[-1].endswith(" s.") and "0 not ok" in lines[-1]


def test_verify_a_damaged_run_directory(copy):
    damage(copy / ARTIFACTS["full weights"], "garbage")
    damage(copy / ARTIFACTS["labels"], "delete")
    result = invoke(["verify", str(copy)])
    assert result.exit_code == 1, result.output
    states = {parts[1]: parts[0] for parts in map(str.split, result.output.splitlines())
              if parts and parts[0] in ("ok", "damaged", "missing", "unrecorded")}
    assert states[ARTIFACTS["full weights"]] == "damaged"
    assert states[ARTIFACTS["labels"]] == "missing"
    assert states[ARTIFACTS["tokenizer"]] == "ok"
    assert "2 not ok" in result.output


def test_verify_a_folder_that_is_not_a_run_directory(tmp_path):
    result = invoke(["verify", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no lorastudy artifacts" in result.output


# --- the records themselves ----------------------------------------------------------


def test_seal_survives_the_json_round_trip_and_shows_any_edit(tmp_path):
    run_path = tmp_path / "runs" / "encoder_lora__seed42"
    artifacts.write_json(run_path / "spec.json", {"arm": "encoder_lora"})
    record = {"n": np.int64(3), "x": np.float32(0.1), "path": tmp_path, "by_id": {2: "a", 10: "b"}, "nan": float("nan")}
    path = artifacts.write_json(run_path / "run.json", integrity.sealed_run_record(run_path, record))
    assert integrity.check_run(run_path)[0].ok and [s.path for s in integrity.check_run(run_path)][1:] == [
        "runs/encoder_lora__seed42/spec.json"]
    path.write_text(path.read_text().replace('"a"', '"c"'))
    assert integrity.read_run_record(run_path) == (None, integrity.ArtifactState(
        "runs/encoder_lora__seed42/run.json", "damaged", "its content no longer matches its record_sha256",
        path.stat().st_size))


def test_study_files_without_a_manifest_are_unrecorded_not_trusted(tmp_path):
    artifacts.write_json(tmp_path / "evaluation" / "results.json", {"schema_version": 1})
    state = integrity.check_study_files(tmp_path, [tmp_path / "evaluation" / "results.json"])[0]
    assert state.state == "unrecorded" and "manifest.json is missing" in state.detail
    integrity.record_study_files(tmp_path, [tmp_path / "evaluation" / "results.json"])
    assert integrity.check_study_files(tmp_path, [tmp_path / "evaluation" / "results.json"])[0].ok
    os.truncate(tmp_path / "evaluation" / "results.json", 3)
    assert integrity.check_study_files(tmp_path, [tmp_path / "evaluation" / "results.json"])[0].state == "damaged"
