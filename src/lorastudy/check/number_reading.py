"""Every metric-like number of a note, read in context: its metric kind, its entities and its sign.

* Every metric-like number (a percentage, a decimal, a number with a unit, a
  table cell, an integer next to a metric word; not code, years, section or
  figure numbers, confidence levels) is *read*: its metric kind, its entities
  (arm, class, tier, deployment context) and its sign.
  - A table cell (`lorastudy.check.table_reading`) takes its entities from its row (the first cell naming an arm,
    a class, a tier or a context, in human wording too: "Encoder LoRA +
    weighting", "SmolLM2 (weighted)", a model name from the config) and from
    its column header, its kind from its own text or else its column header
    (a header that names none inherits the kind of the column to its left), or from a row label naming a metric
    and its unit ("Single request p95 (ms)") under headers that name none; a spread ("± 0.5") or an interval's ends
    ("[1.8, 9.2]") are bound to the estimate they follow in their cell or sentence.
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

import re

from lorastudy.check.arm_segments import before_after_weighting, parenthesis_owner, weighted_only, weighted_opener
from lorastudy.check.class_bands import prose_band
from lorastudy.check.derivations import GROUP_WORDS
from lorastudy.check.entity_names import FULL, UNWEIGHTED, WEIGHTED, _families, _family, _models, _Names, _with_weighted
from lorastudy.check.facts import Vocabulary
from lorastudy.check.metric_kinds import COUNTS, NOT_PERCENT, NOTE_KINDS, UNIT_KIND, _accepted, _kind_matches, _read_kind
from lorastudy.check.note_sections import _Block, _sections
from lorastudy.check.printed_numbers import _metric_like, _numbers, _rate_shared, _unit
from lorastudy.check.readings import CI_END, DIFFERENCE, FRACTION_KINDS, PRONOUN_SUBJECT, Reading, _is_gap, _reading
from lorastudy.check.table_reading import _read_table

__all__ = ["Reading", "read_note_numbers", "read_numbers"]


def _clauses(sentence: str) -> list[tuple[int, int]]:
    """Clause spans: split at , ; : ( ) and "vs"/"versus"/"against"/"while"/"whereas", not inside [...] intervals."""
    spans, start, depth = [], 0, 0
    for i, char in enumerate(sentence):
        depth += char == "["
        depth -= char == "]" and depth > 0
        before_, after_ = re.search(r"([-−+]?)\d+(\.\d+)?%?$", sentence[:i]), re.match(r",\s*([-−+]?)\d+(\.\d+)?", sentence[i:])
        listed = char == "," and before_ and after_ and (before_.group(1) or before_.group(2)) and \
            bool(before_.group(1)) == bool(after_.group(1)) and len(before_.group(2) or "") == len(after_.group(2) or "")
        if depth == 0 and char in ",;:()" and not (char == "," and re.match(r",\d{3}", sentence[i:i + 4])) and not listed:
            # (a list of numbers, "+4.7, +0.7, +1.6 macro F1 points on encoder LoRA seeds", is one clause)
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
                if last_arms and reading.entities.get("arm") and _subject_before(reading, names):
                    # "Weighting transferred to the decoder. Macro F1 rose 3.2 points, against 13.2% on the encoder":
                    # the model set against it is named after it, the subject in the sentence before
                    reading.entities = {**reading.entities, "arm": set(last_arms)}
                    reading.named = {**(reading.named or {}), "arm": set((reading.named or {}).get("arm", ())) | set(last_arms)}
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
        owner = parenthesis_owner(sentence, clauses, clause, names, families) if "arm" not in in_clause else None
        if owner:  # "the encoder ran 2 epochs (250 steps), the decoder 1 (125 steps)": the clause's model
            in_clause["arm"] = owner
        weighted = weighted_only(clause_text, in_clause.get("arm", set()), names)
        if weighted:  # "the weighted decoder is 21%": its weighted arm, not its unweighted twin
            in_clause["arm"] = weighted
        entities = {**sentence_entities, **in_clause}
        if "label" in entities and "label" not in in_clause and len(entities["label"]) > 1 and \
                not re.search(r"\((?:[^()]*\s)?$", sentence[:match.start()]):
            pass  # "on verb.body and verb.consumption, where the encoder managed 0.188 and 0.111": either class
        elif "label" in entities and "label" not in in_clause:
            entities["label"] = _nearest_label(sentence, match.start(), names) or entities["label"]
            before_number = sentence[:match.start()]
            if not names.find(before_number, strict_weighting=False).get("label") and \
                    any(re.search(p, before_number, re.I) for p in GROUP_WORDS.values()):
                del entities["label"]  # "On rare nouns ... (0.219 vs 0.201), mostly via noun.shape": the group's
        between = False
        if re.search(r"\bthe best (?:arm|model|system|run|configuration)(?:'s)?\s*(?:\w+\s*){0,2}\(?\s*$",
                     sentence[:match.start()], re.I):
            entities["arm"] = set(names.vocab.arms)  # "7.1 points below the best arm (75.8%)": whichever arm is best
        elif "arm" in entities and "arm" not in in_clause:
            # about every arm named: two families, or a gap in a sentence setting LoRA against a full fine-tune
            just_before = sentence[max(clause[0], match.start() - 30):match.start()]
            between = len(families) > 1 or (lora_vs_full and len(_models(entities["arm"])) > 1
                                             and _is_gap(match, sentence, just_before))
            entities["arm"] = set(entities["arm"]) if between else _family(entities["arm"])
            paired = re.search(r"\b(?:vs\.?|versus|against|compared (?:with|to))\s*(?:the\s+)?$",
                               sentence[:clause[0]].rstrip(" ,(") + " ", re.I)
            if not between and len(families) == 1 and (not about_weighting or section != 2) and not in_clause and \
                    not lora_vs_full and paired and names.find(sentence[:clause[0]], strict_weighting=False).get("arm"):
                # "the decoder reaches 60.4% vs 56.6%": the number set against the named model is another model's
                entities["arm"] = {a for a in names.vocab.arms if a.split("_")[0] not in families}
            elif not between and len(families) == 1 and not in_clause and "(" in sentence[max(0, clause[0] - 1):clause[0] + 1] \
                    and re.match(r"\s*[-−+]?\$?\d[\d,.]*\s?(?:%|[MBk]\b)?(?:\s+of\s+\$?\d[\d,.]*\s?[MBk]?)?\s*(?:vs\.?|versus)\s",
                                 sentence[match.start():]):
                # "(1.36% vs 1.37%)" in a sentence naming one model: which is whose is not said
                entities["arm"] = set(names.vocab.arms)
        elif "arm" in in_clause and len(families) > len(_families(in_clause["arm"])) and \
                (_unit(match, sentence) == "pp" or re.search(DIFFERENCE, clause_text, re.I)) and \
                not re.search(r"\b(?:on|for|in|across) (?:the |its |their )?(?:[\w-]+ ){0,3}seeds\b", clause_text, re.I):
            # (but "+4.7, +0.7, +1.6 points on encoder LoRA seeds" is that arm's, seed by seed)
            entities["arm"] = in_clause["arm"] | sentence_entities["arm"]  # a gap to the other model the sentence names
        bracketed = re.match(r"\s?(?:%|pp)?\s*\(([^()\d]{1,40})\)", sentence[match.end():])
        if bracketed and names.find(bracketed.group(1), strict_weighting=False).get("arm"):
            entities["arm"] = names.find(bracketed.group(1), strict_weighting=False)["arm"]  # "0.823 (encoder)": its model
        if "arm" in entities and about_weighting and not re.search(UNWEIGHTED, clause_text, re.I) and not weighted:
            entities["arm"] = _with_weighted(entities["arm"])
            entities["arm"] = before_after_weighting(sentence, match.start(), match.end(), entities["arm"]) or entities["arm"]
        kind = _read_kind(sentence, clause, match.start(), match.end(), _unit(match, sentence))
        if kind is None and in_clause:
            kind = _parallel_kind(sentence, clauses, clause, names, (_unit(match, sentence), bool(match.group("dec"))))
        if kind is None:
            kind = _topic_kind(sentence, clauses, match.start(), names, _unit(match, sentence))
        if previous and previous[1] and re.fullmatch(r"(?:\s*\([^()\d]{1,30}\))?(?:\s*(?:vs\.?|versus|against|and|to|→|->|,|/|or|\(|;)\s*)+(?:the\s+|a\s+)?",
                                                   sentence[previous[0].end():match.start()], re.I) and \
                (kind is None or len(match.group("dec") or "") == len(previous[0].group("dec") or "")) and \
                _unit(match, sentence) not in UNIT_KIND and \
                not (_unit(match, sentence) in ("%", "pp") and previous[1] in NOT_PERCENT) and \
                not re.match(r"\s?(?:%|pp\b|ms\b)?\s*(?:[\w-]+\s+)?(?:" + "|".join(p for _, p in NOTE_KINDS) + ")",
                             sentence[match.end():].lower()):
            kind = previous[1]  # "0.438 vs 0.374", "0.736 accuracy, or 0.757": the metric of the number it is set against
        if kind is None:
            kind = _only_kind_before(sentence, match.start(), len(match.group("dec") or "") > 2 or bool(match.group("dec"))
                                     and match.group("sign") not in ("+", "-", "−") and _unit(match, sentence) != "%")
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
        symbol = re.search(r"(?<![\w.])([A-Za-z_]\w{0,11})\s*=\s*$", sentence[:match.start()])
        if symbol and not _kind_matches(symbol.group(1)) and not match.group("dollar"):
            kind = None  # "rank r = 16", "alpha = 32": named by its own symbol, whatever metric the sentence is about
        reading = _reading(match, sentence, kind, entities, sentence, section, clause_text, between, named, unit)
        if coordinate and not match.group("dec"):
            reading.difference = reading.between = False  # a coordinate is never a gap between two models
        opened = weighted_opener(sentence, reading.entities.get("arm", set())) if not reading.difference else None
        if opened:  # "With weights, rare recall is 25.9% on the encoder": the weighted encoder's
            reading.entities = {**reading.entities, "arm": opened}
        estimate = next((r for r in reversed(found) if not r.interval_end and not r.plusminus and not r.estimates), None)
        if estimate is not None and (reading.plusminus and re.fullmatch(r"\s*(?:%|pp|pts?|points)?\s*", sentence[
                estimate_end(estimate, sentence, match.start()):match.start()]) or re.search(CI_END, sentence[:match.start()])):
            # "73.6% ± 0.5", "−2.2 points (CI −3.8 to −0.6)": bound to that estimate (or an earlier one of the sentence)
            reading.estimates = [estimate] + [r for r in reversed(found) if r is not estimate and not r.interval_end
                                              and not r.plusminus and not r.estimates]
        if re.search(CI_END, sentence[:match.start()]) and estimate is not None:
            # "2.1 points of accuracy (95% CI −3.6 to −0.6)": an interval's end bounds the estimate before it
            if not _kind_matches(sentence[estimate_end(estimate, sentence, match.start()):match.start()]):
                reading.kind, reading.accepts = estimate.kind, estimate.accepts  # "drops 1.55 points (95% CI −3.28 to 0.09)"
            if reading.kind is None or not any(reading.entities.values()):
                reading.interval_end = True
                reading.kind, reading.accepts = estimate.kind, estimate.accepts
                reading.entities = {k: set(v) for k, v in estimate.entities.items()}
                reading.named, reading.between = estimate.named, estimate.between
        reading.band = prose_band(clause_text) or prose_band(sentence[:match.start()])
        found.append(reading)
    return found


def _subject_before(reading: Reading, names: _Names) -> bool:
    """No model is named up to the number's clause, and the sentence names one only after it, set against it ("...,
    against 13.2% on the encoder LoRA"): the number is about the model of the sentence before."""
    at = reading.where.find(reading.context)
    if at < 0:
        return False
    upto, rest = reading.where[:at + len(reading.context)], reading.where[at + len(reading.context):]
    contrast = re.search(r"\b(?:against|vs\.?|versus|compared (?:with|to)|unlike|whereas|while|beats?|than)\b", rest, re.I)
    return bool(contrast) and not names.find(upto, strict_weighting=False).get("arm") and \
        not names.find(rest[:contrast.start()], strict_weighting=False).get("arm") and \
        bool(names.find(rest[contrast.end():], strict_weighting=False).get("arm"))


def estimate_end(estimate: Reading, sentence: str, before: int) -> int:
    """Where an estimate's printed number ends in its sentence (the last time it is printed before a position)."""
    at = sentence.rfind(estimate.printed, 0, before)
    return at + len(estimate.printed) if at >= 0 else 0


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


def _topic_kind(sentence: str, clauses: list[tuple[int, int]], start: int, names: _Names, unit: str | None = None) -> str | None:
    """The metric of the nearest earlier clause without numbers or arms: the sentence's topic ("On macro F1, the decoder ...");
    a percentage's topic is never a count, cost or time ("As a share the two budgets ... (1.36% vs 1.37%)")."""
    for clause_start, clause_end in reversed([c for c in clauses if c[1] <= start]):
        text = sentence[clause_start:clause_end]
        kinds = [k for k in _kind_matches(text) if not (unit == "%" and k[2] in NOT_PERCENT)]
        if kinds and not _numbers(text) and "arm" not in names.find(text, strict_weighting=False):
            return kinds[-1][2]
    return None


def _only_kind_before(sentence: str, start: int, fraction: bool = False) -> str | None:
    """The metric named before the number when the sentence so far names only one ("... macro F1 change ... (+0.008");
    a decimal so far from its metric word is no count ("macro F1 over 3 seeds is 0.026", "10 rare classes ...
    noun.shape (65.5 vs 33.3)"), but a signed one may be a change in a mean count ("−0.6 zero-F1 classes per seed")
    and a percentage of a count a share ("28.6% of the test set")."""
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
