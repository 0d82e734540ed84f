"""Scoring `lorastudy check` on independently written notes: specificity, coverage, sensitivity.

A corpus note lives in tests/fixtures/notes/<dataset>/<writer>/note.md (with the writer's numbers.tsv: every
number, its context and its source), next to the artifacts it was written from in
tests/fixtures/notes/<dataset>/artifacts/.

* Specificity: no number of a correct note is contradicted.
* Coverage: the share of the note's numbers that are checkable (supported); the rest are not checkable.
* Sensitivity: single-number falsifications, generated from the note itself, each contradicted: a number's last
  (significant) digit moved by 3, so it is off by more than its rounding; and a number swapped with another
  arm's value of the same kind in the same sentence or table row.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lorastudy.check.derivations import FactIndex
from lorastudy.check.entity_names import _Names
from lorastudy.check.fact_matching import CONTRADICTED, NOT_CHECKABLE, SUPPORTED, judge
from lorastudy.check.facts import _read_yaml, run_facts, vocabulary
from lorastudy.check.note_sections import _cells, _sections
from lorastudy.check.number_reading import Reading, read_numbers
from lorastudy.check.printed_arithmetic import supported_by_neighbours
from lorastudy.check.verdict import check_note

CORPUS = Path(__file__).parent / "fixtures" / "notes"


def corpus_notes() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*/*/note.md") if (p.parent.parent / "artifacts").is_dir())


def artifacts_of(note: Path) -> Path:
    return note.parent.parent / "artifacts"


@lru_cache(maxsize=None)
def _index(run_dir: Path) -> tuple[FactIndex, object]:
    vocab = vocabulary(run_dir)
    config = _read_yaml(run_dir / "config.resolved.yaml")
    return FactIndex.of(run_facts(run_dir, vocab), vocab.labels, config if isinstance(config, dict) else {}), vocab


@dataclass
class Falsification:
    how: str
    original: str
    printed: str
    where: str
    outcome: str = ""


@dataclass
class Score:
    note: Path
    numbers: int
    supported: int
    contradicted: list[str]
    not_checkable: list[str]
    tsv_rows: int
    seconds: float
    sections: dict[int, list[str]]
    falsifications: list[Falsification] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.supported / self.numbers if self.numbers else 0.0

    @property
    def specificity(self) -> float:
        return 1 - len(self.contradicted) / self.numbers if self.numbers else 1.0

    @property
    def sensitivity(self) -> float:
        caught = sum(f.outcome == CONTRADICTED for f in self.falsifications)
        return caught / len(self.falsifications) if self.falsifications else 0.0

    def summary(self) -> str:
        caught = sum(f.outcome == CONTRADICTED for f in self.falsifications)
        return (f"{self.note.parent.parent.name}/{self.note.parent.name}: {self.numbers} numbers read "
                f"({self.tsv_rows} in numbers.tsv); {self.supported} supported, {len(self.contradicted)} contradicted, "
                f"{len(self.not_checkable)} not checkable; specificity {self.specificity:.1%}, coverage "
                f"{self.coverage:.1%}, sensitivity {caught}/{len(self.falsifications)} = {self.sensitivity:.1%}; "
                f"check {self.seconds:.2f} s")


def score(note: Path, falsify: int = 24) -> Score:
    run_dir = artifacts_of(note)
    start = time.process_time()  # CPU time: the shared test machine's load does not count
    outcome = check_note(note, run_dir)
    seconds = time.process_time() - start
    tsv = note.parent / "numbers.tsv"
    rows = list(csv.DictReader(tsv.open(encoding="utf-8"), delimiter="\t")) if tsv.exists() else []
    result = Score(note, len(outcome.judgements), outcome.count(SUPPORTED),
                   [f"{m.line()}" for m in outcome.mismatches],
                   [f"{j.reading.printed} ({j.reading.described()}; {j.why}) in {j.reading.where[:120]}"
                    for j in outcome.not_checkable], len(rows), seconds, {s.number: s.missing for s in outcome.sections})
    if falsify:
        result.falsifications = falsifications(note, [j.reading for j in outcome.judgements if j.outcome == SUPPORTED],
                                               falsify)
    return result


# --- falsifications ---------------------------------------------------------


def _moved_last_digit(reading: Reading) -> str | None:
    """The printed number with its last significant digit moved by 3 (more than any rounding or "about")."""
    printed = reading.printed
    digits = [m.start() for m in re.finditer(r"\d", printed)]
    if not digits:
        return None
    position = digits[-1]
    if reading.approx and reading.decimals == 0:  # "about 90": the last non-zero digit carries the value
        nonzero = [i for i in digits if printed[i] != "0"]
        position = nonzero[-1] if nonzero else position
    digit = int(printed[position])
    new = digit + 3 if digit <= 6 else digit - 3
    return printed[:position] + str(new) + printed[position + 1:]


def _candidates(readings: list[Reading]) -> list[Reading]:
    return [r for r in readings if not r.bound and not r.threshold and re.search(r"\d", r.printed)]


def falsifications(note: Path, supported: list[Reading], wanted: int) -> list[Falsification]:
    """Up to `wanted` single-number falsifications in a fixed pseudo-random order (a third arm swaps where
    the note has them), each judged in the falsified note."""
    text = note.read_text(encoding="utf-8")
    index, vocab = _index(artifacts_of(note))
    names = _Names.of(vocab)
    pool = _candidates(supported)
    chosen: list[Falsification] = []
    swaps = sorted(_swaps(pool), key=lambda pair: _stable_rank(pair[0]))
    for a, b in swaps[: wanted // 3]:
        chosen.append(Falsification("swapped with another arm's value", a.printed, b.printed, a.where))
    for reading in sorted(pool, key=_stable_rank):
        if len(chosen) >= wanted:
            break
        moved = _moved_last_digit(reading)
        if moved and moved != reading.printed and _replace_once(reading.where, reading.printed, moved) is not None:
            chosen.append(Falsification("last digit moved by 3", reading.printed, moved, reading.where))
    for item in chosen:
        item.outcome = _judge_falsified(text, item, index, names)
    return chosen


def _stable_rank(reading: Reading) -> str:
    """A fixed pseudo-random order of a note's numbers: a number newly supported (or no longer supported) by a
    change to `check` moves the sample by one entry, instead of reshuffling which numbers are falsified."""
    return hashlib.sha1(f"{reading.where}\x00{reading.printed}".encode()).hexdigest()


def _swaps(pool: list[Reading]) -> list[tuple[Reading, Reading]]:
    """Pairs in one sentence or row: same kind and unit, different arms, different printed values."""
    out, used = [], set()
    for i, a in enumerate(pool):
        for b in pool[i + 1:]:
            if a.where == b.where and a.kind == b.kind and a.unit == b.unit and a.printed != b.printed and \
                    a.entities.get("arm") and b.entities.get("arm") and \
                    not (a.entities["arm"] & b.entities["arm"]) and a.where not in used and \
                    _replace_once(a.where, a.printed, b.printed) is not None and \
                    _replace_once(b.where, b.printed, a.printed) is not None:
                out.append((a, b))
                used.add(a.where)
                break
    return out


def _judge_falsified(text: str, item: Falsification, index: FactIndex, names: _Names) -> str:
    """Put the falsified number in place of the original in its sentence or row, read the note again, judge it."""
    falsified_where = _replace_once(item.where, item.original, item.printed)
    if falsified_where is None:
        return "not placed"
    new_text = _replace_where(text, item.where, falsified_where)
    if new_text is None:
        return "not placed"
    beside = [r for r in read_numbers(_sections(new_text), names) if _same_place(r.where, falsified_where)]
    judged = supported_by_neighbours([judge(r, index) for r in beside])  # as `check` judges it, beside its sentence
    outcomes = [j.outcome for j in judged if j.reading.printed == item.printed]
    return outcomes[0] if outcomes else NOT_CHECKABLE


def _replace_once(where: str, old: str, new: str) -> str | None:
    pattern = r"(?<![\w.])" + re.escape(old) + r"(?![\w])" if old[-1].isalnum() else r"(?<![\w.])" + re.escape(old)
    matches = list(re.finditer(pattern, where))
    if len(matches) != 1:
        return None
    m = matches[0]
    return where[:m.start()] + new + where[m.end():]


def _same_place(a: str, b: str) -> bool:
    return re.sub(r"\s+", " ", a).strip() == re.sub(r"\s+", " ", b).strip()


def _replace_where(text: str, where: str, new_where: str) -> str | None:
    if where.startswith("| "):
        cells = _cells(where)
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if "|" in line and _cells(line if line.strip().startswith("|") else "| " + line + " |") == cells:
                lines[i] = new_where
                return "\n".join(lines)
        return None
    if where in text:
        return text.replace(where, new_where, 1)
    return None
