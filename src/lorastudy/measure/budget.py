"""Two arms compared at a matched training budget, from the validation curves their train logs recorded.

Each run's `training.val_curve` (results.json, read from `runs/*/train_log.jsonl`) holds its validation macro
F1 at each evaluation step. Steps become training examples seen (step x batch size of the arm's recipe), so two
arms with different batch sizes still meet at the same number of examples. The matched budget is the largest
number of examples at which both arms have a validation point in every shared seed; the comparison there is the
mean over seeds, with the seed-paired differences and their t-interval where there are several. Each arm's own
(final) budget stays beside it, and the last segment of each curve says whether more training was still helping.
"""

from __future__ import annotations

import math
from statistics import mean, stdev

from scipy.stats import t as student_t

from lorastudy.study.arms import arm_spec
from lorastudy.study.config import StudyConfig


def examples_per_step(config: StudyConfig, arm: str) -> int | None:
    """Training examples one optimizer step sees for this arm (its recipe's batch size); None for TF-IDF."""
    spec = arm_spec(config, arm, 0, "")  # type: ignore[arg-type]
    return spec.train.batch_size if spec.train else None


def curves(results: dict, arm: str, per_step: int) -> dict[int, dict[int, tuple[int, float]]]:
    """seed -> {examples seen: (index in the run's val_curve, validation macro F1)}."""
    out: dict[int, dict[int, tuple[int, float]]] = {}
    for seed in results["arms"][arm]["seeds"]:
        curve = ((results["runs"].get(f"{arm}__seed{seed}") or {}).get("training") or {}).get("val_curve") or []
        points = {int(p["step"]) * per_step: (i, float(p["val_macro_f1"])) for i, p in enumerate(curve)
                  if p.get("step") is not None and p.get("val_macro_f1") is not None}
        if points:
            out[seed] = points
    return out


def mean_curve(seeded: dict[int, dict[int, tuple[int, float]]]) -> list[dict]:
    """The curve averaged over the seeds that reached each point."""
    budgets = sorted({b for points in seeded.values() for b in points})
    values = {b: [points[b][1] for points in seeded.values() if b in points] for b in budgets}
    return [{"examples": b, "val_macro_f1": mean(values[b]), "n_seeds": len(values[b]),
             "sd": stdev(values[b]) if len(values[b]) >= 2 else None} for b in budgets]


def last_gain(curve: list[dict]) -> float | None:
    """Validation macro F1 gained over the curve's last segment (mean curve); None with one point."""
    return curve[-1]["val_macro_f1"] - curve[-2]["val_macro_f1"] if len(curve) >= 2 else None


def matched_budget(results: dict, config: StudyConfig, a: str, b: str, confidence: float = 0.95) -> dict | None:
    """b - a validation macro F1 at the largest budget (examples seen) both reached in every seed, and at each arm's
    own final budget. None when either arm is missing, has no validation curve, or the two never meet."""
    if a not in results["arms"] or b not in results["arms"]:
        return None
    steps = {arm: examples_per_step(config, arm) for arm in (a, b)}
    if None in steps.values():
        return None
    seeded = {arm: curves(results, arm, steps[arm]) for arm in (a, b)}
    if not all(seeded.values()):
        return None
    common = set.intersection(*(set(points) for arm in (a, b) for points in seeded[arm].values()))
    if not common:
        return None
    budget = max(common)
    values = {arm: {seed: points[budget] for seed, points in seeded[arm].items()} for arm in (a, b)}
    shared = sorted(set(values[a]) & set(values[b]))
    paired = [values[b][s][1] - values[a][s][1] for s in shared]
    level = {arm: mean(v for _, v in values[arm].values()) for arm in (a, b)}
    diff = level[b] - level[a]
    ci = None
    if len(paired) >= 2:
        half = float(student_t.ppf(0.5 + confidence / 2, len(paired) - 1)) * stdev(paired) / math.sqrt(len(paired))
        ci = [mean(paired) - half, mean(paired) + half]
    mean_curves = {arm: mean_curve(seeded[arm]) for arm in (a, b)}
    final = {arm: mean_curves[arm][-1] for arm in (a, b)}
    own_diff = final[b]["val_macro_f1"] - final[a]["val_macro_f1"]
    first_seed = {arm: min(values[arm]) for arm in (a, b)}
    return {"a": a, "b": b, "examples": budget, "examples_per_step": steps,
            "steps": {arm: budget // steps[arm] for arm in (a, b)},
            "level": level, "diff": diff, "paired": paired, "seeds": shared, "ci": ci,
            "n_seeds": {arm: len(values[arm]) for arm in (a, b)},
            "distinguishable": None if ci is None else bool(ci[0] > 0 or ci[1] < 0),
            "own": {arm: final[arm] for arm in (a, b)}, "own_diff": own_diff,
            "budget_part": own_diff - diff,
            "last_gain": {arm: last_gain(mean_curves[arm]) for arm in (a, b)},
            "curves": mean_curves,
            "pointer": {arm: (first_seed[arm], values[arm][first_seed[arm]][0]) for arm in (a, b)},
            "final_pointer": {arm: (min(seeded[arm]), len(results["runs"][f"{arm}__seed{min(seeded[arm])}"]
                                                          ["training"]["val_curve"]) - 1) for arm in (a, b)}}
