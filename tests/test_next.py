"""`lorastudy next`: the proposal of Section 5 planned, run, scored and worded, on a smoke study with tiny models."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from lorastudy.check.verdict import check_note
from lorastudy.cli import app
from lorastudy.core import integrity
from lorastudy.measure.next_result import prediction_verdict

STUDY = ["run", "--config", "smoke", "--set", "arms=[encoder_lora,decoder_lora]",
         *[arg for stage in ("data", "train", "evaluate", "report") for arg in ("--stage", stage)]]
SMALL_BUDGET = {"change": "models.decoder.lora_train.max_steps", "value": 8, "arms": ["decoder_lora"], "seeds": [42],
                "describe": "train for 8 steps"}
runner = CliRunner()


def smoke_cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """The command line in a process of its own (a SIGKILL test needs one)."""
    return subprocess.run([sys.executable, "-m", "lorastudy.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})})


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Encoder and decoder LoRA on the smoke profile, evaluated and reported (no latency stage)."""
    run_dir = tmp_path_factory.mktemp("next-study") / "smoke"
    done = smoke_cli([*STUDY, "--output-dir", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def ran(study, tmp_path_factory) -> Path:
    """A copy of the study after `lorastudy next` ran a small budget design (and the copy as it was before)."""
    run_dir = copy_of(study, tmp_path_factory.mktemp("next-ran"))
    propose(run_dir, **SMALL_BUDGET)
    shutil.copytree(run_dir, run_dir.parent / "before")
    done = smoke_cli(["next", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def copy_of(study: Path, where: Path) -> Path:
    run_dir = where / "smoke"
    shutil.copytree(study, run_dir, ignore=shutil.ignore_patterns(".lock"))
    return run_dir


def propose(run_dir: Path, **design) -> dict:
    """Rewrite the frozen proposal of a copy (findings.json, prediction's facts.design) with these fields."""
    path = run_dir / "evaluation" / "findings.json"
    found = json.loads(path.read_text())
    prediction = next(f for f in found["findings"] if f["id"] == "prediction")
    prediction["facts"]["design"].update(design)
    path.write_text(json.dumps(found))
    return prediction["facts"]["design"]


def next_cli(*args: str):
    return runner.invoke(app, ["next", *map(str, args)], catch_exceptions=True)


def study_hashes(run_dir: Path) -> dict[str, str]:
    """Every file of the study itself: all but what `next` adds (next/, next.json), the note and the manifest."""
    skip = ("next/", "note/", "evaluation/next.json", "manifest.json", ".lock")
    return {rel: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(run_dir.rglob("*"))
            if path.is_file() and not (rel := path.relative_to(run_dir).as_posix()).startswith(skip)}


def one_error_line(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), errors[0]
    return errors[0]


# --- the verdict rule ------------------------------------------------------------------------


@pytest.mark.parametrize("ci, threshold, direction, verdict", [
    ([0.42, 0.50], 0.40, "above", "held"),
    ([0.30, 0.38], 0.40, "above", "refuted"),        # the prediction fails: the whole interval below the bar
    ([0.30, 0.40], 0.40, "above", "refuted"),        # at the bar counts as not above it
    ([0.36, 0.45], 0.40, "above", "inconclusive"),
    ([0.40, 0.45], 0.40, "above", "inconclusive"),   # the bar is the interval's end: not wholly above
    ([0.10, 0.18], 0.20, "below", "held"),
    ([0.20, 0.30], 0.20, "below", "refuted"),
    ([0.15, 0.25], 0.20, "below", "inconclusive"),
])
def test_verdict_reads_the_interval_against_the_threshold(ci, threshold, direction, verdict):
    assert prediction_verdict(ci, threshold, direction) == verdict


# --- planning ------------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_trains_nothing(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    design = propose(run_dir, **SMALL_BUDGET)
    before = study_hashes(run_dir)
    result = next_cli(run_dir, "--dry-run")
    assert result.exit_code == 0, result.output
    for shown in ("models.decoder.lora_train.max_steps = 8", "decoder_lora; seeds: 42", "1 run of 8 steps",
                  f"{design['metric']} above {design['threshold']:.4g}", "estimate:", "s per step"):
        assert shown in result.output, result.output
    assert not (run_dir / "next").exists() and not (run_dir / "evaluation" / "next.json").exists()
    assert study_hashes(run_dir) == before


def test_a_top_up_draws_only_unused_rows_of_the_rare_tier(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    labels = json.loads((run_dir / "data" / "labels.json").read_text())
    rare = labels["tier_names"][0]
    target = int(labels["tier_thresholds"][0]) + 3
    propose(run_dir, change="data.top_up_rare_to", value=target, arms=["decoder_lora"], seeds=[42])
    from lorastudy.followup.plan import make_plan

    plan = make_plan(run_dir)
    needed = sum(max(0, target - n) for n, tier in zip(labels["train_counts"], labels["tier_of"]) if tier == rare)
    assert 0 < sum(plan.rows_changed.values()) <= needed
    assert plan.train_rows == sum(labels["train_counts"]) + sum(plan.rows_changed.values())
    study_texts = set(pd.read_parquet(run_dir / "data" / "dataset.parquet")["text"])
    added = plan.data.frame[plan.data.frame["split"] == "train"]["text"].iloc[sum(labels["train_counts"]):]
    assert not study_texts & set(added)
    for split in ("val", "test"):  # the new runs are scored on the study's own test set
        assert plan.data.texts(split) == [t for t, s in zip(*_split_columns(run_dir)) if s == split]


def _split_columns(run_dir: Path):
    frame = pd.read_parquet(run_dir / "data" / "dataset.parquet")
    return frame["text"].tolist(), frame["split"].tolist()


def without_unused_rows(study: Path, where: Path) -> tuple[Path, dict]:
    """A copy of the study whose source the split used up (labels.json records no unused rows)."""
    run_dir = copy_of(study, where)
    labels_path = run_dir / "data" / "labels.json"
    labels = json.loads(labels_path.read_text())
    labels["cleaning"]["unused_rows"] = 0
    labels_path.write_text(json.dumps(labels))
    integrity.record_study_files(run_dir, [labels_path])
    return run_dir, labels


@pytest.fixture(scope="module")
def larger_study(tmp_path_factory) -> Path:
    """Decoder LoRA alone on 1,200 training rows, so that rare-tier classes have several examples."""
    run_dir = tmp_path_factory.mktemp("next-larger") / "smoke"
    args = [arg if not arg.startswith("arms=") else "arms=[decoder_lora]" for arg in STUDY]
    done = smoke_cli([*args, "--set", "split.train_size=1200", "--output-dir", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_no_unused_rows_runs_the_learning_curve_instead(larger_study, tmp_path):
    """The top-up becomes the within-class subsample, its prediction pointing down, and runs."""
    run_dir, labels = without_unused_rows(larger_study, tmp_path)
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    now = results["arms"]["decoder_lora"]["ci"]["accuracy"]["mean"]
    propose(run_dir, change="data.top_up_rare_to", value=int(labels["tier_thresholds"][0]) + 1, arms=["decoder_lora"],
            seeds=[42], metric="accuracy", noise_allowance=now / 2, threshold=now * 1.5)
    done = smoke_cli(["next", str(run_dir)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "instead of: data.top_up_rare_to" in done.stdout and "data.subsample_rare_fraction = 0.5" in done.stdout
    record = json.loads((run_dir / "evaluation" / "next.json").read_text())
    design = record["design"]
    assert (design["direction"], design["threshold"]) == ("below", pytest.approx(now / 2, rel=1e-5))
    assert sum(record["plan"]["rows_changed"].values()) == sum(labels["train_counts"]) - record["plan"]["train_rows"] > 0
    assert record["verdict"] == prediction_verdict(record["arms"][0]["result"]["ci"], design["threshold"], "below")
    assert "so the hypothesis was tested from below" in (run_dir / "note" / "note.md").read_text()


def test_no_unused_rows_and_no_room_to_fall_is_one_line(study, tmp_path):
    run_dir, labels = without_unused_rows(study, tmp_path)
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    now = results["arms"]["decoder_lora"]["ci"]["macro_f1"]["mean"]
    propose(run_dir, change="data.top_up_rare_to", value=int(labels["tier_thresholds"][0]) + 1, arms=["decoder_lora"],
            seeds=[42], metric="macro_f1", noise_allowance=now + 0.01)
    one_error_line(next_cli(run_dir, "--dry-run"), "unused rows", "learning curve", "noise allowance")


def test_no_unused_rows_and_single_examples_is_one_line(study, tmp_path):
    """The smoke study's rare tier holds one training example per class: nothing to subsample."""
    run_dir, labels = without_unused_rows(study, tmp_path)
    rare = [n for n, tier in zip(labels["train_counts"], labels["tier_of"]) if tier == labels["tier_names"][0]]
    assert max(rare) == 1
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    now = results["arms"]["decoder_lora"]["ci"]["accuracy"]["mean"]
    propose(run_dir, change="data.top_up_rare_to", value=2, arms=["decoder_lora"], seeds=[42], metric="accuracy",
            noise_allowance=now / 2)
    one_error_line(next_cli(run_dir, "--dry-run"), "learning curve cannot run", "single training example")


@pytest.mark.parametrize("design, fragments", [
    ({"change": "train.learning_rate", "value": 0.1}, ["train.learning_rate", "cannot run"]),
    ({"change": "models.decoder.lora_train.max_steps", "value": "many"}, ["max_steps", "not a value"]),
    ({"arms": ["tfidf_logreg"]}, ["tfidf_logreg", "not a LoRA arm"]),
])
def test_an_unsupported_proposal_is_one_line_and_exit_2(study, tmp_path, design, fragments):
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **design)
    one_error_line(next_cli(run_dir, "--dry-run"), *fragments)
    assert not (run_dir / "next").exists()


def test_a_model_not_available_offline_is_one_line_and_exit_2(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **SMALL_BUDGET)
    config = run_dir / "config.resolved.yaml"
    config.write_text(config.read_text().replace("source: tiny:llama", f"source: {tmp_path / 'gone'}"))
    integrity.record_study_files(run_dir, [config])
    one_error_line(next_cli(run_dir), "gone")
    assert not (run_dir / "next").exists()


# --- a real run ------------------------------------------------------------------------------------


def test_next_runs_scores_and_writes_the_result(ran):
    record = json.loads((ran / "evaluation" / "next.json").read_text())
    first = record["arms"][0]
    assert record["design"]["change"] == SMALL_BUDGET["change"] and first["arm"] == "decoder_lora"
    assert [run["steps"] for run in first["runs"]] == [8]
    lo, hi = first["result"]["ci"]
    assert lo <= first["result"]["mean"] <= hi
    assert record["verdict"] == prediction_verdict([lo, hi], record["design"]["threshold"])
    results = json.loads((ran / "evaluation" / "results.json").read_text())
    study_level = results["arms"]["decoder_lora"]["ci"][record["design"]["metric"]]
    assert first["baseline"]["mean"] == pytest.approx(study_level["mean"], abs=1e-6)  # the same machinery
    assert first["baseline"]["ci"] == pytest.approx(study_level["ci"], abs=1e-6)
    assert (ran / record["folder"] / "runs" / "decoder_lora__seed42" / "run.json").is_file()
    states = integrity.verify_run_dir(ran).states
    assert all(state.ok for state in states)  # next.json and the new run recorded and intact
    assert {f"{record['folder']}/runs/decoder_lora__seed42/run.json", "evaluation/next.json"} <= {s.path for s in states}


def test_the_study_itself_is_untouched(ran):
    assert study_hashes(ran) == study_hashes(ran.parent / "before")  # findings.json's proposal included


def test_the_note_words_the_proposal_result_and_verdict(ran):
    note = (ran / "note" / "note.md").read_text()
    section = note[note.index("### Next experiment, run"):note.index("## Limitations")]
    assert "Proposed before the run" in section and "Ran `models.decoder.lora_train.max_steps=8`" in section
    assert "decoder LoRA, seeds 42, 8 steps each" in section
    record = json.loads((ran / "evaluation" / "next.json").read_text())
    verdict_words = {"held": "Verdict: **held**", "refuted": "Verdict: **refuted**",
                     "inconclusive": "Verdict: **inconclusive within the noise**"}
    assert verdict_words[record["verdict"]] in section


def test_check_traces_the_new_section_and_catches_a_falsified_number(ran, tmp_path):
    note = (ran / "note" / "note.md").read_text()
    section = note[note.index("### Next experiment, run"):note.index("## Limitations")]
    outcome = check_note(ran / "note" / "note.md", ran)
    in_section = [j for j in outcome.judgements if j.reading.where and j.reading.where in section]
    assert in_section and not [j for j in in_section if j.outcome == "contradicted"]
    record = json.loads((ran / "evaluation" / "next.json").read_text())
    result_line = next(line for line in section.splitlines() if line.startswith("Result:"))
    shown = result_line.split(" [")[0].rsplit(" ", 1)[1]  # the result as printed
    assert any(j.reading.printed == shown and j.outcome == "supported" for j in in_section), shown
    mean = record["arms"][0]["result"]["mean"]
    falsified = f"{100 * min(0.999, mean + 0.2):.1f}%" if shown.endswith("%") else f"{min(0.999, mean + 0.2):.3f}"
    tampered = tmp_path / "note.md"
    tampered.write_text(note.replace(result_line, result_line.replace(shown, falsified, 1)))
    caught = check_note(tampered, ran).mismatches
    assert any(m.reading.printed == falsified for m in caught), [m.line() for m in caught]


def test_a_falsified_result_changes_the_verdict_and_the_note(ran, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(ran, run_dir)
    path = run_dir / "evaluation" / "next.json"
    record = json.loads(path.read_text())
    threshold = record["design"]["threshold"]
    for ci, words in (([threshold + 0.05, threshold + 0.15], "Verdict: **held**"),
                      ([max(0.0, threshold - 0.15), threshold - 0.05], "Verdict: **refuted**")):
        record["arms"][0]["result"].update(mean=sum(ci) / 2, ci=ci)
        path.write_text(json.dumps(record))
        refused = smoke_cli(["report", str(run_dir)])  # an edited record is damaged until recorded again
        assert refused.returncode == 2 and "evaluation/next.json is damaged" in refused.stderr, refused.stderr
        integrity.record_study_files(run_dir, [path])
        assert smoke_cli(["report", str(run_dir)]).returncode == 0
        assert words in (run_dir / "note" / "note.md").read_text()


def test_a_kill_during_next_resumes_without_redoing_finished_runs(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **{**SMALL_BUDGET, "seeds": [42, 43]})
    killed = smoke_cli(["next", str(run_dir)], env={"LORASTUDY_KILL_BEFORE": "next.json"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    finished = {p: p.stat().st_mtime_ns for p in (run_dir / "next").rglob("run.json")}
    assert len(finished) == 2 and not (run_dir / "evaluation" / "next.json").exists()
    resumed = smoke_cli(["next", str(run_dir)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "2 of 2 finished earlier" in resumed.stdout
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert (run_dir / "evaluation" / "next.json").is_file()
