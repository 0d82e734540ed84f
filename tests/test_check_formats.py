"""`lorastudy check` reads human formats and recomputes the derived numbers careful writers print.

Each case is a correct sentence about the fixture run (tests/fixtures/run) whose number must be *supported*,
and the same sentence with that number falsified (off by more than its rounding), which must be *contradicted*.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lorastudy.check.derivations import FactIndex
from lorastudy.check.fact_matching import CONTRADICTED, NOT_CHECKABLE, SUPPORTED, judge
from lorastudy.check.facts import _read_yaml, run_facts, vocabulary
from lorastudy.check.number_reading import read_note_numbers

RUN = Path(__file__).parent / "fixtures" / "run"


def fact_index(run_dir: Path = RUN):
    """A run's fact index and its vocabulary, as `check` builds them."""
    vocab = vocabulary(run_dir)
    return FactIndex.of(run_facts(run_dir, vocab), vocab.labels, _read_yaml(run_dir / "config.resolved.yaml")), vocab


def outcome_of(sentence: str, printed: str, run_dir: Path = RUN) -> str:
    index, vocab = fact_index(run_dir)
    readings = [r for r in read_note_numbers(sentence, vocab) if r.printed == printed]
    assert readings, (printed, [r.printed for r in read_note_numbers(sentence, vocab)])
    return judge(readings[0], index).outcome


CASES = {
    # human formats
    "± half a CI": ("Encoder LoRA's macro F1 is 0.374 ± 0.018 (half the bootstrap CI).", "± 0.018", "± 0.025"),
    "CI a to b in points": ("Decoder LoRA beats encoder LoRA on macro F1 by 6.4 points (95% CI 4.9 to 7.9).", "7.9", "8.6"),
    "points below": ("Encoder LoRA is 3.8 accuracy points below decoder LoRA.", "3.8", "4.8"),
    "unicode minus": ("Encoder LoRA against the encoder full fine-tune: accuracy −1.7 pp.", "−1.7 pp", "−2.7 pp"),
    "a 30-day month": ("On a 30-day month, real-time triage costs $72 per month with encoder LoRA and $144 per month "
                       "with decoder LoRA.", "$144", "$164"),
    "about": ("Decoder LoRA has about 6x more weights in total than encoder LoRA.", "6x", "8x"),
    "thousands separators": ("Decoder LoRA has 134,549,568 parameters in total.", "134,549,568", "134,549,868"),
    "a range": ("Decoder LoRA's macro F1 CI runs 0.420–0.456.", "0.456", "0.476"),
    # derivations
    "ratio": ("Decoder LoRA's p50 latency is 4.9x encoder LoRA's.", "4.9x", "5.9x"),
    "per hour": ("Batched, encoder LoRA scores 1.24M examples per hour.", "1.24M", "1.34M"),
    "utilisation": ("At the 20 requests/s peak of real-time triage, encoder LoRA would be 25% busy.", "25%", "35%"),
    "sequential throughput": ("Answering one request at a time, decoder LoRA serves about 16 requests/s.", "16", "19"),
    "compute cost": ("The raw compute for real-time triage's monthly predictions is $0.69 per month on encoder LoRA.",
                     "$0.69", "$0.89"),
    "share of a gap": ("About 77% of decoder LoRA's macro-F1 gap over encoder LoRA comes from the common classes.",
                       "77%", "57%"),
    "relative change": ("Decoder LoRA's macro F1 is 17% higher than encoder LoRA's.", "17%", "27%"),
    "share of the test set": ("verb.motion has 350 test examples, 28.6% of the test set.", "28.6%", "26.8%"),
    "mean over a group of classes": ("Mean F1 over the verbs is 0.458 for decoder LoRA vs 0.379 for encoder LoRA.",
                                     "0.379", "0.397"),
    "difference of two arms": ("Decoder LoRA's rare-tier mean F1 is 0.055 higher than encoder LoRA's.", "0.055", "0.075"),
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_a_correct_number_is_supported_and_a_falsified_one_contradicted(case):
    sentence, printed, wrong = CASES[case]
    assert outcome_of(sentence, printed) == SUPPORTED
    assert outcome_of(sentence.replace(printed, wrong, 1), wrong) == CONTRADICTED


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory) -> Path:
    """The fixture run with a training log and a second seed's per-class file for encoder LoRA."""
    run_dir = tmp_path_factory.mktemp("seeded") / "run"
    shutil.copytree(RUN, run_dir)
    log = run_dir / "runs" / "encoder_lora__seed42" / "train_log.jsonl"
    log.write_text("\n".join(json.dumps(x) for x in [{"epoch": 0.5, "step": 60, "loss": 2.3},
                                                      {"epoch": 1.0, "step": 125, "val_macro_f1": 0.4251, "val_loss": 1.1},
                                                      {"epoch": 1.5, "step": 190, "loss": 0.9}]) + "\n")
    per_class = run_dir / "evaluation" / "per_class"
    text = (per_class / "encoder_lora__seed42.csv").read_text()
    (per_class / "encoder_lora__seed7.csv").write_text(text.replace("adj.all,41,rare,12,6,0.1653,0.1653,0.1653",
                                                                    "adj.all,41,rare,12,6,0.3,0.3347,0.3"))
    return run_dir


def test_validation_scores_from_the_train_log(seeded_run):
    sentence = "Encoder LoRA's validation macro F1 at step 125 was 0.425."
    assert outcome_of(sentence, "0.425", seeded_run) == SUPPORTED
    assert outcome_of(sentence.replace("0.425", "0.435"), "0.435", seeded_run) == CONTRADICTED


def test_means_over_seeds_of_the_per_class_files(seeded_run):
    sentence = "Averaged over both seeds, encoder LoRA's adj.all recall is 25.0%."
    assert outcome_of(sentence, "25.0%", seeded_run) == SUPPORTED
    assert outcome_of(sentence.replace("25.0%", "27.0%"), "27.0%", seeded_run) == CONTRADICTED


def test_a_bound_holds_or_is_contradicted():
    sentence = "Weighting moved decoder LoRA's macro F1 by under 1 point."
    assert outcome_of(sentence, "1") == SUPPORTED
    assert outcome_of("Weighting moved decoder LoRA's macro F1 by under 0.2 points.", "0.2") == CONTRADICTED


def test_a_number_about_nothing_the_run_holds_is_not_checkable():
    assert outcome_of("The GPU rental would be 17.5 euros per week.", "17.5") == NOT_CHECKABLE


def test_a_table_row_that_names_its_seed_is_that_runs_value(tmp_path):
    """An experiment log lists each seed's run: its wall time is that seed's, never the other seed's or the mean."""
    run_dir = tmp_path / "run"
    shutil.copytree(RUN, run_dir)
    record = json.loads((run_dir / "runs" / "encoder_lora__seed42" / "run.json").read_text())
    (run_dir / "runs" / "encoder_lora__seed43").mkdir()
    (run_dir / "runs" / "encoder_lora__seed43" / "run.json").write_text(json.dumps({**record, "seed": 43,
                                                                                     "wall_time_s": 471.9}))
    table = "| Arm | Seed | Wall time |\n|---|---|---|\n| Encoder LoRA | `42` | {} s |\n| Encoder LoRA | `43` | 471.9 s |\n"
    assert outcome_of(table.format("442.7"), "442.7 s", run_dir) == SUPPORTED
    assert outcome_of(table.format("471.9"), "471.9 s", run_dir) == CONTRADICTED  # seed 43's time in seed 42's row
    assert outcome_of(table.format("457.3"), "457.3 s", run_dir) == CONTRADICTED  # the two seeds' mean


TABLES = {
    # a row label naming a metric and its unit, under headers naming the arms (and a first header naming neither)
    "a row label's metric and unit": ("| Measured on 2 threads | Encoder LoRA | Decoder LoRA |\n|---|---|---|\n"
                                      "| Single request p95 (ms) | 15.5 | 76.5 |\n", "76.5", "79.5"),
    # a unit written bare in the header ("Trainable share %") and millions in brackets ("(M)")
    "a header's bare %": ("| Arm | Trainable share % |\n|---|---|\n| Decoder LoRA | 0.88 |\n", "0.88", "0.58"),
    "millions in brackets": ("| Arm | Trainable / total params (M) |\n|---|---|\n| Decoder LoRA | 1.18 / 134.5 |\n",
                             "134.5", "137.5"),
    # a signed one-decimal change in a points column is in points, and its interval's ends are that comparison's
    "a signed change in points": ("| Comparison | Δ accuracy |\n|---|---|\n| Decoder LoRA vs encoder LoRA | +3.8 "
                                  "[2.1, 5.5] |\n", "+3.8", "+3.5"),
    "an interval's end in a cell": ("| Comparison | Δ accuracy |\n|---|---|\n| Decoder LoRA vs encoder LoRA | +3.8 "
                                    "[2.1, 5.5] |\n", "5.5", "5.8"),
}


@pytest.mark.parametrize("case", TABLES, ids=TABLES.keys())
def test_table_cells_read_with_their_row_label_and_header(case):
    table, printed, wrong = TABLES[case]
    assert outcome_of(table, printed) == SUPPORTED
    assert outcome_of(table.replace(printed, wrong, 1), wrong) == CONTRADICTED


def test_a_row_labels_metric_binds_each_arms_column():
    table = "| Measured on 2 threads | Encoder LoRA | Decoder LoRA |\n|---|---|---|\n| Single request p95 (ms) | {} | {} |\n"
    assert outcome_of(table.format("76.5", "15.5"), "76.5") == CONTRADICTED  # the values moved to the other arm


@pytest.fixture(scope="module")
def spread_run(tmp_path_factory) -> Path:
    """The fixture run with seed spreads: each arm's test macro F1 and validation macro F1 with a standard deviation."""
    run_dir = tmp_path_factory.mktemp("spread") / "run"
    shutil.copytree(RUN, run_dir)
    path = run_dir / "evaluation" / "results.json"
    results = json.loads(path.read_text())
    for arm, test_std, val_std in (("encoder_lora", 0.0193, 0.0162), ("decoder_lora", 0.0007, 0.0041)):
        results["arms"][arm]["test"]["macro_f1"]["std"] = test_std
        results["arms"][arm]["val"] = {"macro_f1": {"mean": 0.41, "std": val_std}}
    path.write_text(json.dumps(results))
    return run_dir


def test_a_spread_is_the_spread_of_its_own_estimate(spread_run):
    """"± 1.9" after encoder LoRA's test macro F1 is that quantity's standard deviation: not its validation score's,
    not another arm's."""
    table = "| Arm | Macro F1 % |\n|---|---|\n| Encoder LoRA | 37.4 ± {} |\n| Decoder LoRA | 43.8 ± 0.1 |\n"
    assert outcome_of(table.format("1.9"), "± 1.9", spread_run) == SUPPORTED
    assert outcome_of(table.format("1.6"), "± 1.6", spread_run) == CONTRADICTED  # its validation score's spread
    assert outcome_of(table.format("0.4"), "± 0.4", spread_run) == CONTRADICTED  # the decoder's validation spread


SLA_CASES = {
    # the SLA minus a named latency statistic, and the SLA over it ("6.5x inside the SLA")
    "headroom under the SLA": ("Decoder LoRA's p95 leaves only 23.5 ms under the real-time SLA.", "23.5 ms", "26.5 ms"),
    "times inside the SLA": ("Encoder LoRA's p95 is 6.5x inside the SLA.", "6.5x", "7.5x"),
    # a named p95 is that statistic: the median's value does not stand for it
    "a named p95": ("Decoder LoRA's p95 latency is 76.5 ms.", "76.5 ms", "58.4 ms"),
}


@pytest.mark.parametrize("case", SLA_CASES, ids=SLA_CASES.keys())
def test_latency_against_the_sla_and_named_statistics(case):
    sentence, printed, wrong = SLA_CASES[case]
    assert outcome_of(sentence, printed) == SUPPORTED
    assert outcome_of(sentence.replace(printed, wrong, 1), wrong) == CONTRADICTED
