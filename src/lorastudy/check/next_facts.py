"""The numbers of `lorastudy next`'s record (`evaluation/next.json`) as facts, so that `lorastudy check` traces the
note's closing section (the experiment Section 5 proposed, run) as it traces every other number.

next.json keeps the habits `facts` reads generically: every level, change and training record names its arm, its
metric and, for the rare tier's recall, its tier beside the number, so a number is about what its dict says.
"""

from __future__ import annotations

from pathlib import Path

from lorastudy.check.facts import Fact, Vocabulary, _flatten, _read_json

NEXT_RECORD = "evaluation/next.json"


def next_facts(run_dir: Path, vocab: Vocabulary) -> list[Fact]:
    """Every number of evaluation/next.json with its entities and kind; none when `lorastudy next` has not run."""
    path = Path(run_dir) / NEXT_RECORD
    if not path.exists():
        return []
    facts: list[Fact] = []
    _flatten(_read_json(path), NEXT_RECORD, [], [NEXT_RECORD], vocab, facts)
    return facts
