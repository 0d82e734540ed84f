"""Class weights and log priors for long-tail training, and the loss that uses them.

Schemes (per label id, from the training counts):
- `sqrt_inverse` (the course's Week 2): the square root of sklearn's "balanced" weights, normalised to mean 1.
- `balanced`: sklearn's `compute_class_weight("balanced")`, n_samples / (n_classes * count).
- `effective_number` (Cui et al. 2019): (1 - beta) / (1 - beta**count), normalised to mean 1.
- `none`: all ones.

Weights are computed over the classes present in training (exactly what sklearn does with the
training labels). A class with no training example gets the largest weight of the others: it is
never a training target, so the value never enters the loss, but it stays finite for anything
that reads the array.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight

from lorastudy.core.errors import StudyError

SCHEMES = ("sqrt_inverse", "balanced", "effective_number", "none")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def class_weights(train_counts: Sequence[int], scheme: str, beta: float = 0.999) -> np.ndarray:
    """Per-label-id weights (float32) for weighted cross-entropy."""
    counts = np.asarray(train_counts, dtype=np.int64)
    if scheme not in SCHEMES:
        raise StudyError(f"Unknown class-weighting scheme '{scheme}'.", f"use one of: {', '.join(SCHEMES)}.")
    if scheme == "none":
        return np.ones(len(counts), dtype=np.float32)
    present = counts > 0
    if not present.any():
        raise StudyError("No class has a training example, so class weights are undefined.",
                         "check the data split: the training set is empty.")
    if scheme == "effective_number":
        if not 0 < beta < 1:
            raise StudyError(f"weighting.beta must be in (0, 1) for effective_number (got {beta}).",
                             "use e.g. 0.999 or 0.9999.")
        weights = (1 - beta) / (1 - np.power(beta, counts[present]))
        weights = weights / weights.mean()
    else:
        classes = np.flatnonzero(present)
        labels = np.repeat(classes, counts[present])
        weights = compute_class_weight("balanced", classes=classes, y=labels)
        if scheme == "sqrt_inverse":
            weights = np.sqrt(weights)
            weights = weights / weights.mean()
    full = np.full(len(counts), weights.max(), dtype=np.float64)
    full[present] = weights
    return full.astype(np.float32)


def log_prior(train_counts: Sequence[int], smoothing: float = 1.0) -> np.ndarray:
    """log p(y) from add-`smoothing` (Laplace) counts, so a class absent from training stays finite."""
    counts = np.asarray(train_counts, dtype=np.float64) + smoothing
    return np.log(counts / counts.sum()).astype(np.float32)


def make_loss(weights: np.ndarray | None = None, log_prior: np.ndarray | None = None, tau: float = 1.0) -> LossFn:
    """Cross-entropy over (logits, labels), optionally class-weighted and/or logit-adjusted.

    Logit adjustment (Menon et al. 2021) trains on logits + tau * log p(y): frequent classes get a
    head start during training only, so the raw logits used at prediction time favour rare classes.
    """
    weight = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    prior = None if log_prior is None else torch.as_tensor(log_prior, dtype=torch.float32)

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if prior is not None:
            logits = logits + tau * prior.to(logits.device, logits.dtype)
        class_weight = None if weight is None else weight.to(logits.device, logits.dtype)
        return torch.nn.functional.cross_entropy(logits, labels, weight=class_weight)

    return loss
