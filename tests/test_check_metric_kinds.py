"""Numbers read as the wrong metric kind (a word of another kind sits nearer): the correct number is not
contradicted, and where its kind is now read right, a falsified one is."""

from __future__ import annotations

import pytest

from lorastudy.check.fact_matching import CONTRADICTED, SUPPORTED
from test_check_formats import outcome_of

CAUGHT = {
    # another model's values in brackets share the metric named right before the brackets
    "a bracketed model's value": ("Decoder LoRA trails on accuracy, yet leads at 0.438 macro F1 (encoder LoRA 0.374).",
                                  "0.374", "0.344"),
    # "took ... from A to B" moves a quantity; it is no duration
    "took from to": ("Weighting took the encoder full fine-tune's zero-F1 count from 8 to 4 classes.", "4", "7"),
    # a hyphenated time unit: "a 24-h window" is hours, not a count of what the sentence also names
    "a 24-h window": ("For encoder LoRA the 24-h window of the audit holds, at 6 classes with zero F1.", "24", "27"),
    # two parts of speech joined by a slash are one group: the mean over both's classes, not over the adjectives'
    "a joined group": ("Decoder LoRA's mean F1 over the adjective/adverb classes is 0.469.", "0.469", "0.430"),
    "a joined group's row": ("| Group | Classes | Decoder LoRA mean F1 |\n|---|---|---|\n| Adjective/adverb | 4 | 0.469 |",
                             "0.469", "0.430"),
    "a percentage of the classes": ("Decoder LoRA has 5 zero-F1 classes, so 11% of the classes are zeros.", "11%", "14%"),
}


@pytest.mark.parametrize("case", CAUGHT, ids=CAUGHT.keys())
def test_a_correct_number_is_supported_and_a_falsified_one_contradicted(case):
    sentence, printed, wrong = CAUGHT[case]
    assert outcome_of(sentence, printed) == SUPPORTED
    falsified = sentence[::-1].replace(printed[::-1], wrong[::-1], 1)[::-1]  # the last occurrence
    assert outcome_of(falsified, wrong) == CONTRADICTED


NOT_CONTRADICTED = {
    # "parameter budget" is no money; a symbol names its own quantity ("r = 16")
    "rank in a parameter budget": ("**Parameter budget.** Both adapters use rank r = 16, alpha = 32.", "16"),
    # a percentage takes no count, cost or time from the sentence's topic
    "a share of budgets": ("As a share of the weights, the two budgets differ (2.67% vs 0.88%).", "0.88%"),
}


@pytest.mark.parametrize("case", NOT_CONTRADICTED, ids=NOT_CONTRADICTED.keys())
def test_a_correct_number_is_not_contradicted(case):
    sentence, printed = NOT_CONTRADICTED[case]
    assert outcome_of(sentence, printed) == SUPPORTED
