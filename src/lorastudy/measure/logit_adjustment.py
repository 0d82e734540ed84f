"""The logit adjustment probe: each run's saved logits shifted by the training log prior, tau picked on validation."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lorastudy.measure.metrics import COMPARED, classification_metrics
from lorastudy.measure.uncertainty import bootstrap_interval, bootstrap_scores, count_step


def logit_adjustment_probe(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray,
                           test_labels: np.ndarray, log_prior: np.ndarray, taus: Sequence[float],
                           tier_of: Sequence[str], rare_tier: str, *, bootstrap_samples: int = 1000,
                           confidence: float = 0.95, bootstrap_seed: int = 0) -> dict:
    """Post-hoc logit adjustment: argmax(logits - tau * log_prior), tau picked on validation macro F1.

    Ties go to the smallest tau, so an adjustment that does not help leaves the model unchanged.
    The test gain's interval is a paired bootstrap over test examples (one run: test resampling only).
    """
    num_classes = val_logits.shape[1]
    rare = np.asarray(tier_of) == rare_tier

    def predict(logits: np.ndarray, tau: float) -> np.ndarray:
        return np.argmax(logits - tau * log_prior, axis=1)

    curve = [{"tau": float(tau), "val_macro_f1": classification_metrics(val_labels, predict(val_logits, tau),
                                                                       num_classes)["macro_f1"]}
             for tau in sorted(taus)]
    best = max(curve, key=lambda point: point["val_macro_f1"])

    def summary(logits: np.ndarray, labels: np.ndarray, tau: float) -> dict:
        predicted = predict(logits, tau)
        metrics = classification_metrics(labels, predicted, num_classes)
        scored = rare & (metrics["support"] > 0)
        in_rare = rare[labels]
        return {"macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
                "zero_f1_count": metrics["zero_f1_count"],
                "rare_mean_f1": float(metrics["f1"][scored].mean()) if scored.any() else None,
                "rare_recall": float(np.mean(predicted[in_rare] == labels[in_rare])) if in_rare.any() else None}

    val_before, val_after = summary(val_logits, val_labels, 0.0), summary(val_logits, val_labels, best["tau"])
    test_before, test_after = summary(test_logits, test_labels, 0.0), summary(test_logits, test_labels, best["tau"])
    before_scores, after_scores = bootstrap_scores(test_labels, [predict(test_logits, 0.0),
                                                                  predict(test_logits, best["tau"])],
                                                    bootstrap_samples, bootstrap_seed, rare)
    gain_ci = {m: list(bootstrap_interval(after_scores[m] - before_scores[m], test_after[m] - test_before[m],
                                          confidence, count_step(m, test_labels, rare)))
               for m in COMPARED if not np.all(np.isnan(after_scores[m]))}
    return {
        "tau": best["tau"], "tau_chosen_on": "validation macro F1", "val_curve": curve,
        "test_macro_f1_gain": test_after["macro_f1"] - test_before["macro_f1"],
        "test_gain_ci": gain_ci, "ci_source": "test_resampling",
        "val_macro_f1_before": val_before["macro_f1"], "val_macro_f1_after": val_after["macro_f1"],
        **{f"test_{key}_before": test_before[key] for key in ("macro_f1", "accuracy", "zero_f1_count")},
        **{f"test_{key}_after": test_after[key] for key in ("macro_f1", "accuracy", "zero_f1_count")},
        "rare_mean_f1_before": test_before["rare_mean_f1"], "rare_mean_f1_after": test_after["rare_mean_f1"],
        "rare_recall_before": test_before["rare_recall"], "rare_recall_after": test_after["rare_recall"],
    }
