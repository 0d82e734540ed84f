"""Counts over a group of classes named by part of speech and tier, on a corpus run's artifacts."""

from __future__ import annotations

from pathlib import Path

from lorastudy.check.fact_matching import CONTRADICTED, SUPPORTED
from test_check_formats import outcome_of

DEMO = Path(__file__).parent / "fixtures" / "notes" / "demo" / "artifacts"


def test_a_group_counted_within_a_tier_with_its_classes_named_beside_it():
    """The demo run has 15 verb classes, 6 of them in the rare tier."""
    sentence = "The decoder scores 0 F1 on all {} rare verb classes, whereas the encoder gets some (verb.body 0.188)."
    assert outcome_of(sentence.format(6), "6", DEMO) == SUPPORTED
    assert outcome_of(sentence.format(7), "7", DEMO) == CONTRADICTED
    assert outcome_of("The run has 15 verb classes.", "15", DEMO) == SUPPORTED


def test_the_ends_of_a_tiers_training_counts():
    """In the demo run the common tier's classes have 22 to 491 training examples."""
    sentence = "That gives 12 rare classes (1 to 19 examples) and 33 common classes ({} to 491)."
    assert outcome_of(sentence.format(22), "22", DEMO) == SUPPORTED
    assert outcome_of(sentence.format(25), "25", DEMO) == CONTRADICTED


def test_a_class_count_in_another_item_of_the_cell_does_not_make_a_number_a_class_count():
    """'110,659 unused rows; 10 of 12 rare-tier classes at F1 0': the classes are the second item's."""
    row = ("| Candidate | Evidence |\n|---|---|\n| Too few rare-tier examples | {} unused rows of the source; 10 of 12 "
           "rare-tier classes at F1 0 |\n")
    assert outcome_of(row.format("110,659"), "110,659", DEMO) == SUPPORTED
    assert outcome_of(row.format("110,689"), "110,689", DEMO) == CONTRADICTED
