"""A tier's predictions and hits pooled over an arm's seeds, from the per-class files, and what weighting added to
them: the counts a careful writer quotes for "pooled over seeds, 66% of the encoder's rare predictions were correct
(19 of 29)", "weighting took the decoder's rare predictions from 57 to 154", "extra correct rare rows (of 63): 4.7",
"11% of the marginal predictions were right" (extra hits / extra predictions).

Bounded: only the arms the sentence names (and, for what weighting added, each named arm's weighted or unweighted
twin), only the tier (or part of speech) its clause names, and only where it speaks of predictions, hits or
correct rows.
"""

from __future__ import annotations

import re

from lorastudy.check.class_groups import GROUP_WORDS
from lorastudy.check.class_sets import _per_seed_rows, _tier_of, entities_of
from lorastudy.check.entity_names import weighting_twin
from lorastudy.check.facts import Fact

PREDICTIONS = r"predict|\bhits?\b|\bcorrect\b|\bright\b|\brows?\b"
HITS = r"\bhits?\b|\bcorrect|\bright\b|precision"  # a count of hits is worded as such; a count of predictions as predictions
ADDED = r"\bweight|\bextra\b|\badded\b|\badds?\b|marginal|redirect|\bgained\b|\bmore\b|→|\bfrom \d[\d.,]* to \d"
N_OF_M = r"(?<![\w.])\d+\s+(?:of|out of)\s+\d+(?![\w.])"


def pooled_groups(reading) -> list[str | None]:
    """The parts of speech a pooled quantity is over: those its clause names ("pooled verb recall 0.362"), else those
    its own sentence names, never those of a later sentence the reading's text runs on to."""
    for text in (reading.context, _own_sentence(reading)):
        groups = [p for p, w in GROUP_WORDS.items() if re.search(w, text, re.I)]
        if groups:
            return groups
    return [None]


def _own_tiers(reading) -> set[str]:
    """The tiers its clause names, else those its sentence names before it ("30% of the encoder's redirected
    predictions were correct rare rows, only 15% of the decoder's, and the common ..."), else all it was read with."""
    tiers = set(reading.entities.get("tier", ()))
    sentence = _own_sentence(reading)
    for text in (reading.context, sentence[:sentence.find(reading.printed)]):
        named = {t for t in tiers if re.search(rf"\b{re.escape(t)}\b", text, re.I)}
        if named:
            return named
    return tiers


def _own_sentence(reading) -> str:
    text = reading.where
    at = text.find(reading.printed)
    if at < 0:
        return text
    start = max((m.end() for m in re.finditer(r"[.!?]\s", text[:at])), default=0)
    end = re.search(r"[.!?](?:\s|$)", text[at + len(reading.printed):])
    return text[start:at + len(reading.printed) + (end.end() if end else len(text))]


def _totals(index, arm: str, tiers: set[str], groups: list[str | None]) -> tuple[int, float, float] | None:
    """(seeds, Σ predictions, Σ correct predictions) over the arm's per-class files, for the tier's (group's) classes."""
    files = _per_seed_rows(index).get(arm, {})
    if not files:
        return None
    predicted = hits = 0.0
    for classes in files.values():
        for label, row in classes.items():
            if tiers and label not in tiers and not _tier_of(index, arm, label) & tiers:
                continue
            if any(groups) and label.split(".")[0] not in groups:
                continue
            predicted += row.get("predicted_count", 0.0)
            hits += round(row.get("recall", 0.0) * row.get("test_support", 0.0))
    return len(files), predicted, hits


def _twin(arm: str) -> str | None:
    """The same arm with class weighting toggled (encoder_lora <-> encoder_lora_cw)."""
    return weighting_twin(arm, not arm.endswith("_cw"))


def pooled_predictions(reading, index, named: dict[str, set[str]]) -> list[Fact]:
    """Σ predictions and Σ hits over the seeds (and per seed), the pooled precision as a share of the predictions
    ("66% ... were correct"), and weighting's extra predictions and hits and their precision."""
    tiers = _own_tiers(reading)
    groups = pooled_groups(reading)
    text = reading.where
    if not (tiers or any(groups)) or not re.search(PREDICTIONS, text, re.I) or reading.seed is not None:
        return []
    wanted = set(reading.accepts or ())
    integer = reading.unit is None and reading.decimals == 0 and reading.value > 1
    counts = {"count"} | (wanted & {"precision", "recall"} if integer and re.search(N_OF_M, text) else set())
    shares = {"precision", "share"} & (wanted | ({"share"} if reading.unit == "%" else set()))
    what = "/".join(sorted(tiers | {g for g in groups if g}))
    out: list[Fact] = []
    arms = set(named.get("arm", ()))
    totals = {arm: _totals(index, arm, tiers, groups) for arm in arms | {_twin(a) for a in arms if _twin(a)}}
    for arm in arms:
        if not totals.get(arm):
            continue
        seeds, predicted, hits = totals[arm]
        entities = entities_of(arm, tiers)
        for kind in counts:
            scale = 1.0 if kind == "count" else 0.01  # "(32 of 150)" read as a precision: the matcher shows it in points
            out += [Fact(predicted * scale, kind, entities, f"{what} predictions summed over {seeds} seeds of {arm}",
                         "derived")] * bool(re.search(r"predict", text, re.I))
            out += [Fact(hits * scale, kind, entities, f"correct {what} predictions summed over {seeds} seeds of {arm}",
                         "derived"),
                    Fact(hits / seeds * scale, kind, entities, f"correct {what} predictions per seed of {arm}",
                         "derived")] * bool(re.search(HITS, text, re.I))
        if predicted and "share" in shares:
            out.append(Fact(hits / predicted, "share", entities, f"share of {arm}'s {what} predictions (pooled over "
                                                                 f"seeds) that are correct", "derived"))
    if not re.search(ADDED, text, re.I):
        return out
    for arm in arms:
        base, weighted = (_twin(arm), arm) if arm.endswith("_cw") else (arm, _twin(arm))
        if not (base and weighted and totals.get(base) and totals.get(weighted)):
            continue
        (n, p0, h0), (m, p1, h1) = totals[base], totals[weighted]
        if n != m:
            continue
        entities = entities_of(arm, tiers)  # about the named arm's weighting, as the sentence words it
        how = f"what weighting added to {base}'s {what} predictions ({weighted} minus {base})"
        for kind in counts:
            scale = 1.0 if kind == "count" else 0.01
            out += [Fact((p1 - p0) * scale, kind, entities, f"{how}: predictions summed over {n} seeds", "derived"),
                    Fact((p1 - p0) / n * scale, kind, entities, f"{how}: predictions per seed", "derived")] * \
                bool(re.search(r"predict", text, re.I))
            out += [Fact((h1 - h0) * scale, kind, entities, f"{how}: correct predictions summed over {n} seeds", "derived"),
                    Fact((h1 - h0) / n * scale, kind, entities, f"{how}: correct predictions per seed", "derived")] * \
                bool(re.search(HITS, text, re.I))
        if p1 != p0:
            out += [Fact((h1 - h0) / (p1 - p0), kind, entities, f"{how}: precision of the extra predictions", "derived")
                    for kind in shares]
    return out
