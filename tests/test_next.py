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
from lorastudy.core.errors import StudyError
from lorastudy.followup import subset as subsets
from lorastudy.followup.plan import make_plan, metric_level
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
                  f"{design['metric']} above {metric_level(design['threshold'], design['metric'])}", "estimate:", "s per step"):
        assert shown in result.output, result.output
    assert not (run_dir / "next").exists() and not (run_dir / "evaluation" / "next.json").exists()
    assert study_hashes(run_dir) == before


def test_a_top_up_draws_only_unused_rows_of_the_rare_tier(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    labels = json.loads((run_dir / "data" / "labels.json").read_text())
    rare = labels["tier_names"][0]
    target = int(labels["tier_thresholds"][0]) + 3
    propose(run_dir, change="data.top_up_rare_to", value=target, arms=["decoder_lora"], seeds=[42])

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
    others = {o["metric"]: o for o in first["also"]}  # the other metrics of the same runs, paired like the first
    assert set(others) | {record["design"]["metric"]} >= {"accuracy", "macro_f1"}
    assert all(o["change"]["ci"][0] <= o["change"]["diff"] <= o["change"]["ci"][1] for o in others.values())
    assert first["zero_f1"]["result"] >= 0 and first["zero_f1"]["baseline"] >= 0
    assert (ran / record["folder"] / "runs" / "decoder_lora__seed42" / "run.json").is_file()
    states = integrity.verify_run_dir(ran).states
    assert all(state.ok for state in states)  # next.json and the new run recorded and intact
    assert {f"{record['folder']}/runs/decoder_lora__seed42/run.json", "evaluation/next.json"} <= {s.path for s in states}


def test_the_study_itself_is_untouched(ran):
    assert study_hashes(ran) == study_hashes(ran.parent / "before")  # findings.json's proposal included


def test_the_note_words_the_proposal_result_and_verdict(ran):
    note = (ran / "note" / "note.md").read_text()
    section = note[note.index("### Addendum: the next experiment, run"):note.index("## Limitations")]
    assert "Proposed before the run" in section and "Ran `models.decoder.lora_train.max_steps=8`" in section
    assert "decoder LoRA, seeds 42; 8 steps each" in section
    record = json.loads((ran / "evaluation" / "next.json").read_text())
    verdict_words = {"held": "Verdict: **held**", "refuted": "Verdict: **refuted**",
                     "inconclusive": "Verdict: **inconclusive within the noise**"}
    assert verdict_words[record["verdict"]] in section


def test_check_traces_the_new_section_and_catches_a_falsified_number(ran, tmp_path):
    note = (ran / "note" / "note.md").read_text()
    section = note[note.index("### Addendum: the next experiment, run"):note.index("## Limitations")]
    outcome = check_note(ran / "note" / "note.md", ran)
    in_section = [j for j in outcome.judgements if j.reading.where and j.reading.where in section]
    assert in_section and not [j for j in in_section if j.outcome == "contradicted"]
    assert not outcome.mismatches, [m.line() for m in outcome.mismatches]  # the rerun's facts never contradict Sections 1-4
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


# --- a subset of the design, fitted to the time given ------------------------------------------------


def test_the_fit_drops_the_other_arms_then_seeds_never_below_the_floor():
    start = subsets.Subset(("focus", "b", "c"), (1, 2, 3))
    assert [(c.arms, c.seeds) for c in subsets.candidates(start, 2)] == [
        (("focus", "b", "c"), (1, 2, 3)), (("focus", "b"), (1, 2, 3)), (("focus",), (1, 2, 3)), (("focus",), (1, 2))]

    def ten_s_a_run(chosen):
        return 10.0 * len(chosen.run_names)

    assert subsets.fit(start, 2, ten_s_a_run, None) == start  # no limit: the design as proposed
    assert subsets.fit(start, 2, ten_s_a_run, 1.5) == start  # 90 s fit
    assert subsets.fit(start, 2, ten_s_a_run, 1.0) == subsets.Subset(("focus", "b"), (1, 2, 3))
    assert subsets.fit(start, 2, ten_s_a_run, 0.4) == subsets.Subset(("focus",), (1, 2))
    with pytest.raises(StudyError, match="Not even the smallest experiment fits") as refused:
        subsets.fit(start, 2, ten_s_a_run, 0.3)
    assert "2 seeds of focus" in str(refused.value) and "--max-minutes 1 or more" in str(refused.value)


def test_the_estimate_is_the_runs_makespan_on_the_backends_slots():
    assert subsets.makespan([5.0, 5.0, 5.0], 2) == 10.0  # three runs on two slots take two rounds
    assert subsets.makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert subsets.makespan([3.0, 1.0, 1.0, 1.0], 1) == 6.0
    assert subsets.makespan([], 2) == 0.0  # every run finished earlier


TWO_ARMS = {"change": "data.max_length", "value": 24, "arms": ["decoder_lora", "encoder_lora"], "seeds": [42, 43, 44]}


def test_max_minutes_keeps_the_focus_arm_and_drops_the_others_then_seeds(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **TWO_ARMS)
    full = make_plan(run_dir).estimated_s
    focus = make_plan(run_dir, arms=["decoder_lora"]).estimated_s
    two_seeds = make_plan(run_dir, arms=["decoder_lora"], seeds=[42, 43]).estimated_s
    assert full > focus > two_seeds > 0
    dropped_arm = next_cli(run_dir, "--dry-run", "--max-minutes", (full + focus) / 120)
    assert dropped_arm.exit_code == 0, dropped_arm.output
    assert "arms:       decoder_lora; seeds: 42, 43, 44 (3 of the 6 proposed runs" in dropped_arm.output
    assert "to fit" in dropped_arm.output and "interval is wider" not in dropped_arm.output
    dropped_seed = next_cli(run_dir, "--dry-run", "--max-minutes", (focus + two_seeds) / 120)
    assert dropped_seed.exit_code == 0, dropped_seed.output
    assert "arms:       decoder_lora; seeds: 42, 43 (2 of the 6 proposed runs" in dropped_seed.output
    assert "with 2 of 3 seeds the interval is wider" in dropped_seed.output
    assert f"above {metric_level(make_plan(run_dir).design.threshold, make_plan(run_dir).design.metric)} (unchanged" in dropped_seed.output
    whole = next_cli(run_dir, "--dry-run", "--max-minutes", 2 * full / 60)
    assert "decoder_lora, encoder_lora; seeds: 42, 43, 44\n" in whole.output
    assert not (run_dir / "next").exists()


def test_max_minutes_too_short_for_two_seeds_of_the_focus_arm_is_one_line(study, tmp_path):
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **TWO_ARMS)
    two_seeds = make_plan(run_dir, arms=["decoder_lora"], seeds=[42, 43]).estimated_s
    one_error_line(next_cli(run_dir, "--max-minutes", two_seeds / 120), "not even the smallest experiment fits",
                   "2 seeds of decoder_lora", "--max-minutes")
    assert not (run_dir / "next").exists()


def test_with_nothing_asked_next_fits_the_default_target_and_runs_the_smallest_subset_past_it(study, tmp_path,
                                                                                              monkeypatch):
    """The default time is a target: the design is cut to fit it as --max-minutes would, but on a machine too slow
    for even 2 seeds of the focus arm those run (and the plan says so) where --max-minutes would refuse."""
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **TWO_ARMS)
    focus = make_plan(run_dir, arms=["decoder_lora"]).estimated_s
    two_seeds = make_plan(run_dir, arms=["decoder_lora"], seeds=[42, 43]).estimated_s
    monkeypatch.setattr(subsets, "DEFAULT_MAX_MINUTES", (focus + two_seeds) / 120)
    fitted = next_cli(run_dir, "--dry-run")
    assert fitted.exit_code == 0, fitted.output
    assert "seeds: 42, 43 (2 of the 6 proposed runs" in fitted.output and "over the default" not in fitted.output
    monkeypatch.setattr(subsets, "DEFAULT_MAX_MINUTES", two_seeds / 120)
    past = next_cli(run_dir, "--dry-run")
    assert past.exit_code == 0, past.output
    assert "seeds: 42, 43 (2 of the 6 proposed runs" in past.output and "over the default" in past.output
    assert make_plan(run_dir).estimated_s > focus  # make_plan itself keeps no limit unless asked
    assert not (run_dir / "next").exists()


@pytest.mark.parametrize("options, fragments", [
    (["--arms", "encoder_lora"], ["leaves out decoder_lora"]),
    (["--arms", "decoder_lora,decoder_lora_cw"], ["decoder_lora_cw", "not in the proposed design"]),
    (["--seeds", "42"], ["1 seed", "run-to-run variance"]),
    (["--seeds", "42,7"], ["--seeds names 7"]),
    (["--seeds", "forty-two"], ["not a comma-separated list of ints"]),
    (["--max-minutes", "0"], ["not a positive number"]),
])
def test_a_subset_the_design_does_not_hold_is_one_line(study, tmp_path, options, fragments):
    run_dir = copy_of(study, tmp_path)
    propose(run_dir, **TWO_ARMS)
    one_error_line(next_cli(run_dir, "--dry-run", *options), *fragments)


@pytest.fixture(scope="module")
def fitted(study, tmp_path_factory) -> tuple[Path, float]:
    """A copy of the study after `lorastudy next --max-minutes` ran 2 of the 3 seeds of a small budget design."""
    run_dir = copy_of(study, tmp_path_factory.mktemp("next-fitted"))
    propose(run_dir, **{**SMALL_BUDGET, "seeds": [42, 43, 44]})
    three, two = make_plan(run_dir).estimated_s, make_plan(run_dir, seeds=[42, 43]).estimated_s
    minutes = (two + three) / 120
    done = smoke_cli(["next", str(run_dir), "--max-minutes", str(minutes)])
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, minutes


def test_a_fitted_run_records_what_was_planned_and_what_ran(fitted):
    run_dir, minutes = fitted
    record = json.loads((run_dir / "evaluation" / "next.json").read_text())
    assert record["design"]["seeds"] == [42, 43, 44]  # the proposal's design, unchanged
    assert (record["plan"]["seeds"], record["plan"]["arms"], record["plan"]["proposed_runs"]) == ([42, 43],
                                                                                                  ["decoder_lora"], 3)
    assert record["plan"]["max_minutes"] == pytest.approx(minutes, rel=1e-5) and record["plan"]["cut_to_fit"]
    result = record["arms"][0]["result"]
    assert result["seeds"] == [42, 43] and result["source"] == "test_and_seeds"  # run-to-run variance counted
    assert record["verdict"] == prediction_verdict(record["arms"][0]["result"]["ci"], record["design"]["threshold"])
    note = (run_dir / "note" / "note.md").read_text()
    section = note[note.index("### Addendum: the next experiment, run"):note.index("## Limitations")]
    assert "decoder LoRA, seeds 42, 43; 8 steps each" in section
    assert (f"That is 2 of the 3 proposed seeds, to fit {minutes:.1f} minutes: the threshold stays as frozen, and 2 "
            "seeds give a wider interval") in section
    outcome = check_note(run_dir / "note" / "note.md", run_dir)
    in_section = [j for j in outcome.judgements if j.reading.where and j.reading.where in section]
    assert in_section and not [j for j in in_section if j.outcome == "contradicted"]
    assert not outcome.mismatches, [m.line() for m in outcome.mismatches]  # the rerun's facts never contradict Sections 1-4


@pytest.mark.slow  # in `pytest -m slow`: CI's time budget keeps the kill-resume test of next's runs
def test_the_same_subset_resumes_and_a_larger_one_reuses_the_finished_runs(fitted, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(fitted[0], run_dir, ignore=shutil.ignore_patterns(".lock"))
    finished = {p: p.stat().st_mtime_ns for p in (run_dir / "next").rglob("run.json")}
    assert len(finished) == 2
    again = smoke_cli(["next", str(run_dir), "--seeds", "42,43"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 finished earlier" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    larger = smoke_cli(["next", str(run_dir)])  # the whole design: only seed 44 trains
    assert larger.returncode == 0, larger.stderr[-3000:]
    assert "2 of 3 finished earlier" in larger.stdout
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    record = json.loads((run_dir / "evaluation" / "next.json").read_text())
    assert record["plan"]["seeds"] == [42, 43, 44] and not record["plan"]["cut_to_fit"]
    assert [run["seed"] for run in record["arms"][0]["runs"]] == [42, 43, 44]
    assert "proposed seeds" not in (run_dir / "note" / "note.md").read_text()
