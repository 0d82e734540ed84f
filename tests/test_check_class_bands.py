"""Rules that generalise beyond the notes they were found on (issue #28, fourth pass): classes picked by a band of
training counts, slashed cells, a table-wide metric in the first header, lists of numbers, a named training step, and
deployment arithmetic over the instances a peak needs. Each correct phrase about the fixture run (tests/fixtures/run)
is supported, and the same phrase falsified (a digit off by more than its rounding, or a value moved to the other arm)
is contradicted.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lorastudy.check.fact_matching import CONTRADICTED, SUPPORTED
from test_check_formats import RUN, outcome_of

BAND_TABLE = ("| Train-count band | Classes | Test ex. | Enc LoRA mean F1 | Dec LoRA mean F1 | Dec − enc (points) |\n"
              "|---|---|---|---|---|---|\n| 10 to 40 | 31 | 288 | 0.327 | 0.387 | +5.99 |\n")
SERVING = ("| Real-time triage | Encoder LoRA | Decoder LoRA |\n|---|---|---|\n"
           "| Instances needed / utilisation at peak | 1 / 24.8% | 2 / 61.3% |\n"
           "| Always-on cost | $72/month | $144/month |\n"
           "| Cost per million predictions | $36.00 | $72.00 |\n"
           "| Mean queue wait at peak / mean response | 2.0 ms / 14.4 ms | 48.5 ms / 109.8 ms |\n")

CASES = {
    # a band of training counts: its classes, their test examples, each arm's mean F1 over them, the arms' gap
    "a band's classes": (BAND_TABLE, "31", "34"),
    "a band's test examples": (BAND_TABLE, "288", "281"),
    "a band's end is its largest class's count": (BAND_TABLE, "40", "43"),
    "an arm's mean F1 over a band": (BAND_TABLE, "0.387", "0.357"),
    "the arms' gap over a band": (BAND_TABLE, "+5.99", "+5.69"),
    "a band in prose": ("On the 31 classes with 10–40 training examples, decoder LoRA's mean F1 is 0.387.", "0.387", "0.357"),
    # the first header's bracketed metric is the table's, for columns whose headers name none
    "a table-wide metric": ("| Class group (mean F1) | Encoder LoRA | Decoder LoRA |\n|---|---|---|\n"
                            "| Verbs | 0.379 | 0.458 |\n", "0.458", "0.428"),
    # a slashed cell: each number is about the entities of the same part of its header
    "a slashed pair of arms": ("| Band (train count) | Mean F1 enc / dec |\n|---|---|\n| 10 to 40 | 0.327 / 0.387 |\n",
                               "0.387", "0.357"),
    # deployment: the instances the peak needs, utilisation per instance, their always-on cost for a 30-day month,
    # per million predictions, and queueing at the peak (fixed service time, Pollaczek–Khinchine)
    "instances needed": (SERVING, "2", "5"),
    "utilisation per instance": (SERVING, "61.3%", "64.3%"),
    "always-on cost of the instances": (SERVING, "$144", "$164"),
    "cost per million predictions": (SERVING, "$72.00", "$78.00"),
    "queue wait at the peak": (SERVING, "48.5 ms", "45.5 ms"),
    "response at the peak": (SERVING, "109.8 ms", "106.8 ms"),
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_a_correct_number_is_supported_and_a_falsified_one_contradicted(case):
    text, printed, wrong = CASES[case]
    assert outcome_of(text, printed) == SUPPORTED
    assert outcome_of(re.sub(r"(?<![\w.$])" + re.escape(printed) + r"(?![\w%]|\.\d)", wrong, text, count=1), wrong) == CONTRADICTED


SWAPS = {
    "a band's arms": (BAND_TABLE, "0.327 | 0.387", "0.387 | 0.327", "0.387"),
    "a slashed pair of arms": ("| Band (train count) | Mean F1 enc / dec |\n|---|---|\n| 10 to 40 | 0.327 / 0.387 |\n",
                               "0.327 / 0.387", "0.387 / 0.327", "0.387"),
}


@pytest.mark.parametrize("case", SWAPS, ids=SWAPS.keys())
def test_values_moved_to_the_other_arm_are_contradicted(case):
    text, right, swapped, printed = SWAPS[case]
    assert outcome_of(text, printed) == SUPPORTED
    assert outcome_of(text.replace(right, swapped), printed) == CONTRADICTED


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> Path:
    """The fixture run with a training log: validation macro F1 at steps 60 and 125."""
    run_dir = tmp_path_factory.mktemp("logged") / "run"
    shutil.copytree(RUN, run_dir)
    log = run_dir / "runs" / "encoder_lora__seed42" / "train_log.jsonl"
    log.write_text("\n".join(json.dumps(x) for x in [{"epoch": 0.5, "step": 60, "val_macro_f1": 0.3914},
                                                      {"epoch": 1.0, "step": 125, "val_macro_f1": 0.4251}]) + "\n")
    return run_dir


def test_a_named_step_is_that_steps_value(logged_run):
    sentence = "At step 125 the train log shows encoder LoRA's validation macro F1 at {}."
    assert outcome_of(sentence.format("0.425"), "0.425", logged_run) == SUPPORTED
    assert outcome_of(sentence.format("0.391"), "0.391", logged_run) == CONTRADICTED  # step 60's value


MORE = {
    # a count a comparison's statement governs: "the encoder 37" after "the decoder wins 63 classes"
    "a count after the verb's statement": ("Class by class, decoder LoRA wins 33 classes, encoder LoRA 11, with 1 tie.",
                                           "11", "14"),
    # a correlation named before a pair with their entities in brackets
    "a correlation's pair": ("Spearman ρ between F1 and training count is 0.943 (encoder LoRA) and 0.902 (decoder LoRA).",
                             "0.902", "0.932"),
    # a context's volume per month
    "predictions per month": ("Real-time triage expects 2,000,000 predictions/month.", "2,000,000", "2,300,000"),
    # a percentage of another arm's trainable count
    "a percentage of a count": ("Encoder LoRA trains 2.67% of the encoder full fine-tune's trainable count.", "2.67%",
                                "2.97%"),
    # a list's metric and unit are named after its last number
    "a list's metric and unit": ("Decoder LoRA beats encoder LoRA, the full fine-tune and the weighted full fine-tune by "
                                 "3.8, 2.1 and 4.3 accuracy points.", "3.8", "3.3"),
    # in the weighting section, a row saying "after" is about the weighted twins of its columns' arms
    "after weighting": ("## 2. Class weighting\n\n| | Encoder LoRA | Decoder LoRA |\n|---|---|---|\n"
                        "| Rare-tier share of predictions after (%) | 4.06 | 5.02 |\n", "5.02", "5.32"),
}


@pytest.mark.parametrize("case", MORE, ids=MORE.keys())
def test_more_phrasings_are_supported_and_their_falsifications_contradicted(case):
    text, printed, wrong = MORE[case]
    assert outcome_of(text, printed) == SUPPORTED
    assert outcome_of(text.replace(printed, wrong, 1), wrong) == CONTRADICTED


def test_a_correlations_pair_moved_to_the_other_arm_is_contradicted():
    sentence = "Spearman ρ between F1 and training count is {} (encoder LoRA) and {} (decoder LoRA)."
    assert outcome_of(sentence.format("0.902", "0.943"), "0.902") == CONTRADICTED


def test_classes_never_predicted(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(RUN, run_dir)
    table = run_dir / "evaluation" / "per_class" / "encoder_lora__seed42.csv"
    lines = table.read_text().splitlines()
    lines[1:4] = [",".join(line.split(",")[:-2] + ["0", line.split(",")[-1]]) for line in lines[1:4]]
    table.write_text("\n".join(lines) + "\n")
    sentence = "Encoder LoRA never predicts {} of the 45 classes."
    assert outcome_of(sentence.format("3"), "3", run_dir) == SUPPORTED
    assert outcome_of(sentence.format("5"), "5", run_dir) == CONTRADICTED


def test_a_score_in_a_tiers_column_is_that_tiers():
    table = "| Arm | Rare mean F1 |\n|---|---|\n| Decoder LoRA | {} |\n"
    assert outcome_of(table.format("0.146"), "0.146") == SUPPORTED
    assert outcome_of(table.format("0.438"), "0.438") == CONTRADICTED  # the whole test set's macro F1


def test_two_intervals_ends_make_no_difference():
    from lorastudy.check.derivations import FactIndex, derive
    from lorastudy.check.facts import _read_yaml, run_facts, vocabulary
    from lorastudy.check.number_reading import read_note_numbers

    vocab = vocabulary(RUN)
    index = FactIndex.of(run_facts(RUN, vocab), vocab.labels, _read_yaml(RUN / "config.resolved.yaml"))
    reading = next(r for r in read_note_numbers("Decoder LoRA's accuracy is 3.8 points above encoder LoRA's.", vocab)
                   if r.printed == "3.8")
    differences = [f.source for f in derive(reading, index) if f.source.startswith("difference")]
    assert differences and not [s for s in differences if re.search(r"ci\.\w+\[[01]\]", s)], differences[:5]



def test_a_count_of_classes_is_no_zero_f1_count():
    sentence = "Rare means 19 or fewer training examples: {} classes."
    assert outcome_of(sentence.format("12"), "12") == SUPPORTED
    assert outcome_of(sentence.format("6"), "6") == CONTRADICTED  # encoder LoRA's zero-F1 count, not a class count
