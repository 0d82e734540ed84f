"""Uncertainty: bootstrap over test examples, t-intervals over seeds, and the contrasts between arms built on them.

What an interval claims (its estimand): the expected value of the metric on test sets of this study's design
(every class with its test count, as the stratified split gives), for the trained model it comes from (one seed)
or over training runs (several seeds). docs/intervals.md measures by simulation how often each kind covers it.

Rules that hold for every interval in the note:
- Test-set resampling, class by class (`ResamplePlan`). A resample keeps every class's test count, so no class is
  ever missing from one. (A plain resample of all test examples leaves out a class of one test example 37% of the
  time, of two 14%, and scored it F1 0 there: on 129 classes with 1-3 test examples for the rarest, the resampled
  macro F1 sat a whole interval below its estimate.) Within a class of n examples it draws n - 1 with replacement,
  each counting n / (n - 1) (Rao and Wu's rescaling): drawing n understates a class's variance by (n - 1) / n,
  half for a class of two. Classes with one test example share one pool of donors (module `ResamplePlan`).
- The interval is the bootstrap distribution's spread around its median, placed around the estimate
  (`bootstrap_interval`): it always contains its estimate. F1 on a handful of examples is a non-linear count
  statistic whose resamples sit below the sample F1 (a class of two examples, one right, F1 2/3: resampled it is
  1 or 0 as often); that shift says how the expected F1 of a small test set differs from the F1 of the model's
  confusion rates, not how far the estimate is from what the interval claims, so it is not the interval's.
- Where an interval comes from (`source`): the bootstrap of each arm's seed mean ("test_resampling", all arms
  with one training seed: it says nothing about training variance). Where an arm has several seeds, each side's
  bootstrap half-width and the Student-t half-width over the seeds are added in quadrature ("test_and_seeds"),
  so the test-set and run-to-run sources both count and neither hides the other. The t-interval is over the seeds
  the several-seed arms share (paired), a one-seed arm held at its run: its own training variance is in no
  interval, and a contrast names such arms (`single_run`), whose difference holds for that one training run.
  Point estimate (seed means), interval and verdict of one quantity always come from the same rule.
- Every arm is scored on the same resamples, so paired intervals are of the difference itself.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import sparse
from scipy.stats import t as student_t

from lorastudy.measure.metrics import (COMPARED, RARE_RECALL, WEIGHTED_ARM, LabelSpace, RunEval,
                                       classification_metrics, common_seeds)
from lorastudy.study.config import ARMS as ARM_ORDER, EvaluationConfig

RESAMPLE_CHUNK = 500_000  # slots drawn at a time (resamples x slots): memory, not results
POOL_SMALL, POOL_MIN = 2, 20  # classes of <= 2 test examples share a pool, grown to >= 20 examples (ResamplePlan)
INTERVAL_METHOD = "class_stratified_bootstrap"  # results.json's uncertainty.method (docs/intervals.md)


# --- bootstrap -------------------------------------------------------------


def pooled_class_size(counts: np.ndarray) -> int:
    """The largest test count of a class whose outcomes come from the shared pool (0: no pool).

    Classes with at most POOL_SMALL test examples; if they hold fewer than POOL_MIN examples, the next-smallest
    class sizes join until they do, so that the pool's own rate of right answers is itself estimable.
    """
    counts = np.asarray(counts)
    sizes = np.unique(counts[counts > 0])
    if not len(sizes) or sizes[0] > POOL_SMALL:
        return 0
    up_to = int(sizes[sizes <= POOL_SMALL].max())
    for size in sizes[sizes > POOL_SMALL]:
        if counts[counts <= up_to].sum() >= POOL_MIN:
            break
        up_to = int(size)
    return up_to


@dataclass(frozen=True)
class ResamplePlan:
    """How the test set is resampled, class by class (module docstring).

    Slot i of every resample stands for an example of class `slot_class[i]` and counts `weight[i]` times; a
    resample gives each slot a donor, a test example whose outcome it takes. A class of n examples has n - 1
    slots, each drawing a donor from the class's own examples and counting n / (n - 1) times. The smallest classes
    (`pooled_class_size`) share one pool: each keeps one slot per example and takes the outcome of a donor drawn
    from the pool (right stays right: the slot's own class is predicted; wrong keeps the donor's wrong label).
    Either way a class keeps its test count, and every predictor takes the same donors' outcomes (paired).
    """

    y_true: np.ndarray
    slot_class: np.ndarray   # [slots] the class each slot stands for
    weight: np.ndarray       # [slots] how many examples a slot counts for
    pool_start: np.ndarray   # [slots] where the slot's donors start in `donors`
    pool_size: np.ndarray    # [slots] how many donors it draws from
    donors: np.ndarray       # test positions, grouped by pool
    pooled: np.ndarray       # [slots] True for the slots of the pooled classes

    @classmethod
    def of(cls, y_true: np.ndarray) -> "ResamplePlan":
        y_true = np.asarray(y_true)
        order = np.argsort(y_true, kind="stable")
        counts = np.bincount(y_true)
        pool_up_to = pooled_class_size(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(y_true)) - starts[y_true[order]]   # rank of each sorted example within its class
        n_of = counts[y_true[order]]
        small = n_of <= pool_up_to
        members = order[small]                                   # the pool: every example of a small class
        own = ~small & (rank < n_of - 1)                         # n - 1 slots per class with more examples
        slot_class = np.concatenate([y_true[order][own], y_true[members]])
        n_slot = counts[slot_class]
        pooled = n_slot <= pool_up_to
        donors = np.concatenate([order, members])
        pool_start = np.where(pooled, len(order), starts[slot_class])
        pool_size = np.where(pooled, len(members), n_slot)
        weight = np.where(pooled, 1.0, n_slot / np.maximum(n_slot - 1, 1))
        return cls(y_true, slot_class, weight, pool_start, pool_size, donors, pooled)

    def draw(self, n_samples: int, seed: int):
        """Donor matrices [chunk, slots]; the same seed gives the same resamples."""
        rng = np.random.default_rng(seed)
        chunk = max(1, RESAMPLE_CHUNK // max(len(self.slot_class), 1))  # resamples at a time; the draws do not
        for start in range(0, n_samples, chunk):                        # depend on it (one stream of uniforms)
            size = (min(chunk, n_samples - start), len(self.slot_class))
            yield self.donors[self.pool_start + (rng.random(size) * self.pool_size).astype(np.intp)]

    def example_weights(self, donors: np.ndarray) -> np.ndarray:
        """[chunk, examples]: how many examples each test example stands for in each resample, over the slots of
        classes with several examples (whose donors are their own examples, outcome and class alike)."""
        weights = np.empty((len(donors), len(self.y_true)))
        for row, drawn in zip(weights, donors[:, ~self.pooled]):  # row by row: 3x faster than one offset bincount
            np.multiply(np.bincount(drawn, minlength=len(row)), self.example_weight, out=row)
        return weights  # a class's slots all count n / (n - 1)

    @functools.cached_property
    def example_weight(self) -> np.ndarray:
        """[examples]: what a draw of each test example counts for (its class's slot weight; 0 if pooled)."""
        by_class = np.zeros(int(self.y_true.max()) + 1)
        by_class[self.slot_class[~self.pooled]] = self.weight[~self.pooled]
        return by_class[self.y_true]


def _outcomes(y_true: np.ndarray, preds: np.ndarray, num_classes: int) -> sparse.csr_matrix:
    """[predictors x 2 x classes, examples]: for predictor p, row (p, 0, k) marks the examples it predicts k,
    row (p, 1, k) those of class k it predicts k (right)."""
    n, k = len(y_true), num_classes
    base = (2 * k * np.arange(len(preds)))[:, None]
    right = preds == y_true
    rows = np.concatenate([(base + preds).ravel(), (base + k + y_true)[right]])
    columns = np.concatenate([np.tile(np.arange(n), len(preds)), np.broadcast_to(np.arange(n), preds.shape)[right]])
    return sparse.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(2 * k * len(preds), n))


def _scores(plan: ResamplePlan, preds: np.ndarray, donors: np.ndarray, num_classes: int,
            rare_classes: np.ndarray | None, scored: np.ndarray, outcomes: sparse.csr_matrix) -> list[dict]:
    """Every predictor's scores (`preds`: [predictors, examples]) on the resamples in `donors`, from the confusion
    counts of each resample."""
    rows, k, n_pred = len(donors), num_classes, len(preds)
    counts = (outcomes @ plan.example_weights(donors).T).reshape(n_pred, 2, k, rows)
    predicted, tp = counts[:, 0], counts[:, 1]                          # [predictors, classes, rows]
    if plan.pooled.any():  # a pooled class takes its donor's outcome: right predicts the slot's own class
        pooled_class, pooled_donors = plan.slot_class[plan.pooled], donors[:, plan.pooled]
        label = preds[:, pooled_donors]                                  # [predictors, rows, pooled slots]
        label = np.where(label == plan.y_true[pooled_donors], pooled_class, label)
        offset = np.arange(n_pred)[:, None, None] * k * rows + np.arange(rows)[None, :, None]
        size = n_pred * k * rows
        predicted = predicted + np.bincount((offset + label * rows).ravel(), minlength=size).reshape(n_pred, k, rows)
        hits = (offset + pooled_class * rows)[label == pooled_class]
        tp = tp + np.bincount(hits, minlength=size).reshape(n_pred, k, rows)
    support = np.bincount(plan.y_true, minlength=k)[:, None]
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    scores = {"accuracy": tp.sum(axis=1) / len(plan.y_true), "macro_f1": f1[:, scored].mean(axis=1)}
    if rare_classes is not None:
        rare = np.asarray(rare_classes, dtype=bool)
        n_rare = support[rare].sum()
        scores[RARE_RECALL] = tp[:, rare].sum(axis=1) / n_rare if n_rare else np.full((n_pred, rows), np.nan)
    scores = {m: np.round(v, 12) for m, v in scores.items()}  # weights n / (n - 1) sum to n up to rounding
    return [{m: v[i] for m, v in scores.items()} for i in range(n_pred)]


def resampled_scores(plan: ResamplePlan, y_pred: np.ndarray, donors: np.ndarray, num_classes: int,
                     rare_classes: np.ndarray | None = None, scored: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy and macro F1 of each resample (a row of `donors`, see `ResamplePlan`) from its confusion counts.

    Every class keeps its test count in every resample, so macro F1 averages over the same classes as the point
    estimate (`scored`, default: the classes with test examples). With `rare_classes` (a boolean per class) also
    the pooled recall of the rare tier's examples (NaN when the tier has no test example).
    """
    if scored is None:
        scored = np.bincount(plan.y_true, minlength=num_classes) > 0
    preds = np.asarray(y_pred)[None, :]
    return _scores(plan, preds, donors, num_classes, rare_classes, np.asarray(scored, dtype=bool),
                   _outcomes(plan.y_true, preds, num_classes))[0]


def bootstrap_scores(y_true: np.ndarray, preds: Sequence[np.ndarray], n: int, seed: int,
                      rare_classes: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """Bootstrap distributions of every metric for several predictors on the same resamples."""
    y_true = np.asarray(y_true)
    preds = np.stack([np.asarray(p) for p in preds])
    num_classes = int(max(y_true.max(), preds.max())) + 1
    if rare_classes is not None:
        num_classes = max(num_classes, len(rare_classes))
    plan = ResamplePlan.of(y_true)
    scored = np.bincount(y_true, minlength=num_classes) > 0
    outcomes = _outcomes(y_true, preds, num_classes)
    chunks = [_scores(plan, preds, donors, num_classes, rare_classes, scored, outcomes)
              for donors in plan.draw(n, seed)]
    return [{m: np.concatenate([chunk[i][m] for chunk in chunks]) for m in chunks[0][i]} for i in range(len(preds))]


def spread(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """How far the bootstrap distribution reaches below and above its median, at `confidence`.

    Quantiles at p(B + 1) (numpy's "weibull" rule): the expected bootstrap mass between them is `confidence`
    for any number B of resamples (the default rule holds 94% at B = 200).
    """
    tail = (1 - confidence) / 2
    values = np.sort(np.asarray(values, dtype=float))
    values = values[:len(values) - int(np.isnan(values).sum())]  # NaN sorts last
    position = np.clip(np.array([tail, 0.5, 1 - tail]) * (len(values) + 1) - 1, 0, len(values) - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, len(values) - 1)
    lo, median, hi = values[below] + (values[above] - values[below]) * (position - below)  # = np.quantile, weibull
    return float(median - lo), float(hi - median)


def bootstrap_interval(values: np.ndarray, estimate: float, confidence: float,
                       step: float = 0.0) -> tuple[float, float]:
    """The bootstrap distribution's spread (`spread`) placed around the estimate: it always contains it.

    `step`: the smallest change of a metric that counts examples (1 / examples counted; `count_step`); the
    interval reaches half a step further on each side (a continuity correction, module docstring).
    """
    below, above = spread(values, confidence)
    return float(estimate - below - step / 2), float(estimate + above + step / 2)


def count_step(metric: str, y_true: np.ndarray, rare_classes: np.ndarray | None) -> float:
    """What one test example moves a proportion of examples by: accuracy 1 / n, rare-tier recall 1 / (rare tier's
    examples); 0 for macro F1, an average of ratios, not a count."""
    if metric == "accuracy":
        return 1.0 / len(y_true)
    if metric == RARE_RECALL and rare_classes is not None:
        n_rare = int(np.asarray(rare_classes, dtype=bool)[np.asarray(y_true)].sum())
        return 1.0 / n_rare if n_rare else 0.0
    return 0.0


@functools.lru_cache(maxsize=None)
def _t_quantile(confidence: float, df: int) -> float:
    return float(student_t.ppf((1 + confidence) / 2, df))


def seed_half_width(values: Sequence[float], confidence: float) -> float:
    """Student-t half-width of the mean of seed-level values: what run-to-run variation allows."""
    values = np.asarray(values, dtype=float)
    return float(_t_quantile(confidence, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def _point(y_true: np.ndarray, y_pred: np.ndarray, metric: str) -> float:
    num_classes = int(max(np.max(y_true), np.max(y_pred))) + 1
    return classification_metrics(y_true, y_pred, num_classes)[metric]


def bootstrap_ci(y_true: Sequence[int], y_pred: Sequence[int], metric: str, n: int, confidence: float,
                 seed: int) -> tuple[float, float]:
    """Bootstrap interval of `metric` ("accuracy" or "macro_f1") over test examples, around its estimate."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = bootstrap_scores(y_true, [y_pred], n, seed)[0]
    return bootstrap_interval(scores[metric], _point(y_true, y_pred, metric), confidence)


def paired_bootstrap_diff(y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], metric: str, n: int,
                          confidence: float, seed: int) -> dict:
    """Difference b - a of `metric` with an interval from the same resamples for both predictors."""
    y_true = np.asarray(y_true)
    scores_a, scores_b = bootstrap_scores(y_true, [pred_a, pred_b], n, seed)
    diff = _point(y_true, np.asarray(pred_b), metric) - _point(y_true, np.asarray(pred_a), metric)
    ci = bootstrap_interval(scores_b[metric] - scores_a[metric], diff, confidence)
    return {"metric": metric, "diff": diff, "ci": list(ci), "distinguishable": not ci[0] <= 0 <= ci[1]}


# --- uncertainty across arms and seeds ----------------------------------------


def run_score(run: RunEval, metric: str, rare: str) -> float | None:
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
        self._seed_mean: dict[tuple[str, str], np.ndarray] = {}
        self.step = {metric: count_step(metric, every[0][2].y_true, space.tier_mask(self.rare)) for metric in COMPARED}

    def resampled(self, arm: str, metric: str) -> np.ndarray:
        """The arm's seed mean on every resample."""
        key = (arm, metric)
        if key not in self._seed_mean:
            self._seed_mean[key] = np.mean([by_metric[metric] for by_metric in self.boot[arm].values()], axis=0)
        return self._seed_mean[key]

    def contrast(self, weights: dict[str, float], metric: str) -> dict | None:
        """The linear contrast sum(w * metric of arm), e.g. {b: 1, a: -1} for b - a; null when undefined.

        `one_run` lists the arms whose training variance the interval leaves out (one seed each, or every arm
        where no two seeds are shared): what it says holds for those arms' training runs.
        """
        if not all(self.runs.get(arm) for arm in weights):
            return None
        values = {arm: {s: run_score(run, metric, self.rare) for s, run in self.runs[arm].items()} for arm in weights}
        if any(v is None for by_seed in values.values() for v in by_seed.values()):
            return None
        estimate = float(sum(w * np.mean(list(values[arm].values())) for arm, w in weights.items()))
        resampled = sum(w * self.resampled(arm, metric) for arm, w in weights.items())
        below, above = (side + self.step[metric] / 2 for side in spread(resampled, self.confidence))
        seeds, per_seed = self._seed_values(weights, values)
        source, one_run = "test_resampling", list(weights)
        if len(seeds) > 1:  # several seeds: the run-to-run half-width joins each side's test-set half-width
            half = seed_half_width(per_seed, self.confidence)
            below, above = math.hypot(below, half), math.hypot(above, half)
            source, one_run = "test_and_seeds", [arm for arm in weights if len(values[arm]) == 1]
        one_run = sorted(one_run, key=lambda arm: ARM_ORDER.index(arm) if arm in ARM_ORDER else len(ARM_ORDER))
        lo, hi = estimate - below, estimate + above
        return {"diff": estimate, "ci": [lo, hi], "distinguishable": not lo <= 0 <= hi, "source": source,
                "seeds": seeds, "seed_values": per_seed, "one_run": one_run}

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
        return {"mean": result["diff"], "ci": [max(lo, 0.0), min(hi, 1.0)], "source": result["source"],
                "one_run": bool(result["one_run"])}


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
