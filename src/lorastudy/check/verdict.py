"""Check any technical note (Markdown or HTML, generated or hand-written) against the rubric and against its run.

How it reads a note, so that its verdicts can be argued with, is told where each step is done: which files are
notes (`note_file`), sections (`note_sections`), each number's kind, entities and sign (`number_reading`), numbers
against the run (`fact_matching`), evidence per section (`rubric_evidence`) and prose length
(`lorastudy.core.prose`; pages at 500 words per page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lorastudy.core.errors import StudyError
from lorastudy.core.prose import count_prose_words
from lorastudy.check.entity_names import _Names
from lorastudy.check.fact_matching import Mismatch, trace_numbers
from lorastudy.check.facts import Vocabulary, run_facts, vocabulary
from lorastudy.check.note_file import note_text
from lorastudy.check.note_sections import SECTION_NAMES, _sections
from lorastudy.check.number_reading import read_numbers
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
    mismatches: list[Mismatch] = field(default_factory=list)
    thresholds: int = 0


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
        in_section = [r for r in readings if r.section == number]
        for item, test in items:
            (check.present if block is not None and test(block, in_section) else check.missing).append(item)
        sections.append(check)
    words = count_prose_words(text)
    mismatches: list[Mismatch] = []
    if results_dir is not None:
        mismatches = trace_numbers(readings, run_facts(results_dir, vocab))
    pages = round(words / WORDS_PER_PAGE, 1)
    unmatched = list(dict.fromkeys(m.reading.printed for m in mismatches))
    complete = all(s.complete for s in sections) and pages <= MAX_PAGES and not mismatches
    return CheckOutcome(sections, words, pages, unmatched, complete, len(readings), results_dir is not None, mismatches,
                        sum(r.threshold for r in readings))


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
        table.add_row("Numbers", f"{outcome.numbers_checked} metric-like numbers ({outcome.thresholds} thresholds not checked)",
                      "matched in context" if not outcome.mismatches else "", ", ".join(outcome.unmatched_numbers[:40]),
                      "[green]ok[/green]" if not outcome.mismatches else f"[red]{len(outcome.mismatches)} unmatched[/red]")
    console.print(table)
    for mismatch in outcome.mismatches:
        console.print(f"[red]unmatched[/red] {mismatch.line()}", markup=True, highlight=False, soft_wrap=True)
    console.print("[green]Complete.[/green]" if outcome.complete else "[red]Incomplete: see the missing items above.[/red]")
