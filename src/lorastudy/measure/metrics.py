"""What each run scored: accuracy, F1 and zero-F1 classes, overall, per class and per tier, and seed means.

One definition matters for every number in the note: *evaluable* classes are those
with at least one example in the evaluated split. Macro F1 averages F1 over evaluable
classes only, and the zero-F1 count counts evaluable classes with F1 = 0; classes
without examples are listed apart as "not evaluable" (scikit-learn with all labels
would silently count them as 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import confusion_matrix

from lorastudy.core import artifacts

METRICS = ("accuracy", "macro_f1")
# The rare tier's pooled recall: compared between every pair of arms, since a context may decide on it.
RARE_RECALL = "rare_recall"
COMPARED = METRICS + (RARE_RECALL,)
WEIGHTED_ARM = {"encoder_full": "encoder_full_cw", "encoder_lora": "encoder_lora_cw", "decoder_lora": "decoder_lora_cw"}


# --- inputs ----------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpace:
    """The label space of `data/labels.json`: names, counts and tiers per label id."""

    labels: list[str]
    train_counts: np.ndarray
    val_counts: np.ndarray
    test_counts: np.ndarray
    tier_names: list[str]
    tier_of: list[str]
    tier_rule: str = ""
    tier_thresholds: tuple[float, ...] = ()

    @classmethod
    def from_json(cls, path: Path) -> "LabelSpace":
        raw = artifacts.read_json(path)
        return cls(labels=raw["labels"], train_counts=np.asarray(raw["train_counts"]),
                   val_counts=np.asarray(raw["val_counts"]), test_counts=np.asarray(raw["test_counts"]),
                   tier_names=raw["tier_names"], tier_of=raw["tier_of"], tier_rule=raw.get("tier_rule", ""),
                   tier_thresholds=tuple(raw.get("tier_thresholds", ())))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def rare_tier(self) -> str:
        """Tiers are listed rarest first."""
        return self.tier_names[0]

    def tier_mask(self, tier: str) -> np.ndarray:
        return np.asarray(self.tier_of) == tier


@dataclass(frozen=True)
class RunEval:
    """One run's test predictions and the metrics derived from them."""

    name: str
    arm: str
    seed: int
    y_true: np.ndarray
    y_pred: np.ndarray
    metrics: dict
    tiers: dict


def score_run(name: str, arm: str, seed: int, y_true: np.ndarray, y_pred: np.ndarray, space: LabelSpace) -> RunEval:
    metrics = classification_metrics(y_true, y_pred, space.num_classes)
    return RunEval(name, arm, seed, np.asarray(y_true), np.asarray(y_pred), metrics,
                   tier_metrics(y_true, y_pred, metrics, space))


# --- point metrics ---------------------------------------------------------


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """Accuracy, macro/weighted F1 and zero-F1 classes over the evaluable classes, plus per-class arrays.

    From the confusion counts (as scikit-learn's `precision_recall_fscore_support` with `labels=` all ids and
    `zero_division=0` computes them, tests/test_evaluation.py checks it), without its input validation: the
    simulation of tests/test_interval_coverage.py scores thousands of runs.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ids = np.arange(num_classes)
    right = y_true == y_pred
    support = np.bincount(y_true, minlength=num_classes)
    predicted = np.bincount(y_pred, minlength=num_classes)
    tp = np.bincount(y_true[right], minlength=num_classes)
    precision = np.divide(tp, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(num_classes), where=support > 0)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(num_classes), where=denominator > 0)
    evaluable = support > 0
    return {
        "accuracy": float(right.mean()),
        "macro_f1": float(f1[evaluable].mean()),
        "weighted_f1": float(np.average(f1[evaluable], weights=support[evaluable])),
        "zero_f1_count": int(np.sum(f1[evaluable] == 0)),
        "zero_f1_classes": [int(i) for i in ids[evaluable & (f1 == 0)]],
        "not_evaluable": [int(i) for i in ids[~evaluable]],
        "n_predicted_classes": int(np.count_nonzero(predicted)),
        "precision": precision, "recall": recall, "f1": f1, "support": support,
        "predicted_count": predicted,
    }


def tier_metrics(y_true: np.ndarray, y_pred: np.ndarray, metrics: dict, space: LabelSpace) -> dict:
    """Per tier: mean F1 and zero-F1 count over evaluable classes, pooled recall, predicted vs true share."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    f1, evaluable = metrics["f1"], metrics["support"] > 0
    out = {}
    for tier in space.tier_names:
        mask = space.tier_mask(tier)
        scored = mask & evaluable
        in_tier_true, in_tier_pred = mask[y_true], mask[y_pred]
        out[tier] = {
            "mean_f1": float(f1[scored].mean()) if scored.any() else None,
            "zero_f1_count": int(np.sum(f1[scored] == 0)),
            "n_classes": int(mask.sum()),
            "n_evaluable": int(scored.sum()),
            "n_nonzero": int(np.sum(f1[scored] > 0)),
            "recall": float(np.mean(y_pred[in_tier_true] == y_true[in_tier_true])) if in_tier_true.any() else None,
            "predicted_share": float(in_tier_pred.mean()),
            "true_share": float(in_tier_true.mean()),
        }
    return out


def confused_pairs(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], top: int) -> list[dict]:
    """The largest off-diagonal cells of the confusion matrix, most frequent first."""
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(len(labels)))
    np.fill_diagonal(matrix, 0)
    order = np.argsort(-matrix, axis=None, kind="stable")[:top]
    rows, cols = np.unravel_index(order, matrix.shape)
    return [{"true": labels[r], "predicted": labels[c], "count": int(matrix[r, c])}
            for r, c in zip(rows, cols) if matrix[r, c] > 0]


def tier_flow(y_true: np.ndarray, y_pred: np.ndarray, space: LabelSpace, tier: str, top: int = 5) -> dict:
    """Where a tier's test examples go: right, or into which tier and which classes (the top absorbers)."""
    in_tier = space.tier_mask(tier)[y_true]
    wrong = in_tier & (y_pred != y_true)
    absorbed = np.bincount(y_pred[wrong], minlength=space.num_classes)
    order = [int(i) for i in np.argsort(-absorbed, kind="stable")[:top] if absorbed[i] > 0]
    largest = np.argsort(-space.train_counts, kind="stable")[:3]
    return {"tier": tier, "n_examples": int(in_tier.sum()), "correct": int((in_tier & ~wrong).sum()),
            "wrong": int(wrong.sum()),
            "into_largest_classes": {"labels": [space.labels[i] for i in largest],
                                     "wrong_count": int(absorbed[largest].sum())},
            "to_tier": {name: int(absorbed[space.tier_mask(name)].sum()) for name in space.tier_names},
            "top_absorbers": [{"label": space.labels[i], "tier": space.tier_of[i], "count": int(absorbed[i]),
                               "train_count": int(space.train_counts[i])} for i in order]}


def spearman_f1_vs_train_count(metrics: dict, train_counts: np.ndarray) -> dict:
    """Rank correlation of per-class F1 with train count over evaluable classes; null when undefined."""
    evaluable = metrics["support"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spearmanr(metrics["f1"][evaluable], train_counts[evaluable])
    return {"rho": float(result.statistic), "p": float(result.pvalue)}


# --- across seeds ----------------------------------------------------------


def mean_std(values: Sequence[float | None]) -> dict:
    """Across seeds: mean and sample standard deviation (null for one seed)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None}


def common_seeds(runs: dict[str, dict[int, RunEval]], *arms: str) -> list[int]:
    first, *rest = arms
    return [seed for seed in runs.get(first, {}) if all(seed in runs.get(arm, {}) for arm in rest)]
