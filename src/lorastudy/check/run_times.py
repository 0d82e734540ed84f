"""Training time over an arm's (or a model family's) runs, from runs/<run>/run.json: what a careful writer derives
for "the six decoder runs took 1.3 hours in total", "254 s per encoder run", "906 s per decoder epoch", "seconds per
step ranged from 2.4 to 7.0 across runs".

* Each run's wall time per epoch; the mean over the runs of an arm or of a family of per-run wall time and per-epoch
  wall time; the sum over them (where the sentence says a total, or how many runs it sums: "the six ... runs").
* The lowest and highest per-run wall time and seconds per step (where it speaks of a range).
* A run of another length at the measured time per epoch, where the clause names it ("a two-epoch decoder").

Bounded: the runs of the arms the number's clause names, or of the family it names with "run", "epoch" or "step" ("decoder
runs": all of the decoder's arms); a total only over a set of runs as large as the count it prints, if it prints one.
"""

from __future__ import annotations

import re

from lorastudy.check.facts import ARMS, Fact

WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
         "twelve": 12, "fifteen": 15}
FAMILY_RUNS = r"\b(encoder|decoder)(?:'s)?\s+(?:[\w-]+\s+){0,2}?(?:runs?|epochs?|steps?|training)\b|" \
              r"[- ]epochs?\s+(encoder|decoder)\b"  # "decoder runs", "per encoder run", "a two-epoch decoder"
TOTAL = r"\btotal|\bcombined|\btogether|\bsum\b|\bin all\b|\ball\s+(?:\w+\s+)?runs\b|\btook\b"
RANGE = r"\brang\w*|\bbetween\b|\bfrom\s+[\d.]+\s*\w*\s+to\b|\d\s*[–—-]\s*\d|\bmin\w*|\bmax\w*|\bfastest|\bslowest"


def _runs(index) -> dict[str, list[tuple[str, dict[str, float]]]]:
    """arm -> [(run, {wall_time_s, seconds_per_step, epochs})], from the run.json facts."""
    if "run_times" not in index._pools:
        runs: dict[str, dict[str, dict[str, float]]] = {}
        for fact in index.facts:
            found = re.match(r"runs/(([a-z_]+)__seed\d+)/run\.json: (wall_time_s|seconds_per_step|epochs)$", fact.source)
            if found and found.group(2) in ARMS:
                runs.setdefault(found.group(2), {}).setdefault(found.group(1), {})[found.group(3)] = fact.value
        index._pools["run_times"] = {arm: sorted(members.items()) for arm, members in runs.items()}
    return index._pools["run_times"]


def _count_before(what: str, text: str) -> int | None:
    """The count, in digits or words, printed right before `what` ("six ... runs", "two-epoch")."""
    found = re.search(r"\b(\d+|" + "|".join(WORDS) + r")" + what, text, re.I)
    if not found:
        return None
    token = found.group(1)
    return int(token) if token.isdigit() else WORDS[token.lower()]


def run_times(reading, index, named: dict[str, set[str]]) -> list[Fact]:
    """Per-epoch, mean, summed and extreme training times over the runs of the arms (or family) the sentence names."""
    if "time" not in (reading.accepts or ()) or reading.unit not in ("s", "min", "h", None) or reading.seed is not None:
        return []  # a row that names its seed is that run's value, no mean or total over runs
    text = reading.context  # its clause: "254 s per encoder run, 906 s per decoder epoch" are two quantities
    runs = _runs(index)
    arms = set(named.get("arm", ()))
    families = {(m.group(1) or m.group(2)).lower() for m in re.finditer(FAMILY_RUNS, text, re.I)}
    sets: dict[str, set[str]] = {arm: {arm} for arm in arms if arm in runs}
    family_arms: set[str] = set()
    for family in families:
        members = {a for a in runs if a.split("_")[0] == family}
        if members:
            sets[f"the {family} runs"] = members
            family_arms.update(members)  # "per decoder epoch": one of the family's arms, about the family
            sets.update({arm: {arm} for arm in members})
    if not sets:
        return []
    count = _count_before(r"\s+(?:[\w-]+\s+){0,3}?runs\b", text)  # "the six decoder runs"
    epochs = _count_before(r"[- ]epochs?\b", text)  # "a two-epoch decoder: 694 s"
    out: list[Fact] = []
    for name, members in sets.items():
        chosen = [(run, values) for arm in sorted(members) for run, values in runs[arm]]
        entities = {"arm": frozenset(members)} if len(members) == 1 and not members & family_arms else {}
        walls = [v["wall_time_s"] for _, v in chosen if "wall_time_s" in v]
        per_epoch = [v["wall_time_s"] / v["epochs"] for _, v in chosen if v.get("epochs") and "wall_time_s" in v]
        steps = [v["seconds_per_step"] for _, v in chosen if "seconds_per_step" in v]
        if re.search(r"\bepoch", text, re.I):
            out += [Fact(value, "time", entities, f"wall time per epoch of {run}", "derived")
                    for (run, v), value in zip(chosen, per_epoch)]
            if per_epoch:
                out.append(Fact(sum(per_epoch) / len(per_epoch), "time", entities, f"mean wall time per epoch over {name}",
                                "derived"))
                if epochs:
                    out.append(Fact(epochs * sum(per_epoch) / len(per_epoch), "time", entities,
                                    f"{epochs} epochs at the mean wall time per epoch over {name}", "derived"))
        if walls and len(walls) > 1:
            out.append(Fact(sum(walls) / len(walls), "time", entities, f"mean wall time per run over {name}", "derived"))
            if re.search(TOTAL, text, re.I) and (count is None or count == len(walls)):
                out.append(Fact(sum(walls), "time", entities, f"wall time summed over the {len(walls)} runs of {name}",
                                "derived"))
        if name.startswith("the ") and len(walls) > 0:
            out += [Fact(v["wall_time_s"], "time", entities, f"wall time of {run} (one of {name})", "derived")
                    for run, v in chosen if "wall_time_s" in v]
        if re.search(RANGE, text, re.I):
            for what, values in (("wall time", walls), ("seconds per step", steps)):
                if len(values) > 1:
                    out += [Fact(min(values), "time", entities, f"lowest {what} over {name}", "derived"),
                            Fact(max(values), "time", entities, f"highest {what} over {name}", "derived")]
    return out
