"""Contrasting study outcomes as real run directories: synthetic predictions, real evaluation, real note.

A scenario sets, per arm, how often the model is right on common and on rare classes;
`build` writes labels, predictions, run records, a latency record and the resolved
config, then runs the real `evaluate_study`, so every number in a scenario's note
comes from the same code path as a real study.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lorastudy.core import artifacts
from lorastudy.study.config import ARMS, LORA_ARMS
from lorastudy.study.config_loading import dump_config, load_config
from lorastudy.measure.evaluation import evaluate_study

COMMON = 12
RARE = 6
TRAIN_COUNTS = [400, 320, 260, 200, 160, 130, 110, 90, 70, 60, 50, 40] + [9, 7, 5, 4, 3, 2]
TEST_COUNTS = [120, 100, 80, 70, 60, 50, 40, 35, 30, 25, 20, 20] + [8, 7, 6, 5, 4, 4]
LATENCY = {"encoder": (8.0, 11.0, 480.0), "decoder": (60.0, 88.0, 62.0), "tfidf": (0.5, 0.8, 9000.0)}


@dataclass
class Arm:
    common: float          # probability of a right answer on a common-class example
    rare: float            # ... on a rare-class example
    rare_pull: float = 0.0  # share of wrong common-class answers sent to rare classes (what weighting does)


@dataclass
class Scenario:
    name: str
    arms: dict[str, Arm]
    seeds: list[int] = field(default_factory=lambda: [42])
    reference_seeds: int | None = None  # how many seeds the reference arms train (config.reference_seeds)
    balanced: bool = False
    steps: dict[str, int] = field(default_factory=lambda: {"encoder": 250, "decoder": 250})
    label_prefix: str = "sense."
    overrides: list[str] = field(default_factory=list)
    timing_scale: dict[str, float] = field(default_factory=dict)  # an arm timed slower than its family (noise)


def _predict(arm: Arm, labels: np.ndarray, rare_ids: np.ndarray, common_ids: np.ndarray,
             rng: np.random.Generator, num_classes: int) -> np.ndarray:
    is_rare = np.isin(labels, rare_ids)
    right = rng.random(len(labels)) < np.where(is_rare, arm.rare, arm.common)
    wrong_common = rng.choice(common_ids[:3], size=len(labels))          # errors land on the head classes
    wrong_rare = rng.choice(rare_ids, size=len(labels)) if len(rare_ids) else wrong_common
    wrong = np.where(rng.random(len(labels)) < arm.rare_pull, wrong_rare, wrong_common)
    wrong = np.where(wrong == labels, (labels + 1) % num_classes, wrong)
    predicted = np.where(right, labels, wrong)
    logits = rng.normal(0, 0.1, size=(len(labels), num_classes)).astype(np.float32)
    logits[np.arange(len(labels)), predicted] += 5
    return logits


def build(root: Path, scenario: Scenario) -> Path:
    run_dir = Path(root) / scenario.name
    n = COMMON + RARE
    train = [100] * n if scenario.balanced else TRAIN_COUNTS
    test = [30] * n if scenario.balanced else TEST_COUNTS
    val = [max(c // 2, 1) for c in test]
    labels = [f"{scenario.label_prefix}{i:02d}" for i in range(n)]
    tier_of = ["rare" if (scenario.balanced or i >= COMMON) else "common" for i in range(n)]
    rule = "train count <= 100" if scenario.balanced else "train count <= 9"
    artifacts.write_json(run_dir / "data" / "labels.json", {
        "labels": labels, "train_counts": train, "val_counts": val, "test_counts": test,
        "tier_names": ["rare", "common"], "tier_of": tier_of, "tier_rule": rule,
        "tier_thresholds": [100 if scenario.balanced else 9], "missing": {"train": [], "val": [], "test": []},
        "fingerprint": scenario.name})
    artifacts.write_json(run_dir / "data" / "summary.json", {"warnings": ["3 texts occur in more than one split."]})
    rare_ids = np.array([i for i in range(n) if tier_of[i] == "rare"])
    common_ids = np.array([i for i in range(n) if tier_of[i] == "common"] or list(range(n)))
    rng = np.random.default_rng(sum(map(ord, scenario.name)))
    arms = [arm for arm in ARMS if arm in scenario.arms]
    for arm in arms:
        family = "none" if arm == "tfidf_logreg" else arm.split("_")[0]
        for seed in scenario.seeds if arm in LORA_ARMS else scenario.seeds[:scenario.reference_seeds]:
            folder = run_dir / "runs" / f"{arm}__seed{seed}"
            for split, counts in (("val", val), ("test", test)):
                y = np.repeat(np.arange(n), counts)
                artifacts.write_arrays(folder / f"predictions_{split}.safetensors",
                                       {"logits": _predict(scenario.arms[arm], y, rare_ids, common_ids, rng, n),
                                        "labels": y.astype(np.int64)})
            steps = scenario.steps.get(family, 1)
            epochs = 2 if steps >= 250 else 1
            for epoch in range(1, epochs + 1):
                artifacts.append_jsonl(folder / "train_log.jsonl",
                                       {"epoch": epoch, "step": steps * epoch // epochs,
                                        "val_macro_f1": 0.3 + 0.1 * epoch, "val_accuracy": 0.5, "val_loss": 1.0})
            total = {"encoder": 22_700_000, "decoder": 134_500_000, "none": 1_800_000}[family]
            trainable = total if "full" in arm or family == "none" else total // 70
            artifacts.write_json(folder / "run.json", {
                "arm": arm, "seed": seed, "family": family, "config_hash": "synthetic",
                "method": "tfidf" if family == "none" else ("full" if "full" in arm else "lora"),
                "class_weighting": arm.endswith("_cw"),
                "parameters": {"total": total, "trainable": trainable, "trainable_share": trainable / total},
                "epochs": epochs, "steps": steps, "best_epoch": epochs, "wall_time_s": 60.0,
                "peak_memory_mb": 900.0, "memory_at_start_mb": 500.0, "device": "cpu", "threads": 2,
                "precision": "bf16", "model": {"source": f"synthetic:{family}"},
                "peak_memory_method": "the run's own process (synthetic)",
                "collapse": {"n_predicted_classes": n, "collapsed": False, "reason": None}})
    config = load_config("demo", [f"arms={arms}", f"seeds={scenario.seeds}", f"reference_seeds={scenario.reference_seeds or 'null'}",
                                  "evaluation.bootstrap_samples=300",
                                  f"output_dir={run_dir}", *scenario.overrides])
    artifacts.write_text(run_dir / "config.resolved.yaml", dump_config(config))
    artifacts.write_json(run_dir / "latency" / "latency.json", _latency(arms, scenario.timing_scale))
    evaluate_study(run_dir, config)
    return run_dir


def _latency(arms: list[str], timing_scale: dict[str, float]) -> dict:
    models = {}
    for arm in arms:
        if arm.endswith("_cw") and arm.removesuffix("_cw") in arms:
            continue
        family = "tfidf" if arm == "tfidf_logreg" else arm.split("_")[0]
        scale = timing_scale.get(arm, 1.0)
        p50, p95, throughput = (value * factor for value, factor in zip(LATENCY[family], (scale, scale, 1 / scale)))
        samples = list(np.linspace(p50 * 0.8, p95 * 1.02, 100))
        models[arm] = {"arm": arm, "variants": {"merged": {
            "single": {"p50_ms": p50, "p95_ms": p95, "p99_ms": p95 * 1.1, "mean_ms": float(np.mean(samples)),
                       "n_requests": 100, "samples_ms": samples},
            "batched": [{"batch_size": 32, "ms_per_example": 1000 / throughput, "examples_per_s": throughput}],
            "peak_memory_mb": 800.0, "memory_added_mb": 150.0 if family == "encoder" else 1200.0,
            "device": "cpu", "precision": "bf16"}}, "size_on_disk_mb": {"adapter": 3.0, "merged": 90.0}}
    return {"schema_version": 2, "environment": {"device": "cpu", "cpu": "synthetic CPU"}, "models": models}


def arms_like(encoder: Arm, decoder: Arm, *, encoder_cw: Arm | None = None, decoder_cw: Arm | None = None) -> dict:
    """All seven arms around a given encoder and decoder LoRA; weighting pulls answers towards the rare tier."""
    return {
        "tfidf_logreg": Arm(common=0.45, rare=0.05),
        "encoder_full": Arm(common=encoder.common + 0.03, rare=encoder.rare + 0.05),
        "encoder_full_cw": Arm(common=encoder.common + 0.01, rare=encoder.rare + 0.25, rare_pull=0.3),
        "encoder_lora": encoder,
        "encoder_lora_cw": encoder_cw or Arm(common=encoder.common - 0.02, rare=encoder.rare + 0.2, rare_pull=0.3),
        "decoder_lora": decoder,
        "decoder_lora_cw": decoder_cw or Arm(common=decoder.common - 0.02, rare=decoder.rare + 0.2, rare_pull=0.3),
    }


SCENARIOS = {
    "decoder_wins": Scenario("decoder_wins", arms_like(Arm(0.62, 0.10), Arm(0.85, 0.55))),
    "encoder_wins": Scenario("encoder_wins", arms_like(Arm(0.85, 0.55), Arm(0.60, 0.10))),
    "tie": Scenario("tie", arms_like(Arm(0.72, 0.30), Arm(0.72, 0.30)),
                    overrides=["models.decoder.source=hf:Qwen/Qwen2.5-0.5B"], timing_scale={"encoder_full": 1.3}),
    "weighting_hurts_decoder": Scenario("weighting_hurts_decoder", arms_like(
        Arm(0.72, 0.20), Arm(0.74, 0.30), decoder_cw=Arm(0.55, 0.25, rare_pull=0.6))),
    "no_rare_tier": Scenario("no_rare_tier", arms_like(Arm(0.7, 0.7), Arm(0.75, 0.75)), balanced=True),
    "three_seeds": Scenario("three_seeds", arms_like(Arm(0.72, 0.25), Arm(0.70, 0.30)), seeds=[42, 43, 44]),
    "lora_seeds": Scenario("lora_seeds", arms_like(Arm(0.72, 0.25), Arm(0.66, 0.30)), seeds=[42, 43, 44],
                           reference_seeds=1),
    "decoder_undertrained": Scenario("decoder_undertrained", arms_like(Arm(0.80, 0.30), Arm(0.65, 0.15)),
                                     steps={"encoder": 250, "decoder": 125}),
}
