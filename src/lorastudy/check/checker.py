"""Check any technical note (Markdown or HTML, generated or hand-written) against the rubric and against its run.

How it reads a note, so that its verdicts can be argued with:

* Not a note: a file with NUL bytes, bytes that are not UTF-8, a PDF, JSON, a
  CSV-shaped file (rows with the same number of delimiters) or fewer than 20
  words of prose and no heading is refused with a one-line error (exit 2).
* HTML is first flattened to the same Markdown-like text as a `.md` note
  (headings as `#`, table rows as `| a | b |`, `<code>` as backticks).
* Sections: a heading is assigned to a rubric section by keywords (weighting ->
  2, latency/deployment/cost -> 4, per-class/rare/tier -> 3, next/bottleneck ->
  5, systems/overall/comparison -> 1; a leading "1."-"5." decides when no
  keyword does). Deeper headings belong to the section above them. A note with
  no usable headings is split into paragraphs, each assigned by the same keywords.
* Every metric-like number (a percentage, a decimal, a number with a unit, a
  table cell, an integer next to a metric word; not code, years, section or
  figure numbers, confidence levels) is *read*: its metric kind, its entities
  (arm, class, tier, deployment context) and its sign.
  - A table cell takes its entities from its row (the first cell naming an arm,
    a class, a tier or a context, in human wording too: "Encoder LoRA +
    weighting", "SmolLM2 (weighted)", a model name from the config) and from
    its column header, its kind from its own text or else its column header
    (a header that names none inherits the kind of the column to its left).
  - A prose number takes, per entity type, the entities named in its clause
    (split at , ; : ( ) and "vs", "and", "while" ...), else in its sentence (an
    arm named only there stands for its family, except that a gap in a
    sentence setting LoRA against a full fine-tune is about exactly those two
    arms; a bare "LoRA" or "full fine-tune" belongs to the one model family
    the sentence names; a sentence about weighting also admits the weighted
    arm; a class is the one named last before the number, "noun.act (12 train)"). Its kind comes from its unit when that
    implies one (ms, $, MB, min, examples/s), else a metric word right after
    it ("0.374 macro F1", "2.7% of the weights"), else the nearest one before
    it in its clause, else after it in its clause. A clause naming an entity
    but no metric ("0.902 decoder") takes the metric of a same-shaped number in
    the last earlier clause naming the same kind of entity ("Spearman rho 0.943
    encoder"); otherwise the sentence's topic counts (an earlier clause with a
    metric word but no number or arm: "On macro F1, the decoder ..."), or the
    only metric the sentence names before it. A decimal is never read as a
    count. When no kind can be read, any kind is accepted; when no entity, any.
* With a run directory, every read number must agree with some artifact fact
  (see `lorastudy.check.facts`) on kind (when one was read), on every entity type
  read that the fact carries, and on sign (a number printed with + or − must
  equal a signed value; an unsigned one matches by absolute value), within the
  printed rounding and unit (61.3% matches 0.6127, 2.1 min 126 s, 22.7M
  22,730,541). A comparison's value (a fact about two arms, e.g. a
  difference) supports only a number that names both of its arms, or a change
  or gap (signed, in pp, under "Δ", "by", "minus" ...) that names one arm and
  no other model, so one arm's F1 cannot pass as another's; a gap that names
  two models (or sits in a sentence comparing them) needs a fact about both,
  and a validation score never stands for a test score. The sign of a
  difference is matched as printed: a flipped sign is caught unless the
  artifacts hold that pair's difference both ways round (the findings layer
  stores a reversed comparison only where the note prints one).
  A number the note states as a threshold of a prediction or a
  condition ("above 0.45", "if the SLA dropped below 60 ms") is not checked.
  Each failing number is listed with its sentence or row, what it was read as,
  and the nearest artifact value for that entity and kind.
* Evidence is recognised by content: numbers of the required kinds about the
  required entities inside each section (e.g. section 4 needs ms numbers for an
  encoder and a decoder, a cost/throughput/instances number, a named context,
  a recommendation naming a model and a conditional sentence with a number).
* Prose length: words outside tables, code, headings, figures and captions, and
  outside the experiment-log / appendix section; pages at 500 words per page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from lorastudy.core.errors import StudyError
from lorastudy.core.prose import _classify_heading, _is_separator, _split_lines, count_prose_words
from lorastudy.check.facts import ARMS, Fact, Vocabulary, run_facts, vocabulary

WORDS_PER_PAGE = 500
MAX_PAGES = 3
MIN_NOTE_WORDS = 20

SECTION_NAMES = {1: "Systems-level comparison", 2: "Class weighting on the decoder", 3: "Per-class analysis: rare vs common",
                 4: "Latency and deployment", 5: "What to do next"}
# How a note words a metric kind; more specific kinds first (a span claimed by one is not read again).
NOTE_KINDS = [
    ("zero_f1", r"zero[- ]?f1(?:[- ](?:classes|count))?|(?:classes\s+)?(?:at|to|with)\s+(?:an?\s+)?(?:zero|0)(?:[- ]f1)?(?![.\d])|"
                r"(?:classes\s+)?with\s+f1\s*(?:=|of)\s*(?:0|zero)(?![.\d])|f1\s*(?:=|of)\s*(?:0|zero)(?![.\d])|never predicted|"
                r"no correct predictions?|never (?:gets?|got) right|without a (?:single )?(?:hit|correct)"),
    ("macro_f1", r"macro[- ]?(?:averaged[- ])?(?:f1|f-score|f\b)?"),
    ("f1", r"\bf1\b|f-score"),
    ("accuracy", r"accura\w*|\bacc\b|\bcorrectly\b"),
    ("recall", r"recall"),
    ("precision", r"precision"),
    ("rho", r"\brho\b|spearman|ρ|rank correlation"),
    ("tau", r"\btau\b|τ"),
    ("headroom", r"headroom|of (?:the |its )?\w+ free|\bspare\b"),
    ("share", r"\bshare\b|proportion|fraction|of (?:the |all )?(?:test |its )?(?:[\w'’]+ )?"
              r"(?:predictions|outputs|examples|items|weights|parameters|param)"),
    ("throughput", r"throughput|examples?/s\b|per second|requests?/s\b|req/s|\brps\b"),
    ("cost", r"\bcosts?\b|price|per month|monthly|budget|per million"),
    ("latency", r"latenc\w*|\bp50\b|\bp95\b|\bp99\b|median|\bsla\b|response time"),
    ("instances", r"\binstances?\b|\breplicas?\b"),
    ("parameters", r"param\w*"),
    ("steps", r"\bsteps?\b"),
    ("epochs", r"\bepochs?\b"),
    ("batch_size", r"\bbatch(?:es)?\b(?= (?:of )?\d)|batch size"),
    ("memory", r"memory|\bram\b|\bdisk\b|\bsize\b"),
    ("ratio", r"\bfactor of\b|\b\d+-fold\b"),
    ("time", r"wall[- ]?time|\bminutes?\b|\bhours?\b|\bseconds\b|\bwindow\b|\btakes?\b|\btook\b|\btime\b"),
    ("count", r"support|train(?:ing)? (?:count|examples|rows|items)|\btrain\b|\bexamples\b|\brows\b|\bitems\b|\bcounts?\b|"
              r"\bclasses\b|complaints|requests"),
    ("seed", r"\bseeds?\b"),
]
KIND_ORDER = [kind for kind, _ in NOTE_KINDS]
UNIT_KIND = {"ms": "latency", "$": "cost", "MB": "memory", "GB": "memory", "min": "time", "h": "time", "s": "time",
             "examples/s": "throughput", "x": "ratio", "M": "magnitude", "k": "magnitude", "B": "magnitude"}
COMPATIBLE = {"f1": {"f1", "macro_f1"}, "share": {"share", "parameters"},
              "magnitude": {"parameters", "count", "throughput", "time"},
              "parameters": {"parameters", "share"}, "time": {"time", "latency"},
              "count": {"count", "zero_f1", "instances", "steps", "batch_size", "epochs", "seed"}}
COUNTS = {"count", "zero_f1", "instances", "steps", "epochs", "seed", "batch_size"}
UNITS = {"%": (100.0, 1.0), "pp": (100.0, 1.0), "M": (1e-6,), "k": (1e-3,), "B": (1e-9,), "min": (1 / 60, 1.0),
         "h": (1 / 3600, 1.0), "GB": (1 / 1024, 1.0), "ms": (1.0, 1000.0)}
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−+±]?)(?P<dollar>\$?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?(?![.,]?\d)"
    r"(?:\s?(?P<unit>%|pp\b|ms\b|s\b|min\b|h\b|MB\b|GB\b|M\b|k\b|B\b|examples/s|x\b))?(?![A-Za-z])")
METRIC_WORDS = r"zero|f1|class|classes|examples?|param|count|train|steps?|instances?|requests?|support|epochs?|tier|predicted"
COMPARATOR = r"(?:above|below|at least|at most|fewer than|more than|less than|under|over|beyond|exceeds?|exceeding|" \
             r"higher than|lower than|>|<|≥|≤)"
PREDICTIVE = r"\b(?:predict\w*|expect\w*|hypothes\w*|if|unless|would|should|will|target|threshold|goal|aim)\b"
ENCODER_WORDS = ["encoder", "encoders", "minilm", "roberta", "deberta", "electra", "modernbert", "bert"]
DECODER_WORDS = ["decoder", "decoders", "qwen", "smollm", "smollm2", "llama", "gpt", "mistral", "gemma"]
TFIDF = r"tf-?idf|logistic regression|\blogreg\b|bag[- ]of[- ]words"
FULL = r"\bfull(?:y)?\b|full[- ]?f(?:ine[- ]?)?t"
WEIGHTED = r"weight|\bcw\b"
UNWEIGHTED = r"unweighted|without (?:class )?weight|no (?:class )?weight|before weight|vanilla|plain"
DIFFERENCE = r"Δ|delta|change|diff|gain|lift|drop|loss|minus|−|relative|moved|\bby\b|ahead|behind|higher|lower|" \
             r"more|less|fewer|improv|gap|\bvs\.?\b|versus|over\b|than"
GENERIC_CONTEXTS = r"real[- ]?time|triage|nightly|batch job|audit|compliance|stream\w*|interactive|online|offline|overnight"


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
class Reading:
    """One number of the note and what it was read as."""

    printed: str
    value: float  # as printed, sign included
    decimals: int
    unit: str | None
    signed: bool
    kind: str | None  # the metric word it was read with (None: any)
    entities: dict[str, set[str]]
    where: str  # the sentence or table row it sits in
    section: object
    threshold: bool = False
    accepts: frozenset[str] | None = None  # fact kinds it may match; None: any
    difference: bool = False  # printed as a change or a gap (signed, pp, "Δ", "by", "minus" ...)
    between: bool = False  # a gap between the models its sentence names: no one arm's value supports it

    def described(self) -> str:
        names = "; ".join(f"{k} {'/'.join(sorted(v))}" for k, v in self.entities.items() if v) or "no entity"
        return f"{self.kind or 'any kind'}, {names}"


@dataclass
class Mismatch:
    reading: Reading
    nearest: Fact | None

    def line(self) -> str:
        where = self.reading.where if len(self.reading.where) <= 140 else self.reading.where[:137] + "…"
        near = (f"nearest {self.nearest.source} = {self.nearest.value:g}" if self.nearest
                else "no artifact value of that kind for that entity")
        return f"{self.reading.printed} (read as {self.reading.described()}) in “{where}”: {near}"


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


# --- reading a file -------------------------------------------------------


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
        return _sentences("\n".join(self.prose))

    def paragraphs(self) -> list[str]:
        return [p for p in "\n".join(self.prose).split("\n\n") if p.strip()] if self.prose else []


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(*\[\"“`$+−-])|\n", text) if s.strip()]


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


# --- entities and kinds in the note's words --------------------------------


@dataclass
class _Names:
    """Regexes for the entities of one run (or generic ones without a run)."""

    vocab: Vocabulary
    encoder: str = ""
    decoder: str = ""
    labels: re.Pattern | None = None
    tiers: list[tuple[str, str]] = field(default_factory=list)  # (tier, pattern)
    contexts: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, vocab: Vocabulary) -> "_Names":
        def family(words: list[str], key: str) -> str:
            names = sorted(set(words) | set(vocab.model_names.get(key, [])), key=len, reverse=True)
            return r"\b(?:" + "|".join(re.escape(n) for n in names) + r")(?:[-\w]*)\b"

        names = cls(vocab, family(ENCODER_WORDS, "encoder"), family(DECODER_WORDS, "decoder"))
        labels = sorted((x for x in vocab.labels if len(x) > 2 and not x.isdigit()), key=len, reverse=True)
        if labels:
            names.labels = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(x) for x in labels) + r")(?![\w])")
        tiers = vocab.tiers or ["rare", "common"]
        names.tiers = [(t, rf"\b{re.escape(t.lower())}\b") for t in tiers]
        if len(tiers) >= 2:
            names.tiers += [(tiers[0], r"\btail\b|\brare\b"), (tiers[-1], r"\bhead\b|\bfrequent\b|\bcommon\b")]
        words: dict[str, list[str]] = {}
        for context in vocab.contexts:
            for word in re.findall(r"[\w-]{6,}", context.lower()):
                words.setdefault(word, []).append(context)
        for context in vocab.contexts:
            distinctive = [w for w in re.findall(r"[\w-]{6,}", context.lower()) if len(words[w]) == 1]
            names.contexts.append((context, r"\b(?:" + "|".join(map(re.escape, [context.lower()] + distinctive)) + r")\b"))
        return names

    def find(self, text: str, strict_weighting: bool) -> dict[str, set[str]]:
        """Entities named in a piece of text, by type."""
        found: dict[str, set[str]] = {}
        arms = self.arms(text, strict_weighting)
        if arms:
            found["arm"] = arms
        if self.labels is not None:
            labels = set(self.labels.findall(text))
            if labels:
                found["label"] = labels
        lowered = text.lower()
        tiers = {tier for tier, pattern in self.tiers if re.search(pattern, lowered)}
        if tiers:
            found["tier"] = tiers
        if re.search(r"\bval(?:idation|\.)?\b", lowered):
            found["split"] = {"validation"}
        contexts = {context for context, pattern in self.contexts if re.search(pattern, lowered)}
        if contexts:
            found["context"] = contexts
        return found

    def arms(self, text: str, strict_weighting: bool) -> set[str]:
        """Arms named in text: canonical ids, TF-IDF, or a family word (encoder, a model name) with its qualifiers."""
        arms = {a for a in ARMS if re.search(rf"(?<![a-z_]){a}(?![a-z_])", text)}
        text = re.sub(r"(?:" + "|".join(ARMS) + r")", " ", text)
        if re.search(TFIDF, text, re.I):
            arms.add("tfidf_logreg")
        mentions = sorted([(m.start(), m.end(), "encoder") for m in re.finditer(self.encoder, text, re.I)]
                          + [(m.start(), m.end(), "decoder") for m in re.finditer(self.decoder, text, re.I)])
        if not mentions and re.search(r"full[- ]?(?:fine[- ]?tun\w*|ft\b|finetun\w*)|fully fine[- ]?tuned", text, re.I):
            mentions = [(m.start(), m.end(), "encoder") for m in re.finditer(r"full", text, re.I)][:1]
        windows = []
        for i, (start, end, family) in enumerate(mentions):
            left = mentions[i - 1][1] if i else 0
            right = mentions[i + 1][0] if i + 1 < len(mentions) else len(text)
            windows.append((max(left, start - 25), min(right, end + 45)))
            window = text[slice(*windows[-1])].lower()
            methods = ["lora"] if family == "decoder" or ("lora" in window and not re.search(FULL, window)) else \
                ["full"] if re.search(FULL, window) and "lora" not in window else ["lora", "full"]
            arms.update(f"{family}_{m}{v}" for m in methods for v in _variants(window, strict_weighting))
        families = {family for *_, family in mentions}
        if len(families) == 1:  # "the encoder's full fine-tune ... with LoRA": a bare method word is that family's
            family = families.pop()
            for method, pattern in (("lora", r"\blora\b"), ("full", FULL)):
                for m in re.finditer(pattern, text, re.I):
                    if f"{family}_{method}" in ARMS and not any(lo <= m.start() < hi for lo, hi in windows):
                        window = text[max(0, m.start() - 25):m.end() + 45].lower()
                        arms.update(f"{family}_{method}{v}" for v in _variants(window, strict_weighting))
        return arms


def _variants(window: str, strict_weighting: bool) -> list[str]:
    """Arm suffixes a mention's surroundings allow: weighted ("_cw"), unweighted, or both when unsure."""
    weighted = re.search(WEIGHTED, window) and not re.search(UNWEIGHTED, window)
    return [""] if not weighted else ["_cw"] if strict_weighting else ["", "_cw"]


def _kind_matches(text: str) -> list[tuple[int, int, str]]:
    """Metric-kind words in text with their spans; a span claimed by a more specific kind is not read again."""
    claimed: list[tuple[int, int, str]] = []
    lowered = text.lower()
    for kind, pattern in NOTE_KINDS:
        for m in re.finditer(pattern, lowered):
            if m.end() > m.start() and not any(s < m.end() and m.start() < e for s, e, _ in claimed):
                claimed.append((m.start(), m.end(), kind))
    return sorted(claimed)


def _read_kind(sentence: str, clause: tuple[int, int], start: int, end: int, unit: str | None) -> str | None:
    """The kind of the number at [start, end) of a sentence: its unit, a metric word right after it, else the nearest
    before it in its clause, else after it in its clause; None when the clause names none."""
    if unit in UNIT_KIND:
        return UNIT_KIND[unit]
    if re.search(r"(?<![\w.])\d+\s+(?:out\s+)?of\s+(?:the\s+|all\s+)?$", sentence[:start]):
        return "count"  # the M of "N of M classes": a total
    kinds = [k for k in _kind_matches(sentence) if clause[0] <= k[0] and k[1] <= clause[1]
             and not (unit in ("%", "pp") and k[2] in COUNTS)]  # a percentage is never a count
    after = [k for k in kinds if k[0] >= end]
    if after and re.fullmatch(r"\s*(?:[\w'’-]+\s+){0,2}", sentence[end:after[0][0]]) and \
            not re.search(r"\b(?:and|or|vs|to|from|but|while)\b", sentence[end:after[0][0]]):
        return after[0][2]
    if re.fullmatch(r"\d+", sentence[start:end].strip(" +-−")) and re.match(r"\s+(?:\w+\s+)?\w{3,}s\b", sentence[end:]):
        return "count"  # "12 rare supersenses": an integer counting things
    before = [k for k in kinds if k[1] <= start]
    if before:
        return before[-1][2]
    return after[0][2] if after else None


def _clauses(sentence: str) -> list[tuple[int, int]]:
    """Clause spans: split at , ; : ( ) and "vs"/"versus"/"against"/"while"/"whereas", not inside [...] intervals."""
    spans, start, depth = [], 0, 0
    for i, char in enumerate(sentence):
        depth += char == "["
        depth -= char == "]" and depth > 0
        if depth == 0 and char in ",;:()" and not (char == "," and re.match(r",\d{3}", sentence[i:i + 4])):
            spans.append((start, i))
            start = i + 1
    spans.append((start, len(sentence)))
    result = []
    for s, e in spans:
        cut = s
        for m in re.finditer(r"\s(?:vs\.?|versus|against|while|whereas|compared with|and)\s", sentence[s:e]):
            result.append((cut, s + m.start()))
            cut = s + m.end()
        result.append((cut, e))
    return result


# --- numbers --------------------------------------------------------------


def _numbers(text: str) -> list[re.Match]:
    return list(NUMBER.finditer(re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), text)))


def _metric_like(match: re.Match, line: str, in_table: bool) -> bool:
    line = re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)
    after = line[match.end():match.end() + 30].lower()
    if match.group("unit") == "%" and re.match(r"\s*(?:ci|confidence|interval|bootstrap|credible)", after):
        return False  # a confidence level, not a result
    if match.group("unit") or match.group("dec") or match.group("dollar"):
        return True
    value = int(match.group("int").replace(",", ""))
    before = line[:match.start()].lower()
    if re.search(r"(section|seed|weeks?|figure|table|fig\.|tier|§)\s*$|\d\s*[-–]\s*$", before) or \
            re.match(r"\s*[-–]\s*\d", after):
        return False
    if 1900 <= value <= 2100 and not in_table:
        return False
    if in_table:
        return True
    window = line[max(0, match.start() - 40):match.end() + 45].lower()
    return re.search(METRIC_WORDS, window) is not None or any(k != "seed" for _, _, k in _kind_matches(window))


def _unit(match: re.Match, text: str) -> str | None:
    """The number's unit: printed after it, spelled as a word ("60-minute", "3 seconds"), or shared with a range's end."""
    if match.group("unit"):
        return match.group("unit")
    after = text[match.end():]
    word = re.match(r"[-\s](minutes?|mins?|hours?|seconds?|milliseconds?)\b", after)
    if word:
        return {"mi": "min", "ho": "h", "se": "s"}.get(word.group(1)[:2], "ms")
    shared = re.match(r"\s*(?:to|–|-|and)\s*[-−+]?\$?\d[\d,]*(?:\.\d+)?\s?(%|pp|ms|s|min|h|MB|GB|M|k|B)(?![A-Za-z])", after)
    return shared.group(1) if shared else None


def _accepted(kinds: list[str]) -> frozenset[str] | None:
    return frozenset(k for kind in kinds for k in COMPATIBLE.get(kind, {kind})) if kinds else None


def _families(arms) -> set[str]:
    """The model families (encoder, decoder, tfidf) some arms belong to."""
    return {a.split("_")[0] for a in arms}


def _family(arms: set[str]) -> set[str]:
    """An arm named only somewhere in the sentence may stand for its family (the sentence compares its members)."""
    named = _families(arms)
    return {a for a in ARMS if a.split("_")[0] in named}


def _models(arms) -> set[str]:
    """The models some arms train, weighted or not (encoder_lora and encoder_lora_cw are one model)."""
    return {a.removesuffix("_cw") for a in arms}


def _with_weighted(arms: set[str]) -> set[str]:
    """The arms and their class-weighted twins: a number about weighting is about both."""
    return arms | {f"{a}_cw" for a in arms if f"{a}_cw" in ARMS}


def _reading(match: re.Match, text: str, kind: str | None, entities: dict[str, set[str]], where: str,
             section: object, context: str, between: bool = False) -> Reading:
    sign = match.group("sign")
    unit = _unit(match, text)
    value = float(match.group("int").replace(",", "") + (match.group("dec") or ""))
    signed = sign in ("+", "-", "−")
    if sign in ("-", "−"):
        value = -value
    before = text[max(0, match.start() - 60):match.start()]
    threshold = bool(re.search(COMPARATOR + r"\s+(?:[\w'’.-]+\s+){0,3}$", before, re.I)) and \
        (section == 5 or bool(re.search(PREDICTIVE, where, re.I)))
    if match.group("dollar"):
        kind = "cost"
    if kind in COUNTS and len(match.group("dec") or "") > 2 and not unit:
        kind = None  # "0.277" is no count: the metric word belonged to another number ("13.7" is a seed mean)
    difference = _is_gap(match, text, context)
    return Reading(match.group(0).strip(), value, len(match.group("dec") or ".") - 1, unit, signed,
                   kind, entities, where, section, threshold, _accepted([kind] if kind else []), difference, between)


def _is_gap(match: re.Match, text: str, clause: str) -> bool:
    """A signed number, a number in pp, or one in a clause that words a change ("by", "minus", "Δ" ...)."""
    return match.group("sign") in ("+", "-", "−") or _unit(match, text) == "pp" or bool(re.search(DIFFERENCE, clause, re.I))


def read_note_numbers(text: str, vocab: Vocabulary | None = None) -> list[Reading]:
    """Every metric-like number of a note's (Markdown-like) text, read with a run's vocabulary of entity names."""
    return read_numbers(_sections(text), _Names.of(vocab or Vocabulary()))


def read_numbers(blocks: dict[object, _Block], names: _Names) -> list[Reading]:
    """Every metric-like number of the note, read in context (see the module docstring)."""
    readings: list[Reading] = []
    for section, block in blocks.items():
        for header, rows in block.tables:
            readings += _read_table(header, rows, names, section)
        for sentence in block.sentences():
            readings += _read_sentence(sentence, names, section)
    return readings


def _read_sentence(sentence: str, names: _Names, section: object) -> list[Reading]:
    found = []
    clauses = _clauses(sentence)
    sentence_entities = names.find(sentence, strict_weighting=False)
    families = _families(sentence_entities.get("arm", ()))
    about_weighting = re.search(WEIGHTED, sentence, re.I)
    lora_vs_full = bool(re.search(r"\blora\b", sentence, re.I) and re.search(FULL, sentence, re.I))
    for match in _numbers(sentence):
        if not _metric_like(match, sentence, in_table=False):
            continue
        clause = next((c for c in clauses if c[0] <= match.start() < c[1]), (0, len(sentence)))
        clause_text = sentence[clause[0]:clause[1]]
        in_clause = names.find(clause_text, strict_weighting=False)
        entities = {**sentence_entities, **in_clause}
        if "label" in entities and "label" not in in_clause:
            entities["label"] = _nearest_label(sentence, match.start(), names) or entities["label"]
        between = False
        if "arm" in entities and "arm" not in in_clause:
            # about every arm named: two families, or a gap in a sentence setting LoRA against a full fine-tune
            just_before = sentence[max(clause[0], match.start() - 30):match.start()]
            between = len(families) > 1 or (lora_vs_full and len(_models(entities["arm"])) > 1
                                             and _is_gap(match, sentence, just_before))
            entities["arm"] = set(entities["arm"]) if between else _family(entities["arm"])
        elif "arm" in in_clause and len(families) > len(_families(in_clause["arm"])) and \
                (_unit(match, sentence) == "pp" or re.search(DIFFERENCE, clause_text, re.I)):
            entities["arm"] = in_clause["arm"] | sentence_entities["arm"]  # a gap to the other model the sentence names
        if "arm" in entities and about_weighting and not re.search(UNWEIGHTED, clause_text, re.I):
            entities["arm"] = _with_weighted(entities["arm"])
        kind = _read_kind(sentence, clause, match.start(), match.end(), _unit(match, sentence))
        if kind is None and in_clause:
            kind = _parallel_kind(sentence, clauses, clause, names, (_unit(match, sentence), bool(match.group("dec"))))
        if kind is None:
            kind = _topic_kind(sentence, clauses, match.start(), names)
        if kind is None:
            kind = _only_kind_before(sentence, match.start())
        found.append(_reading(match, sentence, kind, entities, sentence, section, clause_text, between))
    return found


def _parallel_kind(sentence: str, clauses: list[tuple[int, int]], clause: tuple[int, int], names: _Names,
                   shape: tuple[str | None, bool]) -> str | None:
    """A clause that names an entity but no metric ("0.902 decoder") shares the metric of a number of the same shape
    (unit, decimals or not) in the last earlier clause naming an entity of the same type ("Spearman rho 0.943 encoder")."""
    types = set(names.find(sentence[clause[0]:clause[1]], strict_weighting=False))
    for start, end in reversed([c for c in clauses if c[1] <= clause[0]]):
        if not types & set(names.find(sentence[start:end], strict_weighting=False)):
            continue
        for match in _numbers(sentence[start:end]):
            if (_unit(match, sentence[start:end]), bool(match.group("dec"))) != shape:
                continue
            kind = _read_kind(sentence, (start, end), start + match.start(), start + match.end(), _unit(match, sentence[start:end]))
            if kind:
                return kind
    return None


def _topic_kind(sentence: str, clauses: list[tuple[int, int]], start: int, names: _Names) -> str | None:
    """The metric of the nearest earlier clause without numbers or arms: the sentence's topic ("On macro F1, the decoder ...")."""
    for clause_start, clause_end in reversed([c for c in clauses if c[1] <= start]):
        text = sentence[clause_start:clause_end]
        kinds = _kind_matches(text)
        if kinds and not _numbers(text) and "arm" not in names.find(text, strict_weighting=False):
            return kinds[-1][2]
    return None


def _only_kind_before(sentence: str, start: int) -> str | None:
    """The metric named before the number when the sentence so far names only one ("... macro F1 change ... (+0.008")."""
    kinds = {k for _, end, k in _kind_matches(sentence) if end <= start}
    return kinds.pop() if len(kinds) == 1 else None


def _nearest_label(sentence: str, start: int, names: _Names) -> set[str]:
    """The class named last before a number ("noun.act (12 train)"), else the first after it."""
    if names.labels is None:
        return set()
    mentions = list(names.labels.finditer(sentence))
    before = [m for m in mentions if m.end() <= start]
    chosen = before[-1:] or [m for m in mentions if m.start() >= start][:1]
    return {m.group(0) for m in chosen}


def _read_table(header: list[str], rows: list[list[str]], names: _Names, section: object) -> list[Reading]:
    found = []
    column_kinds: list[str | None] = []
    for cell in header:
        kinds = _kind_matches(re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", cell))
        if all(k == "count" for _, _, k in kinds):
            kinds = _kind_matches(cell) or kinds
        specific = min((k for _, _, k in kinds), key=KIND_ORDER.index, default=None)
        column_kinds.append(specific or (column_kinds[-1] if column_kinds else None))
    column_entities = [names.find(cell, strict_weighting=True) for cell in header]
    weighting_table = any(re.search(WEIGHTED, cell, re.I) for cell in header)  # its rows are arms before and after
    for row in rows:
        row_entities: dict[str, set[str]] = {}
        for cell in row:
            if not _numbers(cell) or re.search(r"[A-Za-z]{3}", re.sub(r"`[^`]*`", "", cell)):
                for key, value in names.find(cell, strict_weighting=True).items():
                    row_entities.setdefault(key, value)
        where = "| " + " | ".join(row) + " |"
        for index, cell in enumerate(row):
            for match in _numbers(cell):
                if not _metric_like(match, cell, in_table=True):
                    continue
                entities = {**row_entities, **(column_entities[index] if index < len(header) else {})}
                if "arm" in entities and (re.search(r"→|->|\bto\b", cell[:match.start()]) or weighting_table):
                    entities["arm"] = _with_weighted(entities["arm"])
                percent = _unit(match, cell) in ("%", "pp")
                own = [k for k in _kind_matches(cell) if k[1] <= match.start() and not (percent and k[2] in COUNTS)]
                kind = UNIT_KIND.get(_unit(match, cell) or "") or (own[-1][2] if own else None) or \
                    (column_kinds[index] if index < len(column_kinds) else None)
                context = (header[index] if index < len(header) else "") + " " + cell
                found.append(_reading(match, cell, kind, entities, where, section, context))
    return found


def _scales(unit: str | None) -> tuple[float, ...]:
    return UNITS.get(unit or "", (1.0,))


def value_matches(reading: Reading, value: float) -> bool:
    """Does an artifact value, shown in the reading's unit and rounding, read as the printed number (sign included)?"""
    tolerance = 0.5 * 10.0 ** -reading.decimals + 1e-9
    for scale in _scales(reading.unit):
        shown = value * scale
        if reading.signed:
            if abs(shown - reading.value) <= tolerance:
                return True
        elif abs(abs(shown) - abs(reading.value)) <= tolerance:
            return True
    return False


def agrees(reading: Reading, fact: Fact) -> bool:
    """Kind and entities agree (value aside): the kind when one was read; each entity type the fact carries."""
    if reading.accepts is not None and fact.kind not in reading.accepts:
        return False
    if "validation" in fact.entities.get("split", ()) and "validation" not in reading.entities.get("split", ()):
        return False  # a validation score does not stand for the test score a note reports by default
    arms = fact.entities.get("arm", frozenset())
    named = reading.entities.get("arm", set())
    if len(arms) >= 2 and named and len(arms & named) < 2 and (not reading.difference or len(named) >= 2):
        return False  # a comparison's value is not one arm's metric, nor a gap between two other arms
    if reading.difference and fact.kind != "rho" and len(arms) == 1 and (reading.between or len(_families(named)) > 1):
        return False  # a gap between two models is not one arm's value
    return all(not fact.entities.get(kind) or fact.entities[kind] & names
               for kind, names in reading.entities.items() if names)


def _nearest(reading: Reading, facts: list[Fact]) -> Fact | None:
    candidates = [f for f in facts if agrees(reading, f)]
    if not candidates:
        return None
    return min(candidates, key=lambda f: min(abs(abs(f.value * s) - abs(reading.value)) for s in _scales(reading.unit)))


def trace_numbers(readings: list[Reading], facts: list[Fact]) -> list[Mismatch]:
    """The readings no artifact fact supports."""
    mismatches = []
    for reading in readings:
        if reading.threshold:
            continue
        if not any(agrees(reading, f) and value_matches(reading, f.value) for f in facts):
            mismatches.append(Mismatch(reading, _nearest(reading, facts)))
    return mismatches


# --- evidence by content --------------------------------------------------


def _about(readings: list[Reading], kinds: set[str] | None = None, family: str | None = None,
           entity_type: str | None = None) -> list[Reading]:
    """Readings of some kinds, about an arm of a family (encoder/decoder) or naming an entity type."""
    return [r for r in readings
            if (kinds is None or r.kind in kinds)
            and (family is None or any(a.startswith(family) for a in r.entities.get("arm", ())))
            and (entity_type is None or r.entities.get(entity_type))]


def _both(kinds: set[str], entity_type: str | None = None) -> Callable[[_Block, list[Reading]], bool]:
    return lambda b, rs: all(_about(rs, kinds, family, entity_type) for family in ("encoder", "decoder"))


def _sentence_with(pattern: str, numbers: int = 1) -> Callable[[_Block, list[Reading]], bool]:
    return lambda b, rs: any(re.search(pattern, s, re.I) and len(_numbers(s)) >= numbers for s in b.sentences())


def _named_classes(block: _Block, readings: list[Reading]) -> bool:
    named = {label for r in readings for label in r.entities.get("label", ())}
    if len(named) >= 2:
        return True
    return len(set(re.findall(r"`([^`\s]{3,40})`|\b([a-z]+\.[a-z_]+)\b", block.text))) >= 2


def _bottleneck(block: _Block, readings: list[Reading]) -> bool:
    pattern = r"bottleneck|limit\w*|constrain\w*|holding (?:it )?back|weak(?:est)? (?:point|link)|the problem is|fails? on"
    return any(re.search(pattern, p, re.I) and len([m for m in _numbers(p) if _metric_like(m, p, False)]) >= 2
               for p in block.paragraphs())


def _recommendation(block: _Block, readings: list[Reading], names: _Names) -> bool:
    verbs = r"recommend|\bchoose\b|\bchoice\b|\bpick\b|\bprefer|go with|\bdeploy\b|should (?:use|run|serve|ship)|\buse (?:the )?\w+ for|" \
            r"is the (?:better |right )?(?:choice|pick)|\bwins\b"
    lines = block.sentences() + ["| " + " | ".join(h) + " " + " | ".join(c for r in rows for c in r) for h, rows in block.tables]
    return any(re.search(verbs, s, re.I) and names.arms(s, strict_weighting=False) for s in lines)


def _evidence(names: _Names) -> dict[int, list[tuple[str, Callable[[_Block, list[Reading]], bool]]]]:
    causal = r"\bbecause\b|\bsince\b|\bso\b|\bexplain|due to|\bas a result\b|\btherefore\b|\bthus\b|which is why|mechanism|" \
             r"\bdriv|\bcaus|\bleads? to\b"
    conditional = r"\bif\b|\bunless\b|\bonce\b|\bwhenever\b|break[- ]?even|as long as|would (?:change|flip|switch|tip)|" \
                  + COMPARATOR + r"\s+(?:[\w'’.-]+\s+){0,3}\$?\d"
    return {
        1: [("accuracy for both models", _both({"accuracy"})),
            ("macro F1 for both models", _both({"macro_f1"})),
            ("zero-F1 count for both models", _both({"zero_f1"})),
            ("trainable parameter share for both", _both({"share", "parameters"})),
            ("comparison with the full fine-tune", lambda b, rs: any("encoder_full" in r.entities.get("arm", ()) for r in rs)),
            ("what the aggregates hide (a tier or class)", lambda b, rs: bool({"tier", "label"} & set(names.find(b.text, False))))],
        2: [("decoder accuracy with weighting", lambda b, rs: bool(_about(rs, {"accuracy"}, "decoder"))),
            ("decoder macro F1 with weighting", lambda b, rs: bool(_about(rs, {"macro_f1"}, "decoder"))),
            ("decoder zero-F1 count with weighting", lambda b, rs: bool(_about(rs, {"zero_f1"}, "decoder"))),
            ("effect size for the encoder", lambda b, rs: any(r.signed or r.unit == "pp" for r in _about(rs, None, "encoder"))),
            ("a mechanism grounded in numbers", _sentence_with(causal))],
        3: [("tier breakdown", lambda b, rs: len({t for r in rs for t in r.entities.get("tier", ())}) >= 2),
            ("mean F1 per tier for both models", _both({"f1", "macro_f1"}, "tier")),
            ("zero-F1 per tier for both models", _both({"zero_f1"}, "tier")),
            ("specific classes named", _named_classes)],
        4: [("latency numbers for both models", lambda b, rs: all(
                [r for r in _about(rs, {"latency"}, family) if r.unit == "ms" or r.kind == "latency"]
                for family in ("encoder", "decoder"))),
            ("throughput, cost or SLA translation", lambda b, rs: bool(_about(rs, {"throughput", "cost", "instances"})
                                                                       or any(r.unit == "$" for r in rs))),
            ("a named operational context", lambda b, rs: bool(_about(rs, entity_type="context"))
                or re.search(GENERIC_CONTEXTS, b.text, re.I) is not None),
            ("a recommendation naming a model", lambda b, rs: _recommendation(b, rs, names)),
            ("a condition that would change it (with a number)", _sentence_with(conditional))],
        5: [("a proposed experiment", _sentence_with(r"\b(?:experiment|ablation|re-?train|re-?run|train|try|collect|"
                                                     r"fine-?tune|swap|replace|test whether|compare)\b", numbers=0)),
            ("a hypothesis (causal statement)", _sentence_with(r"hypothes|\bbecause\b|\bcaus|due to|suppress|\bdriv|"
                                                              r"\blimits?\b|\bexplains?\b|comes from|is responsible", 0)),
            ("a numeric prediction (a threshold)", _sentence_with(COMPARATOR + r"\s+(?:[\w'’.-]+\s+){0,4}?[-+−]?\$?\d")),
            ("a bottleneck with two numbers of evidence", _bottleneck),
            ("an alternative weighed", _sentence_with(r"instead of|rather than|alternative|over (?:a|the) |other option|"
                                                      r"\bchose\b|\bconsidered\b|cheaper than|better than|not (?:a|the) ", 0))],
    }


# --- the check ------------------------------------------------------------


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
