"""The range over an arm's seeds, printed as an interval after the seeds' mean ("73.6% [73.3–74.1]", "0.419
[0.411–0.428]"): where the interval is not a confidence interval, its ends are the lowest and highest of the per-seed
values of the quantity the estimate before it is (the same key of the same arm), and nothing else.

Bounded: only the per-seed values whose mean (or reported mean) reads as the estimate the interval follows; the first
end is judged against their minimum, the second against their maximum.
"""

from __future__ import annotations

import re

from lorastudy.check.facts import Fact

CONFIDENCE = r"\bCI\b|confidence|bootstrap|credible|\binterval"
SPREAD = r"(?:^|[._])(?:ci|interval|std)\w*(?:\.\w+)?(?:\[[01]\])?$|(?:^|[._])(?:lo|hi|low|high|lower|upper)$"


def _bracket_text(reading) -> str:
    """The words of the reading's cell (table) or sentence (prose) up to it."""
    text = reading.context if reading.where.startswith("|") else reading.where
    at = text.find(reading.printed)
    return text[:at] if at >= 0 else ""


def seed_range_ends(reading, index) -> list[Fact]:
    """The per-seed minimum (for a lower end) or maximum (for an upper end) of the estimate's quantity, for an
    interval's end that no confidence interval of that kind and entity reads as."""
    from lorastudy.check.fact_matching import _direct, _quantity, value_matches

    before = _bracket_text(reading)
    opening = max(before.rfind("["), before.rfind("("))
    if opening < 0 or re.search(CONFIDENCE, before[max(0, opening - 40):] + " " + reading.context, re.I):
        return []
    out: list[Fact] = []
    for estimate in reading.estimates[:1]:
        upper = bool(re.search(r"\d", before[opening + 1:]))  # "[73.3–74.1]": the number after the first is the top
        lower = not upper
        supporting = [f for f in _direct(estimate, index) if value_matches(estimate, f.value, f) and not f.per_seed]
        for fact in supporting:
            quantity = _quantity(fact.source)
            seeds: dict[str, Fact] = {}
            clash = False
            for other in index.by_kind.get(fact.kind, ()):
                if not other.per_seed or other.entities != fact.entities or \
                        re.search(SPREAD, other.source.rsplit(": ", 1)[-1], re.I) or _quantity(other.source) != quantity:
                    continue
                seed = re.search(r"__seed(\d+)", other.source).group(1)
                clash = clash or seed in seeds
                seeds[seed] = other
            if clash or len(seeds) < 2:
                continue  # a curve (several values per seed), or one seed: no range over the seeds
            values = [f.value for f in seeds.values()]
            where = re.sub(r"__seed\d+", "__seed*", next(iter(seeds.values())).source)
            if lower:
                out.append(Fact(min(values), fact.kind, fact.entities, f"min over {len(values)} seeds of {where}", "derived"))
            if upper:
                out.append(Fact(max(values), fact.kind, fact.entities, f"max over {len(values)} seeds of {where}", "derived"))
    return out
