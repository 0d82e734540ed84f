"""A note file read as Markdown-like text, or refused when it is not a note.

* Not a note: a file with NUL bytes, bytes that are not UTF-8, a PDF, JSON, a
  CSV-shaped file (rows with the same number of delimiters) or fewer than 20
  words of prose and no heading is refused with a one-line error (exit 2).
* HTML is first flattened to the same Markdown-like text as a `.md` note
  (headings as `#`, table rows as `| a | b |`, `<code>` as backticks, `<em>` as asterisks, so an italic
  caption is no more prose than in Markdown).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from lorastudy.core.errors import StudyError
from lorastudy.core.prose import _split_lines, count_prose_words

MIN_NOTE_WORDS = 20


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
            self.row, self.header_row = [], True
        elif tag in ("td", "th"):
            self.cell = []
            self.header_row = self.header_row and tag == "th"  # a row of <th> only; <th scope="row"> starts a data row
        elif tag == "code":
            self._text("`")
        elif tag in ("em", "i") and self.cell is None:  # a paragraph all in italics is a caption, as in Markdown
            self._text("*")
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
        elif tag in ("em", "i") and self.cell is None:
            self._text("*")
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
    """The note as Markdown-like text, whatever its format; a file that is not a note is a StudyError."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"Note {path} does not exist.", "pass the path of a .md or .html note.")
    raw = path.read_bytes()
    _refuse_non_note(path, raw)
    text = raw.decode("utf-8-sig")
    if path.suffix.lower() in (".html", ".htm") or re.search(r"<(?:!doctype|html|body|h[1-6]|p)\b", text[:2000], re.I):
        parser = _HtmlToText()
        parser.feed(text)
        text = parser.text()
    if not any(kind == "heading" for kind, _ in _split_lines(text)) and count_prose_words(text) < MIN_NOTE_WORDS:
        raise StudyError(f"{path} is not a note: it has no headings and fewer than {MIN_NOTE_WORDS} words of prose.",
                         "pass the Markdown or HTML note itself.")
    return text


def _refuse_non_note(path: Path, raw: bytes) -> None:
    """Decide by content that a file is not a note (binary, PDF, JSON, CSV) before reading it as one."""
    fix = "pass the Markdown or HTML note itself (e.g. runs/demo/note/note.md), not a data or binary file."
    if not raw.strip():
        raise StudyError(f"{path} is empty, so it is not a note.", fix)
    if raw.startswith(b"%PDF"):
        raise StudyError(f"{path} is a PDF, not a Markdown or HTML note.", fix)
    if b"\x00" in raw[:65536]:
        raise StudyError(f"{path} is a binary file (it contains NUL bytes), not a note.", fix)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StudyError(f"{path} is not UTF-8 text, so it is not a note.", fix) from None
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            raise StudyError(f"{path} is JSON data, not a note.", fix)
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) >= 2 and not any(line.lstrip().startswith(("#", "<", "|")) for line in lines):
        for delimiter in (",", "\t", ";"):
            counts = [line.count(delimiter) for line in lines]
            header_like = all(len(field.split()) <= 4 for field in lines[0].split(delimiter))
            if counts[0] >= 1 and header_like and sum(c == counts[0] for c in counts) >= 0.8 * len(counts):
                raise StudyError(f"{path} looks like a table of data ({delimiter!r}-separated rows), not a note.", fix)
