"""`check` recomputes what a writer derives from numbers printed beside it (a gap in points, a ratio, a share, a
unit conversion, a sum), as statcheck recomputes a p-value: supported when its operands are, within the rounding of
all three; never contradicted when only unverified operands explain it; a falsified result still fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorastudy.check.fact_matching import CONTRADICTED, NOT_CHECKABLE, SUPPORTED, Judgement, judge
from lorastudy.check.number_reading import read_note_numbers
from lorastudy.check.printed_arithmetic import printed_derivation, supported_by_neighbours
from test_check_formats import fact_index

RUN = Path(__file__).parent / "fixtures" / "run"

DERIVED = {
    "a gap in points": ("adj.all and adv.all: 0.807 vs 0.656 macro F1 (15.0 points).", "15.0", "15.4"),
    "a ratio of numbers printed alike": ("The weights span 22x, from 0.22 for adj.all to 4.87 for noun.motive.",
                                         "22x", "25x"),
    "a ratio of times": ("Each decoder step costs 7.1x as much (2.12 s vs 0.30 s).", "7.1x", "7.6x"),
    "a share of a count": ("Weighting pushed predictions into the tail at 21% precision (32 of 150).", "21%", "24%"),
    "seconds as minutes": ("The decoder needs 2,004 s = 33.4 min of the window.", "33.4 min", "33.9 min"),
    "MB as GB": ("Peak memory is 1,189 MB (1.16 GB).", "1.16 GB", "1.26 GB"),
    "a relative change": ("Macro F1 rose from 0.374 to 0.397, a 6.1% relative gain.", "6.1%", "6.8%"),
}


def _derivation(sentence: str, printed: str) -> str | None:
    readings = read_note_numbers(sentence)
    return printed_derivation(next(r for r in readings if r.printed == printed), readings)


@pytest.mark.parametrize("case", DERIVED, ids=DERIVED.keys())
def test_a_number_computed_from_its_neighbours_is_recomputed(case):
    sentence, printed, wrong = DERIVED[case]
    assert _derivation(sentence, printed)
    assert _derivation(sentence.replace(printed, wrong, 1), wrong) is None


def test_the_same_number_printed_twice_vouches_for_nothing():
    """A number is not its own derivation: "0.374 ... 0.374" is a repetition, which only the artifacts can check."""
    sentence = "Encoder LoRA reaches 0.374 macro F1; its macro F1 of 0.374 is the lowest."
    readings = read_note_numbers(sentence)
    assert printed_derivation(readings[1], readings) is None


def _judged(sentence: str, outcomes: dict[str, str]) -> dict[str, str]:
    readings = read_note_numbers(sentence)
    judged = supported_by_neighbours([Judgement(r, outcomes[r.printed]) for r in readings])
    return {j.reading.printed: j.outcome for j in judged}


def test_verified_operands_support_it_and_unverified_ones_only_excuse_it():
    sentence = "The weights span 22x, from 0.22 for adj.all to 4.87 for noun.motive."
    assert _judged(sentence, {"22x": CONTRADICTED, "0.22": SUPPORTED, "4.87": SUPPORTED})["22x"] == SUPPORTED
    assert _judged(sentence, {"22x": CONTRADICTED, "0.22": SUPPORTED, "4.87": NOT_CHECKABLE})["22x"] == NOT_CHECKABLE
    assert _judged(sentence, {"22x": CONTRADICTED, "0.22": SUPPORTED, "4.87": CONTRADICTED})["22x"] == CONTRADICTED
    falsified = sentence.replace("22x", "25x")
    assert _judged(falsified, {"25x": CONTRADICTED, "0.22": SUPPORTED, "4.87": SUPPORTED})["25x"] == CONTRADICTED


def test_against_a_run():
    """Two latencies the run holds and their sum, which it does not: the sum is recomputed; a wrong sum fails."""
    index, vocab = fact_index()

    def outcome(sentence: str, printed: str) -> str:
        judged = supported_by_neighbours([judge(r, index) for r in read_note_numbers(sentence, vocab)])
        return next(j.outcome for j in judged if j.reading.printed == printed)

    sentence = "A request to encoder LoRA takes 11.8 ms at p50 and one to decoder LoRA 58.4 ms, 70.2 ms in total."
    assert outcome(sentence, "11.8 ms") == outcome(sentence, "58.4 ms") == SUPPORTED
    assert outcome(sentence, "70.2 ms") == SUPPORTED
    assert outcome(sentence.replace("70.2 ms", "72.2 ms"), "72.2 ms") == CONTRADICTED


@pytest.mark.parametrize("sentence, printed", [
    ("Accuracy is 73.9% ± 0.5 on the encoder and 62.1% ± 1.9 on the decoder.", "73.9%"),  # a spread is no operand
    ("Seed gains were +0.1 and +0.2 macro-F1 points, against −3.8 on the encoder.", "−3.8"),  # a rounding too coarse
    ("Rare mean F1 is 10.9% vs 9.1%, rare recall 10.1% vs 9.4%.", "9.4%"),  # to pin a number it does not bound
])
def test_a_coincidence_is_not_a_derivation(sentence, printed):
    assert _derivation(sentence, printed) is None


def test_twice_and_half_of_a_number_beside_it():
    assert _derivation("A rare-F1 gain below two seed SDs (9.25 points, twice 4.62).", "9.25")
    assert _derivation("A rare-F1 gain below two seed SDs (9.55 points, twice 4.62).", "9.55") is None
    assert _derivation("The budget is 4.2 s, half of 8.4 s.", "4.2 s")


def test_a_fraction_of_times_is_a_ratio_and_a_whole_count_of_times_is_how_often():
    assert read_note_numbers("The decoder's gain was 0.22 times encoder LoRA's.")[0].unit == "x"
    assert [r.unit for r in read_note_numbers("adj.all was predicted 9 times on the test set.")] == [None]
