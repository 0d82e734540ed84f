"""Numbers a writer computes from numbers printed beside them: "0.807 vs 0.656 (15.0 points)", "2.12 s vs 0.30 s
(7.1x)", "32 of 150 (21%)", "2,004 s = 33.4 min", "1,189 MB (1.16 GB)".

Such a number is supported when it is a difference, ratio, share, relative change, sum or unit conversion of two
numbers of its own sentence (or, for a ratio or share column, its own table row) that the artifacts themselves
support, within the rounding of all three. Its operands are verified, so it cannot vouch for anything the run does
not hold; the search is bounded by the few numbers one sentence prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lorastudy.check.fact_matching import CONTRADICTED, NOT_CHECKABLE, POINTABLE, SUPPORTED, Judgement, _tolerance
from lorastudy.check.facts import Fact
from lorastudy.check.readings import Reading

# unit -> (dimension, factor to the dimension's base unit)
DIMENSIONS = {"%": ("fraction", 0.01), "pp": ("fraction", 0.01), "ms": ("time", 0.001), "s": ("time", 1.0),
              "min": ("time", 60.0), "h": ("time", 3600.0), "MB": ("memory", 1.0), "GB": ("memory", 1024.0),
              "x": ("ratio", 1.0), "M": ("plain", 1e6), "k": ("plain", 1e3), "B": ("plain", 1e9),
              "examples/s": ("throughput", 1.0)}
GB_SLACK = 1024 / 1000
PRECISION = 6  # a derivation's rounding may span at most 6 units of the target's last digit: a wider one pins nothing
MULTIPLE_WORDS = r"\b(?:twice|double[ds]?|half(?: of)?)\b"
SUM_WORDS = r"\b(?:total|together|combined|sum|in all|altogether)\b"  # "1.16 GB" may be 1,000 or 1,024 MB


@dataclass(frozen=True)
class Magnitude:
    """A printed number in its dimension's base unit, with the half-width its rounding leaves."""

    dimension: str
    value: float
    half_width: float
    unit: str | None

    @property
    def low(self) -> float:
        return self.value - self.half_width

    @property
    def high(self) -> float:
        return self.value + self.half_width


def magnitude(reading: Reading) -> Magnitude:
    """The reading as a quantity: a fraction for scores and percentages, seconds, MB, a ratio, or a plain number
    (money keeps its rate: "$72 a month" and "$0.10 an hour" are not one dimension)."""
    unit, tolerance = reading.unit, _rounding(reading)
    if unit in DIMENSIONS:
        dimension, factor = DIMENSIONS[unit]
    elif reading.kind in POINTABLE:  # "0.807" is a fraction; "15.0" or "+0.2" of a score is its points
        points = abs(reading.value) > 1 or (reading.signed and reading.decimals <= 1)
        dimension, factor = "fraction", (0.01 if points else 1.0)
    elif "$" in reading.printed:
        dimension, factor = f"usd per {reading.rate}", 1.0
    else:
        dimension, factor = "plain", 1.0
    return Magnitude(dimension, reading.value * factor, tolerance * factor, unit)


def _rounding(reading: Reading) -> float:
    """Half the printed number's last unit; a whole count ("32 of 150") is exact."""
    whole = reading.decimals == 0 and reading.unit is None and not reading.approx and "$" not in reading.printed
    return 0.0 if whole else _tolerance(reading)


def _quotient(a: Magnitude, b: Magnitude) -> tuple[float, float] | None:
    if b.low <= 0 or a.low < 0:
        return None
    return a.low / b.high, a.high / b.low


def candidates(target: Reading, operands: list[Reading]) -> Iterator[tuple[str, float, float]]:
    """(how, low, high) of each quantity the target may have been computed as from two of its operands."""
    own = magnitude(target)
    values = [(r, magnitude(r)) for r in operands if r is not target]
    for ra, a in values:
        multiple = re.search(MULTIPLE_WORDS, target.where[max(0, target.where.find(target.printed) - 40):], re.I)
        if multiple and a.dimension == own.dimension:  # "two seed SDs (9.25 points, twice 4.62)"
            factor = 0.5 if multiple.group(0).lower().startswith("half") else 2.0
            yield f"{multiple.group(0).lower()} {ra.printed}", a.low * factor, a.high * factor
        if a.dimension == own.dimension and a.unit != own.unit and own.dimension not in ("ratio", "plain"):
            for factor in (1.0, 1 / GB_SLACK if a.unit == "GB" else GB_SLACK) if "GB" in (a.unit, own.unit) else (1.0,):
                yield f"{ra.printed} in other units", a.low * factor, a.high * factor
        for rb, b in values:
            pair = f"{ra.printed} and {rb.printed}"
            if rb is not ra and ra.unit == rb.unit and ra.unit not in ("x", "%", "pp") and \
                    (own.dimension == "ratio" or target.unit == "%"):
                # "they span 22x, from 0.22 to 4.87", "21% (32 of 150)": a ratio or share of two numbers printed
                # alike, whatever they were read as
                quotient = _quotient(Magnitude("", abs(ra.value), _rounding(ra), None),
                                     Magnitude("", abs(rb.value), _rounding(rb), None))
                if quotient:
                    yield f"{'ratio' if own.dimension == 'ratio' else 'share'} of {pair}", *quotient
            if rb is ra or a.dimension != b.dimension:
                continue
            if own.dimension == a.dimension != "ratio" and target.difference:
                difference = a.value - b.value
                yield f"difference of {pair}", difference - a.half_width - b.half_width, \
                    difference + a.half_width + b.half_width
            if own.dimension == a.dimension not in ("fraction", "ratio") and re.search(SUM_WORDS, target.context, re.I):
                yield f"sum of {pair}", a.low + b.low, a.high + b.high
            if target.unit == "%":
                relative = _quotient(Magnitude("", abs(a.value - b.value), a.half_width + b.half_width, None),
                                     Magnitude("", abs(b.value), b.half_width, None))
                if relative:
                    yield f"relative change: {pair}", *relative


def printed_derivation(target: Reading, operands: list[Reading]) -> str | None:
    """How the target follows from two supported numbers printed beside it, or None."""
    own = magnitude(target)
    for how, low, high in candidates(target, [r for r in operands if not (r.plusminus or r.interval_end or r.estimates)]):
        if own.dimension == "ratio" or (target.unit == "%" and how.startswith(("share", "relative"))):
            low, high = low * (100 if target.unit == "%" else 1), high * (100 if target.unit == "%" else 1)
            value, half = abs(target.value), _tolerance(target)
        else:
            value, half = (own.value if target.signed else abs(own.value)), own.half_width
            if not target.signed and how.startswith("difference"):
                low, high = (min(abs(low), abs(high)), max(abs(low), abs(high))) if low * high > 0 else (0.0, max(-low, high))
        if value + half >= low and value - half <= high and high - low <= PRECISION * 2 * (half or 0.5):
            return how
    return None


def supported_by_neighbours(judgements: list[Judgement]) -> list[Judgement]:
    """The judgements, with a number the artifacts do not support but that is computed from numbers of its own
    sentence (or, for a ratio or percentage, its table row) marked supported when those are supported, and not
    checkable (never contradicted) when some of them are themselves not checkable: it is consistent with what the
    note printed, and what the note printed is not in the run."""
    beside: dict[str, list[Judgement]] = {}
    for j in judgements:
        if j.outcome != CONTRADICTED and not j.reading.bound:
            beside.setdefault(j.reading.where, []).append(j)
    out = []
    for j in judgements:
        reading = j.reading
        if j.outcome != SUPPORTED and not reading.bound and (not reading.where.startswith("|") or reading.unit in ("x", "%")):
            neighbours = beside.get(reading.where, [])
            verified = [k.reading for k in neighbours if k.outcome == SUPPORTED]
            how = printed_derivation(reading, verified)
            if how:
                fact = Fact(reading.value, reading.kind, {}, f"computed from the numbers beside it: {how}", "derived")
                j = Judgement(reading, SUPPORTED, fact)
            elif j.outcome == CONTRADICTED:
                how = printed_derivation(reading, [k.reading for k in neighbours])
                if how:
                    j = Judgement(reading, NOT_CHECKABLE, why=f"computed from numbers beside it the run does not hold ({how})")
        out.append(j)
    return out
