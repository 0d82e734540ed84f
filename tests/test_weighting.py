"""Class-weight schemes, log priors and the training loss, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lorastudy.core.errors import StudyError
from lorastudy.study.weighting import class_weights, log_prior, make_loss

COUNTS = [100, 25, 4, 1]


def test_sqrt_inverse_matches_a_hand_computation():
    n, k = sum(COUNTS), len(COUNTS)
    balanced = [n / (k * c) for c in COUNTS]  # 0.325, 1.3, 8.125, 32.5
    roots = [math.sqrt(b) for b in balanced]
    expected = [r / (sum(roots) / k) for r in roots]
    weights = class_weights(COUNTS, "sqrt_inverse")
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[3] / weights[0] == pytest.approx(10.0)  # sqrt(100 / 1)


def test_balanced_is_sklearns_formula():
    n, k = sum(COUNTS), len(COUNTS)
    np.testing.assert_allclose(class_weights(COUNTS, "balanced"), [n / (k * c) for c in COUNTS], rtol=1e-6)
    np.testing.assert_allclose(class_weights([7, 7, 7], "balanced"), [1.0, 1.0, 1.0])


def test_effective_number_sanity():
    weights = class_weights(COUNTS, "effective_number", beta=0.99)
    raw = np.array([(1 - 0.99) / (1 - 0.99 ** c) for c in COUNTS])
    np.testing.assert_allclose(weights, raw / raw.mean(), rtol=1e-6)
    assert weights.mean() == pytest.approx(1.0)
    assert np.all(np.diff(weights) > 0)  # rarer classes weigh more
    # beta -> 0 makes every class count as one effective example; beta -> 1 approaches inverse frequency
    np.testing.assert_allclose(class_weights(COUNTS, "effective_number", beta=1e-9), np.ones(4), rtol=1e-6)
    near_inverse = class_weights(COUNTS, "effective_number", beta=1 - 1e-9)
    assert near_inverse[3] / near_inverse[0] == pytest.approx(100.0, rel=1e-3)


def test_none_is_ones():
    np.testing.assert_array_equal(class_weights(COUNTS, "none"), np.ones(4, dtype=np.float32))


@pytest.mark.parametrize("scheme", ["sqrt_inverse", "balanced", "effective_number"])
def test_class_without_training_examples_gets_the_largest_finite_weight(scheme):
    weights = class_weights([10, 0, 2, 5], scheme)
    assert np.all(np.isfinite(weights))
    present = class_weights([10, 2, 5], scheme)
    np.testing.assert_allclose(weights[[0, 2, 3]], present, rtol=1e-6)  # the empty class changes nothing else
    assert weights[1] == pytest.approx(present.max())


def test_bad_inputs_are_study_errors():
    with pytest.raises(StudyError, match="scheme"):
        class_weights(COUNTS, "inverse_cube")
    with pytest.raises(StudyError, match="training"):
        class_weights([0, 0], "sqrt_inverse")
    with pytest.raises(StudyError, match="beta"):
        class_weights(COUNTS, "effective_number", beta=1.0)


def test_log_prior_is_smoothed_and_normalised():
    prior = log_prior([3, 0, 1])
    np.testing.assert_allclose(prior, np.log([4 / 7, 1 / 7, 2 / 7]), rtol=1e-6)
    assert np.exp(prior).sum() == pytest.approx(1.0)


def test_plain_and_weighted_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 2])
    assert make_loss()(logits, labels).item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    weights = np.array([1.0, 1.0, 3.0], dtype=np.float32)
    per_example = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (per_example * torch.tensor([1.0, 3.0])).sum() / 4.0  # torch's weighted mean
    assert make_loss(weights)(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_logit_adjusted_loss_on_a_constructed_example():
    """Equal logits, prior 0.9/0.1: the adjusted loss charges the rare class log(1/0.1) and the head class log(1/0.9)."""
    logits = torch.zeros(2, 2)
    prior = np.log(np.array([0.9, 0.1], dtype=np.float32))
    loss = make_loss(log_prior=prior, tau=1.0)
    assert loss(logits, torch.tensor([1, 1])).item() == pytest.approx(-math.log(0.1), rel=1e-5)
    assert loss(logits, torch.tensor([0, 0])).item() == pytest.approx(-math.log(0.9), rel=1e-5)
    assert make_loss(log_prior=prior, tau=0.0)(logits, torch.tensor([1, 1])).item() == pytest.approx(math.log(2))
    # tau scales the adjustment: tau=2 is the same as squaring the prior (renormalised)
    squared = np.array([0.81, 0.01]) / 0.82
    assert make_loss(log_prior=prior, tau=2.0)(logits[:1], torch.tensor([1])).item() == pytest.approx(
        -math.log(squared[1]), rel=1e-5)


def test_loss_gradients_flow_to_logits():
    logits = torch.zeros(3, 4, requires_grad=True)
    make_loss(class_weights([5, 3, 2, 1], "sqrt_inverse"), log_prior([5, 3, 2, 1]), 1.0)(
        logits, torch.tensor([0, 3, 1])).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
