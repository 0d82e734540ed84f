"""A note's prose, counted the same way by the note writer and by the checker.

* Lines: each is a heading, a table row (with or without outer pipes), code, a
  figure, or prose.
* Headings: a heading is assigned to a rubric section (1-5) or to the
  experiment log or limitations by keywords, first match wins; a leading
  "1."-"5." decides when no keyword does.
* Prose length: words outside tables, code, headings, figures and captions, and
  outside the experiment-log / appendix section.
"""

from __future__ import annotations

import re

HEADING_RULES = [  # first match wins; "log" and "limitations" are not rubric sections
    ("log", r"experiment log|run log|appendix|addendum|reproducib"),
    ("limitations", r"limitation|caveat|threats to"),
    (5, r"\bnext\b|differently|future|bottleneck|would do|follow[- ]?up|again|lessons|retrospect|from here|\bplan\b"),
    (2, r"weight"),
    (4, r"latenc|deploy|\bcost|serving|inference|recommend|throughput"),
    (3, r"per[- ]class|\brare\b|\btiers?\b|long[- ]tail|class[- ]level|frequency|distribution"),
    (1, r"system|aggregate|overall|comparison|encoder|decoder|overview|results|architecture|parameter"),
]


def _split_lines(text: str) -> list[tuple[str, str]]:
    """Classify every line: heading, table (with or without outer pipes), code, figure, or prose."""
    kinds, in_code = [], False
    lines = text.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if "|" in stripped and not stripped.startswith("|") and not in_code and \
                (_is_separator(next_line) and "-" in next_line or (kinds and kinds[-1][0] == "table")):
            stripped = line = "| " + stripped + " |"
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


def _is_separator(line: str) -> bool:
    return bool(line.strip()) and re.fullmatch(r"\|?[\s:|-]+\|?", line.strip()) is not None


def _classify_heading(title: str) -> object:
    lowered = title.lower()
    for section, pattern in HEADING_RULES:
        if re.search(pattern, lowered):
            return section
    number = re.match(r"(?:section\s*)?([1-5])[.):\s]", lowered)
    return int(number.group(1)) if number else None


def count_prose_words(text: str) -> int:
    """Words of prose: not tables, code, headings, figures or captions (a whole line in italics), nor the
    experiment log / appendix / an addendum written after the note (what `lorastudy next` appends)."""
    words, skipping = 0, False
    for kind, line in _split_lines(text):
        if kind == "heading":
            skipping = _classify_heading(line.lstrip("#").strip()) == "log"
        elif kind == "prose" and not skipping and not re.fullmatch(r"\*[^*].*[^*]\*", line.strip()):  # captions
            cleaned = re.sub(r"<[^>]+>|\[([^\]]*)\]\([^)]*\)", r"\1", line)
            words += len(re.findall(r"[A-Za-z0-9$±−+\[(][^\s]*", cleaned))
    return words
