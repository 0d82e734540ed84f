"""Where the differences come from: the weighting effect split by tier, mechanism numbers, per-class differences.

Descriptive numbers beside the intervals of `uncertainty`: what weighting changed in each tier and which
classes it lifted off or dropped to zero F1, what each vanilla model already knew about the rare tier,
and which classes the encoder and the decoder score differently.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from lorastudy.core.errors import StudyError
from lorastudy.measure.metrics import (COMPARED, WEIGHTED_ARM, LabelSpace, RunEval, common_seeds, mean_std,
                                       spearman_f1_vs_train_count)
from lorastudy.measure.uncertainty import Uncertainty


def weighting_effect(uncertainty: Uncertainty, vanilla_arm: str, weighted_arm: str) -> dict:
    """Weighted minus vanilla: deltas with intervals, Δ macro F1 split by tier, classes lifted off / fallen to zero.

    Δ macro F1 = Σ over tiers of (tier's share of evaluable classes) × (Δ tier mean F1), exactly,
    because macro F1 is the mean over evaluable classes; the split says where the change came from.
    """
    runs, space = uncertainty.runs, uncertainty.space
    seeds = common_seeds(runs, vanilla_arm, weighted_arm)
    if not seeds:
        raise StudyError(f"{vanilla_arm} and {weighted_arm} share no seed.", "train both arms with the same seeds.")
    vanilla_runs, weighted_runs = [runs[vanilla_arm][s] for s in seeds], [runs[weighted_arm][s] for s in seeds]
    keys = ("accuracy", "macro_f1", "zero_f1_count")
    level = [{m: float(np.mean([run.metrics[m] for run in group])) for m in keys}
             for group in (vanilla_runs, weighted_runs)]
    delta = {m: level[1][m] - level[0][m] for m in keys}
    intervals = {m: uncertainty.contrast({weighted_arm: 1.0, vanilla_arm: -1.0}, m) for m in COMPARED}
    before, after = vanilla_runs[0], weighted_runs[0]
    f1_before, f1_after = before.metrics["f1"], after.metrics["f1"]
    evaluable = before.metrics["support"] > 0

    def moved(ids: np.ndarray) -> list[dict]:
        return [{"label": space.labels[i], "train_count": int(space.train_counts[i]), "tier": space.tier_of[i],
                 "f1_before": float(f1_before[i]), "f1_after": float(f1_after[i])}
                for i in sorted(ids, key=lambda i: (space.train_counts[i], i))]

    per_tier = {}
    for tier in space.tier_names:
        change = _tier_change(vanilla_runs, weighted_runs, tier)
        class_share = float((space.tier_mask(tier) & evaluable).sum() / evaluable.sum())
        contribution = None if change["delta_mean_f1"] is None else class_share * change["delta_mean_f1"]
        per_tier[tier] = {**change, "class_share": class_share, "macro_f1_contribution": contribution}
    return {
        "vanilla": vanilla_arm, "weighted": weighted_arm, "seeds": seeds,
        "before": level[0], "after": level[1], "delta": delta,
        "relative_macro_f1": _relative(delta["macro_f1"], level[0]["macro_f1"]),
        "relative_accuracy": _relative(delta["accuracy"], level[0]["accuracy"]),
        "intervals": {m: row for m, row in intervals.items() if row is not None},
        "lifted_off_zero": moved(np.flatnonzero(evaluable & (f1_before == 0) & (f1_after > 0))),
        "fell_to_zero": moved(np.flatnonzero(evaluable & (f1_before > 0) & (f1_after == 0))),
        "per_tier": per_tier,
    }


def _tier_mean(group: Sequence[RunEval], tier: str, key: str) -> float | None:
    """Seed mean of one tier statistic; null for an empty group or a statistic that is never defined."""
    return mean_std([run.tiers[tier][key] for run in group])["mean"]


def _tier_change(before: Sequence[RunEval], after: Sequence[RunEval], tier: str) -> dict:
    out = {"true_share": _tier_mean(before, tier, "true_share")}
    for key, name in (("mean_f1", "mean_f1"), ("zero_f1_count", "zero_f1"), ("recall", "recall"),
                      ("predicted_share", "predicted_share")):
        old, new = _tier_mean(before, tier, key), _tier_mean(after, tier, key)
        out[f"{name}_before"], out[f"{name}_after"] = old, new
        if key != "predicted_share":
            out[f"delta_{name}"] = None if old is None or new is None else new - old
    return out


def _relative(delta: float, base: float) -> float | None:
    return delta / base if base else None


def mechanism(runs: dict[str, dict[int, RunEval]], space: LabelSpace) -> dict:
    """What each vanilla model already knew: rare-tier recall and share, F1-count correlation, shares after weighting."""
    rare = space.rare_tier
    out = {}
    for arm in ("tfidf_logreg", *WEIGHTED_ARM):
        if arm not in runs:
            continue
        vanilla = list(runs[arm].values())
        weighted = list(runs.get(WEIGHTED_ARM.get(arm, ""), {}).values())
        change = {tier: _tier_change(vanilla, weighted, tier) for tier in space.tier_names}
        out[arm] = {
            "rare_tier": rare, "seeds": [run.seed for run in vanilla],
            "rare_recall": _tier_mean(vanilla, rare, "recall"),
            "rare_predicted_share": _tier_mean(vanilla, rare, "predicted_share"),
            "rare_true_share": _tier_mean(vanilla, rare, "true_share"),
            "spearman_rho": _mean_rho(vanilla, space.train_counts),
            "weighted": WEIGHTED_ARM[arm] if weighted else None,
            "spearman_rho_weighted": _mean_rho(weighted, space.train_counts),
            "per_tier": {tier: {key: change[tier][key] for key in ("true_share", "predicted_share_before",
                                                                   "predicted_share_after", "recall_before",
                                                                   "recall_after")}
                         for tier in space.tier_names},
        }
    return out


def _mean_rho(group: Sequence[RunEval], train_counts: np.ndarray) -> float | None:
    return mean_std([_finite(spearman_f1_vs_train_count(run.metrics, train_counts)["rho"]) for run in group])["mean"]


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def class_differences(runs: dict[str, dict[int, RunEval]], space: LabelSpace, a: str = "encoder_lora",
                      b: str = "decoder_lora") -> dict | None:
    """Per-class F1 of b minus a on the first common seed, evaluable classes only, largest |diff| first."""
    seeds = common_seeds(runs, a, b)
    if not seeds:
        return None
    run_a, run_b = runs[a][seeds[0]], runs[b][seeds[0]]
    evaluable = np.flatnonzero(run_a.metrics["support"] > 0)
    rows = [{"label": space.labels[i], "tier": space.tier_of[i], "train_count": int(space.train_counts[i]),
             "test_support": int(run_a.metrics["support"][i]),
             "f1_a": float(run_a.metrics["f1"][i]), "f1_b": float(run_b.metrics["f1"][i]),
             "diff": float(run_b.metrics["f1"][i] - run_a.metrics["f1"][i])} for i in evaluable]
    rows.sort(key=lambda row: -abs(row["diff"]))
    return {"pairs": f"{a} vs {b}", "a": a, "b": b, "seed": seeds[0], "classes": rows}
