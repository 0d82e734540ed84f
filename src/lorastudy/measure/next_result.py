"""The result of `lorastudy next`: its runs scored as the study scored its own, and the prediction's verdict.

The new runs are scored on the study's test set with the study's machinery (`metrics.score_run`,
`uncertainty.Uncertainty`): the same bootstrap resamples and seed, so the result's interval is made exactly as the
arm's own interval in results.json is, and the change from the study's runs is a paired contrast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lorastudy.core import artifacts
from lorastudy.measure.evaluation import json_ready, load_run
from lorastudy.measure.metrics import METRICS, RARE_RECALL, LabelSpace, RunEval, score_run
from lorastudy.measure.uncertainty import Uncertainty, run_score
from lorastudy.study.config import EvaluationConfig

Verdict = Literal["held", "refuted", "inconclusive"]
NEXT = "next:"
"""Prefix of a new run's arm among the study's arms (`next:decoder_lora`), so both are scored on one resampling."""


def prediction_verdict(ci: tuple[float, float] | list[float], threshold: float,
                       direction: Literal["above", "below"] = "above") -> Verdict:
    """The prediction against its threshold, read from the result's 95% interval [lo, hi] (which holds its
    estimate, `uncertainty.bootstrap_interval`).

    For a prediction that the metric rises above the threshold:
    - held: lo > threshold, the whole interval above it;
    - refuted: hi <= threshold, the whole interval at or below it (the note's "at or below it, ruled out");
    - inconclusive (within the noise): lo <= threshold < hi, the threshold inside the interval, so the runs'
      own noise could put the metric on either side.
    A prediction that the metric falls below it (`direction` "below", the learning curve) is the mirror image:
    held when hi < threshold, refuted when lo >= threshold, inconclusive otherwise.
    """
    lo, hi = ci
    if direction == "above":
        return "held" if lo > threshold else "refuted" if hi <= threshold else "inconclusive"
    return "held" if hi < threshold else "refuted" if lo >= threshold else "inconclusive"


def evaluate_next(run_dir: Path, next_dir: Path, arms: list[str], seeds: list[int], metric: str,
                  settings: EvaluationConfig, bootstrap_seed: int) -> list[dict]:
    """Per arm (in the design's order): the new runs' `metric` with its interval, the study's runs' (recomputed,
    the same numbers as results.json), and the paired change, with each run's training record."""
    space = LabelSpace.from_json(Path(run_dir) / "data" / "labels.json")
    runs: dict[str, dict[int, RunEval]] = {}
    records: dict[str, list[dict]] = {}
    for arm in arms:
        for seed in seeds:
            name = f"{arm}__seed{seed}"
            for key, folder in ((NEXT + arm, Path(next_dir) / "runs" / name), (arm, Path(run_dir) / "runs" / name)):
                if key == arm and not (folder / "run.json").exists():
                    continue  # a seed the study did not train: the baseline rests on the seeds it did
                _, test, record = load_run(folder, name, space)
                runs.setdefault(key, {})[seed] = score_run(name, key, seed, test["labels"],
                                                           test["logits"].argmax(axis=1), space)
                if key != arm:
                    records.setdefault(arm, []).append(_training(record))
    uncertainty = Uncertainty(runs, space, settings, bootstrap_seed)
    rows = []
    for arm in arms:
        about = {"arm": arm, "metric": metric, **({"tier": space.rare_tier} if metric == RARE_RECALL else {})}
        change = uncertainty.contrast({NEXT + arm: 1.0, arm: -1.0}, metric) if arm in runs else None
        rows.append({**about, "result": {**about, **_level(uncertainty, runs, NEXT + arm, metric, space)},
                     "baseline": {**about, **_level(uncertainty, runs, arm, metric, space)} if arm in runs else None,
                     "change": {**about, "diff": change["diff"], "ci": change["ci"], "source": change["source"]}
                     if change else None,
                     "also": [_also(uncertainty, runs, arm, other, space) for other in (*METRICS, RARE_RECALL)
                              if other != metric and (other != RARE_RECALL or len(space.tier_names) > 1)],
                     "zero_f1": {"arm": arm, "result": _mean_zero(runs[NEXT + arm]),
                                 "baseline": _mean_zero(runs[arm]) if arm in runs else None},
                     "runs": [{"arm": arm, **record} for record in records[arm]]})
    return rows


def _also(uncertainty: Uncertainty, runs: dict[str, dict[int, RunEval]], arm: str, metric: str,
          space: LabelSpace) -> dict:
    """Another metric of the same runs, level and paired change: the prediction is on one metric, the reader asks
    what the change did to the others."""
    about = {"arm": arm, "metric": metric, **({"tier": space.rare_tier} if metric == RARE_RECALL else {})}
    change = uncertainty.contrast({NEXT + arm: 1.0, arm: -1.0}, metric) if arm in runs else None
    return {**about, "result": {**about, **_level(uncertainty, runs, NEXT + arm, metric, space)},
            "baseline": {**about, **_level(uncertainty, runs, arm, metric, space)} if arm in runs else None,
            "change": {**about, "diff": change["diff"], "ci": change["ci"]} if change else None}


def _mean_zero(by_seed: dict[int, RunEval]) -> float:
    return sum(run.metrics["zero_f1_count"] for run in by_seed.values()) / len(by_seed)


def _level(uncertainty: Uncertainty, runs: dict[str, dict[int, RunEval]], key: str, metric: str,
           space: LabelSpace) -> dict:
    """The metric with its interval (`Uncertainty.level`) and each seed's value."""
    seeds = sorted(runs[key])
    return {**uncertainty.level(key, metric), "seeds": seeds,
            "seed_values": [float(run_score(runs[key][seed], metric, space.rare_tier)) for seed in seeds]}


def training_seconds(arms: list[dict]) -> float:
    """Wall seconds the runs of `evaluate_next`'s rows took to train together (run by run, as each recorded)."""
    return float(sum(run["wall_time_s"] or 0 for row in arms for run in row["runs"]))


def _training(record: dict) -> dict:
    return {"seed": record.get("seed"), "steps": record.get("steps"), "wall_time_s": record.get("wall_time_s"),
            "seconds_per_step": record.get("seconds_per_step"), "collapsed": bool((record.get("collapse") or {})
                                                                                   .get("collapsed"))}


def write_next(run_dir: Path, record: dict) -> Path:
    """evaluation/next.json, numbers as results.json keeps them (plain types, 6 significant digits)."""
    return artifacts.write_json(Path(run_dir) / "evaluation" / "next.json", json_ready(record))
