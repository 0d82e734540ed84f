"""Counts and means over a group of classes named by part of speech and tier, on a corpus run's artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lorastudy.check.derivations import FactIndex
from lorastudy.check.fact_matching import CONTRADICTED, SUPPORTED, judge
from lorastudy.check.facts import _read_yaml, run_facts, vocabulary
from lorastudy.check.number_reading import read_note_numbers

DEMO = Path(__file__).parent / "fixtures" / "notes" / "demo" / "artifacts"


@pytest.fixture(scope="module")
def outcome():
    vocab = vocabulary(DEMO)
    index = FactIndex.of(run_facts(DEMO, vocab), vocab.labels, _read_yaml(DEMO / "config.resolved.yaml"))

    def judged(sentence: str, printed: str) -> str:
        return next(judge(r, index).outcome for r in read_note_numbers(sentence, vocab) if r.printed == printed)
    return judged


def test_a_group_counted_within_a_tier_with_its_classes_named_beside_it(outcome):
    """The demo run has 15 verb classes, 6 of them in the rare tier."""
    sentence = "The decoder scores 0 F1 on all {} rare verb classes, whereas the encoder gets some (verb.body 0.188)."
    assert outcome(sentence.format(6), "6") == SUPPORTED
    assert outcome(sentence.format(7), "7") == CONTRADICTED
    assert outcome("The run has 15 verb classes.", "15") == SUPPORTED


def test_the_ends_of_a_tiers_training_counts(outcome):
    """In the demo run the common tier's classes have 22 to 491 training examples."""
    sentence = "That gives 12 rare classes (1 to 19 examples) and 33 common classes ({} to 491)."
    assert outcome(sentence.format(22), "22") == SUPPORTED
    assert outcome(sentence.format(25), "25") == CONTRADICTED
