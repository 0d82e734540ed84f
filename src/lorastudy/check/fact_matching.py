"""A note's numbers matched against its run's artifact facts, in context.

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
"""

from __future__ import annotations

from dataclasses import dataclass

from lorastudy.check.entity_names import _families
from lorastudy.check.facts import Fact
from lorastudy.check.number_reading import Reading

UNITS = {"%": (100.0, 1.0), "pp": (100.0, 1.0), "M": (1e-6,), "k": (1e-3,), "B": (1e-9,), "min": (1 / 60, 1.0),
         "h": (1 / 3600, 1.0), "GB": (1 / 1024, 1.0), "ms": (1.0, 1000.0)}


@dataclass
class Mismatch:
    reading: Reading
    nearest: Fact | None

    def line(self) -> str:
        where = self.reading.where if len(self.reading.where) <= 140 else self.reading.where[:137] + "…"
        near = (f"nearest {self.nearest.source} = {self.nearest.value:g}" if self.nearest
                else "no artifact value of that kind for that entity")
        return f"{self.reading.printed} (read as {self.reading.described()}) in “{where}”: {near}"


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
