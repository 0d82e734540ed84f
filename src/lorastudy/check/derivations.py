"""Quantities a careful writer derives from a run's facts, recomputed from the facts about the entities the
number's sentence (or table row) names, and only the derivations its wording calls for.

* Differences (a gap, "by", "points", a signed number), ratios ("6x", "8.1 times"), relative changes and
  percentages of a quantity ("40% slower", "under 4% of the Week 2 effect"), shares of a total ("3.15% of the
  test set"), sums ("in total", "combined"), half-widths of an interval ("± 0.4"), each between two facts of one
  quantity of two entities (the same artifact key of two arms, classes, tiers) or two quantities of one entity.
* Means over a group of classes the sentence names ("verbs", "noun classes", "rare classes").
* Deployment arithmetic: sequential throughput (1000 / ms), utilisation at a context's peak rate, instance
  counts, compute cost of a month's predictions at the configured price per hour, always-on cost for a
  30-, 30.4- or 31-day month; periods (per second, hour, day, month) are converted where the value is matched.
* The share of a macro-F1 gap that a tier's classes make up.

The search is bounded: only facts whose every arm, class, tier and context the sentence names take part, so a
derivation cannot reach a number about something the sentence does not talk about.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from dataclasses import dataclass, field
from itertools import permutations

from lorastudy.check.class_groups import GROUP_WORDS, group_means, group_share_of_gap, named_groups
from lorastudy.check.class_bands import never_predicted
from lorastudy.check.class_sets import class_counts, class_wise, largest_classes, pooled
from lorastudy.check.facts import ARMS, Fact
from lorastudy.check.run_times import run_times
from lorastudy.check.seed_pooling import pooled_groups, pooled_predictions

# "17% higher", "+9.2% relative": a relative change; "under 4% of the Week 2 effect": a percentage of a quantity
RELATIVE = r"relative|%\s*(?:more|less|fewer|higher|lower|larger|smaller|faster|slower|cheaper|dearer|bigger|increase|" \
           r"decrease|drop|gain|reduction|improvement|worse|better)\b|percent (?:more|less|higher|lower)"
PERCENT_OF = r"\bof (?:the |its |a |that |this |their )?(?:[\w'’.-]+ ){0,4}?(?:effect|gap|change|gain|improvement|" \
             r"drop|difference|advantage|lift|loss|cost|latency|size|value|score|f1|accuracy|recall|throughput|count)\b"
SHARE = r"\bof (?:the |all |its |their |those |these )?(?:[\w.'’-]+ ){0,3}?(?:test|train|training|validation|val|" \
        r"examples|items|rows|predictions|classes|set|split|weights|parameters|params|gap|difference|total|budget|capacity|" \
        r"support|volume)\b|\bshare\b|\bfraction\b|\bproportion\b"
SUM = r"\btotal|combined|together|\bsum\b|in all\b|altogether|overall\b"
UTILISATION = r"\bbusy\b|utili[sz]|\bload\b|saturat|occupan|capacity|headroom|\bidle\b"
MAGNITUDES = frozenset({"parameters", "latency", "throughput", "cost", "memory", "time", "count", "steps", "instances"})
DERIVED_KINDS = {"ratio", "share"}
TOTAL_KEYS = r"total|_size$|sum of|num_classes|n_classes|classes$|rows|examples$|^train$|^val$|^test$|support"
GAP_SHARE = r"\b(?:share|fraction|proportion|part)\s+of\s+(?:the\s+|its\s+)?(?:[\w-]+\s+){0,2}gap\b|" \
            r"%\s+of\s+(?:the\s+|its\s+)?(?:[\w-]+\s+){0,2}gap\b"
COMPARING = r"\b(?:vs\.?|versus|against|than|compared|advantage|lead|gap|behind|ahead|faster|slower|cheaper)\b|\d\s?(?:x|×)"


@dataclass
class FactIndex:
    """A run's facts, bucketed for fast, bounded look-ups."""

    facts: list[Fact]
    by_kind: dict[str | None, list[Fact]] = field(default_factory=dict)
    by_kind_label: dict[tuple[str | None, str | None], list[Fact]] = field(default_factory=dict)  # label None: no class
    labels: list[str] = field(default_factory=list)
    contexts: list[dict] = field(default_factory=list)  # deployment contexts: name, peak_rps, monthly_predictions ...
    prices: list[float] = field(default_factory=list)
    _pools: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, facts: list[Fact], labels: list[str], config: dict) -> "FactIndex":
        index = cls(facts, labels=labels)
        for fact in facts:
            index.by_kind.setdefault(fact.kind, []).append(fact)
            for label in fact.entities.get("label") or [None]:
                index.by_kind_label.setdefault((fact.kind, label), []).append(fact)
        deployment = (config.get("deployment") or {}) if isinstance(config, dict) else {}
        index.contexts = [c for c in deployment.get("contexts") or [] if isinstance(c, dict)]
        prices = deployment.get("price_per_hour") or {}
        index.prices = sorted({float(v) for v in (prices.values() if isinstance(prices, dict) else [prices])
                               if isinstance(v, (int, float))})
        return index

    def candidates(self, kinds: frozenset[str] | None, labels: set[str] | None = None) -> list[Fact]:
        """Facts of some kinds (None: any); with `labels`, only facts about no class or about one of those."""
        if labels is None:
            if kinds is None:
                return self.facts
            return [f for k in kinds for f in self.by_kind.get(k, ())]
        kinds_ = list(self.by_kind) if kinds is None else kinds
        seen: dict[int, Fact] = {}
        for k in kinds_:
            for label in [None, *labels]:
                for f in self.by_kind_label.get((k, label), ()):
                    seen[id(f)] = f
        return list(seen.values())

    def pairs(self, pool: list[Fact]) -> list[tuple[Fact, Fact]]:
        key = ("pairs", id(pool))
        if key not in self._pools:
            self._pools[key] = _pairs(pool)
        return self._pools[key]

    def pool(self, named: dict[str, set[str]], kinds: frozenset[str] | None, seeds: bool = False) -> list[Fact]:
        """The facts of some kinds about nothing the sentence does not name (facts about no entity included); one
        seed's values only where the sentence speaks of seeds."""
        key = (tuple(sorted((k, tuple(sorted(v))) for k, v in named.items())), kinds, seeds)
        if key not in self._pools:
            self._pools[key] = [f for f in self.candidates(kinds, set(named.get("label", ())))
                                if (seeds or not f.per_seed) and "(seed std" not in f.slot and _within(f, named)]
        return self._pools[key]


def _within(fact: Fact, named: dict[str, set[str]]) -> bool:
    for kind, values in fact.entities.items():
        if kind == "split" or (kind == "tier" and "label" in fact.entities):
            continue
        if kind == "family":
            if named.get("arm") and not values & {a.split("_")[0] for a in named["arm"]}:
                return False
            continue
        if not values <= named.get(kind, set()):
            return False
    return True


def _comparable(a: Fact, b: Fact) -> bool:
    """One quantity of two entities, or two quantities of one entity (of one kind); one seed's values pair only
    with the same seed's."""
    if a is b or a.kind != b.kind:
        return False
    if (a.per_seed or b.per_seed) and re.findall(r"__seed(\d+)", a.source) != re.findall(r"__seed(\d+)", b.source):
        return False
    return (a.slot == b.slot and a.entities != b.entities and _same_row(a, b)) or \
        (a.entities == b.entities and bool(a.entities) and _one_key_apart(a.slot, b.slot))


def _same_row(a: Fact, b: Fact) -> bool:
    """Rows of a list are one quantity of two entities when the rows are told apart by an entity (a cost row's model
    and context); otherwise (batched rows by batch size) only the same row of two arms."""
    if a.entities.get("context") or a.entities.get("label"):
        return True
    return re.findall(r"\.(\d+)(?=\.|$)", a.source) == re.findall(r"\.(\d+)(?=\.|$)", b.source)


@lru_cache(maxsize=65536)
def _one_key_apart(a: str, b: str) -> bool:
    """Two keys of one record ("rare_f1_before" and "rare_f1_after", "val" and "test"), not an interval's two ends."""
    left, right = re.split(r"[.:/]", a), re.split(r"[.:/]", b)
    if len(left) != len(right):
        return False
    apart = [(x, y) for x, y in zip(left, right) if x != y]
    if len(apart) != 1 or re.sub(r"\[\d+\]$", "", apart[0][0]) == re.sub(r"\[\d+\]$", "", apart[0][1]):
        return False
    return not any(re.fullmatch(r"(?:ci|lo|hi|low|high|lower|upper|std|ci_\w+|\w+_ci)(?:\[\d+\])?", x) for x in apart[0])


def _derived(value: float, kind: str | None, a: Fact, b: Fact | None, how: str) -> Fact:
    entities = dict(a.entities)
    if b is not None:
        for key, values in b.entities.items():
            entities[key] = entities.get(key, frozenset()) | values
    source = f"{how}: {a.source}" + (f" and {b.source}" if b is not None else "")
    return Fact(value, kind, entities, source, "derived")


def derive(reading, index: FactIndex) -> list[Fact]:
    """Derived quantities the reading's wording calls for, from facts about the entities its sentence names."""
    named = reading.named if reading.named is not None else reading.entities
    if class_wise(reading):
        return class_counts(reading, index, named)
    text = reading.context + " " + reading.where
    families = {a.split("_")[0] for a in named.get("arm", ())}
    if len(families) == 1 and re.search(COMPARING, text, re.I):
        # "the encoder scores 344.8 against 46.1, 7.5x more": the model set against it is the other family's
        named = {**named, "arm": set(named["arm"]) | {a for a in ARMS if a.split("_")[0] not in families}}
    clause = reading.context
    unit, out = reading.unit, []
    groups = named_groups(reading.where)
    labels = set(reading.entities.get("label", ())) if reading.kind == "share" else set()
    if unit == "%" and re.search(GAP_SHARE, reading.context, re.I) and (reading.entities.get("tier") or groups or labels):
        # "18% of the macro-F1 gap", under "Share of macro-F1 gap": only the group's part of that gap reads as it
        return group_share_of_gap(index, named, set(reading.entities.get("tier", ())), groups, labels)
    base_kinds = reading.accepts
    ratio_like = unit == "x" or reading.kind == "ratio"
    percent = unit == "%"
    if ratio_like or percent:
        base_kinds = _kinds_named(clause) or _kinds_named(reading.where) or None
    seeds = bool(re.search(r"\bseeds?\b|\bper seed\b|\beach run\b", reading.where, re.I)) or reading.seed is not None or \
        (reading.where.startswith("|") and bool(re.search(r"\bseeds?\b|\bper[- ]seed\b", reading.context, re.I)))
    pool = index.pool(named, base_kinds, seeds)
    if len(pool) > 4000:
        return []
    kept = [f for f in pool if of_statistic(reading, f)]
    pool, pairs = (pool, index.pairs(pool)) if len(kept) == len(pool) else (kept, _pairs(kept))
    if reading.difference or unit == "pp" or reading.signed or re.search(r"\bpoints?\b|\bgap\b", clause, re.I):
        out += [_derived(a.value - b.value, a.kind, a, b, "difference") for a, b in pairs
                if not _interval_end(a) and not _interval_end(b)]  # two intervals' ends are no quantity's change
    if reading.plusminus:
        ends = [f for f in pool if f.slot.endswith("[1]")]
        lows = {f.source[:-3]: f for f in pool if f.slot.endswith("[0]")}
        out += [_derived((a.value - lows[a.source[:-3]].value) / 2, a.kind, a, lows[a.source[:-3]], "half-width")
                for a in ends if a.source[:-3] in lows]
    if ratio_like:
        out += [_derived(a.value / b.value, "ratio", a, b, "ratio") for a, b in pairs if b.value and a.slot == b.slot
                and (base_kinds is not None or a.kind in MAGNITUDES or "{#}" not in a.slot)]
        out += [_derived(b.value / a.value, "ratio", a, b, "ratio") for a, b in _cross_kind_pairs(pool) if a.value]
        if re.search(r"\b(?:best|peak|max\w*|highest|fastest|top)\b", text, re.I):
            out += _best_row_ratios(pool)
        if re.search(r"\bSLA\b|\bbudget\b|\btarget\b", text, re.I):
            slas = [f for f in index.by_kind.get("latency", ()) if re.search(r"sla", f.source, re.I) and f.value]
            out += [_derived(a.value / s.value, "ratio", a, s, "times the SLA") for a in pool
                    if a.kind == "latency" and a.entities.get("arm") for s in slas]
            out += [_derived(s.value / a.value, "ratio", a, s, "SLA over latency") for a in pool  # "7.4x inside the SLA"
                    if a.kind == "latency" and a.entities.get("arm") and a.value for s in slas]
    if reading.kind == "latency" and re.search(r"\bSLA\b|\bbudget\b|headroom|\bleaves?\b|\bmargin\b|\bspare\b", text, re.I):
        # "the decoder's p95 leaves only 12.8 ms": the SLA minus the named arm's latency
        slas = [f for f in index.by_kind.get("latency", ()) if re.search(r"sla", f.source, re.I) and f.value]
        out += [_derived(s.value - a.value, "latency", a, s, "SLA minus latency") for a in pool
                if a.kind == "latency" and a.entities.get("arm") and re.search(r"p\d\d|mean|median", a.source) for s in slas]
    if percent and re.search(RELATIVE, text, re.I):
        out += [_derived((a.value - b.value) / b.value, "share", a, b, "relative change") for a, b in pairs if b.value]
    if percent and re.search(PERCENT_OF, text, re.I):
        out += [_derived(a.value / b.value, "share", a, b, "percentage of") for a, b in pairs if b.value]
    if percent and re.search(SHARE, text, re.I):
        counts = index.pool(named, frozenset({"count", "parameters", "zero_f1", "instances"}))
        totals = [f for f in counts if re.search(TOTAL_KEYS, f.source.rsplit(":", 1)[-1].rsplit(".", 1)[-1], re.I)]
        parts = [f for f in counts if f.kind in ("count", "parameters")]
        if len(parts) * len(totals) <= 40000:
            out += [_derived(a.value / b.value, "share", a, b, "share") for a in parts for b in totals
                    if b.value and 0 < a.value < b.value and b.entities.get("arm", a.entities.get("arm")) == a.entities.get("arm")]
            # a part of one arm's total (or of a total about no arm): not one arm's count over another arm's
    if re.search(SUM, text, re.I) and not percent:
        out += [_derived(a.value + b.value, a.kind, a, b, "sum") for a, b in pairs if a.slot == b.slot]
    out += group_means(reading, index, named) + never_predicted(reading, index, named) + _net_examples(reading, index, named)
    out += class_counts(reading, index, named) + largest_classes(reading, index, named)
    out += pooled(reading, index, named, pooled_groups(reading)) + pooled_predictions(reading, index, named)
    out += run_times(reading, index, named)
    out += _deployment(reading, index, named, text)
    if (reading.entities.get("tier") or groups or labels) and \
            re.search(r"\bgap\b|difference|of the|account|contribut|split|comes? from", text, re.I):
        out += group_share_of_gap(index, named, set(reading.entities.get("tier", ())), groups, labels)
    return out


@lru_cache(maxsize=65536)
def _interval_end_key(source: str) -> bool:
    key = source.rsplit(": ", 1)[-1]
    return bool(re.search(r"(?:^|[._])ci\w*(?:\.\w+)?\[[01]\]$|(?:^|[._])(?:ci_)?(?:lo|hi|low|high|lower|upper)$", key))


def _interval_end(fact: Fact) -> bool:
    """An end of a confidence interval ("...test.ci.accuracy[0]"), not a value of the quantity."""
    return _interval_end_key(fact.source)


def of_statistic(reading, fact: Fact) -> bool:
    """A number whose clause (or column) names one latency statistic ("the encoder's p95", "| p50 ms |") is about that
    statistic's latencies only, not the median's or a batch's per-example time."""
    if fact.kind != "latency":
        return True
    text = reading.context.lower()  # its clause, or its header and cell
    named = set(re.findall(r"\b(p50|p95|p99|median)\b", text))
    if len(named) != 1:
        return True
    stat = named.pop().replace("median", "p50")
    source = fact.source.lower().replace("median", "p50")
    # a measured statistic of another kind is not it; a value naming none (an SLA, a flip threshold) may be
    return stat in source or not re.search(r"p\d\d|mean|ms_per_example|batched", source)


def _kinds_named(text: str) -> frozenset[str] | None:
    from lorastudy.check.metric_kinds import _accepted, _kind_matches

    kinds = [k for _, _, k in _kind_matches(text) if k not in DERIVED_KINDS]
    if not kinds and re.search(r"\b(?:slower|faster|quicker|speed\w*)\b", text, re.I):
        kinds = ["latency", "throughput", "time"]  # "4.8x slower": a ratio of latencies or throughputs
    return _accepted(kinds)


def _pairs(pool: list[Fact]) -> list[tuple[Fact, Fact]]:
    """The comparable pairs of a pool (see `_comparable`), found by grouping on slot and on entities."""
    by_slot: dict[tuple, list[Fact]] = {}
    by_entities: dict[tuple, list[Fact]] = {}
    for fact in pool:
        by_slot.setdefault((fact.kind, fact.slot), []).append(fact)
        if fact.entities:
            key = (fact.kind, tuple(sorted((k, tuple(sorted(v))) for k, v in fact.entities.items())))
            by_entities.setdefault(key, []).append(fact)
    out = []
    for members in list(by_slot.values()) + list(by_entities.values()):
        if len(members) <= 80:
            out += [(a, b) for a, b in permutations(members, 2) if _comparable(a, b)]
    seen, unique = set(), []
    for a, b in out:
        if (id(a), id(b)) not in seen:
            seen.add((id(a), id(b)))
            unique.append((a, b))
    return unique


def _slot_pairs(pool: list[Fact]) -> list[tuple[Fact, Fact]]:
    by_slot: dict[str, list[Fact]] = {}
    for fact in pool:
        by_slot.setdefault(fact.slot, []).append(fact)
    return [(a, b) for members in by_slot.values() if len(members) <= 60 for a, b in permutations(members, 2)
            if a.entities != b.entities]


def _best_row_ratios(pool: list[Fact]) -> list[Fact]:
    """Ratios of two arms' best rows of a list ("best batched throughput": each arm at its own best batch size)."""
    best: dict[tuple, list[Fact]] = {}
    for fact in pool:
        if "{#}" in fact.slot and len(fact.entities.get("arm", ())) == 1:
            best.setdefault((fact.kind, re.sub(r"\.\d+\.", ".#.", fact.source.split(next(iter(fact.entities["arm"])))[-1])),
                            []).append(fact)
    out = []
    for members in best.values():
        by_arm: dict[frozenset, list[Fact]] = {}
        for fact in members:
            by_arm.setdefault(fact.entities["arm"], []).append(fact)
        extremes = [pick(facts, key=lambda f: f.value) for facts in by_arm.values() for pick in (max, min)]
        out += [_derived(a.value / b.value, "ratio", a, b, "ratio of best rows") for a, b in permutations(extremes, 2)
                if b.value and a.entities != b.entities]
    return out


def _cross_kind_pairs(pool: list[Fact]) -> list[tuple[Fact, Fact]]:
    """Trainable and total parameters of one arm ("1 in 73 weights"): a ratio across two parameter counts."""
    params = [f for f in pool if f.kind == "parameters"]
    return [(a, b) for a, b in permutations(params, 2) if a.entities == b.entities and a.slot != b.slot][:200]


def _deployment(reading, index: FactIndex, named: dict[str, set[str]], text: str) -> list[Fact]:
    """Sequential throughput, utilisation, instance counts and costs recomputed from latency and the contexts."""
    kind = reading.kind
    wanted = reading.accepts or frozenset()
    queue = "latency" in wanted and re.search(r"\bqueue|\bwait", text, re.I)
    if not ({"throughput", "cost", "instances", "share", "headroom", "time"} & wanted or reading.unit in ("%", "$")
            or reading.rate or queue):
        return []
    arms = set(named.get("arm", set()))
    arms |= {a.removesuffix("_cw") for a in arms}  # a weighted arm is served by its unweighted twin's model
    served = {**named, "arm": arms}
    latencies = [f for f in index.by_kind.get("latency", ()) if f.source.endswith("_ms") and _within(f, served)
                 and f.entities.get("arm") and f.entities["arm"] <= arms and f.value > 0]
    throughputs = [f for f in index.by_kind.get("throughput", ()) if _within(f, served) and f.value > 0
                   and f.entities.get("arm")]
    capacities = [_derived(1000.0 / f.value, "throughput", f, None, "1000 / ms") for f in latencies
                  if "single" in f.source or "mean" in f.source or "p50" in f.source]
    out: list[Fact] = list(capacities) if "throughput" in wanted else []
    contexts = [c for c in index.contexts if not named.get("context") or c.get("name") in named["context"]]
    rates = []
    for context in contexts:
        if isinstance(context.get("peak_rps"), (int, float)):
            rates.append((float(context["peak_rps"]), context))
        if isinstance(context.get("monthly_predictions"), (int, float)):
            rates.append((float(context["monthly_predictions"]) / (730 * 3600), context))
            rates.append((float(context["monthly_predictions"]) / (720 * 3600), context))
        if isinstance(context.get("examples"), (int, float)) and isinstance(context.get("window_minutes"), (int, float)):
            rates.append((float(context["examples"]) / (60 * float(context["window_minutes"])), context))
    utilisation = "share" in wanted and re.search(UTILISATION, text, re.I)
    for rate, context in rates:
        entities_of = {"context": frozenset({str(context.get("name"))})}
        for capacity in capacities + throughputs:
            if not capacity.value:
                continue
            load = rate / capacity.value
            base = Fact(load, "share", {**capacity.entities, **entities_of}, f"{rate:g}/s at {context.get('name')}", "")
            if utilisation:
                out.append(_derived(load, "share", base, capacity, "utilisation"))
                if load > 1:  # spread over the instances the peak needs ("2 / 56.2%")
                    out.append(_derived(load / math.ceil(load - 1e-9), "share", base, capacity, "utilisation per instance"))
            if "headroom" in wanted:
                out.append(_derived(1 - load, "headroom", base, capacity, "headroom"))
            if "instances" in wanted:
                out.append(_derived(float(math.ceil(load - 1e-9)), "instances", base, capacity, "instances"))
            if "cost" in wanted and rate == context.get("peak_rps"):  # always on: the instances the peak needs, each a month
                needed = _derived(float(math.ceil(load - 1e-9)), "instances", base, capacity, "instances")
                for price in index.prices:
                    monthly = _derived(needed.value * price * 730, "cost", needed, None, f"instances x ${price:g}/h x 730 h")
                    out.append(monthly)
                    if isinstance(context.get("monthly_predictions"), (int, float)) and context["monthly_predictions"] and \
                            re.search(r"\bper (?:million|1M|1,000,000)\b", text, re.I):
                        out += [Fact(needed.value * price * hours * 1e6 / context["monthly_predictions"], "cost",
                                     monthly.entities, f"instances x ${price:g}/h x {hours:g} h per million predictions: "
                                     f"{needed.source}", "derived") for hours in (720.0, 730.0, 744.0)]
    if queue:
        out += _queueing(rates, [c for c in capacities if "mean" in c.source])
    if "time" in wanted or "latency" in wanted:
        for capacity in capacities + throughputs:
            for context in contexts:
                examples = context.get("examples") or context.get("monthly_predictions")
                if isinstance(examples, (int, float)) and capacity.value:
                    base = Fact(0.0, "time", {"context": frozenset({str(context.get("name"))})}, str(context.get("name")), "")
                    out.append(_derived(float(examples) / capacity.value, "time", capacity, base, "examples / throughput"))
    if reading.unit == "%" and re.search(r"\bof (?:the |its |a |each )?(?:[\w-]+ )?window\b", text, re.I):
        for capacity in capacities + throughputs:  # "15.7 min (26% of the window)"
            for context in contexts:
                examples, minutes = context.get("examples"), context.get("window_minutes")
                if isinstance(examples, (int, float)) and isinstance(minutes, (int, float)) and minutes and capacity.value:
                    base = Fact(0.0, "share", {"context": frozenset({str(context.get("name"))})}, str(context.get("name")), "")
                    out.append(_derived(examples / capacity.value / (60 * minutes), "share", capacity, base,
                                        "share of the window"))
    if "cost" not in wanted:
        return out
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
    machines = [int(words.get(m.lower(), m)) for m in re.findall(
        r"(?<![\w.])(\d{1,3}|one|two|three|four|five|six)\s+(?:[\w-]+\s+){0,2}(?:machines?|instances?|replicas?|servers?|"
        r"workers?|copies|nodes?|box(?:es)?)\b", reading.where, re.I)]
    for count in machines:
        for price in index.prices:
            for hours in (720.0, 730.0, 744.0):
                out.append(Fact(count * price * hours, "cost", {}, f"{count} machines x ${price:g}/h x {hours:g} h",
                                "derived"))
    for capacity in capacities + throughputs:
        for context in contexts:
            examples = context.get("examples")
            if isinstance(examples, (int, float)) and capacity.value:
                for price in index.prices:
                    base = Fact(0.0, "cost", {"context": frozenset({str(context.get("name"))})}, str(context.get("name")), "")
                    out.append(_derived(float(examples) / capacity.value / 3600 * price, "cost", capacity, base,
                                        "one run's compute cost"))
    for capacity in capacities + throughputs:
        for context in contexts:
            monthly = context.get("monthly_predictions")
            if not isinstance(monthly, (int, float)):
                continue
            for price in index.prices:
                cost = float(monthly) / capacity.value / 3600 * price
                base = Fact(cost, "cost", {**capacity.entities, "context": frozenset({str(context.get("name"))})},
                            f"{monthly:g} predictions/month at ${price:g}/h", "")
                out.append(_derived(cost, "cost", base, capacity, "compute cost"))
    for instances in index.by_kind.get("instances", ()):
        if _within(instances, named):
            for price in index.prices:
                for hours in (720.0, 730.0, 744.0):
                    out.append(_derived(instances.value * price * hours, "cost", instances, None,
                                        f"instances x ${price:g}/h x {hours:g} h"))
    return out


def _queueing(rates: list, capacities: list[Fact]) -> list[Fact]:
    """Mean queue wait and response at a context's peak, each instance taking an equal share of it: fixed service time
    (M/D/1, Pollaczek–Khinchine: W = ρS / 2(1 − ρ)) or exponential (M/M/1: W = ρS / (1 − ρ)), S the mean latency."""
    out = []
    for rate, context in rates:
        if rate != context.get("peak_rps"):
            continue
        for capacity in capacities:
            load = rate / capacity.value
            rho, service = load / math.ceil(load - 1e-9), 1000.0 / capacity.value
            if rho >= 1:
                continue
            base = Fact(rho, "share", {**capacity.entities, "context": frozenset({str(context.get("name"))})},
                        f"{rate:g}/s at {context.get('name')}", "")
            for how, wait in (("M/D/1", rho * service / (2 * (1 - rho))), ("M/M/1", rho * service / (1 - rho))):
                out.append(_derived(wait, "latency", base, capacity, f"{how} queue wait (ms)"))
                out.append(_derived(wait + service, "latency", base, capacity, f"{how} response (ms)"))
    return out


def _net_examples(reading, index: FactIndex, named: dict[str, set[str]]) -> list[Fact]:
    """"The net is −18 test examples": an accuracy change between two arms the sentence names, in examples of the
    test set (Δ accuracy x the number of test examples)."""
    if reading.kind != "count" or reading.decimals or not reading.signed or \
            not re.search(r"\bnet\w*\b", reading.where, re.I) or not re.search(r"\bexamples|\brows\b", reading.where, re.I):
        return []
    sizes = {f.value for f in index.by_kind.get("count", ()) if re.search(r"n_test_examples$|test_size$|sum of test_support$",
                                                                           f.source)}
    accuracies = [f for f in index.pool(named, frozenset({"accuracy"})) if f.entities.get("arm") and
                  re.search(r"\.test\.accuracy(?:\.mean)?$", f.source)]
    return [_derived((a.value - b.value) * n, "count", a, b, f"accuracy change x {n:g} test examples")
            for a, b in permutations(accuracies, 2) if a.entities != b.entities for n in sizes]
