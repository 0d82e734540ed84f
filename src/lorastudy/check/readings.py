"""One number of a note and what it was read as (`Reading`), built from its printed match and its context."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lorastudy.check.metric_kinds import COUNTS, _accepted
from lorastudy.check.printed_numbers import _approx, _bound, _rate_shared, _unit

PROPOSAL = r"\bexperiment\b|\bre-?run\b|\bre-?train\b|\btry\b|\bdouble\b|\bnext\b|\bpropos\w*|\bplan\b|\bwould\b|\bwill\b|\bshould\b|\bI'd\b|\bexpect|\bpredict|" \
           r"\bhypothes|\bif\b|\btarget\b"
FRACTION_KINDS = ("f1", "macro_f1", "accuracy", "recall", "precision")
CI_END = r"\bCI\b[^\d−+;)-]{0,12}(?:[-−+]?\d[\d.,]*\s*(?:%|pp|pts?|points?)?\s*(?:to|–|—|-|,|and)\s*)?$"  # its 1st or 2nd number
SETTINGS = {"epochs", "steps", "seed", "batch_size", "learning_rate"}
PRONOUN_SUBJECT = r"\s*(?:it|its|it's|this one|that one)\b"
COMPARATOR = r"(?:above|below|at least|at most|fewer than|more than|less than|under|over|beyond|exceeds?|exceeding|" \
             r"higher than|lower than|>|<|≥|≤)"
PREDICTIVE = r"\b(?:predict\w*|expect\w*|hypothes\w*|if|unless|would|should|will|target|threshold|goal|aim)\b"
DIFFERENCE = r"Δ|delta|\bnet\b|\b(?:chang|diff|gain|lift|drop|loss|minus)\w*|−|relative|moved|\bby\b|ahead|behind|higher|" \
             r"lower|\bmore\b|\w+less\b|\bless\b|fewer|improv|\bgaps?\b|\bvs\.?\b|versus|(?<![\w.])\d\S*\s+(?:\w+\s+)?over\b|than"
# (word starts: "glosses" holds no loss, "again" no gain)


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
    band: tuple[int, int] | None = None  # the training-count band of classes its row or clause is about ("9 to 20")
    estimates: list["Reading"] = field(default_factory=list)  # for a spread ("± 0.4") or an interval's end, the
    # estimates it may bound, nearest first: the number it follows, then the sentence's (or cell's) earlier ones

    @property
    def estimate(self) -> "Reading | None":
        return self.estimates[0] if self.estimates else None

    def described(self) -> str:
        names = "; ".join(f"{k} {'/'.join(sorted(v))}" for k, v in self.entities.items() if v) or "no entity"
        return f"{self.kind or 'any kind'}, {names}"


def _reading(match: re.Match, text: str, kind: str | None, entities: dict[str, set[str]], where: str,
             section: object, context: str, between: bool = False, named: dict[str, set[str]] | None = None,
             unit: str | None = None) -> Reading:
    sign = match.group("sign")
    unit = _unit(match, text) if unit is None else (unit or None)  # "": no unit, whatever follows
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
