"""Section 2, class weighting: each arm's weighting effect, its difference between arms and why it differs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from lorastudy.note.findings.base import narrowly_clear, one_run_arms, DEC, ENC, RESULTS, WEIGHTED, Finding, Quantity, Source, Verdicts, \
    difference_verdict, has_tail, interval_test, pooled_tier_precision, probe_over_seeds
from lorastudy.study.config import StudyConfig


class Transfer(BaseModel):
    """One metric on which weighting helped the decoder clearly more ("better") or less ("worse") than encoder LoRA."""

    direction: Literal["better", "worse"]
    metric: Literal["macro_f1", "accuracy"]
    narrowly: bool = False
    """Its interval clears zero by under `base.NARROW` of its width, so the note says "narrowly"."""


class ClearChange(BaseModel):
    """A change weighting made to one LoRA arm whose interval excludes 0."""

    arm: str
    metric: str
    direction: Literal["raised", "lowered"]


class GainShare(BaseModel):
    """The decoder's macro F1 gain from weighting as a multiple of another arm's (both gains positive)."""

    arm: str
    share: float


class WeightingVerdicts(Verdicts):
    decoder_gain_shares: list[GainShare] = []
    """Section 2's question is weighting's macro F1 effect: the decoder's gain as a share of encoder LoRA's and of
    the full fine-tune's (the Week 2 setting), each only when both gains are positive; the sentence leads with it
    before any accuracy difference."""
    zero_count_unchanged: dict[str, bool] = {}
    """Per weighted arm: weighting left its zero-F1 count where it was, so the note says it was left, not moved."""
    transferred: list[Transfer] = []
    """The metrics (macro F1 first) on which the decoder's weighting effect minus encoder LoRA's excludes 0, with the
    direction: the note's "transferred better/worse" list, built from the verdicts once."""
    more_under_predicted: str | None = None
    """The LoRA arm that under-predicted the rare tier more before weighting (the lower predicted/true share),
    None when the two shares are equal or undefined; the mechanism sentences name it."""
    accuracy_worst_hit: str | None = None
    """The LoRA arm whose accuracy weighting changed the least favourably (an undefined change counts as 0; the
    decoder on a tie): the one whose accuracy change the note splits by tier."""
    accuracy_cost_from: Literal["common", "rare"] | None = None
    """Where that arm's accuracy loss comes from: "common" when its common-tier examples lost accuracy (they pay
    the cost), "rare" when only the rest of the tiers did; None when its accuracy did not fall."""
    added_precision_shown: bool = False
    """Weighting moved predictions into the rare tier on both LoRA arms, and the net precision of the moved ones
    (newly right / newly predicted there) lies in [0, 1] for both: only then is it a precision the note can print."""
    macro_f1_clear: list[str] = []
    """The LoRA arms whose macro F1 change from weighting excludes 0: Section 2 answers "does weighting help both"
    on macro F1 first, naming these, or saying neither's change is distinguishable."""
    clear_changes: list[ClearChange] = []
    """Every other clear change weighting made to a LoRA arm (accuracy, rare-tier recall), with its direction."""
    cost_beyond_tail_shift: bool = False
    """That arm lost more accuracy than the share of test predictions weighting moved into the rare tier: even had
    every moved prediction been a correct common-tier one, the loss would be smaller, so weighting also moved
    predictions among the common classes."""


def more_under_predicted(under_ratio: dict[str, float | None]) -> str | None:
    """The LoRA arm with the lower rare-tier predicted/true share before weighting; None when equal or undefined."""
    if under_ratio.get(ENC) is None or under_ratio.get(DEC) is None or under_ratio[ENC] == under_ratio[DEC]:
        return None
    return DEC if under_ratio[DEC] < under_ratio[ENC] else ENC


def _added_precision_defined(facts: dict, arm: str) -> bool:
    """The arm moved predictions into the rare tier and their net precision is a proportion (a net count of newly
    right predictions can fall while the tier gains predictions)."""
    moved = (facts.get("moved_share") or {}).get(arm)
    precision = (facts.get("added_precision") or {}).get(arm)
    return moved is not None and moved > 0 and precision is not None and 0 <= precision <= 1


def weighting_verdicts(src: Source, found: list[Finding]) -> WeightingVerdicts:
    by_id = {f.id: f for f in found}
    effects = {f.subjects[0]: f for f in found if f.kind == "effect"}
    transferred = [Transfer(direction="better" if x.verdict == "b_higher" else "worse", metric=metric,
                            narrowly=bool(x.facts.get("narrow")))
                   for x, metric in ((by_id.get("weighting.did.macro_f1"), "macro_f1"),
                                     (by_id.get("weighting.did.accuracy"), "accuracy"))
                   if x and x.verdict != "not_distinguishable"]
    mechanism = by_id.get("weighting.mechanism")
    worst = cost_from = None
    if ENC in effects and DEC in effects:
        worst = DEC if (effects[DEC].q("accuracy_delta") or 0) <= (effects[ENC].q("accuracy_delta") or 0) else ENC
        change = effects[worst].q("accuracy_delta")
        common = effects[worst].q(f"{src.tiers[-1]}.accuracy_change_from_tier")
        if change is not None and change < 0:
            cost_from = "common" if common is not None and common < 0 else "rare"
    lora = [arm for arm in (ENC, DEC) if arm in effects]
    verdicts = {arm: effects[arm].facts.get("verdicts") or {} for arm in lora}
    gains = {arm: q.value for arm, f in effects.items() for q in f.quantities if q.name == "macro_f1_delta"}
    shares = [GainShare(arm=arm, share=gains[DEC] / gains[arm]) for arm in (ENC, "encoder_full")
              if gains.get(arm) is not None and gains.get(DEC) is not None and gains[arm] > 0 and gains[DEC] > 0]
    return WeightingVerdicts(
        decoder_gain_shares=shares,
        macro_f1_clear=[arm for arm in lora if verdicts[arm].get("macro_f1") not in (None, "not_distinguishable")],
        clear_changes=[ClearChange(arm=arm, metric=metric, direction="raised" if verdicts[arm][metric] == "b_higher"
                                   else "lowered") for arm in lora for metric in ("accuracy", "rare_recall")
                       if verdicts[arm].get(metric) not in (None, "not_distinguishable")],
        zero_count_unchanged={arm: f.q("zero_before") == f.q("zero_after") for arm, f in effects.items()},
        transferred=transferred, accuracy_worst_hit=worst, accuracy_cost_from=cost_from,
        added_precision_shown=bool(mechanism) and all(_added_precision_defined(mechanism.facts, arm) for arm in (ENC, DEC)),
        cost_beyond_tail_shift=bool(mechanism and worst and cost_from and (mechanism.facts.get("moved_share") or {})
                                    .get(worst) is not None
                                    and -effects[worst].q("accuracy_delta") > mechanism.facts["moved_share"][worst]),
        more_under_predicted=more_under_predicted(mechanism.facts["under_ratio"]) if mechanism else None)


def weighting_findings(src: Source, config: StudyConfig) -> list[Finding]:
    effects = src.results.get("weighting_effect", {})
    out = []
    for arm in (DEC, ENC, "encoder_full"):
        effect = effects.get(arm)
        if not effect:
            continue
        base = ("weighting_effect", arm)
        quantities = [src.value("acc_before", *base, "before", "accuracy"), src.value("acc_after", *base, "after", "accuracy"),
                      src.value("f1_before", *base, "before", "macro_f1"), src.value("f1_after", *base, "after", "macro_f1"),
                      src.value("zero_before", *base, "before", "zero_f1_count"),
                      src.value("zero_after", *base, "after", "zero_f1_count"),
                      src.value("relative_f1", *base, "relative_macro_f1")]
        verdicts = {}
        source = src.source_of(effect.get("intervals", {}).get("macro_f1"))
        for metric in ("macro_f1", "accuracy", "rare_recall"):
            interval = effect.get("intervals", {}).get(metric)
            if interval is None:
                continue
            quantities += [src.value(f"{metric}_delta", *base, "intervals", metric, "diff"),
                           src.value(f"{metric}_delta_lo", *base, "intervals", metric, "ci", 0),
                           src.value(f"{metric}_delta_hi", *base, "intervals", metric, "ci", 1)]
            verdicts[metric] = difference_verdict(interval)
        for tier in src.tiers:
            quantities += [src.value(f"{tier}.class_share", *base, "per_tier", tier, "class_share"),
                           src.value(f"{tier}.delta_mean_f1", *base, "per_tier", tier, "delta_mean_f1"),
                           src.value(f"{tier}.contribution", *base, "per_tier", tier, "macro_f1_contribution"),
                           src.value(f"{tier}.true_share", *base, "per_tier", tier, "true_share"),
                           src.value(f"{tier}.delta_recall", *base, "per_tier", tier, "delta_recall"),
                           src.value(f"{tier}.share_before", *base, "per_tier", tier, "predicted_share_before"),
                           src.value(f"{tier}.share_after", *base, "per_tier", tier, "predicted_share_after"),
                           src.value(f"{tier}.recall_before", *base, "per_tier", tier, "recall_before"),
                           src.value(f"{tier}.recall_after", *base, "per_tier", tier, "recall_after")]
        finding = Finding(id=f"weighting.{arm}", kind="effect", section=2, test=interval_test(source),
                          verdict=verdicts.get("macro_f1", "undefined"), subjects=[arm, WEIGHTED[arm]],
                          quantities=quantities,
                          facts={"verdicts": verdicts, "source": source,
                                 "one_run": one_run_arms(src, [arm, WEIGHTED[arm]]),
                                 "lifted": [c["label"] for c in effect["lifted_off_zero"]],
                                 "fell": [c["label"] for c in effect["fell_to_zero"]]})
        finding.facts["accuracy_split"] = _accuracy_split(finding, src.tiers)
        for tier in src.tiers:  # the precision of the tier's predictions, counted over the seeds (k of n)
            for when, who in (("before", arm), ("after", WEIGHTED[arm])):
                pooled = pooled_tier_precision(src, who, tier) if src.has(who) else None
                path = f"{RESULTS}#/runs/{who}__seed*/test/per_tier/{tier}/recall × true_share ÷ predicted_share"
                values = {"": "precision", "_correct": "correct", "_predicted": "predicted"}
                finding.quantities += [Quantity(name=f"{tier}.precision_{when}{suffix}",
                                                value=pooled[key] if pooled else None, path=path)
                                       for suffix, key in values.items()]
                finding.quantities += [Quantity(name=f"{tier}.precision_{when}_{end}",
                                                value=pooled["ci"][i] if pooled else None, path=path + ", Wilson")
                                       for i, end in enumerate(("lo", "hi"))]
                # every prediction right: the note says "all n", not "n of n"
                finding.facts.setdefault("all_right", {})[f"{tier}.precision_{when}"] = bool(
                    pooled and pooled["correct"] == pooled["predicted"])
        for tier, value in finding.facts["accuracy_split"].items():
            sources = " × ".join(q.path for q in finding.quantities if q.name in (f"{tier}.true_share",
                                                                                    f"{tier}.delta_recall"))
            finding.quantities.append(Quantity(name=f"{tier}.accuracy_change_from_tier", value=value, path=sources))
        out.append(finding)
    for index, row in enumerate(src.results.get("weighting_did", [])):
        path = f"{RESULTS}#/weighting_did/{index}"
        prefix = "weighting.did" if row["encoder"] == ENC else "weighting.did_full"
        out.append(Finding(id=f"{prefix}.{row['metric']}", kind="difference", section=2,
                           test=interval_test(src.source_of(row)), verdict=difference_verdict(row), subjects=[ENC, DEC],
                           quantities=[Quantity(name="did", value=row["diff"], path=path + "/diff"),
                                       Quantity(name="did_lo", value=row["ci"][0], path=path + "/ci/0"),
                                       Quantity(name="did_hi", value=row["ci"][1], path=path + "/ci/1")],
                           facts={"metric": row["metric"], "source": src.source_of(row), "narrow": narrowly_clear(row["ci"]),
                                  "one_run": one_run_arms(src, [row["encoder"], WEIGHTED.get(row["encoder"], row["encoder"])])}))
    mechanism = weighting_mechanism(src, out, config.report.equal_within)
    out += [mechanism] if mechanism else []
    prior = prior_knowledge_finding(src, out) if has_tail(src) else None
    return out + ([prior] if prior else [])


def _accuracy_split(effect: Finding, tiers: list[str]) -> dict[str, float | None]:
    """Δ accuracy = Σ tiers true share × Δ pooled recall: which tier's examples paid for the change."""
    return {tier: None if effect.q(f"{tier}.delta_recall") is None else
            effect.q(f"{tier}.true_share") * effect.q(f"{tier}.delta_recall") for tier in tiers}


def weighting_mechanism(src: Source, found: list[Finding], equal_within: float) -> Finding | None:
    """Why weighting moved the two LoRA models differently, chosen by the tier split and what each knew before.

    Rules, in order (the first that holds is the verdict):
    - "equal_tail_common_differs": the rare-tier contributions differ by less than `equal_within`
      while the common-tier contributions differ by more: the gap is what weighting cost (or gave)
      the common tier, not what it did for the tail;
    - "overshoot": the model that gained less in the tail was pushed further past the tier's true share
      and lost more of its rare-tier precision (correct rare predictions / rare predictions);
    - "better_aimed": weighting moved both models' predictions into the rare tier, and the model whose
      rare-tier recall rose more owes it more to how often its added rare-tier predictions were newly right
      (precision of the added ones: Δ correct rare-tier examples / Δ rare-tier predictions) than to how many
      it added;
    - "more_under_prediction_more_gain": the model that under-predicted the rare tier more
      (lower predicted/true share before weighting) gained more rare-tier F1 contribution;
    - "less_under_prediction_more_gain": the opposite: the gain is not explained by how much
      under-prediction there was to correct;
    - "tail_differs": otherwise, the rare-tier contributions differ and that is where the gap is.
    """
    effects = {f.subjects[0]: f for f in found if f.kind == "effect"}
    if DEC not in effects or ENC not in effects or not has_tail(src):
        return None
    rare, common = src.tiers[0], src.tiers[-1]
    lora = {ENC: effects[ENC], DEC: effects[DEC]}
    contributions = {arm: (f.q(f"{rare}.contribution"), f.q(f"{common}.contribution")) for arm, f in lora.items()}
    if any(v is None for pair in contributions.values() for v in pair):
        return None
    under = {}
    quantities = []
    for arm, f in lora.items():
        before, true = f.q(f"{rare}.share_before"), f.q(f"{rare}.true_share")
        under[arm] = before / true if true else None
        quantities += [q for q in f.quantities if q.name in (f"{rare}.contribution", f"{common}.contribution",
                                                             f"{rare}.share_before", f"{rare}.true_share",
                                                             f"{rare}.share_after", "rare_recall_delta",
                                                             f"{rare}.precision_before", f"{rare}.precision_after")]
    rare_gap = contributions[DEC][0] - contributions[ENC][0]
    common_gap = contributions[DEC][1] - contributions[ENC][1]
    gained_more = DEC if rare_gap > 0 else ENC
    loser = ENC if gained_more == DEC else DEC
    overshoot = {arm: f.q(f"{rare}.share_after") / f.q(f"{rare}.true_share") if f.q(f"{rare}.true_share") else None
                 for arm, f in lora.items()}
    precision_drop = {arm: None if None in (f.q(f"{rare}.precision_before"), f.q(f"{rare}.precision_after")) else
                      f.q(f"{rare}.precision_before") - f.q(f"{rare}.precision_after") for arm, f in lora.items()}
    moved = {arm: f.q(f"{rare}.share_after") - f.q(f"{rare}.share_before") for arm, f in lora.items()}
    newly_right = {arm: f.q("rare_recall_delta") * f.q(f"{rare}.true_share") if f.q("rare_recall_delta") is not None
                   else None for arm, f in lora.items()}
    added_precision = {arm: newly_right[arm] / moved[arm] if newly_right[arm] is not None and moved[arm] > 0 else None
                       for arm in lora}
    quantities += [Quantity(name=f"{arm}.{rare}.added_precision", value=value,
                            path=f"results.json weighting: Δ {rare}-tier recall x true share / Δ predicted share")
                   for arm, value in added_precision.items() if value is not None]
    quantities += [Quantity(name=f"{arm}.{rare}.moved_share", value=value,
                            path=f"results.json weighting: Δ {rare}-tier share of test predictions")
                   for arm, value in moved.items() if value is not None]
    aimed = None not in added_precision.values() and min(newly_right.values()) > 0 and \
        newly_right[gained_more] > newly_right[loser] and \
        added_precision[gained_more] / added_precision[loser] > max(1.0, moved[gained_more] / moved[loser])
    if abs(rare_gap) < equal_within <= abs(common_gap):
        verdict = "equal_tail_common_differs"
    elif None not in (*overshoot.values(), *precision_drop.values()) and overshoot[loser] > 1 and \
            overshoot[loser] > overshoot[gained_more] and precision_drop[loser] > precision_drop[gained_more]:
        verdict = "overshoot"
    elif aimed:
        verdict = "better_aimed"
    elif (more_under := more_under_predicted(under)) is not None:
        verdict = "more_under_prediction_more_gain" if more_under == gained_more else "less_under_prediction_more_gain"
    else:
        verdict = "tail_differs"
    return Finding(id="weighting.mechanism", kind="mechanism", section=2,
                   test=f"tier split of Δ macro F1 (equal within {equal_within}) and rare predicted/true share "
                        "before weighting", verdict=verdict, subjects=[ENC, DEC], quantities=quantities,
                   facts={"rare_gap": rare_gap, "common_gap": common_gap, "gained_more_in_tail": gained_more,
                          "rare_contribution": {arm: contributions[arm][0] for arm in (ENC, DEC)},
                          "overshoot": overshoot, "loser": loser,
                          "other_arm": {ENC: DEC, DEC: ENC},
                          "tail_moved_up": max(c[0] for c in contributions.values()) > 0,
                          "under_ratio": under, "equal_within": equal_within,
                          "moved_share": moved, "newly_right_share": newly_right, "added_precision": added_precision,
                          "similar_volume": max(moved.values()) <= 1.25 * min(moved.values()) if min(moved.values()) > 0
                          else False,
                          "larger_gap_tier": rare if abs(rare_gap) >= abs(common_gap) else common})


def prior_knowledge_finding(src: Source, found: list[Finding]) -> Finding | None:
    """What each LoRA model knew before weighting, against what weighting did for it.

    Three readings per model, each a seed mean: the precision of its rare-tier predictions before weighting; the
    test macro F1 gain of the post-hoc logit-adjustment probe (moving the decision toward rare classes without
    retraining); and weighting's effect on validation macro F1 at the same number of training examples for all four
    runs (`measure.budget`), so the two effects compare at one budget. Verdict "consistent" when one model is ahead
    on all three (weighting pays off where the model already ranks rare classes well), else "mixed"."""
    by_id = {f.id: f for f in found}
    effects = {arm: by_id.get(f"weighting.{arm}") for arm in (ENC, DEC)}
    if not all(effects.values()) or not all(src.has(WEIGHTED[arm]) for arm in (ENC, DEC)):
        return None
    quantities, values = [], {}
    for arm in (ENC, DEC):
        precision = effects[arm].q(f"{src.rare}.precision_before")
        probe = probe_over_seeds(src, arm)  # the same number Section 5 cites
        gain = probe["test_macro_f1_gain"] if probe else None
        effect = weighting_at_equal_budget(src, arm)
        values[arm] = (precision, gain, effect)
        quantities += [Quantity(name=f"{arm}.{src.rare} precision before weighting", value=precision,
                                path=f"{RESULTS}#/weighting_effect/{arm}/per_tier/{src.rare} (recall x true share / "
                                     "predicted share, before)"),
                       # one model's gain, printed in the sentence that compares the two: about both
                       Quantity(name=f"{ENC} vs {DEC}: {arm}.probe macro_f1 gain", value=gain,
                                path=probe["path"] if probe else "results.json logit_adjustment"),
                       Quantity(name=f"{arm}.weighting val_macro_f1 effect at equal examples",
                                value=None if effect is None else effect["effect"],
                                path=f"runs/{{{arm},{WEIGHTED[arm]}}}__seed*/train_log.jsonl")]
    if any(v is None or (isinstance(v, dict)) for vals in values.values() for v in vals[:2]) or \
            any(vals[2] is None for vals in values.values()):
        return None
    effects_at = {arm: values[arm][2]["effect"] for arm in (ENC, DEC)}
    ahead = [max((ENC, DEC), key=lambda a: values[a][0]), max((ENC, DEC), key=lambda a: values[a][1]),
             max((ENC, DEC), key=lambda a: effects_at[a])]
    distinct = values[ENC][0] != values[DEC][0] and values[ENC][1] != values[DEC][1] and effects_at[ENC] != effects_at[DEC]
    verdict = "consistent" if distinct and len(set(ahead)) == 1 else "mixed"
    return Finding(id="weighting.prior", kind="mechanism", section=2,
                   test="one model ahead on rare-tier precision before weighting, on the logit-adjustment probe's "
                        "gain and on weighting's validation effect at equal training examples",
                   verdict=verdict, subjects=[ENC, DEC], quantities=quantities,
                   facts={"ahead": ahead[0] if verdict == "consistent" else None,
                          "behind": (DEC if ahead[0] == ENC else ENC) if verdict == "consistent" else None,
                          "examples": values[ENC][2]["examples"],
                          "counter": _counterexamples(by_id, src.rare, ahead[0], values) if verdict == "consistent" else []})


def _counterexamples(by_id: dict[str, Finding], rare: str, ahead: str, values: dict) -> list[str]:
    """Other weighted pairs (the full fine-tunes) whose rare-tier precision before weighting was nearer the model
    behind's than the model ahead's, yet who gained more test macro F1 from it than the model ahead: the hypothesis
    does not fit them, which the note says."""
    def value(finding: Finding, name: str) -> float | None:
        return next((q.value for q in finding.quantities if q.name == name), None)

    ahead_precision, behind_precision = values[ahead][0], min(v[0] for v in values.values())
    ahead_gain = value(by_id[f"weighting.{ahead}"], "macro_f1_delta")
    return [f.id.split(".", 1)[1] for f in by_id.values()
            if f.id.startswith("weighting.") and f.kind == "effect" and f.id.split(".", 1)[1] not in values
            and (precision := value(f, f"{rare}.precision_before")) is not None
            and abs(precision - behind_precision) < abs(precision - ahead_precision)
            and ahead_gain is not None and (value(f, "macro_f1_delta") or 0.0) > ahead_gain]


def weighting_at_equal_budget(src: Source, arm: str) -> dict | None:
    """Weighted minus vanilla validation macro F1 of one model at the largest budget all four LoRA runs reached."""
    from lorastudy.measure.budget import curves, examples_per_step

    arms = [a for pair in ((ENC, WEIGHTED[ENC]), (DEC, WEIGHTED[DEC])) for a in pair]
    seeded = {}
    for name in arms:
        per_step = examples_per_step(src.config, name)
        if per_step is None or name not in src.results["arms"]:
            return None
        seeded[name] = curves(src.results, name, per_step)
        if not seeded[name]:
            return None
    common = set.intersection(*(set(points) for name in arms for points in seeded[name].values()))
    if not common:
        return None
    budget = max(common)

    def level(name: str) -> float:
        points = [p[budget][1] for p in seeded[name].values()]
        return sum(points) / len(points)

    return {"examples": budget, "effect": level(WEIGHTED[arm]) - level(arm)}
