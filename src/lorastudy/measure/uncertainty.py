"""Uncertainty: bootstrap over test examples, t-intervals over seeds, and the contrasts between arms built on them.

Two rules hold for every interval in the note:
- Where an interval comes from (`source`): a percentile bootstrap over test examples of
  each arm's seed mean ("test_resampling", all arms with one training seed: it says
  nothing about training variance). Where an arm has several seeds, that interval is
  widened by a Student-t interval over the seeds ("test_and_seeds"): each side's
  bootstrap half-width and the t half-width added in quadrature, so the test-set and
  run-to-run sources both count and neither hides the other. The t-interval is over
  the seeds the several-seed arms share (paired), a one-seed arm held at its run, whose
  own training variance no interval sees. Point estimate (seed means), interval and
  verdict of one quantity always come from the same rule.
- A bootstrap resample is scored on the same class set as the point estimate (the
  classes evaluable on the whole test set), and every arm is scored on the same
  resamples, so paired intervals are of the difference itself.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.stats import t as student_t

from lorastudy.measure.metrics import (COMPARED, RARE_RECALL, WEIGHTED_ARM, LabelSpace, RunEval,
                                       classification_metrics, common_seeds)
from lorastudy.study.config import ARMS as ARM_ORDER, EvaluationConfig

RESAMPLE_CHUNK = 100


# --- bootstrap -------------------------------------------------------------


def _resample_chunks(n_examples: int, n_samples: int, seed: int):
    """Resampled index matrices [chunk, n_examples]; the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_samples, RESAMPLE_CHUNK):
        yield rng.integers(0, n_examples, size=(min(RESAMPLE_CHUNK, n_samples - start), n_examples))


def resampled_scores(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, num_classes: int,
                     rare_classes: np.ndarray | None = None, scored: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy and macro F1 of each resample (a row of `idx`) from per-resample confusion counts.

    Macro F1 averages over `scored` (a boolean per class; default: the classes with examples in
    `y_true`), the point estimate's class set, whatever a resample happens to contain: a scored
    class without examples in a resample has F1 0 there, as scikit-learn with `labels=` gives.
    With `rare_classes` (a boolean per class) also the pooled recall of the rare tier's examples
    (NaN for a resample without one).
    """
    t, p = y_true[idx], y_pred[idx]
    offset = np.arange(idx.shape[0])[:, None] * num_classes
    size = idx.shape[0] * num_classes
    correct = t == p
    tp = np.bincount((offset + t)[correct], minlength=size).reshape(-1, num_classes)
    support = np.bincount((offset + t).ravel(), minlength=size).reshape(-1, num_classes)
    predicted = np.bincount((offset + p).ravel(), minlength=size).reshape(-1, num_classes)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    if scored is None:
        scored = np.bincount(y_true, minlength=num_classes) > 0
    scored = np.asarray(scored, dtype=bool)
    scores = {"accuracy": correct.mean(axis=1), "macro_f1": f1[:, scored].mean(axis=1)}
    if rare_classes is not None:
        in_rare = np.asarray(rare_classes)[t]
        n_rare = in_rare.sum(axis=1)
        scores[RARE_RECALL] = np.divide((correct & in_rare).sum(axis=1), n_rare, out=np.full(len(t), np.nan),
                                        where=n_rare > 0)
    return scores


def bootstrap_scores(y_true: np.ndarray, preds: Sequence[np.ndarray], n: int, seed: int,
                      rare_classes: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """Bootstrap distributions of every metric for several predictors on the same resamples."""
    y_true = np.asarray(y_true)
    preds = [np.asarray(p) for p in preds]
    num_classes = int(max(y_true.max(), *(p.max() for p in preds))) + 1
    if rare_classes is not None:
        num_classes = max(num_classes, len(rare_classes))
    scored = np.bincount(y_true, minlength=num_classes) > 0
    chunks = [[] for _ in preds]
    for idx in _resample_chunks(len(y_true), n, seed):
        for chunk, pred in zip(chunks, preds):
            chunk.append(resampled_scores(y_true, pred, idx, num_classes, rare_classes, scored))
    return [{m: np.concatenate([c[m] for c in chunk]) for m in chunk[0]} for chunk in chunks]


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def seed_half_width(values: Sequence[float], confidence: float) -> float:
    """Student-t half-width of the mean of seed-level values: what run-to-run variation allows."""
    values = np.asarray(values, dtype=float)
    return float(student_t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def _point(y_true: np.ndarray, y_pred: np.ndarray, metric: str) -> float:
    num_classes = int(max(np.max(y_true), np.max(y_pred))) + 1
    return classification_metrics(y_true, y_pred, num_classes)[metric]


def bootstrap_ci(y_true: Sequence[int], y_pred: Sequence[int], metric: str, n: int, confidence: float,
                 seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` ("accuracy" or "macro_f1") over test examples."""
    scores = bootstrap_scores(np.asarray(y_true), [np.asarray(y_pred)], n, seed)[0]
    return percentile_interval(scores[metric], confidence)


def paired_bootstrap_diff(y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], metric: str, n: int,
                          confidence: float, seed: int) -> dict:
    """Difference b - a of `metric` with a percentile interval from the same resamples for both predictors."""
    y_true = np.asarray(y_true)
    scores_a, scores_b = bootstrap_scores(y_true, [pred_a, pred_b], n, seed)
    ci = percentile_interval(scores_b[metric] - scores_a[metric], confidence)
    diff = _point(y_true, np.asarray(pred_b), metric) - _point(y_true, np.asarray(pred_a), metric)
    return {"metric": metric, "diff": diff, "ci": list(ci), "distinguishable": not ci[0] <= 0 <= ci[1]}


# --- uncertainty across arms and seeds ----------------------------------------


def _run_score(run: RunEval, metric: str, rare: str) -> float | None:
    """A run's point value of a compared metric: rare_recall is the rare tier's pooled recall."""
    return run.tiers[rare]["recall"] if metric == RARE_RECALL else run.metrics[metric]


class Uncertainty:
    """Every interval of the study from one rule (module docstring): a bootstrap over test examples of the
    seed means, widened by the t-interval over seeds where an arm has several.

    Every run is bootstrapped once, on the same resamples, so any contrast between arms (a difference, a
    difference of differences) is paired. An arm with several seeds enters as its seed mean, point estimate
    and resamples alike: a one-seed reference is compared with the LoRA arm's mean, never with one of its
    seeds picked out.
    """

    def __init__(self, runs: dict[str, dict[int, RunEval]], space: LabelSpace, settings: EvaluationConfig,
                 seed: int):
        self.runs, self.space, self.confidence = runs, space, settings.confidence
        self.rare = space.rare_tier
        every = [(arm, run_seed, run) for arm, by_seed in runs.items() for run_seed, run in by_seed.items()]
        scores = bootstrap_scores(every[0][2].y_true, [run.y_pred for *_, run in every], settings.bootstrap_samples,
                                   seed, space.tier_mask(self.rare))
        self.boot: dict[str, dict[int, dict[str, np.ndarray]]] = {}
        for (arm, run_seed, _), resampled in zip(every, scores):
            self.boot.setdefault(arm, {})[run_seed] = resampled

    def contrast(self, weights: dict[str, float], metric: str) -> dict | None:
        """The linear contrast sum(w * metric of arm), e.g. {b: 1, a: -1} for b - a; null when undefined."""
        if not all(self.runs.get(arm) for arm in weights):
            return None
        values = {arm: {s: _run_score(run, metric, self.rare) for s, run in self.runs[arm].items()} for arm in weights}
        if any(v is None for by_seed in values.values() for v in by_seed.values()):
            return None
        estimate = float(sum(w * np.mean(list(values[arm].values())) for arm, w in weights.items()))
        resampled = sum(w * np.mean([self.boot[arm][s][metric] for s in values[arm]], axis=0)
                        for arm, w in weights.items())
        lo, hi = percentile_interval(resampled, self.confidence)
        seeds, per_seed = self._seed_values(weights, values)
        source = "test_resampling"
        if len(seeds) > 1:  # several seeds: the run-to-run half-width joins each side's test-set half-width
            half = seed_half_width(per_seed, self.confidence)
            lo = estimate - math.hypot(max(estimate - lo, 0.0), half)
            hi = estimate + math.hypot(max(hi - estimate, 0.0), half)
            source = "test_and_seeds"
        return {"diff": estimate, "ci": [lo, hi], "distinguishable": not lo <= 0 <= hi, "source": source,
                "seeds": seeds, "seed_values": per_seed}

    def _seed_values(self, weights: dict[str, float], values: dict[str, dict[int, float]]):
        """The contrast on each seed the several-seed arms share, one-seed arms held at their run."""
        several = [arm for arm in weights if len(values[arm]) > 1] or list(weights)
        seeds = common_seeds(self.runs, *several)
        fixed = sum(w * next(iter(values[arm].values())) for arm, w in weights.items() if arm not in several)
        return seeds, [fixed + sum(weights[arm] * values[arm][s] for arm in several) for s in seeds]

    def level(self, arm: str, metric: str) -> dict | None:
        """One arm's metric with its interval (the contrast rule above with the arm alone).

        Every compared metric is a proportion: a t-interval over few seeds can reach past 0 or 1, and is cut there.
        """
        result = self.contrast({arm: 1.0}, metric)
        if result is None:
            return None
        lo, hi = result["ci"]
        return {"mean": result["diff"], "ci": [max(lo, 0.0), min(hi, 1.0)], "source": result["source"]}


def comparison_kind(a: str, b: str) -> str:
    """What a pair of arms compares; the note looks comparisons up by arms and metric, kind only labels them."""
    if WEIGHTED_ARM.get(a) == b:
        return "weighting"
    if {a, b} <= {"encoder_lora", "decoder_lora"} or {a, b} <= {"encoder_lora_cw", "decoder_lora_cw"}:
        return "architecture"
    if a.startswith("encoder_full") and b.startswith("encoder_lora") and a.endswith("_cw") == b.endswith("_cw"):
        return "lora_vs_full"
    return "vs_baseline" if a == "tfidf_logreg" else "pair"


def compare_all(uncertainty: Uncertainty, arms: Sequence[str]) -> list[dict]:
    """Every pair of arms (b - a, in the study's arm order) on every compared metric."""
    rows = []
    ordered = [arm for arm in ARM_ORDER if arm in arms]
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            for metric in COMPARED:
                result = uncertainty.contrast({b: 1.0, a: -1.0}, metric)
                if result is not None:
                    rows.append({"name": f"{a} vs {b}", "a": a, "b": b, "kind": comparison_kind(a, b),
                                 "metric": metric, **result})
    return rows


def weighting_did(uncertainty: Uncertainty) -> list[dict]:
    """Did weighting change the decoder differently from each encoder arm? (dec_cw - dec) - (enc_cw - enc)."""
    rows = []
    for encoder in ("encoder_lora", "encoder_full"):
        arms = (encoder, WEIGHTED_ARM[encoder], "decoder_lora", "decoder_lora_cw")
        if not all(arm in uncertainty.runs for arm in arms):
            continue
        weights = {"decoder_lora_cw": 1.0, "decoder_lora": -1.0, WEIGHTED_ARM[encoder]: -1.0, encoder: 1.0}
        for metric in COMPARED:
            result = uncertainty.contrast(weights, metric)
            if result is not None:
                rows.append({"encoder": encoder, "decoder": "decoder_lora", "metric": metric, **result})
    return rows
