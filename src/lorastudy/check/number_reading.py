"""Every metric-like number of a note, read in context: its metric kind, its entities and its sign.

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
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from lorastudy.check.derivations import GROUP_WORDS
from lorastudy.check.entity_names import FULL, UNWEIGHTED, WEIGHTED, _families, _family, _models, _Names, _with_weighted
from lorastudy.check.facts import Vocabulary
from lorastudy.check.metric_kinds import COUNTS, KIND_ORDER, NOT_PERCENT, NOTE_KINDS, UNIT_KIND, _accepted, _kind_matches, _read_kind
from lorastudy.check.note_sections import _Block, _sections
from lorastudy.check.printed_numbers import _approx, _bound, _metric_like, _numbers, _rate_shared, _unit

PROPOSAL = r"\bexperiment\b|\bre-?run\b|\bre-?train\b|\btry\b|\bdouble\b|\bnext\b|\bpropos\w*|\bplan\b|\bwould\b|\bwill\b|\bshould\b|\bI'd\b|\bexpect|\bpredict|" \
           r"\bhypothes|\bif\b|\btarget\b"
FRACTION_KINDS = ("f1", "macro_f1", "accuracy", "recall", "precision")
CI_END = r"\bCI\b[^\d−+;)-]{0,12}(?:[-−+]?\d[\d.,]*\s*(?:%|pp|pts?|points?)?\s*(?:to|–|—|-|,|and)\s*)?$"  # its 1st or 2nd number
SETTINGS = {"epochs", "steps", "seed", "batch_size", "learning_rate"}
PRONOUN_SUBJECT = r"\s*(?:it|its|it's|this one|that one)\b"
COMPARATOR = r"(?:above|below|at least|at most|fewer than|more than|less than|under|over|beyond|exceeds?|exceeding|" \
             r"higher than|lower than|>|<|≥|≤)"
PREDICTIVE = r"\b(?:predict\w*|expect\w*|hypothes\w*|if|unless|would|should|will|target|threshold|goal|aim)\b"
DIFFERENCE = r"Δ|delta|change|diff|gain|lift|drop|loss|minus|−|relative|moved|\bby\b|ahead|behind|higher|lower|" \
             r"more|less|fewer|improv|gap|\bvs\.?\b|versus|(?<![\w.])\d\S*\s+(?:\w+\s+)?over\b|than"


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
    approx: bool = False  # "about", "roughly", "~": within a unit of its last digit
    bound: str | None = None  # "<" for "under 4%", ">" for "over 90%": a bound, not a value
    rate: float | None = None  # the period of a rate in seconds ("per hour": 3600), when it is one
    plusminus: bool = False  # "± 0.4": a spread (std or half a CI)
    named: dict[str, set[str]] | None = None  # the entities its whole sentence or table row names: what derivations may use
    context: str = ""  # its clause (prose) or header and cell (table)
    proposal: bool = False  # part of a proposed experiment (section 5): checked only when the artifacts support it
    inferred: bool = False  # its kind is the previous sentence's metric: supported if it matches, else not checkable
    before: str = ""  # the sentence before it (what "their", "it" refer to)
    interval_end: bool = False  # an end of the interval of the estimate before it ("CI −3.6 to −0.6")
    seed: int | None = None  # the training seed its table row names (a "Seed" column): that run's value, no other

    def described(self) -> str:
        names = "; ".join(f"{k} {'/'.join(sorted(v))}" for k, v in self.entities.items() if v) or "no entity"
        return f"{self.kind or 'any kind'}, {names}"


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


def _reading(match: re.Match, text: str, kind: str | None, entities: dict[str, set[str]], where: str,
             section: object, context: str, between: bool = False, named: dict[str, set[str]] | None = None,
             unit: str | None = None) -> Reading:
    sign = match.group("sign")
    unit = unit or _unit(match, text)
    value = float(match.group("int").replace(",", "") + (match.group("dec") or "") +
                  (match.group("exp") or "").replace("−", "-"))
    signed = sign in ("+", "-", "−")
    plusminus = sign.startswith("±")
    if sign in ("-", "−"):
        value = -value
    before = text[max(0, match.start() - 60):match.start()]
    threshold = bool(re.search(COMPARATOR + r"\s+(?:[\w'’.-]+\s+){0,3}$", before, re.I)) and \
        (section == 5 or bool(re.search(PREDICTIVE, where, re.I)))
    proposal = section == 5 and bool(re.search(PROPOSAL, where, re.I))
    if kind in SETTINGS and re.search(r"\bwould\b|\bcould\b|\bif\b|\bbelow\b|\bnext\b|\bpropos", where, re.I):
        proposal = True  # "a decoder that catches up after 2 epochs would change this": a setting not (yet) run
    if match.group("dollar"):
        kind = "cost"
    if kind in COUNTS and unit == "%":
        kind = "share"  # a percentage of a count is a share
    elif kind in COUNTS and unit == "pp":
        kind = None  # points of something: not a count
    if kind in COUNTS and len(match.group("dec") or "") > 2 and not unit:
        kind = None  # "0.277" is no count: the metric word belonged to another number ("13.7" is a seed mean)
    difference = _is_gap(match, text, context) and not plusminus
    bound = _bound(match, text)
    decimals = len(match.group("dec") or ".") - 1
    if match.group("exp"):
        decimals -= int(match.group("exp")[1:].replace("−", "-"))  # 2.6e-17: rounded at 1e-18
    return Reading(match.group(0).strip(), value, decimals, unit, signed,
                   kind, entities, where, section, threshold, _accepted([kind] if kind else []), difference, between,
                   _approx(match, text), bound, _rate_shared(match, text), plusminus, named, context, proposal)


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
        captions = block.captions + [""] * (len(block.tables) - len(block.captions))
        for (header, rows), caption in zip(block.tables, captions):
            readings += _read_table(header, rows, names, section, caption)
        topic, last_sentence, last_arms = None, "", None
        for sentence in block.sentences():
            found = _read_sentence(sentence, names, section)
            estimate = None
            for reading in found:
                if reading.interval_end and estimate is not None:  # read as the estimate it bounds, once that is read
                    reading.before = last_sentence
                    reading.entities, reading.named = estimate.entities, estimate.named
                    reading.kind, reading.accepts, reading.inferred = estimate.kind, estimate.accepts, estimate.inferred
                    continue
                estimate = reading
                reading.before = last_sentence
                if last_arms and re.match(PRONOUN_SUBJECT, reading.context, re.I) and \
                        not names.find(reading.where[:max(0, reading.where.find(reading.context))] + reading.context,
                                       strict_weighting=False).get("arm"):
                    # "It takes 15.7 minutes; the decoder takes 2.07 hours": "it" is the model of the sentence before
                    reading.entities = {**reading.entities, "arm": set(last_arms)}
                    reading.named = {**(reading.named or {}), "arm": set(reading.named.get("arm", ()) if reading.named
                                                                        else ()) | set(last_arms)}
                if last_arms and not (reading.named or {}).get("arm") and reading.unit != "x":
                    reading.named = {**(reading.named or {}), "arm": set(last_arms)}  # derivations may use them
                if not any(reading.entities.values()) and last_arms and reading.kind not in (None, "count"):
                    # "It cost no measurable macro F1 (−0.35)": about the models of the sentence before
                    reading.entities = {"arm": set(last_arms)}
                    reading.named = {**(reading.named or {}), "arm": set(last_arms)}
                    reading.inferred = True
                if reading.kind is None and reading.entities.get("label") and reading.unit is None and \
                        reading.decimals >= 1 and abs(reading.value) <= 1:
                    reading.kind, reading.accepts = "f1", _accepted(["f1"])  # a class's score ("1.0"): its F1 by default
                elif reading.kind is None and ((reading.unit is None and reading.decimals >= 2 and abs(reading.value) <= 1)
                                               or (reading.unit == "%" and abs(reading.value) <= 100)) and \
                        any(re.search(p, sentence, re.I) for p in GROUP_WORDS.values()):
                    reading.kind, reading.accepts = "f1", _accepted(["f1"])  # a mean over a group of classes
                elif reading.kind is None and topic and ((reading.unit is None and reading.decimals >= 2 and
                                                          abs(reading.value) <= 1) or reading.unit == "pp"):
                    reading.kind, reading.accepts = topic, _accepted([topic])  # the previous sentence's metric
                    reading.inferred = True
            kinds = [r.kind for r in found if r.kind in FRACTION_KINDS]
            topic = kinds[-1] if kinds else (topic if not found else None)
            arms = names.find(sentence, strict_weighting=False).get("arm")
            last_arms = _with_weighted(arms) if arms and section == 2 else arms or last_arms
            last_sentence = sentence
            readings += found
    return readings


def _read_sentence(sentence: str, names: _Names, section: object) -> list[Reading]:
    found = []
    clauses = _clauses(sentence)
    sentence_entities = names.find(sentence, strict_weighting=False)
    families = _families(sentence_entities.get("arm", ()))
    about_weighting = re.search(WEIGHTED, sentence, re.I) or section == 2
    lora_vs_full = bool(re.search(r"\blora\b", sentence, re.I) and re.search(FULL, sentence, re.I))
    previous: tuple[re.Match, str | None, str | None] | None = None
    for match in _numbers(sentence):
        if not _metric_like(match, sentence, in_table=False):
            continue
        clause = next((c for c in clauses if c[0] <= match.start() < c[1]), (0, len(sentence)))
        clause_text = sentence[clause[0]:clause[1]]
        in_clause = names.find(clause_text, strict_weighting=False)
        entities = {**sentence_entities, **in_clause}
        if "label" in entities and "label" not in in_clause and len(entities["label"]) > 1 and \
                not re.search(r"\((?:[^()]*\s)?$", sentence[:match.start()]):
            pass  # "on verb.body and verb.consumption, where the encoder managed 0.188 and 0.111": either class
        elif "label" in entities and "label" not in in_clause:
            entities["label"] = _nearest_label(sentence, match.start(), names) or entities["label"]
        between = False
        if "arm" in entities and "arm" not in in_clause:
            # about every arm named: two families, or a gap in a sentence setting LoRA against a full fine-tune
            just_before = sentence[max(clause[0], match.start() - 30):match.start()]
            between = len(families) > 1 or (lora_vs_full and len(_models(entities["arm"])) > 1
                                             and _is_gap(match, sentence, just_before))
            entities["arm"] = set(entities["arm"]) if between else _family(entities["arm"])
            paired = re.search(r"\b(?:vs\.?|versus|against|compared (?:with|to))\s*(?:the\s+)?$",
                               sentence[:clause[0]].rstrip(" ,(") + " ", re.I)
            if not between and len(families) == 1 and not about_weighting and not in_clause and \
                    not lora_vs_full and paired and names.find(sentence[:clause[0]], strict_weighting=False).get("arm"):
                # "the decoder reaches 60.4% vs 56.6%": the number set against the named model is another model's
                entities["arm"] = {a for a in names.vocab.arms if a.split("_")[0] not in families}
            elif not between and len(families) == 1 and not in_clause and "(" in sentence[max(0, clause[0] - 1):clause[0] + 1] \
                    and re.match(r"\s*[-−+]?\$?\d[\d,.]*\s?(?:%|[MBk]\b)?(?:\s+of\s+\$?\d[\d,.]*\s?[MBk]?)?\s*(?:vs\.?|versus)\s",
                                 sentence[match.start():]):
                # "(1.36% vs 1.37%)" in a sentence naming one model: which is whose is not said
                entities["arm"] = set(names.vocab.arms)
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
        if previous and previous[1] and re.fullmatch(r"(?:\s*(?:vs\.?|versus|against|and|to|→|->|,|/|or|\(|;)\s*)+(?:the\s+|a\s+)?",
                                                   sentence[previous[0].end():match.start()], re.I) and \
                (kind is None or len(match.group("dec") or "") == len(previous[0].group("dec") or "")) and \
                _unit(match, sentence) not in UNIT_KIND and \
                not (_unit(match, sentence) in ("%", "pp") and previous[1] in NOT_PERCENT) and \
                not re.match(r"\s?(?:%|pp\b|ms\b)?\s*(?:[\w-]+\s+)?(?:" + "|".join(p for _, p in NOTE_KINDS) + ")",
                             sentence[match.end():].lower()):
            kind = previous[1]  # "0.438 vs 0.374", "0.736 accuracy, or 0.757": the metric of the number it is set against
        if kind is None:
            kind = _only_kind_before(sentence, match.start(), len(match.group("dec") or "") > 2)
        if kind == "cost" and not match.group("dollar") and not _rate_shared(match, sentence) and \
                (match.group("dec") or _unit(match, sentence) in ("%", "pp")):
            quality = [(s, k) for s, _, k in _kind_matches(sentence) if k in FRACTION_KINDS]
            before = [k for s, k in quality if s < match.start()]
            if quality:  # "accuracy costs 0.016", "0.757 at the same inference cost": a score, not money
                kind = before[-1] if before else quality[0][1]
        if (kind is None or kind in COUNTS) and match.group("dec") and abs(float(match.group("int").replace(",", "") + match.group("dec"))) <= 1 and \
                re.search(r"correlat|spearman|\brho\b|ρ", sentence[:match.start()], re.I):
            kind = "rho"  # "the rank correlation ... is 0.45 for the decoder vs 0.52 for the encoder"
        if kind == "seed" and not re.match(r"\s*(?:[\w-]+\s+)?seeds?\b", sentence[match.end():], re.I):
            kind = None  # "3 seeds" counts seeds; in "averaged over seeds, worse on 32" the seeds are the topic
        if kind is None and not match.group("dec") and not _unit(match, sentence) and not match.group("dollar") and \
                re.search(r"\b(?:classes|labels|categories|domains|supersenses)\b", sentence, re.I):
            kind = "count"  # "better on 6 of the 45 classes, worse on 32": an integer in a sentence counting classes
        if kind == "macro_f1" and "label" in entities and not re.search(r"macro", clause_text, re.I):
            kind = "f1"  # a class has an F1, not a macro F1
        unit = None
        if previous and _unit(match, sentence) is None and previous[2] in ("pp", "%") and not match.group("dollar") and \
                (not _kind_matches(sentence[previous[0].end():match.start()]) or
                 re.search(r"\bCI\b", sentence[previous[0].end():match.start()])) and \
                re.fullmatch(r"[^.;]{0,60}?\b(?:and|vs\.?|versus|against|to|while|whereas|compared with|but|CI)\b[^.;]{0,30}?|\s*,\s*",
                             sentence[previous[0].end():match.start()]) and \
                len(match.group("dec") or "") == len(previous[0].group("dec") or ""):
            unit = previous[2]  # "+16.1 points for the encoder and +11.2 for the decoder": the same unit
            if kind is None:
                kind = previous[1]
        previous = (match, kind, unit or _unit(match, sentence))
        named = sentence_entities
        if about_weighting and "arm" in named:
            named = {**named, "arm": _with_weighted(named["arm"])}
        coordinate = re.search(r"\b(step|epoch)\s*$", sentence[:match.start()], re.I)
        if coordinate and not match.group("dec"):  # "at step 127 its validation macro F1 was ...": where, not what
            kind = {"step": "steps", "epoch": "epochs"}[coordinate.group(1).lower()]
        reading = _reading(match, sentence, kind, entities, sentence, section, clause_text, between, named, unit)
        if coordinate and not match.group("dec"):
            reading.difference = reading.between = False  # a coordinate is never a gap between two models
        estimate = next((r for r in reversed(found) if not r.interval_end), None)
        if re.search(CI_END, sentence[:match.start()]) and estimate is not None:
            # "2.1 points of accuracy (95% CI −3.6 to −0.6)": an interval's end bounds the estimate before it
            if reading.kind is None or not any(reading.entities.values()):
                reading.interval_end = True
                reading.kind, reading.accepts = estimate.kind, estimate.accepts
                reading.entities = {k: set(v) for k, v in estimate.entities.items()}
                reading.named, reading.between = estimate.named, estimate.between
        found.append(reading)
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


def _only_kind_before(sentence: str, start: int, fraction: bool = False) -> str | None:
    """The metric named before the number when the sentence so far names only one ("... macro F1 change ... (+0.008");
    a number with three decimals is no count ("macro F1 over 3 seeds is 0.026")."""
    kinds = {k for _, end, k in _kind_matches(sentence) if end <= start and not (fraction and k in COUNTS)}
    return kinds.pop() if len(kinds) == 1 else None


def _nearest_label(sentence: str, start: int, names: _Names) -> set[str]:
    """The class named last before a number ("noun.act (12 train)"), else the first after it."""
    if names.labels is None:
        return set()
    mentions = list(names.labels.finditer(sentence))
    before = [m for m in mentions if m.end() <= start]
    chosen = before[-1:] or [m for m in mentions if m.start() >= start][:1]
    return {m.group(0) for m in chosen}


def _read_table(header: list[str], rows: list[list[str]], names: _Names, section: object, caption: str = "") -> list[Reading]:
    found = []
    in_points = re.search(r"\bin (?:percentage |accuracy |f1 )?(?:points|pts|pp)\b", caption, re.I)
    column_units = []
    for cell in header:
        unit = re.search(r"\((pts?|pp|points|%|ms|s|min|h|MB|GB|ex/s|examples/s|req/s|\$)\)|\bin (pts?|pp|points|ms|MB|GB)\b",
                         cell, re.I)
        word = (unit.group(1) or unit.group(2)) if unit else None
        column_units.append({"pt": "pp", "pts": "pp", "points": "pp", "ex/s": "examples/s", "req/s": "examples/s",
                             "mb": "MB", "gb": "GB"}.get(word.lower() if word else "", word) if word else None)
    column_kinds: list[str | None] = []
    for cell in header:
        kinds = _kind_matches(re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", cell))
        if all(k == "count" for _, _, k in kinds):
            kinds = _kind_matches(cell) or kinds
        specific = min((k for _, _, k in kinds), key=KIND_ORDER.index, default=None)
        column_kinds.append(specific or (column_kinds[-1] if column_kinds else None))
    column_entities = [names.find(cell, strict_weighting=True) for cell in header]
    weighting_table = any(re.search(WEIGHTED, cell, re.I) for cell in header)  # its rows are arms before and after
    seed_column = next((i for i, cell in enumerate(header) if re.fullmatch(r"\s*(?:training\s+)?seed\s*", cell, re.I)), None)
    for row in rows:
        seed_cell = re.fullmatch(r"\s*`?(\d+)`?\s*", row[seed_column]) if seed_column is not None and \
            seed_column < len(row) else None
        row_entities: dict[str, set[str]] = {}
        for cell in row:
            if not _numbers(cell) or re.search(r"[A-Za-z]{3}", re.sub(r"`[^`]*`", "", cell)):
                for key, value in names.find(cell, strict_weighting=True).items():
                    row_entities.setdefault(key, value)
        where = "| " + " | ".join(row) + " |"
        row_kinds = [k for cell in row[1:] if not _numbers(cell) for _, _, k in _kind_matches(re.sub(r"`[^`]*`", " ", cell))]
        row_kind = min(row_kinds, key=KIND_ORDER.index) if row_kinds else None  # "| Rare | mean F1 | 33.4% |"
        for index, cell in enumerate(row):
            for match in _numbers(cell):
                if not _metric_like(match, cell, in_table=True):
                    continue
                entities = {**row_entities, **(column_entities[index] if index < len(header) else {})}
                if "arm" in entities and (re.search(r"→|->|\bto\b", cell[:match.start()]) or weighting_table):
                    entities["arm"] = _with_weighted(entities["arm"])
                if "arm" in entities and re.search(r"→|->", cell[match.end():]) and re.search(r"→|->", " ".join(row[:1])):
                    entities["arm"] = entities["arm"] | {a.removesuffix("_cw") for a in entities["arm"]}  # the "before"
                percent = _unit(match, cell) in ("%", "pp")
                own = [k for k in _kind_matches(cell) if k[1] <= match.start() and not (percent and k[2] in COUNTS)]
                right_after = [k for k in _kind_matches(cell) if k[0] >= match.end() and
                               re.fullmatch(r"\s*", cell[match.end():k[0]]) and not (percent and k[2] in COUNTS)]
                if index == 0 and not match.group("dec") and re.match(r"\s+(?:[A-Z]?\w+\s+)?\w{3,}s\b", cell[match.end():]):
                    right_after = [(0, 0, "count")]  # "| Time for all 117,659 WordNet glosses |": a count in the label
                if index == 0 and re.search(r"\(\s*$", cell[:match.start()]) and not match.group("dec"):
                    right_after = right_after or [(0, 0, "count")]  # "verb (15)": the row's class count
                column_unit = column_units[index] if index < len(column_units) else None
                kind = UNIT_KIND.get(_unit(match, cell) or column_unit or "") or (right_after[0][2] if right_after else None) or \
                    (own[-1][2] if own else None) or (row_kind if index > 0 else None) or \
                    (column_kinds[index] if index < len(column_kinds) else None)
                kind = _slash_kind(cell, match.start(), [header[index] if index < len(header) else "", row[0]]) or kind
                context = (header[index] if index < len(header) else "") + " " + cell
                unit = _unit(match, cell) or (column_units[index] if index < len(column_units) else None) or \
                    ("pp" if in_points and (match.group("sign") or match.group("dec")) and
                     not re.search(r"→|->", cell) and kind not in COUNTS else None)
                named = {k: set(v) for k, v in row_entities.items()}
                for cells in (header, row):
                    for key, value in names.find(" ".join(cells), strict_weighting=False).items():
                        named.setdefault(key, set()).update(value)
                reading = _reading(match, cell, kind, entities, where, section, context, named=named, unit=unit)
                found.append(dataclasses.replace(reading, seed=int(seed_cell.group(1))) if seed_cell else reading)
    return found


def _slash_kind(cell: str, at: int, labels: list[str]) -> str | None:
    """"0.334 / 22" under "mean F1 / zero-F1": each number of a slashed cell takes the kind of the same part of its
    column header or row label."""
    parts = re.split(r"\s/\s", cell)
    if len(parts) < 2:
        return None
    position = len(re.split(r"\s/\s", cell[:at])) - 1
    for label in labels:
        label_parts = re.split(r"\s/\s", label)
        if len(label_parts) == len(parts):
            kinds = _kind_matches(label_parts[position])
            if kinds:
                return min((k for _, _, k in kinds), key=KIND_ORDER.index)
    return None
