"""A note's numbers judged against its run's artifact facts, in context: supported, contradicted or not checkable.

* Supported: the number, in its unit, period and rounding ("about" a unit of its last digit, a round "about 90"
  half of ten; a bound such as "under 4%" holds for the candidate nearest it), equals an artifact fact that
  agrees with what it was read as (kind, every entity type named, sign), or a quantity derived from facts about
  the entities its sentence names (see `lorastudy.check.derivations`).
* Contradicted: facts (or derived quantities) exist for its entity and kind, and none reads as it; a signed
  number whose value the artifacts hold with the other sign is a flipped sign. Only these fail the check, each
  listed with its sentence or row, what it was read as and the fact it contradicts (the nearest one).
* Not checkable: no fact exists for what it is about, no metric kind could be read, or it is the threshold of a
  prediction or condition ("above 0.45", "if the SLA dropped below 60 ms").

Agreement: a comparison's value (a fact about two arms, e.g. a difference) supports only a number that names
both of its arms, or a gap that names one arm and no other model; a gap between two models needs a fact about
both; a validation score never stands for a test score; one class's value stands only for a number naming a
class (or "the best class"); a percentage of no read kind is a fraction (an accuracy, F1, share).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from dataclasses import dataclass

from lorastudy.check.class_bands import band_facts
from lorastudy.check.class_sets import class_count_agrees, class_wise, unnamed_group
from lorastudy.check.derivations import GROUP_WORDS, FactIndex, derive, of_statistic
from lorastudy.check.entity_names import _families, _models
from lorastudy.check.facts import Fact
from lorastudy.check.note_sections import _cells
from lorastudy.check.readings import Reading
from lorastudy.check.seed_ranges import seed_range_ends

UNITS = {"%": (100.0, 1.0), "pp": (100.0, 1.0), "M": (1e-6,), "k": (1e-3,), "B": (1e-9,), "min": (1 / 60, 1.0),
         "h": (1 / 3600, 1.0), "GB": (1 / 1024, 1 / 1000, 1.0), "MB": (1.0, 1024.0, 1000.0), "ms": (1.0, 1000.0),
         "s": (1.0, 1 / 1000)}
SUPPORTED, CONTRADICTED, NOT_CHECKABLE = "supported", "contradicted", "not checkable"
HOUR, MONTH = 3600.0, 730 * 3600.0


@dataclass
class Mismatch:
    """A contradicted number: what it was read as and the fact (direct or derived) nearest to it."""

    reading: Reading
    nearest: Fact | None

    def line(self) -> str:
        where = self.reading.where if len(self.reading.where) <= 140 else self.reading.where[:137] + "…"
        near = (f"contradicts {self.nearest.source} = {self.nearest.value:g}" if self.nearest
                else "no artifact value of that kind for that entity")
        return f"{self.reading.printed} (read as {self.reading.described()}) in “{where}”: {near}"


@dataclass
class Judgement:
    reading: Reading
    outcome: str  # supported, contradicted, not checkable
    fact: Fact | None = None  # the supporting fact, or the nearest one a contradicted number misses
    why: str = ""  # for a number that is not checkable


def _period(fact: Fact) -> float | None:
    """The period a fact's rate is per, in seconds, from its key ("examples_per_s", "monthly_cost", "price_per_hour")."""
    key = fact.source.rsplit(".", 1)[-1].lower() if fact.slot != "derived" else fact.source.split(":", 1)[0]
    if fact.kind == "throughput" or re.search(r"per_s$|rps|_per_s\b|1000 / ms", key):
        return 1.0
    if re.search(r"monthly|per_month|x \S+ h|compute cost", key):
        return MONTH
    if re.search(r"per_hour|hourly", key):
        return HOUR
    return None


def _scales(reading: Reading, fact: Fact | None = None) -> tuple[float, ...]:
    scales = UNITS.get(reading.unit or "", (1.0,))
    if reading.unit is None and reading.kind in POINTABLE and abs(reading.value) > 1:
        scales = (100.0,)  # "recall rose 5.8" or "CI 7.0 to 25.2": a fraction's points
    elif reading.unit is None and reading.kind in POINTABLE and reading.decimals <= 1 and \
            (reading.signed or reading.plusminus or reading.interval_end or reading.estimate is not None):
        scales = (100.0,)  # "+0.1 (CI -0.8 to +1.0)", "73.6 ± 0.5": a signed change or a spread of one decimal is in points
    elif reading.unit is None and reading.kind in POINTABLE and reading.decimals <= 1 and reading.difference:
        scales = (1.0, 100.0)  # "moves a class by 0.5-1.0 F1" or "a gap of 0.4" points
    if fact is not None and reading.unit in ("min", "h", "s") and re.search(r"minutes?$", fact.source):
        scales += tuple(s * 60 for s in scales)  # a fact kept in minutes ("window_minutes"), read in hours or seconds
    if fact is not None and fact.slot == "derived" and reading.unit in ("%", "pp"):
        scales = (100.0,)  # a derived share or change is a fraction
    if fact is not None and reading.rate:
        period = _period(fact)
        if period:
            factor = [reading.rate / period]
            if period == MONTH and reading.rate == MONTH:
                factor += [720 / 730, 744 / 730]
            elif period == HOUR and reading.rate == MONTH:
                factor = [720.0, 730.0, 744.0]
            scales = tuple(s * f for s in scales for f in factor)
    return scales


def _tolerance(reading: Reading) -> float:
    """Half a unit of the last printed digit; "about"/"~" a whole unit, and a round "about 90" half of ten."""
    unit = 10.0 ** -reading.decimals
    if reading.approx:
        digits = re.sub(r"\D", "", reading.printed.split(".")[0]) if reading.decimals == 0 else ""
        zeros = len(digits) - len(digits.rstrip("0")) if digits.strip("0") else 0
        return max(0.5 * unit, 0.5 * 10.0 ** zeros) + 1e-9
    return 0.5 * unit + 1e-9


def value_matches(reading: Reading, value: float, fact: Fact | None = None) -> bool:
    """Does an artifact value, shown in the reading's unit, period and rounding, read as the printed number (sign
    included)? A bound ("under 4%") holds when the value lies on its side of it."""
    tolerance = _tolerance(reading)
    for scale in _scales(reading, fact):
        shown = value * scale
        if reading.bound and not reading.signed:
            if (reading.bound == "<" and abs(shown) <= abs(reading.value) + tolerance) or \
                    (reading.bound == ">" and abs(shown) >= abs(reading.value) - tolerance):
                return True
        elif reading.signed:
            if abs(shown - reading.value) <= tolerance:
                return True
        elif abs(abs(shown) - abs(reading.value)) <= tolerance:
            return True
    return False


CLASS_COUNT = re.compile(r"(?<![\w.])\d+\s+(?:[\w\"“”-]+\s+){0,2}?(?:classes|supersenses|labels|domains|categories)\b", re.I)
CLASS_COLUMN = r"\s*(?:#\s*|n\s+|number of\s+)?(?:classes|labels|supersenses|domains|categories)\s*(?:\(\w*\)\s*)?\d+\s*$"
CLASS_COUNT_KEYS = r"class|label|tier_sizes|tier_of|zero|n_nonzero|n_predicted|sizes|(?<!_tier)\.rare$|(?<!_tier)\.common$|number of"
INTERVAL_END = r"(?:^|[._])(?:ci|interval)\w*(?:\.\w+)?\[[01]\]$|(?:^|[._])(?:lo|hi|low|high|lower|upper|ci_lo|ci_hi)$"
POINTABLE = {"accuracy", "f1", "macro_f1", "recall", "precision"}
SEED_WORDS = r"\bseeds?\b|\branged?\b|\bacross (?:the )?runs\b|\beach run\b|\bper run\b|\bevery run\b|" \
             r"\d\s*[–—]\s*\d|\bvaried\b|\bindividual"
SPREAD_WORDS = r"±|\bstd\b|standard deviation|\bspread\b|\bs\.?d\.?\b|run-to-run|variation|varies|\bnoise\b"
FRACTIONS = frozenset({"accuracy", "f1", "macro_f1", "recall", "precision", "share", "headroom", "rho", None})
SOME_CLASS = r"\b(?:best|worst|highest|lowest|top|bottom|most|least|any|one|single|each|every|some|a|another)\s+" \
             r"(?:\w+\s+)?(?:class|classes|label|supersense|domain|category)\b|\bclass(?:es)? (?:like|such as)|\bmax|\bmin|" \
             r"\bmajority[- ]class"


@lru_cache(maxsize=4096)
def _some_class(where: str) -> bool:
    return bool(re.search(SOME_CLASS, where, re.I))


def agrees(reading: Reading, fact: Fact) -> bool:
    """Kind and entities agree (value aside): the kind when one was read; each entity type the fact carries; a
    percentage of no kind is a fraction; one class's value stands only for a number that names a class (or
    speaks of "the best class", "one class")."""
    if reading.accepts is not None and fact.kind not in reading.accepts and \
            not (fact.kind is None and reading.kind == "count"):  # a count under a key that names no kind
        return False
    if reading.accepts is None and (reading.unit in ("%", "pp") or (reading.decimals > 0 and abs(reading.value) <= 1)) \
            and fact.kind not in FRACTIONS:
        return False  # a percentage or a number like 0.82 of no read kind is a fraction
    if fact.entities.get("family") and reading.entities.get("arm") and \
            not fact.entities["family"] & _families(reading.entities["arm"]):
        return False  # the encoder's settings are not the decoder's
    if fact.entities.get("label") and not reading.entities.get("label") and not _some_class(reading.where):
        return False
    if reading.entities.get("tier") and fact.kind in POINTABLE and not fact.entities.get("tier") and fact.slot != "derived" and \
            not fact.entities.get("label") and _tier_table_cell(reading):
        return False  # a score in a tier's row or column ("| Rare (12) | 10.9 |") is that tier's, not the whole test set's
    if "validation" in fact.entities.get("split", ()) and "validation" not in reading.entities.get("split", ()):
        return False  # a validation score does not stand for the test score a note reports by default
    arms = fact.entities.get("arm", frozenset())
    named = reading.entities.get("arm", set())
    if len(arms) >= 2 and named and len(arms & named) < 2 and \
            (not reading.difference or len(_families(named)) >= 2 or (reading.between and len(_models(named)) >= 2)):
        return False  # a comparison's value is not one arm's metric, nor a gap between two other arms
    if reading.difference and fact.kind != "rho" and len(arms) == 1 and (reading.between or len(_families(named)) > 1):
        return False  # a gap between two models is not one arm's value
    if fact.kind in SERVING and fact.entities.get("arm") and reading.entities.get("arm"):
        # a weighted arm is served by the same model as its unweighted twin: one latency, throughput, cost
        if not _models(fact.entities["arm"]) & _models(reading.entities["arm"]):
            return False
        return all(not fact.entities.get(kind) or fact.entities[kind] & names
                   for kind, names in reading.entities.items() if names and kind != "arm")
    return all(not fact.entities.get(kind) or fact.entities[kind] & names
               for kind, names in reading.entities.items() if names)


def _tier_table_cell(reading: Reading) -> bool:
    """A table cell whose row label starts with a tier's name ("| Rare (12) |") or whose column header names it."""
    if not reading.where.startswith("|"):
        return False
    label = _cells(reading.where)[0]
    # "rare-supersense audit" is a context's name, not the rare tier's row
    return any(re.match(rf"\W*{re.escape(t)}\b(?!-)", label, re.I) or re.search(rf"\b{re.escape(t)}\b", reading.context, re.I)
               and not re.search(rf"\b{re.escape(t)}\b", label, re.I) for t in reading.entities.get("tier", ()))


SERVING = {"latency", "throughput", "cost", "memory", "instances", "headroom"}


def _agrees_derived(reading: Reading, fact: Fact) -> bool:
    """A derived quantity: a ratio or share matches whatever kind the reading's unit or wording gives it, and is
    about every entity type the reading names (it was derived from facts about entities its sentence names)."""
    if "validation" in fact.entities.get("split", ()) and "validation" not in reading.entities.get("split", ()):
        return False  # a ratio or change of validation scores does not stand for one of the test scores a note reports
    if fact.kind in ("ratio", "share") and (reading.unit in ("x", "%") or reading.kind in ("ratio", "share", None)):
        serving = fact.source.startswith(("utilisation", "share of the window"))  # one model serves both twins
        return all(not fact.entities.get(kind) or fact.entities[kind] & names or
                   (serving and kind == "arm" and _models(fact.entities[kind]) & _models(names))
                   for kind, names in reading.entities.items() if names)
    return agrees(reading, fact)


def _nearest(reading: Reading, facts: list[Fact]) -> Fact | None:
    if not facts:
        return None
    return min(facts, key=lambda f: min(abs(abs(f.value * s) - abs(reading.value)) for s in _scales(reading, f)))


def _of_seed(fact: Fact, seed: int | None) -> bool:
    """A row that names its seed is that run's value: the seed's own fact or a fact of no run, never another seed's
    value or the seeds' mean."""
    if seed is None:
        return True
    run = re.search(r"__seed(\d+)", fact.source)
    return int(run.group(1)) == seed if run else "seeds of" not in fact.source


def judge(reading: Reading, index: FactIndex) -> Judgement:
    """Supported (a fact or a derived quantity reads as it), contradicted (facts exist for its entity and kind and
    none does), or not checkable (no fact exists for what it is about, or it is a prediction's threshold)."""
    if reading.threshold:
        return Judgement(reading, NOT_CHECKABLE, why="a prediction's or condition's threshold")
    if reading.band is not None:
        return _judge_band(reading, index)
    if unnamed_group(reading, [*GROUP_WORDS.values(), r"\b(?:rare|common|tail|head|frequent|tier)\b"]):
        return Judgement(reading, NOT_CHECKABLE, why="about a group of classes the run does not record")
    direct = _direct(reading, index)
    if reading.where.startswith("|"):  # "| verb.* | 15 |" under "Classes"
        own = _cells(reading.where)[0] if re.match(CLASS_COLUMN, reading.context, re.I) else ""
    else:  # "the 15 verb classes", not "6 of the 12 rare classes are verbs"
        own = next((m.group(0) for m in CLASS_COUNT.finditer(reading.context) if m.group(0).startswith(reading.printed)), "")
    group_size = reading.kind == "count" and reading.decimals == 0 and any(re.search(w, own, re.I) for w in GROUP_WORDS.values())
    if group_size:
        direct = []  # "| verb.* | 15 |" under "Classes": the number of the group's classes, counted from the run's labels
    bound = _bound_to_estimate(reading, index)
    if bound is not None:
        return bound
    if class_wise(reading) and any(f.source.startswith("classes") for f in derive(reading, index)):
        direct = []  # a class-by-class count: only the comparison of the two arms' per-class files supports it
    if reading.bound:
        return _judge_bound(reading, direct + [f for f in derive(reading, index) if _agrees_derived(reading, f)])
    text = reading.context if reading.where.startswith("|") else reading.where
    before = text[:text.find(reading.printed)] if reading.printed in text else ""
    interval = bool(re.search(r"(?:\bCI\b|\[)[^\]);]*$", before))
    if not interval and _set_against(reading, text):
        direct = [f for f in direct if not _is_interval_end(f)]  # "25.9% vs 16.4%", "10.1% → 25.9%": point values
    for fact in direct if not (interval and reading.estimates) else ():  # an interval's end is no other value
        if value_matches(reading, fact.value, fact):
            return Judgement(reading, SUPPORTED, fact)
    flipped = []
    if interval:  # "CI −7.8 to −1.8": an interval's end, as stored (either orientation), not a derivation
        unsigned = Reading(**{**reading.__dict__, "signed": False})
        intervals = [f for f in direct if re.search(INTERVAL_END, f.source.rsplit(": ", 1)[-1], re.I)]
        ends = [f for f in intervals if value_matches(unsigned, f.value, f)] or \
            [f for f in seed_range_ends(reading, index) if value_matches(reading, f.value, f)]  # "73.6% [73.3–74.1]"
        if ends:
            return Judgement(reading, SUPPORTED, ends[0])
        if reading.inferred or reading.kind is None or not intervals:
            return Judgement(reading, NOT_CHECKABLE, why="an interval's end with no interval of that kind for that entity")
        return Judgement(reading, CONTRADICTED, _nearest(reading, intervals))
    if reading.signed and reading.kind is not None:  # the artifacts hold this value with the other sign
        unsigned = Reading(**{**reading.__dict__, "signed": False})
        flipped = [f for f in direct if value_matches(unsigned, f.value, f)]
    agreeing = class_count_agrees if class_wise(reading) else _agrees_derived
    derived = [f for f in _at_step(reading, derive(reading, index)) if agreeing(reading, f)] if not flipped else []
    if group_size:
        derived = [f for f in derived if f.source.startswith("the number of")]
    if reading.kind == "share" and any(f.kind == "share" and f.entities.get("tier") for f in direct) and \
            reading.entities.get("tier"):
        # "3.6% of its predictions went to rare classes": the run states the tier's share; a count over a total that
        # happens to land near the number does not stand in for it
        derived = [f for f in derived if not f.source.startswith("share:")]
    for fact in derived:
        if value_matches(reading, fact.value, fact):
            return Judgement(reading, SUPPORTED, fact)
    if reading.kind is None and reading.unit not in ("x",):
        return Judgement(reading, NOT_CHECKABLE, why="no metric kind read")
    if reading.proposal:
        return Judgement(reading, NOT_CHECKABLE, why="part of a proposed experiment")
    if reading.unit == "x" and not any(reading.named.values() if reading.named else ()):
        return Judgement(reading, NOT_CHECKABLE, why="a ratio of quantities its sentence does not name")
    if reading.inferred:
        return Judgement(reading, NOT_CHECKABLE, why=f"its kind ({reading.kind}) only inferred from the sentence before")
    if flipped:  # a flipped sign
        return Judgement(reading, CONTRADICTED, flipped[0])
    candidates = direct + derived
    if not candidates:
        return Judgement(reading, NOT_CHECKABLE, why="no artifact value of that kind for that entity")
    return Judgement(reading, CONTRADICTED, _nearest(reading, candidates))


def _is_interval_end(fact: Fact) -> bool:
    return fact.slot != "derived" and bool(re.search(INTERVAL_END, fact.source.rsplit(": ", 1)[-1], re.I))


def _set_against(reading: Reading, text: str) -> bool:
    """A number set against another number by "vs" or an arrow ("25.9% vs 16.4%", "10.1% → 25.9%") is a point value:
    an interval's ends are printed "a to b", "[a, b]" or "a–b", so a stored CI end does not stand for it."""
    at = [m.start() for m in re.finditer(r"(?<![\w.])" + re.escape(reading.printed) + r"(?![\w])", text)]
    if len(at) != 1:
        return False
    joint = r"\s*(?:vs\.?|versus|→|->)\s*"
    number = r"[-−+~]?\$?\d[\d,.]*\s?(?:%|pp|x)?"
    return bool(re.search(number + joint + r"$", text[:at[0]], re.I) or
                re.match(joint + number, text[at[0] + len(reading.printed):], re.I))


def _direct(reading: Reading, index: FactIndex) -> list[Fact]:
    """The artifact facts that agree with what a number was read as (kind, entities, seed, spread, integer)."""
    labels = None if _some_class(reading.where) else set(reading.entities.get("label", ()))
    seeds = reading.seed is not None or bool(re.search(SEED_WORDS, reading.where, re.I)) or \
        (reading.where.startswith("|") and bool(re.search(r"\bseeds?\b|\bper[- ]seed\b", reading.context, re.I)))
    spread = reading.plusminus or bool(re.search(SPREAD_WORDS, reading.where, re.I))
    integer = reading.decimals == 0 and reading.kind in ("count", "zero_f1") and not reading.approx
    zero = bool(re.search(r"zero|\b0(?:\.0+)?\b|never|no correct|rescue|lifted", reading.where, re.I))
    kinds = reading.accepts | {None} if reading.accepts is not None and reading.kind == "count" else reading.accepts
    return [f for f in _at_step(reading, index.candidates(kinds, labels)) if (seeds or not f.mean_reported) and _of_seed(f, reading.seed)
            and (spread or "(seed std" not in f.slot) and (not integer or abs(f.value - round(f.value)) < 1e-9)
            and (f.kind != "zero_f1" or reading.kind == "zero_f1" or zero)  # "12 classes" is no zero-F1 count
            and agrees(reading, f) and of_statistic(reading, f)
            and (not (CLASS_COUNT.search(_own_item(reading)) or re.match(CLASS_COLUMN, reading.context, re.I))
                 or f.kind != "count" or reading.kind != "count" or
                 re.search(CLASS_COUNT_KEYS, f.source.rsplit(": ", 1)[-1], re.I))]


def _own_item(reading: Reading) -> str:
    """The part of its clause or cell a number sits in, between semicolons ("110,659 unused rows; 10 of 12 rare-tier
    classes at F1 0": the classes are the second item's, not the first's)."""
    text = reading.context
    at = text.find(reading.printed)
    if at < 0:
        return text
    end = text.find(";", at)
    return text[text.rfind(";", 0, at) + 1:end if end >= 0 else len(text)]


def _at_step(reading: Reading, facts: list[Fact]) -> list[Fact]:
    """A number whose sentence or row names a training step ("at step 125 the train logs show ...") is about the values
    logged at that step, not at another."""
    steps = set(re.findall(r"\bsteps?\s+(\d+)\b", reading.where + " " + reading.context, re.I))
    if not steps:
        return facts
    return [f for f in facts if not re.search(r"train_log\.jsonl: step \d+\.", f.source) or
            any(re.search(rf"train_log\.jsonl: step {n}\.", f.source) for n in steps)]


QUANTITY_WORDS = {"arms", "runs", "test", "mean", "std", "ci", "lo", "hi", "low", "high", "lower", "upper", "value",
                  "estimate", "point", "diff", "delta", "intervals", "interval", "seed_values", "values"}
SPREAD_KEYS = r"\bstd\b|\bci\b|\[[01]\]$|(?:^|[._])(?:lo|hi|low|high|lower|upper|sd|stdev)$"


@lru_cache(maxsize=65536)
def _quantity(source: str) -> tuple[str, ...]:
    """What a fact is a value of, whatever statistic of it: its file and key path without the statistic's words and
    seeds ("runs.encoder_lora__seed42.test.accuracy", "arms.encoder_lora.test.accuracy.std" and
    "arms.encoder_lora.ci.accuracy.ci[0]" are all encoder_lora's accuracy; "comparisons.6.diff" and
    "comparisons.6.ci[1]" one comparison)."""
    source = re.sub(r"^(?:half-width|difference): ", "", source).split(" and ", 1)[0]
    head, _, path = source.rpartition(": ")
    file = re.findall(r"[\w/.-]+\.(?:json|csv|yaml|jsonl)", head)
    tokens = [re.sub(r"__seed(?:\d+|\*)$", "", re.sub(r"\[\d+\]$", "", t)) for t in path.split(".")]
    return tuple(file[-1:]) + tuple(t for t in tokens if t and t not in QUANTITY_WORDS)


def _bound_to_estimate(reading: Reading, index: FactIndex) -> Judgement | None:
    """A spread ("73.6 ± 0.5") or an interval's end ("−2.2 points (CI −3.8 to −0.6)") printed with an estimate is a
    statistic of the very quantity that estimate is: judged only against that quantity's spreads (standard deviations,
    half-widths) or interval ends, not another arm's or metric's: supported when one reads as it; a spread is
    contradicted when none does; an interval's end is then judged as any interval end of its kind and entities."""
    unsigned = Reading(**{**reading.__dict__, "signed": False}) if not reading.plusminus else reading
    for estimate in reading.estimates:  # the nearest first; "0.016 (0.720 vs 0.736, CI −0.009 to 0.041)": any of them
        supporting = [f for f in _direct(estimate, index) if value_matches(estimate, f.value, f)]
        quantities = {_quantity(f.source) for f in supporting}
        if not quantities:
            continue
        kinds = reading.accepts or frozenset(f.kind for f in supporting if f.kind)
        own = [f for f in index.candidates(frozenset(kinds)) if _quantity(f.source) in quantities and
               re.search(SPREAD_KEYS if reading.plusminus else INTERVAL_END, f.source.rsplit(": ", 1)[-1], re.I) and
               not f.entities.get("label", frozenset()) - set(estimate.entities.get("label", ()))]
        if reading.plusminus:
            own = [f for f in own if not re.search(INTERVAL_END, f.source.rsplit(": ", 1)[-1], re.I)]
            own += [f for f in derive(reading, index) if f.source.startswith("half-width") and _quantity(f.source) in quantities]
        for fact in own:
            if value_matches(unsigned, fact.value, fact):
                return Judgement(reading, SUPPORTED, fact)
        if reading.plusminus and own and estimate is reading.estimate and not estimate.inferred:
            # "73.6 ± 0.5": the spread printed right after a supported estimate is that quantity's, no other
            return Judgement(reading, CONTRADICTED, _nearest(reading, own))
    # an interval's end: its estimate may have been read as another quantity than the writer's (the sentence before
    # named the model): judged as any interval end of its kind and entities
    return None


def _judge_bound(reading: Reading, candidates: list[Fact]) -> Judgement:
    """A bound ("under 4%", "over 90%") is about a candidate near it (within a factor of 2): it holds when one of
    those lies on its side, and is contradicted when all of them (and at least the nearest) lie on the other."""
    if not candidates or reading.kind is None:
        return Judgement(reading, NOT_CHECKABLE, why="a bound with no value of that kind for that entity")

    def distance(fact: Fact) -> float:
        shown = [abs(fact.value * s) for s in _scales(reading, fact)]
        return min(abs(math.log((v + 1e-12) / (abs(reading.value) + 1e-12))) for v in shown)
    near = sorted((f for f in candidates if distance(f) <= math.log(2)), key=distance) or [min(candidates, key=distance)]
    holding = [f for f in near if value_matches(reading, f.value, f)]
    return Judgement(reading, SUPPORTED if holding else CONTRADICTED, (holding or near)[0])


def _judge_band(reading: Reading, index: FactIndex) -> Judgement:
    """A number about a training-count band's classes: only the band's own quantities (`class_bands`) can read as it."""
    facts = [f for f in band_facts(reading, index) if agrees(reading, f)]
    for fact in facts:
        if value_matches(reading, fact.value, fact):
            return Judgement(reading, SUPPORTED, fact)
    if not facts or reading.kind is None or reading.proposal or reading.threshold:
        return Judgement(reading, NOT_CHECKABLE, why="about a band of classes with no value of that kind for it")
    return Judgement(reading, CONTRADICTED, _nearest(reading, facts))


def judge_numbers(readings: list[Reading], index: FactIndex) -> list[Judgement]:
    return [judge(r, index) for r in readings]


def trace_numbers(readings: list[Reading], facts: list[Fact]) -> list[Mismatch]:
    """The readings the artifact facts contradict."""
    index = FactIndex.of(facts, [], {})
    return [Mismatch(j.reading, j.fact) for j in judge_numbers(readings, index) if j.outcome == CONTRADICTED]
