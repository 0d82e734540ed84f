"""Check any technical note (Markdown or HTML, generated or hand-written) against the rubric.

How it reads a note, so that its verdicts can be argued with:

* HTML is first flattened to the same Markdown-like text as a `.md` note
  (headings as `#`, table rows as `| a | b |`, `<code>` as backticks).
* Sections: a heading is assigned to a rubric section by keywords (weighting ->
  2, latency/deployment/cost -> 4, per-class/rare/tier -> 3, next/bottleneck ->
  5, systems/overall/comparison -> 1; a leading "1."-"5." decides when no
  keyword does). Deeper headings belong to the section above them. A note with
  no usable headings is split into paragraphs, each assigned by the same keywords.
* Evidence: each required piece is a keyword pattern plus numbers. A metric is
  "reported" when a number sits in a table column whose header names it, or in
  a sentence that names it; "for both models" also needs the section to name an
  encoder and a decoder.
* Prose length: words outside tables, code, headings, figures and captions, and
  outside the experiment-log / appendix section; pages at 500 words per page.
* With a run directory: every metric-like number (percentages, decimals, numbers
  with a unit, table cells, integers next to metric words; not code spans,
  years or section numbers) must equal some number in the run's artifacts after
  the rounding and unit the note shows (61.3% matches 0.6127; 2.1 min matches
  126 s; 22.7M matches 22,730,541).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from lorastudy.errors import StudyError

WORDS_PER_PAGE = 500
MAX_PAGES = 3

ENCODER = r"encoder|bert|minilm|roberta|deberta|electra"
DECODER = r"decoder|qwen|smollm|llama|gpt|mistral|gemma|\bphi\b"
ACCURACY = r"accura|\bacc\b"
MACRO_F1 = r"macro[- ]?(averaged )?f1|macro[- ]?f"
ZERO_F1 = r"zero[- ]?f1|f1\s*(=|of)\s*0\b|classes? (at|with) (zero|0)\b|at zero\b|never predicted"
F1 = r"\bf1\b"
TIER = r"\btiers?\b|\brare\b|\bcommon\b|\btail\b|\bhead\b|frequen"
SECTION_NAMES = {1: "Systems-level comparison", 2: "Class weighting on the decoder", 3: "Per-class analysis: rare vs common",
                 4: "Latency and deployment", 5: "What to do next"}
HEADING_RULES = [  # first match wins; "log" and "limitations" are not rubric sections
    ("log", r"experiment log|run log|appendix|reproducib"),
    ("limitations", r"limitation|caveat|threats to"),
    (5, r"\bnext\b|differently|future|bottleneck|would do|follow[- ]?up|again|lessons|retrospect"),
    (2, r"weight"),
    (4, r"latenc|deploy|\bcost|serving|inference|recommend|throughput"),
    (3, r"per[- ]class|\brare\b|\btiers?\b|long[- ]tail|class[- ]level|frequency|distribution"),
    (1, r"system|aggregate|overall|comparison|encoder|decoder|overview|results|architecture|parameter"),
]
METRIC_WORDS = r"zero|f1|class|classes|examples?|param|count|train|steps?|instances?|requests?|support|epochs?|tier|predicted"
UNITS = {"%": (100.0, 1.0), "pp": (100.0, 1.0), "M": (1e-6,), "k": (1e-3,), "B": (1e-9,), "min": (1 / 60, 1.0),
         "h": (1 / 3600, 1.0), "GB": (1 / 1024, 1.0)}
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−+±]?)(?P<dollar>\$?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?(?![.,]?\d)"
    r"(?:\s?(?P<unit>%|pp\b|ms\b|s\b|min\b|h\b|MB\b|GB\b|M\b|k\b|B\b|examples/s))?(?![A-Za-z])")


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


# --- reading a note -------------------------------------------------------


class _HtmlToText(HTMLParser):
    """Flatten HTML to Markdown-like lines: enough structure for the section and table rules."""

    BLOCKS = {"p", "div", "li", "br", "section", "article", "header", "footer", "figcaption", "caption", "ul", "ol",
              "blockquote", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.header_row = False
        self.skip = 0
        self.heading_level = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._flush()
            self.heading_level = int(tag[1])
        elif tag == "tr":
            self._flush()
            self.row, self.header_row = [], False
        elif tag in ("td", "th"):
            self.cell = []
            self.header_row = self.header_row or tag == "th"
        elif tag == "code":
            self._text("`")
        elif tag == "img":
            self._flush()
            self.lines.append("![figure]()")
        elif tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.lines.append("#" * self.heading_level + " " + " ".join("".join(self.current).split()))
            self.current, self.heading_level = [], 0
        elif tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.lines.append("| " + " | ".join(self.row) + " |")
            if self.header_row:
                self.lines.append("|" + "---|" * len(self.row))
            self.row = None
        elif tag == "code":
            self._text("`")
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self.skip:
            self._text(data)

    def _text(self, data: str) -> None:
        (self.cell if self.cell is not None else self.current).append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self.current).split())
        if text:
            self.lines.extend([text, ""])
        self.current = []

    def text(self) -> str:
        self._flush()
        return "\n".join(self.lines)


def note_text(path: Path) -> str:
    """The note as Markdown-like text, whatever its format."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"Note {path} does not exist.", "pass the path of a .md or .html note.")
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in (".html", ".htm") or raw.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        parser = _HtmlToText()
        parser.feed(raw)
        return parser.text()
    return raw


@dataclass
class _Block:
    """One section's content: prose lines and tables (header cells, data rows)."""

    heading: str | None = None
    prose: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)

    @property
    def text(self) -> str:
        rows = [" | ".join(h + [c for r in rows for c in r]) for h, rows in self.tables]
        return "\n".join(self.prose + rows)

    def sentences(self) -> list[str]:
        return [s for s in re.split(r"(?<=[.!?;])\s+(?=[A-Z(*\[])|\n", "\n".join(self.prose)) if s.strip()]


def _split_lines(text: str) -> list[tuple[str, str]]:
    """Classify every line: heading, table, code, figure, or prose."""
    kinds, in_code = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_code = not in_code
            kinds.append(("code", line))
        elif in_code:
            kinds.append(("code", line))
        elif re.match(r"#{1,6}\s", stripped):
            kinds.append(("heading", stripped))
        elif stripped.startswith("|"):
            kinds.append(("table", stripped))
        elif stripped.startswith("![") or re.match(r"[*_]*(figure|fig\.)\s*\d*[:.]", stripped, re.I):
            kinds.append(("figure", line))
        else:
            kinds.append(("prose", line))
    return kinds


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _sections(text: str) -> dict[object, _Block]:
    """Group the note's lines into rubric sections (1-5, "log", "limitations")."""
    blocks: dict[object, _Block] = {}
    current: object = None
    current_level = 0
    table: list[str] = []
    lines = _split_lines(text)
    has_h2 = any(kind == "heading" and line.startswith("##") for kind, line in lines)

    def close_table():
        if table and current is not None:
            rows = [_cells(l) for l in table if not _is_separator(l)]
            if rows:
                blocks[current].tables.append((rows[0], rows[1:]))
        table.clear()

    for kind, line in lines:
        if kind != "table":
            close_table()
        if kind == "heading":
            level = len(line) - len(line.lstrip("#"))
            if level == 1 and has_h2:
                continue  # the document title, not a section
            title = line.lstrip("#").strip()
            assigned = _classify_heading(title)
            if assigned is None or (current is not None and level > current_level):
                continue
            current, current_level = assigned, level
            blocks.setdefault(current, _Block(heading=title))
        elif current is None:
            continue
        elif kind == "table":
            table.append(line)
        elif kind == "prose" and line.strip():
            blocks[current].prose.append(line.strip())
    close_table()
    if not any(k in blocks for k in SECTION_NAMES):
        blocks.update(_sections_by_paragraph(text))
    return blocks


def _classify_heading(title: str) -> object:
    lowered = title.lower()
    for section, pattern in HEADING_RULES:
        if re.search(pattern, lowered):
            return section
    number = re.match(r"(?:section\s*)?([1-5])[.):\s]", lowered)
    return int(number.group(1)) if number else None


def _sections_by_paragraph(text: str) -> dict[object, _Block]:
    """Fallback for notes without headings: each paragraph joins the section its keywords point to."""
    blocks: dict[object, _Block] = {}
    for paragraph in re.split(r"\n\s*\n", text):
        section = _classify_heading(paragraph[:400])
        if section in SECTION_NAMES:
            blocks.setdefault(section, _Block(heading=f"(paragraph) {paragraph[:40].strip()}…"))
            blocks[section].prose.extend(l.strip() for l in paragraph.splitlines() if l.strip())
    return blocks


# --- evidence -------------------------------------------------------------


def _numbers(text: str) -> list[re.Match]:
    return list(NUMBER.finditer(re.sub(r"`[^`]*`", " ", text)))


def _mentions(block: _Block, pattern: str, context: str | None = None) -> int:
    """Numbers reported for a metric: in a table column named by `pattern`, or in a sentence naming it.

    `context` (e.g. the tier pattern) must also appear in the row, the header or the sentence.
    """
    count = 0
    for header, rows in block.tables:
        columns = [i for i, h in enumerate(header) if re.search(pattern, h, re.I)]
        for row in rows:
            if context and not re.search(context, " ".join(header + row), re.I):
                continue
            count += sum(1 for i in columns if i < len(row) and _numbers(row[i]))
    for sentence in block.sentences():
        if re.search(pattern, sentence, re.I) and (not context or re.search(context, sentence, re.I)):
            count += len(_numbers(sentence))
    return count


def _has(block: _Block, pattern: str) -> bool:
    return re.search(pattern, block.text, re.I) is not None


def _both_models(block: _Block) -> bool:
    return _has(block, ENCODER) and _has(block, DECODER)


def _for_both(pattern: str, context: str | None = None) -> Callable[[_Block], bool]:
    return lambda b: _both_models(b) and _mentions(b, pattern, context) >= 2


def _with_number(pattern: str) -> Callable[[_Block], bool]:
    return lambda b: any(re.search(pattern, s, re.I) and _numbers(s) for s in b.sentences()) or _mentions(b, pattern) > 0


def _named_classes(labels: list[str] | None) -> Callable[[_Block], bool]:
    def test(block: _Block) -> bool:
        text = block.text
        if labels:
            return sum(1 for label in set(labels) if len(label) > 2 and label in text) >= 2
        named = set(re.findall(r"`([^`]+)`|\"([^\"]{3,40})\"|“([^”]{3,40})”|\b([a-z]+\.[a-z_]+)\b", text))
        return len(named) >= 2
    return test


def _evidence(labels: list[str] | None) -> dict[int, list[tuple[str, Callable[[_Block], bool]]]]:
    change = r"chang|delta|Δ|gain|improv|drop|rais|lift|effect|relative|increase|decrease|moved|[+−-]\d"
    return {
        1: [("accuracy for both models", _for_both(ACCURACY)),
            ("macro F1 for both models", _for_both(MACRO_F1)),
            ("zero-F1 count for both models", _for_both(ZERO_F1)),
            ("trainable parameter share for both", _for_both(r"trainable|share|param|% (of )?(the )?weights")),
            ("comparison with the full fine-tune", _with_number(r"full[- ]?(fine[- ]?tun|ft\b|finetun)|fully fine[- ]?tuned")),
            ("what the aggregates hide", lambda b: _has(b, r"\bhide|hidden|mask|conceal|obscur|aggregate|on average"))],
        2: [("weighting result on the decoder", lambda b: _has(b, DECODER) and _has(b, r"weight")),
            ("accuracy after weighting", _with_number(ACCURACY)),
            ("macro F1 after weighting", _with_number(MACRO_F1)),
            ("zero-F1 count after weighting", _with_number(ZERO_F1)),
            ("effect size compared with the encoder", lambda b: _both_models(b) and _mentions(b, change) >= 2),
            ("a mechanism grounded in evidence", lambda b: _has(b, r"because|since|mechanis|explain|\bwhy\b|already|"
                                                                r"calibrat|prior|predicted share|under-?predict|recall"))],
        3: [("tier breakdown", lambda b: _has(b, TIER)),
            ("mean F1 per tier for both models", _for_both(F1 + r"(?!.*zero)", TIER)),
            ("zero-F1 per tier for both models", _for_both(ZERO_F1, TIER)),
            ("specific classes named", _named_classes(labels))],
        4: [("latency numbers for both models", lambda b: _both_models(b) and (
                sum(1 for m in _numbers(b.text) if m.group("unit") == "ms") >= 2 or _mentions(b, r"latenc|p50|p95|\bms\b") >= 2)),
            ("throughput, cost or SLA translation", _with_number(r"throughput|examples?/s|per second|\bcost|\$|\bsla\b|"
                                                                 r"instances?|per hour|monthly|budget|capacity")),
            ("a named operational context", lambda b: _has(b, r"real[- ]?time|triage|nightly|batch|audit|compliance|"
                                                              r"stream|interactive|online|offline|overnight")),
            ("a recommendation", lambda b: _has(b, r"recommend|choose|deploy|go with|\bpick|prefer|best (choice|fit|option)"
                                                  r"|should (use|be used)")),
            ("what would change it", lambda b: _has(b, r"would change|unless|break[- ]?even|would (flip|switch|tip|favou?r)"
                                                      r"|changes? the (answer|recommendation)|depends on"))],
        5: [("a next experiment", lambda b: _has(b, r"experiment|propose|would (try|run|test)|\bplan")),
            ("a hypothesis", lambda b: _has(b, r"hypothes|we (believe|suspect)|conjecture")),
            ("a prediction", lambda b: _has(b, r"predict|expect|should (rise|raise|increase|improve)|would (rise|raise|increase|improve|lift)")),
            ("bottleneck with evidence", lambda b: _has(b, r"bottleneck|limiting|holding back|constrain") and bool(_numbers(b.text))),
            ("alternatives considered", lambda b: _has(b, r"instead of|rather than|alternative|chose|chosen|over (a|the) |other options"))],
    }


# --- prose length ---------------------------------------------------------


def count_prose_words(text: str) -> int:
    """Words of prose: not tables, code, headings, figures or captions (a whole line in italics), nor the
    experiment log / appendix."""
    words, skipping = 0, False
    for kind, line in _split_lines(text):
        if kind == "heading":
            skipping = _classify_heading(line.lstrip("#").strip()) == "log"
        elif kind == "prose" and not skipping and not re.fullmatch(r"\*[^*].*[^*]\*", line.strip()):  # captions
            cleaned = re.sub(r"<[^>]+>|\[([^\]]*)\]\([^)]*\)", r"\1", line)
            words += len(re.findall(r"[A-Za-z0-9$±−+\[(][^\s]*", cleaned))
    return words


# --- numbers --------------------------------------------------------------


def note_numbers(text: str) -> list[tuple[str, float, int, str | None]]:
    """Metric-like numbers of a note's prose and table cells: (as printed, value, decimals shown, unit)."""
    lines = _split_lines(text)
    found = []
    for index, (kind, line) in enumerate(lines):
        if kind not in ("table", "prose") or _is_separator(line):
            continue
        next_line = lines[index + 1][1] if index + 1 < len(lines) else ""
        if kind == "table" and _is_separator(next_line):
            continue  # a header row: its numbers are labels ("of 45"), not results
        for match in _numbers(line):
            if _metric_like(match, line, kind == "table"):
                decimals = len(match.group("dec") or ".") - 1
                value = float(match.group("int").replace(",", "") + (match.group("dec") or ""))
                found.append((match.group(0).strip(), value, decimals, match.group("unit")))
    return found


def _is_separator(line: str) -> bool:
    return bool(line.strip()) and re.fullmatch(r"\|?[\s:|-]+\|?", line.strip()) is not None


def _metric_like(match: re.Match, line: str, in_table: bool) -> bool:
    if match.group("unit") or match.group("dec") or match.group("dollar"):
        return True
    value = int(match.group("int").replace(",", ""))
    before = re.sub(r"`[^`]*`", " ", line)[:match.start()].lower()
    if re.search(r"(section|seed|week|weeks|figure|table|step|fig\.|tier)\s*$", before):
        return False
    if 1900 <= value <= 2100 and not in_table:
        return False
    if in_table:
        return True
    window = re.sub(r"`[^`]*`", " ", line)[max(0, match.start() - 40):match.end() + 30].lower()
    return re.search(METRIC_WORDS, window) is not None


def artifact_numbers(run_dir: Path) -> np.ndarray:
    """Every number in a run's artifacts: results, latency, run records, labels, config, per-class tables."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StudyError(f"Run directory {run_dir} does not exist.", "pass --results the folder that `lorastudy run` wrote.")
    values: list[float] = []
    paths = [run_dir / "evaluation" / "results.json", run_dir / "latency" / "latency.json",
             run_dir / "data" / "labels.json", *sorted((run_dir / "runs").glob("*/run.json"))]
    for path in paths:
        if path.exists():
            _collect(json.loads(path.read_text(encoding="utf-8")), values)
    config = run_dir / "config.resolved.yaml"
    if config.exists():
        _collect(yaml.safe_load(config.read_text(encoding="utf-8")), values)
    for table in sorted((run_dir / "evaluation" / "per_class").glob("*.csv")):
        with open(table, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                _collect([_to_float(v) for v in row.values()], values)
    if not values:
        raise StudyError(f"No artifacts with numbers found in {run_dir}.", "run `lorastudy run` (or its evaluate stage) first.")
    return np.unique(np.abs(np.asarray(values, dtype=float)))


def _to_float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _collect(node: object, out: list[float]) -> None:
    if isinstance(node, bool) or node is None:
        return
    if isinstance(node, (int, float)):
        out.append(float(node))
    elif isinstance(node, dict):
        for value in node.values():
            _collect(value, out)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _collect(value, out)
    elif isinstance(node, str):
        for piece in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", node):
            out.append(float(piece))


def matches(value: float, decimals: int, unit: str | None, known: np.ndarray) -> bool:
    """Does some artifact number, shown in this unit and rounded to these decimals, read as `value`?"""
    tolerance = 0.5 * 10.0 ** -decimals + 1e-9
    known = np.sort(np.abs(known))
    for scale in UNITS.get(unit or "", (1.0,)):
        scaled = known * scale
        index = np.searchsorted(scaled, abs(value))
        for i in (index - 1, index):
            if 0 <= i < len(scaled) and abs(scaled[i] - abs(value)) <= tolerance:
                return True
    return False


# --- the check ------------------------------------------------------------


def check_note(note: Path, results_dir: Path | None = None) -> CheckOutcome:
    """Evidence per rubric section, prose length, and (with a run directory) traceability of every number."""
    text = note_text(note)
    labels = _labels(results_dir) if results_dir else None
    blocks = _sections(text)
    sections = []
    for number, items in _evidence(labels).items():
        block = blocks.get(number)
        check = SectionCheck(number, SECTION_NAMES[number], block.heading if block else None)
        for name, test in items:
            (check.present if block is not None and test(block) else check.missing).append(name)
        sections.append(check)
    words = count_prose_words(text)
    unmatched, checked = [], 0
    if results_dir is not None:
        known = artifact_numbers(results_dir)
        numbers = note_numbers(text)
        checked = len(numbers)
        unmatched = sorted({printed for printed, value, decimals, unit in numbers
                            if not matches(value, decimals, unit, known)})
    pages = round(words / WORDS_PER_PAGE, 1)
    complete = all(s.complete for s in sections) and pages <= MAX_PAGES and not unmatched
    return CheckOutcome(sections, words, pages, unmatched, complete, checked, results_dir is not None)


def _labels(run_dir: Path) -> list[str] | None:
    for path in (Path(run_dir) / "data" / "labels.json", Path(run_dir) / "evaluation" / "results.json"):
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            return data.get("labels") or data.get("data", {}).get("labels")
    return None


def render_check(outcome: CheckOutcome, console: Console | None = None) -> None:
    """One row per rubric section, then length and traceability."""
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
        table.add_row("Numbers", f"{outcome.numbers_checked} metric-like numbers", "traceable to the run" if not outcome.unmatched_numbers else "",
                      ", ".join(outcome.unmatched_numbers[:40]),
                      "[green]ok[/green]" if not outcome.unmatched_numbers else f"[red]{len(outcome.unmatched_numbers)} unmatched[/red]")
    console.print(table)
    console.print("[green]Complete.[/green]" if outcome.complete else "[red]Incomplete: see the missing items above.[/red]")
