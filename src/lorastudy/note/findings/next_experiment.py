"""Section 5, what to do next: the favoured bottleneck among tested candidates and a prediction that can fail."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.stats import linregress

from lorastudy.note.findings.base import DEC, ENC, Finding, Source, Verdicts
from lorastudy.study.config import StudyConfig


class NextStepVerdicts(Verdicts):
    why_over_runner_up: Literal["runner_up_unmeasured", "favoured_unmeasured", "larger_size"] | None = None
    """Why the favoured bottleneck ranks above the runner-up: the runner-up's size is not measured, or the favoured
    one's is not (so neither size decides), or it accounts for more macro F1; None without a runner-up."""
    untested: list[str] = []
    """The candidates this run could not test (supported is None), named when the favoured one is the only one
    the evidence supports."""


def next_step_verdicts(found: list[Finding]) -> NextStepVerdicts:
    bottleneck = next((f for f in found if f.id == "bottleneck"), None)
    if bottleneck is None:
        return NextStepVerdicts()
    by_name = {c["name"]: c for c in bottleneck.facts["candidates"]}
    why = None
    if bottleneck.facts["runner_up"]:
        favoured, runner = by_name[bottleneck.verdict], by_name[bottleneck.facts["runner_up"]]
        why = ("runner_up_unmeasured" if runner["macro_f1_size"] is None else
               "favoured_unmeasured" if favoured["macro_f1_size"] is None else "larger_size")
    return NextStepVerdicts(why_over_runner_up=why,
                            untested=[c["name"] for c in bottleneck.facts["candidates"] if c["supported"] is None])


def bottleneck_findings(src: Source, config: StudyConfig) -> list[Finding]:
    """Evaluate the candidate bottlenecks of the focus arm with this run's evidence; favour the largest supported one.

    Each candidate's `macro_f1_size` is the macro F1 it accounts for, measured where the run measures it:
    - decision rule: the logit-adjustment probe's test gain (tau chosen on validation), supported when its
      interval excludes 0;
    - data volume: the rare tier's share of classes × the slope of per-class F1 on log2(train count)
      (what doubling the rare tier's data would add if the cross-class trend held), supported when the
      slope is positive at p < 0.05;
    - training budget: the focus arm trained fewer steps than the other LoRA arm and its best epoch was
      its last; size = its last epoch's validation gain (unknown with one validation point);
    - representation (adapter capacity): the same model's full fine-tune minus its LoRA, supported when the
      interval excludes 0; untestable without that full fine-tune (the study has none for the decoder).
    """
    focus = config.report.focus_arm if src.has(config.report.focus_arm) else next(
        (arm for arm in (DEC, ENC) if src.has(arm)), None)
    if focus is None:
        return []
    run = src.first_run(focus)
    candidates = []
    probe = src.results.get("logit_adjustment", {}).get(run)
    if probe:
        gain = probe["test_macro_f1_gain"]
        ci = probe.get("test_gain_ci", {}).get("macro_f1")
        supported = bool(ci and ci[0] > 0)
        base = ("logit_adjustment", run)
        candidates.append({"name": "decision_rule", "supported": supported, "macro_f1_size": gain if supported else None,
                           "quantities": [src.value("probe.tau", *base, "tau"),
                                          src.value("probe.val_before", *base, "val_macro_f1_before"),
                                          src.value("probe.val_after", *base, "val_macro_f1_after"),
                                          src.value("probe.before", *base, "test_macro_f1_before"),
                                          src.value("probe.after", *base, "test_macro_f1_after"),
                                          src.value("probe.gain_lo", *base, "test_gain_ci", "macro_f1", 0),
                                          src.value("probe.gain_hi", *base, "test_gain_ci", "macro_f1", 1),
                                          src.value("probe.rare_recall_before", *base, "rare_recall_before"),
                                          src.value("probe.rare_recall_after", *base, "rare_recall_after")],
                           "facts": {"gain": gain, "ci": ci, "tau": probe["tau"]}})
    classes = (src.results.get("class_differences") or {}).get("classes", [])
    key = "f1_b" if focus == DEC else "f1_a"
    if len(classes) >= 3 and len(src.tiers) >= 2:
        counts = np.log2([max(c["train_count"], 1) for c in classes])
        fit = linregress(counts, [c[key] for c in classes]) if np.ptp(counts) > 0 else None
        rare_share = src.results["data"]["tier_sizes"][src.rare] / src.results["data"]["num_classes"]
        supported = bool(fit is not None and fit.slope > 0 and fit.pvalue < 0.05)
        candidates.append({"name": "data_volume", "supported": supported,
                           "macro_f1_size": rare_share * fit.slope if supported else None,
                           "quantities": [src.value("rho", "runs", run, "test", "spearman_f1_vs_train_count", "rho")],
                           "facts": {"f1_slope_per_doubling": None if fit is None else float(fit.slope),
                                     "slope_p": None if fit is None else float(fit.pvalue), "rare_class_share": rare_share}})
    other = ENC if focus == DEC else DEC
    if src.has(other):
        mine, theirs = (src.results["runs"][src.first_run(arm)].get("training", {}) for arm in (focus, other))
        curve = mine.get("val_curve") or []
        last_gain = curve[-1]["val_macro_f1"] - curve[-2]["val_macro_f1"] if len(curve) >= 2 else None
        fewer = bool(mine.get("steps") and theirs.get("steps") and mine["steps"] < theirs["steps"])
        still_best_at_end = mine.get("best_epoch") is not None and mine.get("best_epoch") == mine.get("epochs")
        # with one validation point the best epoch is the last by construction: the curve cannot say
        supported = fewer and still_best_at_end and last_gain > 0 if len(curve) >= 2 else None
        candidates.append({"name": "training_budget", "supported": supported,
                           "macro_f1_size": last_gain if supported and last_gain is not None else None,
                           "quantities": [src.value("steps", "runs", run, "training", "steps"),
                                          src.value("other_steps", "runs", src.first_run(other), "training", "steps"),
                                          src.value("epochs", "runs", run, "training", "epochs"),
                                          src.value("best_epoch", "runs", run, "training", "best_epoch")],
                           "facts": {"fewer_steps": fewer, "best_at_end": still_best_at_end, "last_gain": last_gain,
                                     "val_points": len(curve), "other": other, "steps": mine.get("steps"),
                                     "other_steps": theirs.get("steps"), "best_epoch": mine.get("best_epoch"),
                                     "epochs": mine.get("epochs"),
                                     **({} if len(curve) >= 2 else {"untestable": "one validation point"})}})
    full = src.comparison(focus, focus.replace("_lora", "_full"), "macro_f1")
    if full:
        row, quantities, _ = full
        supported = row["distinguishable"] and row["diff"] > 0
        candidates.append({"name": "representation", "supported": supported,
                           "macro_f1_size": row["diff"] if supported else None, "quantities": quantities,
                           "facts": {"diff": row["diff"], "ci": row["ci"]}})
    else:
        candidates.append({"name": "representation", "supported": None, "macro_f1_size": None, "quantities": [],
                           "facts": {"untestable": f"no full fine-tune of the {focus.split('_')[0]} in this study"}})
    if not candidates:
        return []
    ranked = sorted(candidates, key=lambda c: (c["supported"] is not True, c["macro_f1_size"] is None,
                                               -(c["macro_f1_size"] or 0)))
    favoured = ranked[0] if ranked[0]["supported"] is True else None
    runner_up = next((c for c in ranked[1:] if c["supported"] is True), None) if favoured else None
    bottleneck = Finding(
        id="bottleneck", kind="bottleneck", section=5,
        test="supported candidates ranked by the macro F1 each accounts for (measured sizes before unknown ones)",
        verdict=favoured["name"] if favoured else "none_supported", subjects=[focus],
        quantities=[q for c in candidates for q in c["quantities"]],
        facts={"focus": focus, "budget_steps": 2 * mine_steps if (mine_steps := _steps(src, focus)) else None,
               "candidates": [{k: v for k, v in c.items() if k != "quantities"} for c in candidates],
               "runner_up": runner_up["name"] if runner_up else None})
    return [bottleneck, prediction_finding(src, focus, favoured)]


def _steps(src: Source, arm: str) -> int | None:
    return src.results["runs"][src.first_run(arm)].get("training", {}).get("steps")


PREDICTED_METRIC = {"decision_rule": ("rare_recall", "rare-tier recall"), "data_volume": ("rare_mean_f1", "rare-tier mean F1"),
                    "training_budget": ("macro_f1", "macro F1"), "representation": ("macro_f1", "macro F1"),
                    None: ("macro_f1", "macro F1")}


def prediction_finding(src: Source, focus: str, favoured: dict | None) -> Finding:
    """A threshold beyond the best any arm of this study reached, so the prediction can fail."""
    name = favoured["name"] if favoured else None
    metric, _ = PREDICTED_METRIC[name]
    levels = []
    for arm in src.results["arms"]:  # seed means, as the tables show them
        if metric in ("rare_recall", "rare_mean_f1"):
            key = "recall" if metric == "rare_recall" else "mean_f1"
            levels.append(src.value(f"{arm}.level", "arms", arm, "per_tier", src.rare, key, "mean"))
        else:
            levels.append(src.value(f"{arm}.level", "arms", arm, "test", "macro_f1", "mean"))
    if name == "decision_rule":  # the post-hoc probe already reached its value: the retrained model must beat it too
        key = {"rare_recall": "rare_recall_after", "rare_mean_f1": "rare_mean_f1_after"}.get(metric, "test_macro_f1_after")
        levels.append(src.value(f"{focus}.probe", "logit_adjustment", src.first_run(focus), key))
    levels = [q for q in levels if q.value is not None]
    if not levels:  # the rare tier has no test examples: predict on macro F1, defined for every arm
        metric = "macro_f1"
        levels = [src.value(f"{arm}.level", "arms", arm, "test", "macro_f1", "mean") for arm in src.results["arms"]]
    best = max(levels, key=lambda q: q.value)
    now = next((q for q in levels if q.name == f"{focus}.level"), None)
    # doubling the rare tier's data predicts the focus arm's rare mean F1 to rise by the cross-class slope; the
    # prediction is the larger of that and the best level already reached, so it can fail
    slope = (favoured or {}).get("facts", {}).get("f1_slope_per_doubling") if name == "data_volume" else None
    expected = now.value + slope if now and slope and metric == "rare_mean_f1" else None
    threshold = max(best.value, expected) if expected is not None else best.value
    return Finding(id="prediction", kind="prediction", section=5,
                   test="the predicted value must exceed the best any arm (or the post-hoc probe) of this study reached",
                   verdict=name or "none", subjects=[focus, best.name.split(".")[0]], quantities=[best],
                   facts={"metric": metric, "threshold": threshold, "best_arm": best.name.split(".")[0],
                          "best_is_probe": best.name.endswith(".probe"), "now": now.value if now else None,
                          "slope": slope, "from_slope": expected is not None and expected > best.value})
