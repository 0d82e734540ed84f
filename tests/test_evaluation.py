"""Evaluation from synthetic saved predictions: hand-checked metrics, bootstrap, bookkeeping, end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from lorastudy.core import artifacts
from lorastudy.study.config import ARMS
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError
from lorastudy.study.weighting import log_prior
from lorastudy.measure.evaluation import evaluate_study
from lorastudy.measure.logit_adjustment import logit_adjustment_probe
from lorastudy.measure.mechanism import weighting_effect
from lorastudy.measure.metrics import LabelSpace, classification_metrics, score_run
from lorastudy.measure.uncertainty import (
    ResamplePlan,
    bootstrap_ci,
    pooled_class_size,
    bootstrap_scores,
    Uncertainty,
    paired_bootstrap_diff,
    resampled_scores,
    seed_half_width,
    spread,
    weighting_did,
)
from lorastudy.study.config import EvaluationConfig


def test_metrics_hand_computed_with_absent_classes():
    # class 2 is never predicted (F1 0, counted); class 3 has no test examples (not evaluable, not counted)
    y_true = [0, 0, 1, 1, 2]
    y_pred = [0, 0, 0, 1, 0]
    m = classification_metrics(y_true, y_pred, num_classes=4)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert m["weighted_f1"] == pytest.approx((2 * 2 / 3 + 2 * 2 / 3) / 5)
    assert m["zero_f1_count"] == 1 and m["zero_f1_classes"] == [2]
    assert m["not_evaluable"] == [3]
    assert m["n_predicted_classes"] == 2
    assert m["predicted_count"].tolist() == [4, 1, 0, 0]


def test_predicting_a_class_without_test_examples_does_not_count_it_as_zero():
    m = classification_metrics([0, 0, 1, 1], [0, 3, 1, 1], num_classes=4)
    assert m["not_evaluable"] == [2, 3]
    assert m["zero_f1_count"] == 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)  # class 0: P 1, R 1/2; class 1: perfect
    assert m["predicted_count"][3] == 1


def test_single_predicted_class():
    m = classification_metrics([0, 1, 2, 2], [2, 2, 2, 2], num_classes=3)
    assert m["accuracy"] == 0.5 and m["zero_f1_classes"] == [0, 1] and m["n_predicted_classes"] == 1


def test_metrics_from_confusion_counts_equal_sklearn():
    """classification_metrics counts by itself (fast enough for the coverage simulation); scikit-learn agrees."""
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(7)
    for _ in range(50):
        classes, n = int(rng.integers(2, 40)), int(rng.integers(1, 300))
        y_true = np.minimum(rng.geometric(0.1, n) - 1, classes - 1)
        y_pred = np.where(rng.random(n) < rng.random(), y_true, rng.integers(0, classes, n))
        m = classification_metrics(y_true, y_pred, classes)
        ids = np.arange(classes)
        precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
        evaluable = ids[support > 0]
        assert np.allclose(m["precision"], precision) and np.allclose(m["recall"], recall)
        assert np.allclose(m["f1"], f1) and np.array_equal(m["support"], support)
        assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
        for average in ("macro", "weighted"):
            assert m[f"{average}_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=evaluable, average=average,
                                                                zero_division=0))


def _resample_as_rows(plan, y_pred, donors_row):
    """One resample spelled out: each slot's class, predicted label and weight (ResamplePlan's rule, by hand)."""
    true, predicted = [], []
    for slot, donor in enumerate(donors_row):
        cls = plan.slot_class[slot]
        assert plan.pooled[slot] or plan.y_true[donor] == cls  # a class with several examples draws its own
        donor_right = y_pred[donor] == plan.y_true[donor]
        true.append(cls)
        predicted.append(cls if donor_right else y_pred[donor])
    return np.array(true), np.array(predicted), plan.weight


def test_vectorised_resample_scores_equal_sklearn():
    rng = np.random.default_rng(0)
    y_true = np.concatenate([np.minimum(rng.geometric(0.15, 300) - 1, 16), [17, 18, 19]])  # long tail, 1-example classes
    y_pred = np.where(rng.random(303) < 0.6, y_true, rng.integers(0, 20, 303))
    plan = ResamplePlan.of(y_true)
    assert plan.pooled.sum() >= 3
    donors = next(plan.draw(25, seed=1))
    fast = resampled_scores(plan, y_pred, donors, num_classes=20)
    for row, (acc, f1) in enumerate(zip(fast["accuracy"], fast["macro_f1"])):
        t, p, w = _resample_as_rows(plan, y_pred, donors[row])
        assert acc == pytest.approx(accuracy_score(t, p, sample_weight=w))
        # the point estimate's class set: every class of the test set, each with its test count
        assert f1 == pytest.approx(f1_score(t, p, labels=np.unique(y_true), average="macro", sample_weight=w,
                                            zero_division=0))


def test_the_resample_plan_keeps_every_class_count_and_rescales_small_classes():
    """A class of n examples: n - 1 draws from its own examples, each counting n / (n - 1) (so a class of three
    varies as much as its examples allow, not two thirds as much); classes of one or two examples draw from a
    shared pool, which takes in the next-smallest classes until it holds 20 examples."""
    counts = [30, 12, 3] + [2] * 8 + [1] * 4
    y_true = np.repeat(np.arange(len(counts)), counts)
    plan = ResamplePlan.of(y_true)
    for cls, n in ((0, 30), (1, 12), (2, 3)):
        slots = plan.slot_class == cls
        assert slots.sum() == n - 1 and np.allclose(plan.weight[slots], n / (n - 1)) and not plan.pooled[slots].any()
    assert sorted(plan.slot_class[plan.pooled]) == sorted(y_true[y_true >= 3])
    assert np.all(plan.weight[plan.pooled] == 1)
    assert np.bincount(plan.slot_class, weights=plan.weight) == pytest.approx(counts)
    donors = np.concatenate(list(plan.draw(300, seed=0)))
    assert donors.shape == (300, len(plan.slot_class))
    assert np.all(y_true[donors[:, ~plan.pooled]] == plan.slot_class[~plan.pooled])
    assert set(np.unique(donors[:, plan.pooled])) == set(np.flatnonzero(y_true >= 3))
    # a class of three examples, one right: its recall in a resample is 0, 1/2 or 1, never always 1/3
    y_pred = y_true.copy()
    y_pred[[30 + 12, 30 + 12 + 1]] = 0
    rare = np.arange(len(counts)) == 2
    recall = resampled_scores(plan, y_pred, donors, len(counts), rare_classes=rare)["rare_recall"]
    assert set(np.round(recall, 9)) == {0.0, 0.5, 1.0}
    # fewer than 20 examples in classes of one or two: the next sizes join (here the class of three)
    assert pooled_class_size(np.array([30, 12, 3, 2, 2, 1])) == 12 and pooled_class_size(np.array([30, 3, 3])) == 0
    assert pooled_class_size(np.array([30, 12, 3] + [2] * 10)) == 2


def test_bootstrap_perfect_predictions_and_width_shrinks_with_more_examples():
    y = np.arange(200) % 5
    assert bootstrap_ci(y, y, "accuracy", 200, 0.95, seed=0) == (1.0, 1.0)
    assert bootstrap_ci(y, y, "macro_f1", 200, 0.95, seed=0) == (1.0, 1.0)

    def width(n: int) -> float:
        rng = np.random.default_rng(1)
        y_true = rng.integers(0, 5, n)
        y_pred = np.where(rng.random(n) < 0.7, y_true, (y_true + 1) % 5)
        lo, hi = bootstrap_ci(y_true, y_pred, "accuracy", 500, 0.95, seed=0)
        assert lo <= accuracy_score(y_true, y_pred) <= hi
        return hi - lo

    assert width(100) > 2 * width(2000)


def test_paired_bootstrap_flags_noise():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 4, 400)
    weak = np.where(rng.random(400) < 0.5, y_true, (y_true + 1) % 4)
    strong = np.where(rng.random(400) < 0.95, y_true, (y_true + 1) % 4)
    same = paired_bootstrap_diff(y_true, weak, weak, "macro_f1", 300, 0.95, seed=0)
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0] and not same["distinguishable"]
    better = paired_bootstrap_diff(y_true, weak, strong, "accuracy", 300, 0.95, seed=0)
    assert better["diff"] == pytest.approx(accuracy_score(y_true, strong) - accuracy_score(y_true, weak))
    assert better["ci"][0] > 0 and better["distinguishable"]
    worse = paired_bootstrap_diff(y_true, strong, weak, "accuracy", 300, 0.95, seed=0)
    assert worse["ci"][1] < 0 and worse["diff"] == pytest.approx(-better["diff"])


def _space(train_counts, tier_of, test_counts=None):
    n = len(train_counts)
    counts = np.asarray(test_counts if test_counts is not None else [1] * n)
    return LabelSpace(labels=[f"c{i}" for i in range(n)], train_counts=np.asarray(train_counts),
                      val_counts=counts, test_counts=counts, tier_names=["rare", "common"], tier_of=tier_of)


def _uncertainty(runs, space, n=200):
    return Uncertainty(runs, space, EvaluationConfig(bootstrap_samples=n), seed=0)


def test_weighting_effect_lists_lifted_and_fallen_classes():
    space = _space([100, 80, 5, 3], ["common", "common", "rare", "rare"])
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    vanilla = score_run("v", "encoder_lora", 42, y_true, np.array([0, 0, 1, 1, 0, 0, 3, 3]), space)
    weighted = score_run("w", "encoder_lora_cw", 42, y_true, np.array([0, 0, 1, 1, 2, 2, 0, 0]), space)
    runs = {"encoder_lora": {42: vanilla}, "encoder_lora_cw": {42: weighted}}
    effect = weighting_effect(_uncertainty(runs, space), "encoder_lora", "encoder_lora_cw")
    assert [c["label"] for c in effect["lifted_off_zero"]] == ["c2"]
    assert effect["lifted_off_zero"][0]["train_count"] == 5 and effect["lifted_off_zero"][0]["f1_after"] == 1.0
    assert [c["label"] for c in effect["fell_to_zero"]] == ["c3"]
    assert effect["delta"]["zero_f1_count"] == 0 and effect["delta"]["accuracy"] == 0
    assert effect["per_tier"]["rare"]["predicted_share_before"] == pytest.approx(2 / 8)
    assert effect["per_tier"]["rare"]["predicted_share_after"] == pytest.approx(2 / 8)
    assert effect["per_tier"]["common"]["delta_mean_f1"] == pytest.approx(
        weighted.tiers["common"]["mean_f1"] - vanilla.tiers["common"]["mean_f1"])
    assert effect["relative_macro_f1"] == pytest.approx(effect["delta"]["macro_f1"] / vanilla.metrics["macro_f1"])
    assert effect["intervals"]["macro_f1"]["source"] == "test_resampling"


def test_tier_contributions_add_up_to_the_macro_f1_change():
    rng = np.random.default_rng(5)
    space = _space([300, 200, 100, 9, 5, 3], ["common"] * 3 + ["rare"] * 3, test_counts=[50, 40, 30, 6, 4, 3])
    y_true = np.repeat(np.arange(6), [50, 40, 30, 6, 4, 3])
    vanilla = np.where(rng.random(len(y_true)) < 0.6, y_true, 0)
    weighted = np.where(rng.random(len(y_true)) < 0.7, y_true, 4)
    runs = {"decoder_lora": {1: score_run("v", "decoder_lora", 1, y_true, vanilla, space)},
            "decoder_lora_cw": {1: score_run("w", "decoder_lora_cw", 1, y_true, weighted, space)}}
    effect = weighting_effect(_uncertainty(runs, space), "decoder_lora", "decoder_lora_cw")
    parts = [effect["per_tier"][t]["macro_f1_contribution"] for t in ("rare", "common")]
    assert sum(parts) == pytest.approx(effect["delta"]["macro_f1"])
    assert effect["per_tier"]["rare"]["class_share"] == pytest.approx(0.5)


def test_a_one_seed_reference_is_compared_with_the_seed_mean_of_a_several_seed_arm():
    """Three LoRA seeds vs a one-seed reference: the LoRA mean, never seed 42 picked out, with an interval whose
    half-widths add the test-example bootstrap's and the LoRA seeds' t half-width in quadrature."""
    rng = np.random.default_rng(3)
    space = _space([50, 40, 5, 3], ["common", "common", "rare", "rare"], test_counts=[40, 30, 8, 6])
    y_true = np.repeat(np.arange(4), [40, 30, 8, 6])

    def trained(arm, seed, hit_rate):
        return score_run(arm, arm, seed, y_true, np.where(rng.random(len(y_true)) < hit_rate, y_true, 0), space)

    lora = {seed: trained("encoder_lora", seed, rate) for seed, rate in ((42, 0.5), (43, 0.8), (44, 0.9))}
    full = {42: trained("encoder_full", 42, 0.7)}
    lora_minus_full = {"encoder_lora": 1.0, "encoder_full": -1.0}
    uncertainty = _uncertainty({"encoder_full": full, "encoder_lora": lora}, space, n=400)
    row = uncertainty.contrast(lora_minus_full, "accuracy")
    seed_mean = np.mean([run.metrics["accuracy"] for run in lora.values()])
    assert row["source"] == "test_and_seeds" and row["seeds"] == [42, 43, 44] and row["one_run"] == ["encoder_full"]
    assert row["diff"] == pytest.approx(seed_mean - full[42].metrics["accuracy"])
    assert abs(row["diff"] - (lora[42].metrics["accuracy"] - full[42].metrics["accuracy"])) > 0.1
    half = seed_half_width([run.metrics["accuracy"] - full[42].metrics["accuracy"] for run in lora.values()], 0.95)
    resampled = (np.mean([uncertainty.boot["encoder_lora"][s]["accuracy"] for s in lora], axis=0)
                 - uncertainty.boot["encoder_full"][42]["accuracy"])
    below, above = (side + 0.5 / len(y_true) for side in spread(resampled, 0.95))  # half an example further
    assert row["ci"] == pytest.approx([row["diff"] - np.hypot(below, half), row["diff"] + np.hypot(above, half)])
    assert row["ci"][0] < row["diff"] - max(below, half) and row["ci"][1] > row["diff"] + max(above, half)
    assert not row["distinguishable"]
    copies = {seed: score_run("l", "encoder_lora", seed, y_true, lora[42].y_pred, space) for seed in (42, 43, 44)}
    three = _uncertainty({"encoder_full": full, "encoder_lora": copies}, space, n=400).contrast(lora_minus_full,
                                                                                               "macro_f1")
    one = _uncertainty({"encoder_full": full, "encoder_lora": {42: lora[42]}}, space, n=400).contrast(
        lora_minus_full, "macro_f1")
    assert three["diff"] == pytest.approx(one["diff"]) and three["ci"] == pytest.approx(one["ci"])
    assert one["source"] == "test_resampling"


def test_several_seeds_widen_the_test_bootstrap_by_the_seed_t_interval_for_point_interval_and_verdict():
    """Two sources of error, both counted: an arm pair with three shared seeds on 4 test examples."""
    space = _space([10, 10], ["rare", "common"])
    y_true = np.array([0, 1, 0, 1])
    vanilla = {s: score_run("v", "decoder_lora", s, y_true, p, space)
               for s, p in ((1, np.array([0, 0, 0, 0])), (2, np.array([0, 1, 0, 0])), (3, np.array([1, 1, 0, 0])))}
    weighted = {s: score_run("w", "decoder_lora_cw", s, y_true, y_true, space) for s in (1, 2, 3)}
    runs = {"decoder_lora": vanilla, "decoder_lora_cw": weighted}
    effect = weighting_effect(_uncertainty(runs, space), "decoder_lora", "decoder_lora_cw")
    assert effect["seeds"] == [1, 2, 3]
    diffs = [1 - 0.5, 1 - 0.75, 1 - 0.5]
    assert effect["delta"]["accuracy"] == pytest.approx(np.mean(diffs))
    accuracy = effect["intervals"]["accuracy"]
    assert accuracy["source"] == "test_and_seeds" and accuracy["diff"] == pytest.approx(np.mean(diffs))
    half = 4.302653 * np.std(diffs, ddof=1) / np.sqrt(3)  # t(0.975, 2 df), by hand
    assert seed_half_width(diffs, 0.95) == pytest.approx(half, rel=1e-5)
    assert accuracy["ci"][0] < np.mean(diffs) - half and accuracy["ci"][1] > np.mean(diffs) + half


def test_a_rare_class_is_never_absent_from_a_resample_and_no_interval_excludes_its_estimate():
    """The cause of macro-F1 intervals below their own estimate: a test-example resample left out a class with one
    or two examples (1 / e and 1 / e^2 of the time) and scored it F1 0; by class, every class keeps its count."""
    rng = np.random.default_rng(4)
    counts = [200, 120, 80, 40] + [2] * 30 + [1] * 10
    y_true = np.repeat(np.arange(len(counts)), counts)
    y_pred = np.where(rng.random(len(y_true)) < 0.8, y_true, 0)
    scores = bootstrap_scores(y_true, [y_pred], 400, seed=0)[0]
    estimate = classification_metrics(y_true, y_pred, len(counts))["macro_f1"]
    lo, hi = bootstrap_ci(y_true, y_pred, "macro_f1", 400, 0.95, seed=0)
    assert lo <= estimate <= hi
    assert abs(np.median(scores["macro_f1"]) - estimate) < (hi - lo) / 2  # no longer a whole interval below


def test_weighting_difference_in_differences_is_paired():
    rng = np.random.default_rng(9)
    space = _space([100, 90, 80, 5], ["common", "common", "common", "rare"], test_counts=[100, 100, 100, 30])
    y_true = np.repeat(np.arange(4), [100, 100, 100, 30])

    def predictor(p_right):
        return np.where(rng.random(len(y_true)) < p_right, y_true, 0)

    runs = {arm: {1: score_run(arm, arm, 1, y_true, predictor(p), space)} for arm, p in
            (("encoder_lora", 0.6), ("encoder_lora_cw", 0.9), ("decoder_lora", 0.6), ("decoder_lora_cw", 0.61))}
    rows = {r["metric"]: r for r in weighting_did(_uncertainty(runs, space, n=300))}
    acc = {arm: runs[arm][1].metrics["accuracy"] for arm in runs}
    expected = (acc["decoder_lora_cw"] - acc["decoder_lora"]) - (acc["encoder_lora_cw"] - acc["encoder_lora"])
    assert rows["accuracy"]["diff"] == pytest.approx(expected)
    assert rows["accuracy"]["ci"][1] < 0 and rows["accuracy"]["distinguishable"]


def test_logit_adjustment_recovers_a_suppressed_rare_class():
    train_counts = np.array([500, 500, 5])
    prior = log_prior(train_counts)
    rng = np.random.default_rng(3)

    def split(n: int):
        labels = rng.choice(3, size=n, p=[0.45, 0.45, 0.10])
        logits = rng.normal(0, 0.3, size=(n, 3)) + 3.0 * np.eye(3)[labels]
        logits[:, 2] += 3.0 * (prior[2] - prior[0]) * 0.8   # the rare class is pushed down by its prior
        return logits.astype(np.float32), labels

    (val_logits, val_labels), (test_logits, test_labels) = split(600), split(600)
    probe = logit_adjustment_probe(val_logits, val_labels, test_logits, test_labels, prior,
                                   [0.0, 0.5, 1.0, 1.5, 2.0], ["common", "common", "rare"], "rare")
    assert probe["tau"] > 0
    assert probe["rare_recall_before"] < 0.2 and probe["rare_recall_after"] > 0.8
    assert probe["test_macro_f1_after"] > probe["test_macro_f1_before"] + 0.1
    assert probe["val_curve"][0] == {"tau": 0.0, "val_macro_f1": probe["val_macro_f1_before"]}


def test_logit_adjustment_keeps_tau_zero_when_nothing_helps():
    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]] * 10
    labels = np.array([0, 1, 2, 0])
    probe = logit_adjustment_probe(logits, labels, logits, labels, log_prior([5, 5, 5]),
                                   [1.0, 0.0, 2.0], ["rare", "common", "common"], "rare")
    assert probe["tau"] == 0.0 and probe["test_macro_f1_after"] == probe["test_macro_f1_before"] == 1.0


# --- end to end on a synthetic run directory --------------------------------

NUM_CLASSES = 8
TRAIN_COUNTS = [300, 200, 120, 80, 40, 10, 6, 4]
TEST_COUNTS = [60, 40, 30, 20, 10, 4, 3, 0]       # the last class has no test examples
ACCURACY = {"tfidf_logreg": 0.5, "encoder_full": 0.8, "encoder_full_cw": 0.8, "encoder_lora": 0.75,
            "encoder_lora_cw": 0.75, "decoder_lora": 0.7, "decoder_lora_cw": 0.72}


def _predictions(arm: str, seed: int, counts: list[int], rng: np.random.Generator) -> dict:
    labels = np.repeat(np.arange(NUM_CLASSES), counts)
    logits = rng.normal(0, 1, size=(len(labels), NUM_CLASSES)).astype(np.float32)
    right = rng.random(len(labels)) < ACCURACY[arm]
    logits[right, labels[right]] += 6
    if not arm.endswith("_cw"):
        logits[:, 5:] -= 2.5                    # vanilla models rarely predict the rare tier
    if arm == "tfidf_logreg" and seed == 43:
        logits[:, 0] += 100                     # a collapsed run: one predicted class
    return {"logits": logits, "labels": labels.astype(np.int64)}


def _write_run_dir(tmp_path, arms, seeds):
    labels = [f"label.{i}" for i in range(NUM_CLASSES)]
    tier_of = ["common"] * 5 + ["rare"] * 3
    artifacts.write_json(tmp_path / "data" / "labels.json", {
        "labels": labels, "train_counts": TRAIN_COUNTS, "val_counts": [c // 2 + 1 for c in TEST_COUNTS],
        "test_counts": TEST_COUNTS, "tier_names": ["rare", "common"], "tier_of": tier_of,
        "tier_rule": "train count <= 10", "tier_thresholds": [10],
        "missing": {"train": [], "val": [], "test": ["label.7"]}, "fingerprint": "synthetic"})
    rng = np.random.default_rng(0)
    for arm in arms:
        for seed in seeds:
            folder = tmp_path / "runs" / f"{arm}__seed{seed}"
            artifacts.write_arrays(folder / "predictions_val.safetensors",
                                   _predictions(arm, seed, [c // 2 + 1 for c in TEST_COUNTS], rng))
            artifacts.write_arrays(folder / "predictions_test.safetensors", _predictions(arm, seed, TEST_COUNTS, rng))
            artifacts.write_json(folder / "run.json", {
                "arm": arm, "seed": seed, "family": arm.split("_")[0], "method": "lora" if "lora" in arm else "full",
                "class_weighting": arm.endswith("_cw"),
                "parameters": {"total": 1000, "trainable": 10, "trainable_share": 0.01},
                "collapse": {"n_predicted_classes": 8, "collapsed": False, "reason": None}})
    return tmp_path


def _config(arms, seeds, **extra):
    overrides = [f"arms={json.dumps(list(arms))}", f"seeds={json.dumps(list(seeds))}",
                 "evaluation.bootstrap_samples=200", "evaluation.top_confused_pairs=3"]
    return load_config("smoke", overrides + [f"{k}={v}" for k, v in extra.items()])


SCHEMA_KEYS = {
    "": {"schema_version", "study", "data", "uncertainty", "runs", "arms", "comparisons", "weighting_effect",
         "weighting_did", "mechanism", "logit_adjustment", "class_differences", "external_reference"},
    "study": {"name", "output_dir", "config_hash", "created"},
    "data": {"num_classes", "labels", "n_test_examples", "train_counts", "val_counts", "test_counts", "tier_names", "tier_of",
             "tier_rule", "tier_thresholds", "tier_sizes", "not_evaluable", "majority_class"},
    "run": {"arm", "seed", "family", "method", "class_weighting", "val", "test", "training", "parameters", "collapse"},
    "run.val": {"accuracy", "macro_f1", "weighted_f1", "zero_f1_count"},
    "run.test": {"accuracy", "macro_f1", "weighted_f1", "zero_f1_count", "zero_f1_classes", "not_evaluable",
                 "n_predicted_classes", "ci", "per_tier", "tier_flow", "spearman_f1_vs_train_count",
                 "confused_pairs", "per_class_csv"},
    "tier": {"mean_f1", "zero_f1_count", "n_classes", "n_evaluable", "n_nonzero", "recall", "predicted_share",
             "true_share"},
    "arm": {"seeds", "n_seeds", "test", "ci", "per_tier"},
    "comparison": {"name", "a", "b", "kind", "metric", "diff", "ci", "distinguishable", "source", "seeds",
                   "seed_values", "one_run"},
    "effect": {"vanilla", "weighted", "seeds", "before", "after", "delta", "relative_macro_f1", "relative_accuracy",
               "intervals", "lifted_off_zero", "fell_to_zero", "per_tier"},
    "effect.tier": {"delta_mean_f1", "delta_zero_f1", "delta_recall", "mean_f1_before", "mean_f1_after",
                    "zero_f1_before", "zero_f1_after", "recall_before", "recall_after", "predicted_share_before",
                    "predicted_share_after", "true_share", "class_share", "macro_f1_contribution"},
    "mechanism": {"rare_tier", "seeds", "rare_recall", "rare_predicted_share", "rare_true_share", "spearman_rho",
                  "weighted", "spearman_rho_weighted", "per_tier"},
    "probe": {"tau", "tau_chosen_on", "test_gain_ci", "test_macro_f1_gain", "ci_source", "val_curve", "val_macro_f1_before", "val_macro_f1_after", "test_macro_f1_before",
              "test_macro_f1_after", "test_accuracy_before", "test_accuracy_after", "test_zero_f1_count_before",
              "test_zero_f1_count_after", "rare_mean_f1_before", "rare_mean_f1_after", "rare_recall_before",
              "rare_recall_after"},
}


def _assert_plain_json(obj):
    if isinstance(obj, dict):
        for value in obj.values():
            _assert_plain_json(value)
    elif isinstance(obj, list):
        for value in obj:
            _assert_plain_json(value)
    else:
        assert obj is None or type(obj) in (bool, int, float, str), type(obj)
        assert not (isinstance(obj, float) and math.isnan(obj))


def test_evaluate_study_all_arms_two_seeds(tmp_path):
    run_dir = _write_run_dir(tmp_path, ARMS, [42, 43])
    results = evaluate_study(run_dir, _config(ARMS, [42, 43], **{"report.external_reference": "course"}))
    on_disk = artifacts.read_json(run_dir / "evaluation" / "results.json")
    assert on_disk == results
    _assert_plain_json(results)

    assert set(results) == SCHEMA_KEYS[""] and results["schema_version"] == 4
    assert results["uncertainty"]["source"] == "seeds" and results["uncertainty"]["n_seeds"] == 2
    assert set(results["study"]) == SCHEMA_KEYS["study"] and set(results["data"]) == SCHEMA_KEYS["data"]
    assert results["data"]["not_evaluable"] == ["label.7"]
    evaluable = results["data"]["num_classes"] - len(results["data"]["not_evaluable"])
    assert results["data"]["majority_class"] == {"label": "label.0", "test_accuracy": pytest.approx(60 / 167, abs=1e-6),
                                                 "val_accuracy": pytest.approx(31 / 91, abs=1e-6),
                                                 # its F1 (precision 60/167, recall 1) over the evaluable classes
                                                 "test_macro_f1": pytest.approx(2 * 60 / (167 + 60) / evaluable, abs=1e-6),
                                                 "test_zero_f1_count": evaluable - 1}
    assert len(results["runs"]) == 14
    for name, run in results["runs"].items():
        assert set(run) == SCHEMA_KEYS["run"] and set(run["val"]) == SCHEMA_KEYS["run.val"]
        assert set(run["test"]) == SCHEMA_KEYS["run.test"]
        assert run["test"]["not_evaluable"] == ["label.7"]
        assert all(set(t) == SCHEMA_KEYS["tier"] for t in run["test"]["per_tier"].values())
        lo, hi = run["test"]["ci"]["macro_f1"]
        assert lo <= run["test"]["macro_f1"] <= hi
        assert (run_dir / run["test"]["per_class_csv"]).read_text().startswith(
            "label,label_id,tier,train_count,test_support,precision,recall,f1,predicted_count,evaluable\n")
    collapsed = results["runs"]["tfidf_logreg__seed43"]["test"]
    assert collapsed["n_predicted_classes"] == 1 and collapsed["spearman_f1_vs_train_count"]["rho"] is not None

    assert set(results["arms"]) == set(ARMS)
    encoder = results["arms"]["encoder_lora"]
    assert set(encoder) == SCHEMA_KEYS["arm"] and encoder["n_seeds"] == 2 and encoder["test"]["accuracy"]["std"] > 0

    names = {(c["a"], c["b"], c["metric"]) for c in results["comparisons"]}
    assert ("encoder_lora", "decoder_lora", "macro_f1") in names and ("encoder_full", "encoder_lora", "accuracy") in names
    assert ("tfidf_logreg", "decoder_lora_cw", "macro_f1") in names and len(names) == 21 * 3  # every pair, 3 metrics
    assert all(set(c) == SCHEMA_KEYS["comparison"] and len(c["seed_values"]) == 2 and c["source"] == "test_and_seeds"
               and c["one_run"] == [] and c["ci"][0] <= c["diff"] <= c["ci"][1] for c in results["comparisons"])
    assert results["uncertainty"]["method"] == "class_stratified_bootstrap"
    vs_tfidf = next(c for c in results["comparisons"] if c["name"] == "tfidf_logreg vs encoder_full"
                    and c["metric"] == "accuracy")
    assert vs_tfidf["diff"] > 0

    assert set(results["weighting_effect"]) == {"encoder_full", "encoder_lora", "decoder_lora"}
    for effect in results["weighting_effect"].values():
        assert set(effect) == SCHEMA_KEYS["effect"]
        assert all(set(t) == SCHEMA_KEYS["effect.tier"] for t in effect["per_tier"].values())
        rare = effect["per_tier"]["rare"]
        assert rare["predicted_share_after"] > rare["predicted_share_before"]
    assert {row["encoder"] for row in results["weighting_did"]} == {"encoder_full", "encoder_lora"}

    assert set(results["mechanism"]) == {"tfidf_logreg", "encoder_full", "encoder_lora", "decoder_lora"}
    assert all(set(m) == SCHEMA_KEYS["mechanism"] for m in results["mechanism"].values())
    assert results["mechanism"]["tfidf_logreg"]["weighted"] is None
    assert all(set(p) == SCHEMA_KEYS["probe"] for p in results["logit_adjustment"].values())
    assert len(results["logit_adjustment"]) == 14

    diffs = results["class_differences"]["classes"]
    assert len(diffs) == NUM_CLASSES - 1
    assert [abs(c["diff"]) for c in diffs] == sorted((abs(c["diff"]) for c in diffs), reverse=True)

    external = results["external_reference"]
    assert external["label"].startswith("external") and external["split"] == "validation"
    assert {row["arm"] for row in external["rows"]} >= {"tfidf_logreg", "encoder_full", "encoder_full_cw"}


def test_evaluate_study_some_arms_one_seed(tmp_path):
    arms = ["encoder_lora", "decoder_lora"]
    results = evaluate_study(_write_run_dir(tmp_path, arms, [7]), _config(arms, [7]))
    assert results["arms"]["decoder_lora"]["test"]["macro_f1"]["std"] is None
    assert {c["name"] for c in results["comparisons"]} == {"encoder_lora vs decoder_lora"}
    assert all(set(c["one_run"]) == {"encoder_lora", "decoder_lora"} for c in results["comparisons"])
    assert results["weighting_effect"] == {} and results["weighting_did"] == []
    assert results["uncertainty"]["source"] == "test_resampling"
    assert results["external_reference"] is None
    assert results["class_differences"]["seed"] == 7


def test_missing_predictions_name_the_run(tmp_path):
    run_dir = _write_run_dir(tmp_path, ["encoder_lora"], [42])
    (run_dir / "runs" / "encoder_lora__seed42" / "predictions_test.safetensors").unlink()
    with pytest.raises(StudyError) as err:
        evaluate_study(run_dir, _config(["encoder_lora"], [42]))
    assert "encoder_lora__seed42" in str(err.value) and "train" in err.value.fix


def test_runs_scored_on_different_test_examples_are_refused(tmp_path):
    run_dir = _write_run_dir(tmp_path, ["encoder_lora", "decoder_lora"], [42])
    path = run_dir / "runs" / "decoder_lora__seed42" / "predictions_test.safetensors"
    arrays = artifacts.read_arrays(path)
    order = np.random.default_rng(0).permutation(len(arrays["labels"]))
    artifacts.write_arrays(path, {"logits": arrays["logits"][order], "labels": arrays["labels"][order]})
    with pytest.raises(StudyError, match="decoder_lora__seed42"):
        evaluate_study(run_dir, _config(["encoder_lora", "decoder_lora"], [42]))
    artifacts.write_arrays(path, {"logits": arrays["logits"][1:], "labels": arrays["labels"][1:]})
    with pytest.raises(StudyError, match="do not match data/labels.json"):
        evaluate_study(run_dir, _config(["encoder_lora", "decoder_lora"], [42]))


def test_rare_recall_is_bootstrapped_for_every_pair():
    rng = np.random.default_rng(3)
    space = _space([90, 60, 40, 4, 3], ["common", "common", "common", "rare", "rare"])
    y_true = rng.choice(5, 300, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    encoder = np.where(rng.random(300) < 0.8, y_true, 0)
    decoder = np.where((y_true >= 3) | (rng.random(300) < 0.6), y_true, 1)  # every rare example right
    runs = {"encoder_lora": {42: score_run("e", "encoder_lora", 42, y_true, encoder, space)},
            "decoder_lora": {42: score_run("d", "decoder_lora", 42, y_true, decoder, space)}}

    plan = ResamplePlan.of(y_true)
    donors = next(plan.draw(20, seed=0))
    resampled = resampled_scores(plan, encoder, donors, 5, space.tier_mask("rare"))
    for row in range(20):
        t, p, w = _resample_as_rows(plan, encoder, donors[row])
        rare = t >= 3
        assert resampled["rare_recall"][row] == pytest.approx(np.average(p[rare] == t[rare], weights=w[rare]))

    recall = _uncertainty(runs, space, n=300).contrast({"decoder_lora": 1.0, "encoder_lora": -1.0}, "rare_recall")
    assert recall["diff"] == pytest.approx(1.0 - runs["encoder_lora"][42].tiers["rare"]["recall"])
    assert 0 < recall["ci"][0] <= recall["diff"] <= recall["ci"][1] and recall["distinguishable"]


def test_a_level_interval_over_few_seeds_is_cut_at_zero_and_one():
    """Accuracy 0.5, 0.5, 1.0 over three seeds: the t-interval reaches past both ends; a proportion cannot."""
    space = _space([10, 10], ["rare", "common"])
    y_true = np.array([0, 1, 0, 1])
    predictions = ((1, np.array([1, 1, 1, 1])), (2, np.array([0, 0, 0, 0])), (3, y_true))
    runs = {"decoder_lora": {s: score_run("d", "decoder_lora", s, y_true, p, space) for s, p in predictions}}
    half = seed_half_width([0.5, 0.5, 1.0], 0.95)
    assert 2 / 3 - half < 0 and 2 / 3 + half > 1
    level = _uncertainty(runs, space).level("decoder_lora", "accuracy")
    assert level["mean"] == pytest.approx(2 / 3) and level["ci"] == [0.0, 1.0]
