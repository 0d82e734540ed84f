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
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_a_correct_number_is_supported_and_a_falsified_one_contradicted(case):
    text, printed, wrong = CASES[case]
    assert outcome_of(text, printed, DEMO) == SUPPORTED
    falsified = text.replace(f"{printed}]", f"{wrong}]") if f"{printed}]" in text else text.replace(f"[{printed}", f"[{wrong}")
    assert outcome_of(falsified, wrong, DEMO) == CONTRADICTED


def test_the_ends_of_a_seed_range_in_the_wrong_order_are_contradicted():
    swapped = TABLE.replace("[0.444–0.481]", "[0.481–0.444]")
    assert outcome_of(swapped, "0.481", DEMO) == CONTRADICTED


def test_a_confidence_interval_is_not_a_seed_range():
    assert outcome_of("Encoder LoRA's accuracy is 73.6% (95% CI [73.3, 74.1]).", "73.3", DEMO) == CONTRADICTED
