"""The evaluation stage from saved logits: every run scored, the arms compared, results.json written.

This stage never runs a model. It reads `data/labels.json` and each run's
`predictions_{val,test}.safetensors` and `run.json`, and writes
`evaluation/results.json` (docs/results_schema.md) plus one per-class CSV per run.

What it puts together lives beside it: `metrics` (one run's metrics and tiers),
`uncertainty` (bootstrap, seed intervals, contrasts between arms), `mechanism`
(weighting effect by tier, mechanism numbers, per-class differences),
`logit_adjustment` (the post-hoc probe) and `course_reference` (the course's numbers).
Two definitions matter for every number in the note, each stated where it is computed:
which classes are *evaluable* (`metrics`), and where an interval comes from (`uncertainty`).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lorastudy.core import artifacts
from lorastudy.measure.course_reference import external_reference
from lorastudy.measure.logit_adjustment import logit_adjustment_probe
from lorastudy.measure.mechanism import class_differences, mechanism, weighting_effect
from lorastudy.measure.metrics import (COMPARED, WEIGHTED_ARM, LabelSpace, RunEval, classification_metrics,
                                       confused_pairs, mean_std, score_run, spearman_f1_vs_train_count, tier_flow)
from lorastudy.measure.uncertainty import (INTERVAL_METHOD, Uncertainty, bootstrap_interval, bootstrap_scores,
                                           compare_all, count_step, run_score, weighting_did)
from lorastudy.study import weighting
from lorastudy.study.config import EvaluationConfig, StudyConfig, stable_hash
from lorastudy.core.errors import StudyError

SCHEMA_VERSION = 4  # 4: class-stratified bootstrap centred on the estimate; contrasts name their one-run arms


def evaluate_study(run_dir: Path, config: StudyConfig) -> dict:
    """Evaluate every configured arm and seed from saved predictions; write results.json and per-class CSVs."""
    run_dir = Path(run_dir)
    space = LabelSpace.from_json(run_dir / "data" / "labels.json")
    settings = config.evaluation
    boot_seed = config.split.seed
    runs: dict[str, dict[int, RunEval]] = {}
    run_entries: dict[str, dict] = {}
    probes: dict[str, dict] = {}
    reference = None  # the first run's test labels: paired comparisons need the same examples in the same order
    names = [(arm, seed) for arm in config.arms for seed in config.seeds_of(arm)]
    for arm, seed in tqdm(names, desc="evaluate", unit="run"):
        name = f"{arm}__seed{seed}"
        folder = run_dir / "runs" / name
        val, test, meta = load_run(folder, name, space)
        reference = test["labels"] if reference is None else reference
        if not np.array_equal(test["labels"], reference):
            raise StudyError(f"Run {name} was scored on other test examples, or in another order, "
                             "than the runs before it.",
                             "re-run training for the stale runs so that every run predicts the same test set.")
        run = score_run(name, arm, seed, test["labels"], test["logits"].argmax(axis=1), space)
        runs.setdefault(arm, {})[seed] = run
        csv_path = _write_per_class_csv(run_dir, run, space)
        run_entries[name] = _run_entry(run, val, meta, space, settings, boot_seed, csv_path.relative_to(run_dir),
                                       folder)
        probes[name] = logit_adjustment_probe(val["logits"], val["labels"], test["logits"], test["labels"],
                                              weighting.log_prior(space.train_counts), settings.logit_adjust_taus,
                                              space.tier_of, space.rare_tier,
                                              bootstrap_samples=settings.bootstrap_samples,
                                              confidence=settings.confidence, bootstrap_seed=boot_seed)

    uncertainty = Uncertainty(runs, space, settings, boot_seed)
    effects = {vanilla: weighting_effect(uncertainty, vanilla, weighted)
               for vanilla, weighted in WEIGHTED_ARM.items() if vanilla in runs and weighted in runs}
    seeds_per_arm = {arm: len(by_seed) for arm, by_seed in runs.items()}
    n_seeds = max(seeds_per_arm.values())
    source = ("test_resampling" if n_seeds == 1 else "seeds" if min(seeds_per_arm.values()) > 1 else "mixed")
    results = {
        "schema_version": SCHEMA_VERSION,
        "study": {"name": config.name, "output_dir": str(run_dir),
                  "config_hash": stable_hash(config.model_dump(mode="json")),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "data": _data_section(space),
        "uncertainty": {"source": source, "n_seeds": n_seeds, "seeds_per_arm": seeds_per_arm,
                        "confidence": settings.confidence, "bootstrap_samples": settings.bootstrap_samples,
                        "method": INTERVAL_METHOD},
        "runs": run_entries,
        "arms": {arm: _aggregate(arm, by_seed, space, uncertainty) for arm, by_seed in runs.items()},
        "comparisons": compare_all(uncertainty, list(runs)),
        "weighting_effect": effects,
        "weighting_did": weighting_did(uncertainty),
        "mechanism": mechanism(runs, space),
        "logit_adjustment": probes,
        "class_differences": class_differences(runs, space),
        "external_reference": external_reference() if config.report.external_reference == "course" else None,
    }
    results = json_ready(results)
    artifacts.write_json(run_dir / "evaluation" / "results.json", results)
    return results


def load_run(folder: Path, name: str, space: LabelSpace) -> tuple[dict, dict, dict]:
    """The run's val and test predictions and run.json, checked against the label space."""
    fix = f"re-run training for this run (`lorastudy run --stage train`), or drop {name.split('__')[0]} from arms."
    files = [folder / "predictions_val.safetensors", folder / "predictions_test.safetensors", folder / "run.json"]
    missing = [path.name for path in files if not path.exists()]
    if missing:
        raise StudyError(f"Run {name} has no {', '.join(missing)} in {folder} (not trained or not finished).", fix)
    val, test = artifacts.read_arrays(files[0]), artifacts.read_arrays(files[1])
    for split, arrays in (("val", val), ("test", test)):
        logits, labels = arrays.get("logits"), arrays.get("labels")
        if (logits is None or labels is None or len(labels) == 0 or logits.shape != (len(labels), space.num_classes)
                or labels.min() < 0 or labels.max() >= space.num_classes):
            raise StudyError(f"Run {name}: predictions_{split} do not hold logits [n, {space.num_classes}] and "
                             f"labels [n] with ids below {space.num_classes}.", fix)
        expected = space.val_counts if split == "val" else space.test_counts
        if not np.array_equal(np.bincount(labels, minlength=space.num_classes), expected):
            raise StudyError(f"Run {name}: its {split} labels do not match data/labels.json (trained on other data?).",
                             fix)
    return val, test, artifacts.read_json(files[2])


def _run_entry(run: RunEval, val: dict, meta: dict, space: LabelSpace, settings: EvaluationConfig, boot_seed: int,
               csv_path: Path, folder: Path) -> dict:
    val_metrics = classification_metrics(val["labels"], val["logits"].argmax(axis=1), space.num_classes)
    scores = bootstrap_scores(run.y_true, [run.y_pred], settings.bootstrap_samples, boot_seed,
                               space.tier_mask(space.rare_tier))[0]
    metrics = run.metrics
    return {
        "arm": run.arm, "seed": run.seed, "family": meta.get("family"), "method": meta.get("method"),
        "class_weighting": meta.get("class_weighting"),
        "val": {key: val_metrics[key] for key in ("accuracy", "macro_f1", "weighted_f1", "zero_f1_count")},
        "test": {
            **{key: metrics[key] for key in ("accuracy", "macro_f1", "weighted_f1", "zero_f1_count")},
            "zero_f1_classes": [space.labels[i] for i in metrics["zero_f1_classes"]],
            "not_evaluable": [space.labels[i] for i in metrics["not_evaluable"]],
            "n_predicted_classes": metrics["n_predicted_classes"],
            "ci": {m: list(bootstrap_interval(scores[m], run_score(run, m, space.rare_tier), settings.confidence,
                                              count_step(m, run.y_true, space.tier_mask(space.rare_tier))))
                   for m in COMPARED if not np.all(np.isnan(scores[m]))},
            "per_tier": run.tiers,
            "tier_flow": {tier: tier_flow(run.y_true, run.y_pred, space, tier) for tier in space.tier_names},
            "spearman_f1_vs_train_count": spearman_f1_vs_train_count(metrics, space.train_counts),
            "confused_pairs": confused_pairs(run.y_true, run.y_pred, space.labels, settings.top_confused_pairs),
            "per_class_csv": str(csv_path),
        },
        "training": _training_record(meta, folder),
        "parameters": meta.get("parameters"),
        "collapse": meta.get("collapse"),
    }


def _training_record(meta: dict, folder: Path) -> dict:
    """Budget and validation curve: is the run still improving when its budget ends?"""
    log_path = folder / "train_log.jsonl"
    log = artifacts.read_jsonl(log_path) if log_path.exists() else []
    curve = [{"epoch": row["epoch"], "step": row.get("step"), "val_macro_f1": row["val_macro_f1"]}
             for row in log if row.get("val_macro_f1") is not None]
    return {"epochs": meta.get("epochs"), "steps": meta.get("steps"), "best_epoch": meta.get("best_epoch"),
            "val_curve": curve}


def _aggregate(arm: str, by_seed: dict[int, RunEval], space: LabelSpace, uncertainty: Uncertainty) -> dict:
    group = list(by_seed.values())
    return {
        "seeds": list(by_seed), "n_seeds": len(group),
        "test": {key: mean_std([run.metrics[key] for run in group])
                 for key in ("accuracy", "macro_f1", "weighted_f1", "zero_f1_count")},
        "ci": {metric: level for metric in COMPARED if (level := uncertainty.level(arm, metric)) is not None},
        "per_tier": {tier: {key: mean_std([run.tiers[tier][key] for run in group])
                            for key in ("mean_f1", "n_nonzero", "zero_f1_count", "recall", "predicted_share")}
                     for tier in space.tier_names},
    }


def _data_section(space: LabelSpace) -> dict:
    majority = int(np.argmax(space.train_counts))
    return {
        "num_classes": space.num_classes, "labels": space.labels, "n_test_examples": int(space.test_counts.sum()),
        "train_counts": space.train_counts.tolist(), "val_counts": space.val_counts.tolist(),
        "test_counts": space.test_counts.tolist(),
        "tier_names": space.tier_names, "tier_of": space.tier_of, "tier_rule": space.tier_rule,
        "tier_thresholds": list(space.tier_thresholds),
        "tier_sizes": {tier: int(space.tier_mask(tier).sum()) for tier in space.tier_names},
        "not_evaluable": [space.labels[i] for i in np.flatnonzero(space.test_counts == 0)],
        "majority_class": {"label": space.labels[majority],
                           "test_accuracy": float(space.test_counts[majority] / max(space.test_counts.sum(), 1)),
                           "val_accuracy": float(space.val_counts[majority] / max(space.val_counts.sum(), 1)),
                           "test_macro_f1": _majority_macro_f1(space.test_counts, majority),
                           # every class with test examples but the majority scores zero F1
                           "test_zero_f1_count": int((space.test_counts > 0).sum()) - int(space.test_counts[majority] > 0)},
    }


def _majority_macro_f1(test_counts: np.ndarray, majority: int) -> float:
    """Macro F1 of always predicting the majority class: its F1 is 2p / (1 + p) (precision p, its test share; recall
    1), every other class scores 0, averaged over the classes with test examples as the arms' macro F1 is."""
    share = float(test_counts[majority] / max(test_counts.sum(), 1))
    return (2 * share / (1 + share) if share else 0.0) / max(int((test_counts > 0).sum()), 1)


def _write_per_class_csv(run_dir: Path, run: RunEval, space: LabelSpace) -> Path:
    metrics = run.metrics
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "label_id", "tier", "train_count", "test_support", "precision", "recall", "f1",
                     "predicted_count", "evaluable"])
    for i, label in enumerate(space.labels):
        writer.writerow([label, i, space.tier_of[i], int(space.train_counts[i]), int(metrics["support"][i]),
                         f"{metrics['precision'][i]:.6g}", f"{metrics['recall'][i]:.6g}", f"{metrics['f1'][i]:.6g}",
                         int(metrics["predicted_count"][i]), bool(metrics["support"][i] > 0)])
    path = run_dir / "evaluation" / "per_class" / f"{artifacts.safe_name(run.name)}.csv"
    return artifacts.write_text(path, buffer.getvalue())


def json_ready(obj: Any) -> Any:
    """JSON-ready: plain Python types, NaN as null, floats kept to 6 significant digits."""
    if isinstance(obj, dict):
        return {str(key): json_ready(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(value) for value in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(f"{obj:.6g}") if math.isfinite(obj) else None
    return obj
