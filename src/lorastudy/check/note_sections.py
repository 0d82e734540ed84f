"""A note's text grouped into rubric sections, each with its prose (sentences, paragraphs) and its tables.

* Sections: a heading is assigned to a rubric section by keywords (weighting ->
  2, latency/deployment/cost -> 4, per-class/rare/tier -> 3, next/bottleneck ->
  5, systems/overall/comparison -> 1; a leading "1."-"5." decides when no
  keyword does). Deeper headings belong to the section above them. A note with
  no usable headings is split into paragraphs, each assigned by the same keywords.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lorastudy.core.prose import _classify_heading, _is_separator, _split_lines

SECTION_NAMES = {1: "Systems-level comparison", 2: "Class weighting on the decoder", 3: "Per-class analysis: rare vs common",
                 4: "Latency and deployment", 5: "What to do next"}


@dataclass
class _Block:
    """One section's content: prose lines and tables (header cells, data rows)."""

    heading: str | None = None
    prose: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)  # the prose line right before each table

    @property
    def text(self) -> str:
        rows = [" | ".join(h + [c for r in rows for c in r]) for h, rows in self.tables]
        return "\n".join(self.prose + rows)

    def sentences(self) -> list[str]:
        return _sentences("\n".join(self.prose))

    def paragraphs(self) -> list[str]:
        return [p for p in "\n".join(self.prose).split("\n\n") if p.strip()] if self.prose else []


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(*\[\"“`$+−-]|[a-z]+\.[a-z_]+\b)|\n", text) if s.strip()]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _sections(text: str) -> dict[object, _Block]:
    """Group the note's lines into rubric sections (1-5, "log", "limitations"; anything else under "other")."""
    blocks: dict[object, _Block] = {"other": _Block(heading=None)}
    current: object = "other"
    current_level = 0
    table: list[str] = []
    lines = _split_lines(text)
    has_h2 = any(kind == "heading" and line.startswith("##") for kind, line in lines)

    def close_table():
        rows = [_cells(line) for line in table if not _is_separator(line)]
        if rows:
            blocks[current].tables.append((rows[0], rows[1:]))
            prose = [p for p in blocks[current].prose if p]
            blocks[current].captions.append(prose[-1] if prose and last_kind[0] == "prose" else "")
        table.clear()

    last_kind = [""]
    for kind, line in lines:
        if kind != "table":
            close_table()
            if line.strip():
                last_kind[0] = kind
        if kind == "heading":
            level = len(line) - len(line.lstrip("#"))
            if level == 1 and has_h2:
                continue  # the document title, not a section
            title = line.lstrip("#").strip()
            assigned = _classify_heading(title)
            if assigned is None or (current != "other" and level > current_level):
                continue
            current, current_level = assigned, level
            blocks.setdefault(current, _Block(heading=title))
        elif kind == "table":
            table.append(line)
        elif kind == "prose":
            if line.strip():
                blocks[current].prose.append(line.strip())
            elif blocks[current].prose and blocks[current].prose[-1]:
                blocks[current].prose.append("")  # keep paragraph breaks
    close_table()
    if not any(k in blocks for k in SECTION_NAMES):
        blocks = _sections_by_paragraph(blocks["other"])
    return blocks


def _sections_by_paragraph(everything: _Block) -> dict[object, _Block]:
    """Fallback for notes without usable headings: each prose paragraph joins the section its keywords point to."""
    blocks: dict[object, _Block] = {"other": _Block(heading=None, tables=everything.tables)}
    for paragraph in everything.paragraphs():
        section = _classify_heading(paragraph[:400])
        if section not in SECTION_NAMES:
            section = "other"
        blocks.setdefault(section, _Block(heading=f"(paragraph) {paragraph[:40].strip()}…"))
        blocks[section].prose.extend(paragraph.splitlines() + [""])
    return blocks
