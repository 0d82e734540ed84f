"""Classes picked by a range of training counts ("| 9 to 20 | 41 | 168 | 0.445 | ...", "Head (101–491 train
examples)", "the 6 classes with 22–29 examples"): a band of the per-class files' `train_count`, and what a writer
reports about it, recomputed from the per-class files.

* Its classes' number, their test examples (Σ test_support), their training examples, and the band's smallest and
  largest training count (the ends a writer prints are the counts of its end classes).
* Per arm its row or column names: the mean per-class F1, recall and precision over the band (each seed's mean,
  averaged over the seeds), how many of its classes are at zero F1 (per seed, averaged; and at zero in every seed),
  and the gap between two arms' means.

Bounded: a number in a band's row or clause is about the band's classes only, so only these quantities support it.
"""

from __future__ import annotations

import re
from itertools import permutations

from lorastudy.check.class_sets import _per_seed_rows
from lorastudy.check.facts import Fact

RANGE = r"(?<![\w.])(\d{1,3}(?:,\d{3})*|\d+)\s*(?:to|–|—|-)\s*(\d{1,3}(?:,\d{3})*|\d+)(?![\w.])"
TRAIN_WORDS = r"\btrain(?:ing)?\b|\btrain[- ]count|\bexamples\b"
PROSE_BAND = re.compile(r"\bclasses\s+(?:with|having|of)\s+(?:between\s+)?" + RANGE +
                        r"\s+(?:train(?:ing)?\s+)?(?:examples|rows|items)\b", re.I)


def table_band(label: str, first_header: str) -> tuple[int, int] | None:
    """The training-count band a table row's label states: a range in the label, with the label or the first column's
    header saying it counts training examples ("Head (101–491 train examples)", "| 9 to 20 |" under "Train-count band")."""
    found = re.search(RANGE, label)
    if not found or not (re.search(TRAIN_WORDS, label, re.I) or re.search(TRAIN_WORDS, first_header, re.I)):
        return None
    return _ends(found)


def prose_band(clause: str) -> tuple[int, int] | None:
    """"the 6 classes with 22–29 examples": the band a clause defines its classes by."""
    found = PROSE_BAND.search(clause)
    return _ends(found) if found else None


def _ends(found: re.Match) -> tuple[int, int] | None:
    lo, hi = (int(g.replace(",", "")) for g in found.groups()[-2:])
    return (lo, hi) if lo <= hi else None


def band_facts(reading, index) -> list[Fact]:
    """The quantities of the band's classes (see the module docstring), for the arms the reading names."""
    lo, hi = reading.band
    rows = _per_seed_rows(index)
    train: dict[str, float] = {}
    support: dict[str, float] = {}
    for files in rows.values():
        for classes in files.values():
            for label, row in classes.items():
                if "train_count" in row:
                    train.setdefault(label, row["train_count"])
                if "test_support" in row:
                    support.setdefault(label, row["test_support"])
    members = {label for label, count in train.items() if lo <= count <= hi}
    if not members:
        return []
    where = f"the classes with {lo} to {hi} training examples"
    out = [Fact(float(len(members)), "count", {}, f"the number of {where}", "derived"),
           Fact(float(sum(train[m] for m in members)), "count", {}, f"the training examples of {where}", "derived"),
           Fact(min(train[m] for m in members), "count", {}, f"the smallest training count of {where}", "derived"),
           Fact(max(train[m] for m in members), "count", {}, f"the largest training count of {where}", "derived")]
    if all(m in support for m in members):
        out.append(Fact(float(sum(support[m] for m in members)), "count", {}, f"the test examples of {where}", "derived"))
    arms = set(reading.entities.get("arm", ())) or set((reading.named or {}).get("arm", ()))
    means: dict[tuple[str, str], float] = {}
    for arm in sorted(arms):
        files = [classes for classes in rows.get(arm, {}).values() if members <= set(classes)]
        if not files:
            continue
        for kind in ("f1", "recall", "precision"):
            if all(kind in classes[m] for classes in files for m in members):
                per_seed = [sum(classes[m][kind] for m in members) / len(members) for classes in files]
                means[(arm, kind)] = sum(per_seed) / len(per_seed)
                out.append(Fact(means[(arm, kind)], kind, {"arm": frozenset({arm})},
                                f"{arm}'s mean {kind} over {where}", "derived"))
        if all("f1" in classes[m] for classes in files for m in members):
            zeros = [sum(classes[m]["f1"] == 0 for m in members) for classes in files]
            out.append(Fact(sum(zeros) / len(zeros), "zero_f1", {"arm": frozenset({arm})},
                            f"{arm}'s zero-F1 classes (per seed) of {where}", "derived"))
            out.append(Fact(float(sum(all(classes[m]["f1"] == 0 for classes in files) for m in members)), "zero_f1",
                            {"arm": frozenset({arm})}, f"{arm}'s zero-F1 classes in every seed of {where}", "derived"))
    for (a, kind), (b, other) in permutations(means, 2):
        if kind == other and a != b:
            out.append(Fact(means[(a, kind)] - means[(b, kind)], kind, {"arm": frozenset({a, b})},
                            f"{a} minus {b}: mean {kind} over {where}", "derived"))
    return out


NEVER_PREDICTED = r"\bnever (?:predict\w*|guess\w*|output\w*)|\bnot (?:once )?predicted\b|\bno predictions\b"


def never_predicted(reading, index, named: dict[str, set[str]]) -> list[Fact]:
    """"The encoder never predicts 29 of the 129 classes": per arm the sentence names, its classes with no prediction
    in the per-class files (per seed, averaged; and in every seed), counted from their `predicted_count`."""
    if reading.decimals > 1 or reading.unit or reading.kind not in ("count", "zero_f1") or \
            not re.search(NEVER_PREDICTED, reading.where, re.I):
        return []
    out = []
    for arm in sorted(named.get("arm", ())):
        files = [classes for classes in _per_seed_rows(index).get(arm, {}).values()
                 if all("predicted_count" in row for row in classes.values())]
        if not files:
            continue
        counts = [sum(row["predicted_count"] == 0 for row in classes.values()) for classes in files]
        every = set.intersection(*({label for label, row in classes.items() if row["predicted_count"] == 0}
                                   for classes in files))
        for value, how in ((sum(counts) / len(counts), "per seed"), (float(len(every)), "in every seed")):
            out.append(Fact(value, reading.kind, {"arm": frozenset({arm})}, f"{arm}'s classes never predicted ({how})",
                            "derived"))
    return out
