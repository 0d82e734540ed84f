"""Section 5, what to do next: one controlled experiment aimed at the focus arm's largest located deficit.

Candidates are what this run can actually change and test, each read from direct evidence, never from an
across-class correlation read as a cause:
- training budget: the focus arm saw fewer training examples than the other LoRA arm, and at the matched
  budget (Section 1) it stood better against it than at its own; its size for the focus arm is unmeasured (what
  the other arm gained past the matched budget shows that length matters, not what the focus arm would gain).
  Change: train the focus arm to the other's number of examples.
- truncation: at least `TRUNCATION_SHARE` of texts lost their end to the maximum length for the focus arm's
  tokenizer (data summary); size = TF-IDF's clear lead over it (TF-IDF reads every word), unknown otherwise.
  Change: the maximum length.
- rare data: the focus arm scores F1 0 on every class up to some training count, and the source has rows the
  study never drew (labels.json `cleaning.unused_rows`). Change: top up the rare tier from those rows.
- decision rule: the logit-adjustment probe's test gain has an interval above 0. Change: a logit-adjusted loss.
- representation: the same model's full fine-tune beats its LoRA. Change: adapter capacity.
- quantised base: the focus model's weights were dequantised from a lossy GGUF quantisation; listed, never
  testable here (the run has only the quantised file).

The supported candidates aimed at the located deficit (the tier holding most of the focus arm's macro F1 deficit
against the other arm; Section 1's split) rank first, then by the macro F1 each accounts for, then by cost. The
prediction's threshold is the focus arm's current value plus the half-width of a paired change's 95% interval on
that arm (its weighting effect; seeds and test resampling as the run measured them), so noise alone cannot pass
it, and the other arm's level is what closing the gap would reach; the experiment is typed (`facts.design`)
for a later `lorastudy next` to run.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from lorastudy.note.findings.base import DEC, ENC, RESULTS, Finding, Quantity, Source, Verdicts, has_tail, \
    probe_over_seeds
from lorastudy.study.arms import arm_spec
from lorastudy.study.config import StudyConfig

TRUNCATION_SHARE = 0.1
"""A candidate when at least this share of the focus arm's texts lose their end."""
COST_ORDER = ["decision_rule", "training_budget", "truncation", "rare_data", "representation", "quantised_base"]
"""Cheapest first: a probe needs no retraining; a budget or a length is one setting; new data and capacity more."""
AIMS = {"decision_rule": "rare", "rare_data": "rare", "training_budget": "all", "truncation": "all",
        "representation": "all", "quantised_base": "all"}


class NextStepVerdicts(Verdicts):
    why_over_runner_up: Literal["runner_up_unmeasured", "favoured_unmeasured", "larger_size", "aimed"] | None = None
    """Why the favoured candidate ranks above the runner-up: it aims at the located deficit and the runner-up does
    not ("aimed"), else the runner-up's size is not measured, or the favoured one's is not (neither size decides),
    or it accounts for more macro F1; None without a runner-up."""
    broader_than_runner_up: bool = False
    """The favoured candidate aims at every class while the runner-up aims at one tier only."""
    untested: list[str] = []
    """The candidates this run could not test (supported is None), named when the favoured one is the only one
    the evidence supports."""
    runner_up_tier_alike: bool = False
    """The runner-up aims at one tier on which the two LoRA models are not distinguishable (Section 3's pooled
    recall difference): that tier is the task's weakness, not the focus arm's deficit, which the note says."""


def next_step_verdicts(found: list[Finding]) -> NextStepVerdicts:
    bottleneck = next((f for f in found if f.id == "bottleneck"), None)
    if bottleneck is None:
        return NextStepVerdicts()
    by_name = {c["name"]: c for c in bottleneck.facts["candidates"]}
    why, broader = None, False
    if bottleneck.facts["runner_up"]:
        favoured, runner = by_name[bottleneck.verdict], by_name[bottleneck.facts["runner_up"]]
        deficit = bottleneck.facts.get("deficit_tier")
        aimed = deficit is not None and _aimed(favoured, deficit) and not _aimed(runner, deficit)
        why = ("aimed" if aimed else "favoured_unmeasured" if favoured["macro_f1_size"] is None else
               "runner_up_unmeasured" if runner["macro_f1_size"] is None else "larger_size")
        broader = favoured.get("aims") == "all" and runner.get("aims") != "all"
    recall = next((f for f in found if f.id == "tier.rare_recall"), None)
    alike = (bool(bottleneck.facts["runner_up"]) and by_name[bottleneck.facts["runner_up"]].get(
        "aims", AIMS.get(bottleneck.facts["runner_up"], "all")) != "all" and recall is not None
        and recall.verdict == "not_distinguishable")
    return NextStepVerdicts(why_over_runner_up=why, broader_than_runner_up=broader, runner_up_tier_alike=alike,
                            untested=[c["name"] for c in bottleneck.facts["candidates"] if c["supported"] is None])


def _aimed(candidate: dict, deficit_tier: str | None) -> bool:
    aims = candidate.get("aims", AIMS.get(candidate["name"], "all"))
    return deficit_tier is None or aims == "all" or aims == deficit_tier


def focus_arm(src: Source, config: StudyConfig) -> str | None:
    return config.report.focus_arm if src.has(config.report.focus_arm) else next(
        (arm for arm in (DEC, ENC) if src.has(arm)), None)


def located_deficit(src: Source, found: list[Finding], focus: str) -> dict:
    """The tier holding the largest part of the focus arm's macro F1 deficit against the other LoRA arm (the exact
    split of Section 1, seed means); no tier when the focus arm is behind in none."""
    split = next((f for f in found if f.id == "architecture.tier_split"), None)
    gap = next((f for f in found if f.id == f"diff.{ENC}.{DEC}.macro_f1"), None)
    if split is None or gap is None or gap.verdict == "not_distinguishable":  # no deficit to locate
        return {"tier": None}
    sign = 1 if focus == DEC else -1  # the split is decoder minus encoder
    parts = {t: sign * split.q(f"{t}.macro_f1_gap_from_tier") for t in src.tiers
             if split.q(f"{t}.macro_f1_gap_from_tier") is not None}
    deficits = {t: v for t, v in parts.items() if v < 0}
    if not deficits:
        return {"tier": None}
    tier = min(deficits, key=deficits.get)
    total = sum(deficits.values())
    return {"tier": tier, "part": parts[tier], "share": parts[tier] / total if total else None,
            "quantity": next(q for q in split.quantities if q.name == f"{tier}.macro_f1_gap_from_tier")}


def bottleneck_findings(src: Source, config: StudyConfig, summary: dict | None = None,
                        found: list[Finding] | None = None) -> list[Finding]:
    """The candidates tested with this run's evidence, the favoured one, and its experiment with a prediction."""
    focus = focus_arm(src, config)
    if focus is None:
        return []
    summary, found = summary or {}, found or []
    other = ENC if focus == DEC else DEC
    by_id = {f.id: f for f in found}
    deficit = located_deficit(src, found, focus) if src.has(other) else {"tier": None}
    candidates = [c for c in (_budget(src, config, focus, other, by_id), _truncation(src, config, focus, summary),
                              _rare_data(src, focus, summary), _decision_rule(src, focus),
                              _representation(src, focus), _quantised_base(src, config, focus)) if c]
    for c in candidates:
        c["aims"] = AIMS[c["name"]]
    ranked = sorted(candidates, key=lambda c: (c["supported"] is not True, not _aimed(c, deficit["tier"]),
                                               _rank_size(c) is None, -(_rank_size(c) or 0),
                                               COST_ORDER.index(c["name"])))
    favoured = ranked[0] if ranked and ranked[0]["supported"] is True else None
    runner_up = next((c for c in ranked[1:] if c["supported"] is True), None) if favoured else None
    quantities = [q for c in candidates for q in c["quantities"]]
    if deficit["tier"] is not None:
        quantities += [deficit["quantity"],
                       Quantity(name=f"{focus}: deficit share of the gap, tier {deficit['tier']}",
                                value=deficit["share"], path="architecture.tier_split (the tier's part / the deficit's sum)")]
    bottleneck = Finding(
        id="bottleneck", kind="bottleneck", section=5,
        test="supported candidates aimed at the tier holding most of the focus arm's deficit first, then by the "
             "macro F1 each accounts for or the size of its evidence (known sizes before unknown ones), then cheapest",
        verdict=favoured["name"] if favoured else "none_supported", subjects=[focus, other],
        quantities=quantities,
        facts={"focus": focus, "other": other, "deficit_tier": deficit["tier"], "deficit_share": deficit.get("share"),
               "budget_steps": 2 * steps if (steps := _steps(src, focus)) else None,
               "candidates": [{k: v for k, v in c.items() if k not in ("quantities", "design")} for c in candidates],
               "runner_up": runner_up["name"] if runner_up else None})
    return [bottleneck, prediction_finding(src, config, focus, favoured, runner_up)]


def _rank_size(candidate: dict) -> float | None:
    """What a candidate is ranked by: the macro F1 it accounts for, else the size of the evidence for it (the budget:
    how far the gap moved while the other arm kept training), never printed as the focus arm's own size."""
    size = candidate["macro_f1_size"]
    return size if size is not None else candidate.get("evidence_size")


def _steps(src: Source, arm: str) -> int | None:
    return src.results["runs"][src.first_run(arm)].get("training", {}).get("steps")


def _other(arm: str) -> str:
    return ENC if arm == DEC else DEC


def _family(arm: str) -> str:
    return arm.split("_")[0]


def _budget(src: Source, config: StudyConfig, focus: str, other: str, by_id: dict) -> dict | None:
    if not src.has(other):
        return None
    matched = by_id.get("architecture.matched_budget")
    if matched is None:
        return {"name": "training_budget", "supported": False, "macro_f1_size": None, "quantities": [],
                "facts": {"same_budget": True}, "design": None}
    mine, theirs = (matched.q(f"{arm}.own_examples") for arm in (focus, other))
    sign = 1 if focus == DEC else -1
    at_matched = sign * matched.q(f"{DEC}_minus_{ENC}.val_macro_f1_matched_diff")
    at_own = sign * matched.q(f"{DEC}_minus_{ENC}.val_macro_f1_own_budget_diff")
    gain = matched.q(f"{other}.val_macro_f1_gain_past_matched")
    supported = bool(mine < theirs and at_matched > at_own)
    curve = matched.facts["curves"][focus]  # the focus arm's own evidence: its last validation slope, extended
    slope = ((curve[-1]["val_macro_f1"] - curve[-2]["val_macro_f1"]) / (curve[-1]["examples"] - curve[-2]["examples"])
             if len(curve) >= 2 and curve[-1]["examples"] > curve[-2]["examples"] else None)
    batch = arm_spec(config, focus, 0, "").train.batch_size  # type: ignore[arg-type, union-attr]
    steps = math.ceil(theirs / batch)
    names = [f"{other}.own_examples", f"{focus}.own_examples", f"{other}.val_macro_f1_gain_past_matched"]
    # no size: the gap's change past the matched budget is the other arm's own gain, evidence that length matters,
    # not what the focus arm would gain (its own curve, when it has two points, gives the prediction's forecast)
    return {"name": "training_budget", "supported": supported, "macro_f1_size": None,
            "evidence_size": at_matched - at_own if supported else None,
            "quantities": [q for q in matched.quantities if q.name in names],
            "facts": {"examples": mine, "other_examples": theirs, "matched_examples": matched.facts["examples"],
                      "other": other,
                      "gap_at_matched": at_matched, "gap_at_own": at_own, "other_gain": gain, "steps": steps,
                      "own_slope_gain": None if slope is None else slope * (theirs - mine)},
            "design": {"change": f"models.{_family(focus)}.lora_train.max_steps", "value": steps,
                       "describe": f"train to {theirs:,.0f} examples, the other LoRA arm's budget"}}


def _truncation(src: Source, config: StudyConfig, focus: str, summary: dict) -> dict | None:
    truncation = summary.get("truncation") or {}
    share = (truncation.get(_family(focus)) or {}).get("share")
    if share is None:
        return None
    p95 = ((summary.get("text_length") or {}).get("tokens") or {}).get("p95")
    length = truncation.get("max_length") or config.data.max_length
    longer = int(max(2 * length, 32 * math.ceil((p95 or 0) / 32)))
    tfidf = src.comparison(focus, "tfidf_logreg", "macro_f1") if src.has("tfidf_logreg") else None
    tfidf_ahead = bool(tfidf and tfidf[0]["distinguishable"] and tfidf[0]["diff"] > 0)
    quantities = [Quantity(name=f"{_family(focus)}.truncated_share", value=share,
                           path="data/summary.json#/truncation/" + _family(focus) + "/share"),
                  Quantity(name="max_length", value=length, path="config.resolved.yaml#/data/max_length")]
    if tfidf:
        quantities += [Quantity(name=f"tfidf_logreg_minus_{focus}.macro_f1", value=tfidf[0]["diff"],
                                path=tfidf[1][0].path)]
    supported = share >= TRUNCATION_SHARE
    # TF-IDF reads every word: where it is clearly ahead, its lead is the size the cut text can account for
    return {"name": "truncation", "supported": supported,
            "macro_f1_size": tfidf[0]["diff"] if supported and tfidf_ahead else None,
            "quantities": quantities,
            "facts": {"share": share, "max_length": length, "p95_tokens": p95, "tfidf_ahead": tfidf_ahead,
                      "tfidf_diff": tfidf[0]["diff"] if tfidf else None, "new_max_length": longer},
            "design": {"change": "data.max_length", "value": longer,
                       "describe": f"keep up to {longer} tokens instead of {length}"}}


def _zero_below(classes: list[dict], key: str) -> int | None:
    """The largest training count up to which every class scores F1 0 (None when the rarest class scores)."""
    ordered = sorted(classes, key=lambda c: c["train_count"])
    limit = None
    for c in ordered:
        if c[key] > 0:
            break
        limit = c["train_count"]
    if limit is not None and any(c["train_count"] == limit and c[key] > 0 for c in ordered):
        return None
    return limit


def _rare_data(src: Source, focus: str, summary: dict) -> dict | None:
    classes = (src.results.get("class_differences") or {}).get("classes", [])
    if not classes or not has_tail(src):
        return None
    key = "f1_b" if focus == (src.results.get("class_differences") or {}).get("b") else "f1_a"
    zero_below = _zero_below(classes, key)
    rare = [c for c in classes if c["tier"] == src.rare]
    rare_zero = sum(1 for c in rare if c[key] == 0)
    unused = (summary.get("cleaning") or {}).get("unused_rows")
    threshold = (src.results["data"].get("tier_thresholds") or [None])[0]
    target = int(threshold) + 1 if threshold is not None else None
    needed = sum(max(0, target - c["train_count"]) for c in rare) if target else None
    if not unused:
        supported = None  # nothing to draw from: the run cannot top the tier up
    else:
        supported = bool(rare_zero and zero_below is not None and needed and unused >= needed)
    quantities = [src.value(f"{focus}.rare_zero", "runs", src.first_run(focus), "test", "per_tier", src.rare,
                            "zero_f1_count"),
                  Quantity(name=f"{focus}.largest train count of the classes all at zero F1", value=zero_below,
                           path="results.json class_differences (train_count where every rarer class has F1 0)")]
    if unused:
        quantities.append(Quantity(name="unused_rows", value=unused, path="data/labels.json#/cleaning/unused_rows"))
    return {"name": "rare_data", "supported": supported, "macro_f1_size": None, "quantities": quantities,
            "facts": {"zero_below": zero_below, "rare_zero": rare_zero, "rare_n": len(rare), "unused_rows": unused,
                      "target": target, "rows_needed": needed, "seed": (src.results.get("class_differences") or {})
                      .get("seed"), **({} if unused else {"untestable": "no unused rows of the source"})},
            "design": {"change": "data.top_up_rare_to", "value": target,
                       "describe": f"top up every {src.rare}-tier class to {target} training examples from unused rows"}}


def _decision_rule(src: Source, focus: str) -> dict | None:
    probe = probe_over_seeds(src, focus)  # seed means: the number Section 2 cites for the same probe
    if not probe:
        return None
    gain, ci = probe["test_macro_f1_gain"], probe["ci"]
    supported = bool(ci and ci[0] > 0)
    tau = sorted(probe["taus"])[len(probe["taus"]) // 2]  # the seeds' median choice
    values = {"probe.tau": tau, "probe.before": probe["test_macro_f1_before"],
              "probe.after": probe["test_macro_f1_after"], "probe.gain_lo": ci[0] if ci else None,
              "probe.gain_hi": ci[1] if ci else None, "probe.rare_recall_before": probe["rare_recall_before"],
              "probe.rare_recall_after": probe["rare_recall_after"]}
    return {"name": "decision_rule", "supported": supported, "macro_f1_size": gain if supported else None,
            "quantities": [Quantity(name=name, value=value, path=probe["path"]) for name, value in values.items()],
            "facts": {"gain": gain, "ci": ci, "tau": tau, "taus": probe["taus"], "several_seeds": probe["n_seeds"] > 1},
            "design": {"change": "weighting.loss", "value": "logit_adjusted", "tau": tau,
                       "describe": f"a logit-adjusted loss with tau {tau:g}"}}


QUANTISED = re.compile(r"[.\-_]((?:i?q\d[\w]*)|int[48])\.gguf$", re.I)


def _quantised_base(src: Source, config: StudyConfig, focus: str) -> dict | None:
    """The focus model's base weights were dequantised from a lossy GGUF quantisation (Q4_1, Q8_0, ...): a
    candidate whenever the source says so, untestable without an unquantised copy of the same model."""
    found = QUANTISED.search(getattr(config.models, _family(focus)).source)
    if not found:
        return None
    return {"name": "quantised_base", "supported": None, "macro_f1_size": None, "quantities": [],
            "facts": {"quantisation": found.group(1).upper(),
                      "untestable": f"base weights dequantised from {found.group(1).upper()}; the offline run has "
                                    "only that file, no unquantised copy to compare"},
            "design": None}


def _representation(src: Source, focus: str) -> dict:
    full = src.comparison(focus, focus.replace("_lora", "_full"), "macro_f1")
    if full:
        row, quantities, _ = full
        supported = row["distinguishable"] and row["diff"] > 0
        return {"name": "representation", "supported": supported,
                "macro_f1_size": row["diff"] if supported else None, "quantities": quantities,
                "facts": {"diff": row["diff"], "ci": row["ci"]},
                "design": {"change": f"models.{_family(focus)}.lora.include_mlp", "value": True,
                           "describe": "adapters on the MLP as well, rank 32"}}
    return {"name": "representation", "supported": None, "macro_f1_size": None, "quantities": [],
            "facts": {"untestable": f"no full fine-tune of the {_family(focus)} in this study"}, "design": None}


PREDICTED_METRIC = {"decision_rule": "rare_recall", "rare_data": "rare_recall", "training_budget": "macro_f1",
                    "truncation": "macro_f1", "representation": "macro_f1", "quantised_base": "macro_f1",
                    None: "macro_f1"}


def _clear_deficit_metric(src: Source, focus: str, metric: str) -> str:
    """Macro F1, unless the focus arm's macro F1 deficit to the other LoRA arm is not distinguishable while its
    accuracy deficit is: a hypothesis about a gap the run cannot see is aimed at the gap it can (issue #30)."""
    if metric != "macro_f1" or not src.has(_other(focus)):
        return metric
    f1_gap, accuracy_gap = (src.comparison(_other(focus), focus, m) for m in ("macro_f1", "accuracy"))
    if (f1_gap and not f1_gap[0]["distinguishable"] and accuracy_gap and accuracy_gap[0]["distinguishable"]
            and accuracy_gap[0]["diff"] < 0):
        return "accuracy"
    return metric


def prediction_finding(src: Source, config: StudyConfig, focus: str, favoured: dict | None,
                       runner_up: dict | None) -> Finding:
    """The focus arm's metric must rise past its current value plus the noise of a change to it, and, where the
    hypothesis is that most of its deficit is training length, past half the gap to the other LoRA arm.

    That noise is the half-width of a paired change's 95% interval measured on this arm: its weighting effect
    (weighted minus unweighted, same seeds and test examples; results.json `weighting_effect`), the same kind of
    contrast the experiment's result will be. Without a weighted twin it is the arm's own interval (`arms.<arm>.ci`):
    test resampling, widened by the seed t-interval where the arm trained several seeds. Without any supported
    candidate the experiment is the cheapest direct test, twice the focus arm's budget."""
    name = favoured["name"] if favoured else None
    metric = _clear_deficit_metric(src, focus, PREDICTED_METRIC[name])
    if metric == "rare_recall" and (src.results["arms"][focus].get("ci", {}).get("rare_recall") or {}).get("ci") is None:
        metric = "macro_f1"
    entry = src.results["arms"][focus]["ci"][metric]
    if entry.get("mean") is None or entry.get("ci") is None:  # the rare tier has no test examples
        metric, entry = "macro_f1", src.results["arms"][focus]["ci"]["macro_f1"]
    now = Quantity(name=f"{focus}.{metric}", value=entry["mean"], path=f"{RESULTS}#/arms/{focus}/ci/{metric}/mean")
    paired_ci = (((src.results.get("weighting_effect") or {}).get(focus) or {}).get("intervals", {}).get(metric)
                 or {}).get("ci")
    lo, hi = paired_ci or entry["ci"]
    allowance = (hi - lo) / 2
    noise = Quantity(name=f"{focus}.{metric}_noise_allowance", value=allowance,
                     path=f"half-width of results.json weighting_effect.{focus}.intervals.{metric}.ci" if paired_ci
                     else f"half-width of results.json arms.{focus}.ci.{metric}")
    other = _other(focus)
    other_entry = (src.results["arms"].get(other, {}).get("ci") or {}).get(metric) if src.has(other) else None
    other_mean = (other_entry or {}).get("mean")
    # "most of its deficit is training length" needs more than half the gap closed, where that exceeds the noise
    half_gap = (other_mean - entry["mean"]) / 2 if name == "training_budget" and other_mean is not None else None
    if half_gap is None or half_gap <= allowance:
        half_gap = None
    threshold = entry["mean"] + (half_gap if half_gap is not None else allowance)
    design = (favoured or {}).get("design") or {
        "change": f"models.{_family(focus)}.lora_train.max_steps",
        "value": 2 * (_steps(src, focus) or 0), "describe": "train for twice the steps"}
    gap_level = (Quantity(name=f"{other}.{metric}", value=other_entry["mean"],
                          path=f"{RESULTS}#/arms/{other}/ci/{metric}/mean")
                 if other_entry and other_entry.get("mean") is not None and other_entry["mean"] > threshold else None)
    expected = None  # a gain measured on the other arm is no prediction for this one: only its own curve is
    if name == "training_budget" and metric == "macro_f1" and favoured["facts"]["own_slope_gain"] is not None:
        expected = entry["mean"] + favoured["facts"]["own_slope_gain"]
    arms = [focus] + ([focus.replace("_lora", "_lora_cw")] if src.has(focus.replace("_lora", "_lora_cw"))
                      and name in ("training_budget", "truncation") else [])
    return Finding(id="prediction", kind="prediction", section=5,
                   test="the focus arm's metric after the change must exceed its current value plus the half-width "
                        "of a paired change's 95% interval on it (what test resampling and seed variation alone "
                        "could move)",
                   verdict=name or "none", subjects=[focus],
                   quantities=[now, noise] + ([gap_level] if gap_level else []) + ([Quantity(name=f"{focus}.macro_f1 + own validation slope x added examples",
                                                         value=expected, path="now + the focus arm's last validation "
                                                                              "slope (seed mean) x the added examples")]
                                              if expected is not None else [])
                   + ([Quantity(name=f"{focus}.proposed_steps", value=design["value"], path="the design's step count")]
                      if design["change"].endswith("max_steps") else []),
                   facts={"metric": metric, "threshold": threshold, "now": entry["mean"], "noise_allowance": allowance,
                          "aimed_at_clear_gap": metric == "accuracy" and PREDICTED_METRIC[name] == "macro_f1",
                          "noise_source": entry.get("source", src.source), "expected": expected,
                          "paired_noise": bool(paired_ci), "half_gap": half_gap,
                          "expected_clears": expected is not None and expected > threshold,
                          "gap_level": gap_level.value if gap_level else None, "gap_arm": other if gap_level else None,
                          "design": {**design, "arms": arms, "seeds": src.results["arms"][focus]["seeds"],
                                     "metric": metric, "threshold": threshold, "noise_allowance": allowance},
                          "alternative": runner_up["name"] if runner_up else None})
