"""Quantities over an arm's seeds that careful writers print, recomputed from a three-seed run (the demo corpus's
artifacts): each correct number supported, the same number falsified (off by more than its rounding) contradicted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lorastudy.check.fact_matching import CONTRADICTED, SUPPORTED
from test_check_formats import outcome_of

DEMO = Path(__file__).parent / "fixtures" / "notes" / "demo" / "artifacts"
TABLE = ("## 2. Results\n\n| Arm | Seeds | Accuracy [min–max over seeds] | Macro F1 [min–max] |\n|---|---|---|---|\n"
         "| Encoder LoRA | 3 | 73.6% [73.3–74.1] | 0.467 [0.444–0.481] |\n")

CASES = {
    # the bracket after a seed mean is the range of the arm's per-seed values: the lower end their min, the upper their max
    "seed range, lower end": (TABLE, "73.3", "73.0"),
    "seed range, upper end": (TABLE, "0.481", "0.484"),
    # a tier's predictions pooled over the seeds' per-class files (encoder LoRA: 19 of 29 rare predictions correct)
    "pooled share correct": ("Pooled over seeds, 66% of encoder LoRA's rare-class predictions were correct (19 of 29).",
                             "66%", "69%"),
    "a pooled count read as a precision": ("Weighted decoder LoRA predicted rare classes at 20% precision (31 of 154).",
                                           "31", "34"),
    # what weighting added: extra hits over extra predictions, both pooled over the seeds (31 − 20) / (154 − 57)
    "marginal precision": ("Pooled over three seeds, weighting took decoder LoRA's rare-class predictions from 57 to 154, "
                           "and 11% of the extra predictions were right.", "11%", "14%"),
    # pooled over the part of speech its clause names, not every one its sentence names
    "pooled over the clause's group": ("Pooled over seeds, encoder LoRA's verb recall is 0.362, while nouns and adverbs "
                                       "barely differ.", "0.362", "0.392"),
    # training time over an arm's or a family's runs (runs/<run>/run.json)
    "summed over the runs": ("The six decoder runs took 1.3 hours of wall time in total.", "1.3", "1.6"),
    "a range over the runs": ("Decoder seconds per step ranged from 2.4 to 7.0 across runs.", "2.4", "2.7"),
    "per epoch": ("The fastest encoder epoch took 41.6 s.", "41.6 s", "44.6 s"),
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_a_correct_number_is_supported_and_a_falsified_one_contradicted(case):
    text, printed, wrong = CASES[case]
    assert outcome_of(text, printed, DEMO) == SUPPORTED
    falsified = text.replace(f"{printed}]", f"{wrong}]") if f"{printed}]" in text else \
        text.replace(f"[{printed}", f"[{wrong}") if f"[{printed}" in text else text.replace(printed, wrong, 1)
    assert outcome_of(falsified, wrong, DEMO) == CONTRADICTED


def test_the_ends_of_a_seed_range_in_the_wrong_order_are_contradicted():
    swapped = TABLE.replace("[0.444–0.481]", "[0.481–0.444]")
    assert outcome_of(swapped, "0.481", DEMO) == CONTRADICTED


def test_a_total_over_another_number_of_runs_is_contradicted():
    assert outcome_of("The three decoder runs took 1.3 hours of wall time in total.", "1.3", DEMO) != SUPPORTED


def test_a_confidence_interval_is_not_a_seed_range():
    assert outcome_of("Encoder LoRA's accuracy is 73.6% (95% CI [73.3, 74.1]).", "73.3", DEMO) == CONTRADICTED
