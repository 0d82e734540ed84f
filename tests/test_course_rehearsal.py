"""The course rehearsal: `lorastudy run --config course` end to end, as a student runs it, in CI.

The `course` profile is used as shipped, with only the download and the model size replaced:
* the hub dataset is a local stand-in with the schema and split sizes of
  `determined-ai/consumer_complaints_medium` (tests/course_rehearsal.py), cached where the hub client
  finds it offline; the course's own merge map, label list and canonical index files do the cleaning;
* the models are tiny ModernBERT and Qwen2 models built from a config (`tiny:modernbert`, `tiny:qwen2`),
  so the course's LoRA targets and heads, `pad_to_multiple_of: 8` and max length 128 all run;
* the work is capped to fit CI: 10 optimizer steps per arm (the recipe's epochs, batch sizes, learning
  rates and warmup unchanged), TF-IDF with 2,000 features and 50 iterations, 200 bootstrap samples, a
  short latency stage (a few requests, one attention kernel, merged LoRA only), one thread. Every arm still
  predicts the whole validation and test sets. About 85 s of CPU time.

The note must carry the course's external reference rows and pass `lorastudy check` against its run.
`precision: auto` picks fp32 or bf16 on a CPU; the fp16 autocast a T4 gets is exercised only on a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import course_rehearsal as hub
from lorastudy.cli import app

CAPS = ["models.encoder.source=tiny:modernbert", "models.decoder.source=tiny:qwen2",  # the model size
        "threads=1", "train.max_steps=10", "tfidf.max_features=2000", "tfidf.max_iter=50",
        "evaluation.bootstrap_samples=200", "latency.single_requests=10", "latency.warmup=1",
        "latency.batch_sizes=[1, 8]", "latency.batched_examples=32", "latency.compare_unmerged=false",
        "latency.attention=sdpa"]
ARMS = ("tfidf_logreg", "encoder_full", "encoder_full_cw", "encoder_lora", "encoder_lora_cw", "decoder_lora",
        "decoder_lora_cw")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The course study run once through the command line, in a fresh process whose hub is the local stand-in."""
    root = tmp_path_factory.mktemp("course-rehearsal")
    hub.write_hub_snapshot(root / "hf")
    env = {**os.environ, "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, hub.__file__, "run", "--config", "course", "--output-dir", str(root / "run")]
    for cap in CAPS:
        command += ["--set", cap]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"course rehearsal: {time.monotonic() - start:.0f} s")
    return root / "run"


def read(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def test_the_stand_in_has_the_hub_schema_and_sizes_and_is_deterministic():
    splits = hub.complaints_splits()
    assert {name: list(frame.columns) for name, frame in splits.items()} == {
        "train": ["Issue", "Consumer Complaint"], "test": ["Issue", "Consumer Complaint"]}
    assert (len(splits["train"]), len(splits["test"])) == (hub.TRAIN_ROWS, hub.TEST_ROWS) == (64_292, 21_439)
    assert all((frame["Consumer Complaint"].str.strip() != "").all() for frame in splits.values())  # none dropped
    again = hub.complaints_splits.__wrapped__(0)  # generated afresh, not the cached copy
    assert all(again[name].equals(splits[name]) for name in splits)
    merge = {k: v for k, v in hub.course_file("label_merge_mapping.json").items() if not k.startswith("_")}
    listed = set(hub.course_file("label_list.json"))
    raw = Counter(splits["train"]["Issue"]) + Counter(splits["test"]["Issue"])
    folded = {name for name in raw if name in merge and merge[name] != name}
    dropped = {name for name in raw if merge.get(name, name) not in listed}
    assert len(folded) > 20 and dropped == set(hub.DROPPED_NAMES)  # raw names the map folds; names the list drops
    indexed = set(hub.course_file("train_indices.json")) | set(hub.course_file("val_indices.json"))
    assert all(merge.get(name, name) in listed for name in splits["train"]["Issue"].iloc[sorted(indexed)])


def test_the_course_split_and_rare_tier(rehearsal):
    """57,846 / 6,430 canonical index rows and 21,432 filtered test rows (COURSE_FACTS.md and the vendored
    baseline_results.json); per-class counts as the course's cleaning gives them; the rare tier computed the
    course's way: the bottom quartile of the training counts of the classes present."""
    summary, labels = read(rehearsal, "data/summary.json"), read(rehearsal, "data/labels.json")
    baseline = json.loads(resources.files("lorastudy.study.course_data").joinpath("baseline_results.json")
                          .read_text(encoding="utf-8"))
    assert summary["num_classes"] == baseline["num_classes"] == 113
    assert summary["rows"] == {"train": 57_846, "val": 6_430, "test": 21_432}
    assert (summary["rows"]["val"], summary["rows"]["test"]) == (baseline["val"]["num_examples"],
                                                                 baseline["test"]["num_examples"])
    assert summary["rows"]["train"] == len(hub.course_file("train_indices.json"))
    assert labels["labels"] == hub.course_file("label_list.json")
    expected = hub.expected_split_counts()
    for split in ("train", "val", "test"):
        assert labels[f"{split}_counts"] == [expected[split][label] for label in labels["labels"]], split

    present = {label: n for label, n in expected["train"].items() if n > 0}
    threshold = sorted(present.values())[len(present) // 4]
    rare = sorted(label for label, n in present.items() if n <= threshold)
    assert labels["tier_thresholds"] == [threshold]
    assert sorted(label for label, tier in zip(labels["labels"], labels["tier_of"]) if tier == "rare") == rare
    assert len(rare) == 29 and (min(present[r] for r in rare), threshold) == (4, 27)  # "about 29 ... 4-27 each"
    assert summary["tiers"]["sizes"] == {"rare": 29, "common": 84}


def test_every_arm_trains_with_the_course_models_and_predicts_every_row(rehearsal):
    config = (rehearsal / "config.resolved.yaml").read_text(encoding="utf-8")
    assert "pad_to_multiple_of: 8" in config and "max_length: 128" in config and "precision: auto" in config
    runs = {arm: read(rehearsal, f"runs/{arm}__seed42/run.json") for arm in ARMS}
    encoder, decoder = runs["encoder_lora"], runs["decoder_lora"]
    assert encoder["model"]["model_type"] == "modernbert" and decoder["model"]["model_type"] == "qwen2"
    assert encoder["lora_target_modules"] == ["Wqkv", "attn.Wo"]
    assert decoder["lora_target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert {w.split(".")[0] for w in encoder["newly_initialized"]} >= {"classifier"}
    assert {w.split(".")[0] for w in decoder["newly_initialized"]} == {"score"}
    for arm, run in runs.items():
        if arm != "tfidf_logreg":
            assert run["steps"] == 10 and run["precision"] in ("fp32", "bf16"), arm
    from safetensors.numpy import load_file

    for arm in ARMS:
        for split, rows in (("val", 6_430), ("test", 21_432)):
            logits = load_file(str(rehearsal / "runs" / f"{arm}__seed42" / f"predictions_{split}.safetensors"))["logits"]
            assert logits.shape == (rows, 113) and np.isfinite(logits).all(), (arm, split)
    truncation = read(rehearsal, "data/summary.json")["truncation"]
    assert truncation["max_length"] == 128


def test_the_note_is_complete_with_the_course_reference_rows_and_passes_check(rehearsal):
    note = (rehearsal / "note" / "note.md").read_text(encoding="utf-8")
    assert "113 classes" in note and "21,432 test examples" in note
    external = read(rehearsal, "evaluation/results.json")["external_reference"]
    assert len(external["rows"]) == 4 and external["num_classes"] == 113
    for row in external["rows"]:
        assert f"*External: `{row['model']}` (course, validation)*" in note
    for section in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5."):
        assert section in note
    assert (rehearsal / "note" / "note.html").is_file() and (rehearsal / "latency" / "latency.json").is_file()
    result = CliRunner().invoke(app, ["check", str(rehearsal / "note" / "note.md"), "--results", str(rehearsal)])
    assert result.exit_code == 0 and "Complete." in result.output, result.output[-3000:]


def test_check_names_a_falsified_leakage_count_and_context_volume(rehearsal, tmp_path):
    """The numbers the course note carries that earlier notes did not (leakage rows, a context's monthly volume)
    are checked, not waved through."""
    import re

    note = (rehearsal / "note" / "note.md").read_text(encoding="utf-8")
    leakage = re.search(r"Leakage: ([\d,]+) of", note)
    volume = re.search(r"\*\*: ([\d,]+) predictions a month", note)
    assert leakage and volume
    falsified = note.replace(f"Leakage: {leakage.group(1)} of", "Leakage: 1,234 of").replace(
        f"**: {volume.group(1)} predictions a month", "**: 3,456,789 predictions a month", 1)
    (tmp_path / "note.md").write_text(falsified, encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(tmp_path / "note.md"), "--results", str(rehearsal)])
    assert result.exit_code == 1
    assert "contradicted 1,234 (read as count" in result.output and "contradicted 3,456,789 (read as count" in result.output
