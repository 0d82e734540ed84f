"""Check any technical note (Markdown or HTML, generated or hand-written) against the rubric and against its run.

How it reads a note, so that its verdicts can be argued with, is told where each step is done: which files are
notes (`note_file`), sections (`note_sections`), each number's kind, entities and sign (`number_reading`), numbers
against the run (`fact_matching`), evidence per section (`rubric_evidence`) and prose length
(`lorastudy.core.prose`; pages at 500 words per page).
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lorastudy.core.errors import StudyError
from lorastudy.core.prose import count_prose_words
from lorastudy.check.entity_names import _Names
from lorastudy.check.derivations import FactIndex
from lorastudy.check.fact_matching import CONTRADICTED, NOT_CHECKABLE, SUPPORTED, Judgement, Mismatch, judge
from lorastudy.check.facts import Vocabulary, _read_yaml, run_facts, vocabulary
from lorastudy.check.next_facts import next_facts
from lorastudy.check.note_file import note_text
from lorastudy.check.note_sections import SECTION_NAMES, _sections
from lorastudy.check.number_reading import read_numbers
from lorastudy.check.printed_arithmetic import supported_by_neighbours
from lorastudy.check.rubric_evidence import _evidence

WORDS_PER_PAGE = 500
MAX_PAGES = 3


@dataclass
class SectionCheck:
    number: int
    title: str
    heading: str | None
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.heading is not None and not self.missing


@dataclass
class CheckOutcome:
    sections: list[SectionCheck]
    prose_words: int
    pages_estimate: float
    unmatched_numbers: list[str]
    complete: bool
    numbers_checked: int = 0
    results_checked: bool = False
    mismatches: list[Mismatch] = field(default_factory=list)  # the contradicted numbers
    thresholds: int = 0
    judgements: list[Judgement] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(j.outcome == outcome for j in self.judgements)

    @property
    def not_checkable(self) -> list[Judgement]:
        return [j for j in self.judgements if j.outcome == NOT_CHECKABLE]


def check_note(note: Path, results_dir: Path | None = None) -> CheckOutcome:
    """Evidence per rubric section, prose length, and (with a run directory) every number against the run's facts."""
    text = note_text(note)
    if results_dir is not None and not Path(results_dir).is_dir():
        raise StudyError(f"Run directory {results_dir} does not exist.", "pass --results the folder that `lorastudy run` wrote.")
    vocab = vocabulary(results_dir) if results_dir is not None else Vocabulary()
    names = _Names.of(vocab)
    blocks = _sections(text)
    readings = read_numbers(blocks, names)
    sections = []
    for number, items in _evidence(names).items():
        block = blocks.get(number)
        check = SectionCheck(number, SECTION_NAMES[number], block.heading if block else None)
        in_section = [r for r in readings if r.section == number or  # a table above the first section is the overview
                      (number == 1 and r.section == "other" and r.where.startswith("|"))]
        for item, test in items:
            (check.present if block is not None and test(block, in_section) else check.missing).append(item)
        sections.append(check)
    words = count_prose_words(text)
    mismatches: list[Mismatch] = []
    judgements: list[Judgement] = []
    if results_dir is not None:
        config = _read_yaml(Path(results_dir) / "config.resolved.yaml")
        settings = config if isinstance(config, dict) else {}
        study, follow_up = run_facts(results_dir, vocab), next_facts(results_dir, vocab)
        index = FactIndex.of(study + follow_up, vocab.labels, settings)
        # a rerun's numbers (evaluation/next.json) are about the same arms trained differently: they belong where a
        # note reports the next experiment (Section 5, or a section of its own), never to Sections 1-4's results
        before = FactIndex.of(study, vocab.labels, settings) if follow_up else index
        judgements = [judge(r, before if r.section in STUDY_SECTIONS and not FOLLOW_UP.search(r.where) else index)
                      for r in readings]
        judgements = supported_by_neighbours(judgements)
        mismatches = [Mismatch(j.reading, j.fact) for j in judgements if j.outcome == CONTRADICTED]
    pages = round(words / WORDS_PER_PAGE, 1)
    unmatched = list(dict.fromkeys(m.reading.printed for m in mismatches))
    complete = all(s.complete for s in sections) and pages <= MAX_PAGES and not mismatches
    return CheckOutcome(sections, words, pages, unmatched, complete, len(readings), results_dir is not None, mismatches,
                        sum(r.threshold for r in readings), judgements)


STUDY_SECTIONS = (1, 2, 3, 4)
"""The rubric's sections that report the study's own runs (Section 5 and any other section may report a rerun)."""
FOLLOW_UP = re.compile(r"\bre-?runs?\b|\bre-?trained\b|next experiment|follow-?up", re.I)
"""A sentence in Sections 1-4 that points at the rerun ("Section 5's rerun moved ...") may quote its numbers."""


def render_check(outcome: CheckOutcome, console: Console | None = None) -> None:
    """One row per rubric section, then length and numbers; each failing number with where and what it was read as."""
    console = console or Console()
    table = Table(title="Rubric check", show_lines=True)
    table.add_column("Section")
    table.add_column("Found as")
    table.add_column("Present", style="green")
    table.add_column("Missing", style="red")
    table.add_column("")
    for s in outcome.sections:
        table.add_row(f"{s.number}. {s.title}", s.heading or "[red]not found[/red]", "\n".join(s.present),
                      "\n".join(s.missing), "[green]ok[/green]" if s.complete else "[red]incomplete[/red]")
    length_ok = outcome.pages_estimate <= MAX_PAGES
    table.add_row("Length", f"{outcome.prose_words} words of prose", f"~{outcome.pages_estimate} pages at {WORDS_PER_PAGE} words/page",
                  "" if length_ok else f"over the {MAX_PAGES}-page limit", "[green]ok[/green]" if length_ok else "[red]too long[/red]")
    if outcome.results_checked:
        table.add_row("Numbers", f"{outcome.numbers_checked} metric-like numbers",
                      f"{outcome.count(SUPPORTED)} supported", ", ".join(outcome.unmatched_numbers[:40]),
                      "[green]ok[/green]" if not outcome.mismatches else f"[red]{len(outcome.mismatches)} contradicted[/red]")
    console.print(table)
    for mismatch in outcome.mismatches:
        console.print(f"[red]contradicted[/red] {mismatch.line()}", markup=True, highlight=False, soft_wrap=True)
    if outcome.results_checked:
        unchecked = outcome.not_checkable
        if unchecked:
            console.print(f"Not checkable ({len(unchecked)}):", highlight=False)
            for j in unchecked:
                where = j.reading.where if len(j.reading.where) <= 100 else j.reading.where[:97] + "…"
                console.print(f"  {j.reading.printed} (read as {j.reading.described()}; {j.why}) in “{where}”",
                              markup=False, highlight=False, soft_wrap=True)
        console.print(f"Numbers: {outcome.count(SUPPORTED)} supported, {outcome.count(CONTRADICTED)} contradicted, "
                      f"{len(unchecked)} not checkable (of {outcome.numbers_checked}).", highlight=False)
    console.print("[green]Complete.[/green]" if outcome.complete else "[red]Incomplete: see the missing items above.[/red]")
