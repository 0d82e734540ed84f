"""What the numbers say, decided once as typed data: the findings the note words.

Each finding names its kind, the quantities it rests on (with the artifact path each
was read from), the test that decides it and the verdict. `report.py` and its
templates only put findings into words: a sentence in the note exists because a
finding's verdict selected it, and other numbers select other sentences.

Verdict vocabulary (the note's words map onto these one to one):
- a difference: "a_higher" / "b_higher" when its interval excludes 0, else
  "not_distinguishable"; the interval's source (`uncertainty.Uncertainty`) picks the words:
  test-set resampling with one seed ("clear" / "not distinguishable on this test set"),
  that widened by the seed t-interval otherwise ("clear" / "not distinguishable", the
  note's header saying what such an interval holds);
- a mechanism, a bottleneck, a decision: the rule is in the function that makes it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import binomtest, linregress, spearmanr

from lorastudy.measure import deployment
from lorastudy.study.config import ARMS, StudyConfig

ENC, DEC = "encoder_lora", "decoder_lora"
WEIGHTED = {"encoder_full": "encoder_full_cw", "encoder_lora": "encoder_lora_cw", "decoder_lora": "decoder_lora_cw"}
RESULTS, LATENCY = "evaluation/results.json", "latency/latency.json"


class Quantity(BaseModel):
    name: str
    value: float | None
    path: str


class Finding(BaseModel):
    id: str
    kind: Literal["data", "level", "difference", "effect", "decomposition", "mechanism", "tiers", "confusion",
                  "latency", "decision", "bottleneck", "prediction", "uncertainty"]
    section: int
    test: str
    verdict: str
    subjects: list[str] = Field(default_factory=list)
    quantities: list[Quantity] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)

    def q(self, name: str) -> float | None:
        return next(q.value for q in self.quantities if q.name == name)


class Findings(BaseModel):
    schema_version: int = 1
    uncertainty: dict
    findings: list[Finding]

    def get(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def intervals_reported(self) -> int:
        return sum(1 for f in self.findings for q in f.quantities if q.name.endswith("_lo"))


# --- reading artifacts with their paths --------------------------------------------


class Source:
    """results.json and latency.json, read with the path of every value taken."""

    def __init__(self, results: dict, latency: dict | None, config: StudyConfig):
        self.results, self.latency, self.config = results, latency, config
        self.rare = results["data"]["tier_names"][0]
        self.tiers = results["data"]["tier_names"]
        several_seeds = results.get("uncertainty", {}).get("n_seeds", 1) > 1
        self.source = "test_and_seeds" if several_seeds else "test_resampling"

    def has(self, arm: str) -> bool:
        return arm in self.results["arms"]

    def value(self, name: str, *keys: Any) -> Quantity:
        node: Any = self.results
        for key in keys:
            node = node[key] if node is not None else None
        return Quantity(name=name, value=node, path=RESULTS + "#/" + "/".join(str(k) for k in keys))

    def first_run(self, arm: str) -> str:
        return f"{arm}__seed{self.results['arms'][arm]['seeds'][0]}"

    def source_of(self, interval: dict | None) -> str:
        """Where one interval came from: test resampling, or that and seeds (uncertainty.Uncertainty)."""
        return (interval or {}).get("source", self.source)

    def comparison(self, a: str, b: str, metric: str) -> tuple[dict, list[Quantity], int] | None:
        """b - a with its interval, whichever way round evaluation stored it; sign = +1 when stored as b - a."""
        for index, row in enumerate(self.results.get("comparisons", [])):
            if row["metric"] == metric and {row["a"], row["b"]} == {a, b}:
                sign = 1 if row["b"] == b else -1
                lo, hi = sorted(sign * x for x in row["ci"])
                path = f"{RESULTS}#/comparisons/{index}"
                quantities = [Quantity(name="diff", value=sign * row["diff"], path=path + "/diff"),
                              Quantity(name="diff_lo", value=lo, path=path + "/ci/0"),
                              Quantity(name="diff_hi", value=hi, path=path + "/ci/1")]
                return {"metric": metric, "diff": sign * row["diff"], "ci": [lo, hi],
                        "distinguishable": row["distinguishable"], "source": self.source_of(row)}, \
                    quantities, sign
        return None


def difference_verdict(row: dict) -> str:
    if not row["distinguishable"]:
        return "not_distinguishable"
    return "b_higher" if row["diff"] > 0 else "a_higher"


def _test_name(source: str) -> str:
    return {"test_resampling": "95% interval of the paired difference excludes 0 (bootstrap over test examples, "
                               "one training seed)",
            "test_and_seeds": "95% interval excludes 0 (bootstrap over test examples of the seed means, its "
                              "half-widths widened in quadrature by the t-interval over the shared seeds)"}[source]


# --- Section 1 ------------------------------------------------------------------------


def systems_findings(src: Source) -> list[Finding]:
    out = []
    for a, b, metric in ((ENC, DEC, "macro_f1"), (ENC, DEC, "accuracy"), ("encoder_full", ENC, "macro_f1"),
                         ("encoder_full", ENC, "accuracy"), ("tfidf_logreg", ENC, "macro_f1"),
                         ("tfidf_logreg", DEC, "macro_f1")):
        found = src.comparison(a, b, metric) if src.has(a) and src.has(b) else None
        if found:
            row, quantities, _ = found
            out.append(Finding(id=f"diff.{a}.{b}.{metric}", kind="difference", section=1,
                               test=_test_name(row["source"]), verdict=difference_verdict(row), subjects=[a, b],
                               quantities=quantities, facts={"metric": metric, "source": row["source"]}))
    macro, accuracy = (next((f for f in out if f.id == f"diff.{ENC}.{DEC}.{m}"), None) for m in ("macro_f1", "accuracy"))
    if macro and accuracy:
        agree = macro.verdict == accuracy.verdict
        out.append(Finding(id="architecture.metrics_agree", kind="difference", section=1,
                           test="the accuracy and macro F1 verdicts of decoder minus encoder LoRA are the same",
                           verdict="agree" if agree else f"accuracy_{accuracy.verdict}_macro_{macro.verdict}",
                           subjects=[ENC, DEC], quantities=[*macro.quantities[:1], *accuracy.quantities[:1]]))
    spread = seed_spread_finding(src, macro)
    return out + ([spread] if spread else [])


def seed_spread_finding(src: Source, gap: Finding | None) -> Finding | None:
    """The architecture gap against each LoRA arm's run-to-run spread (needs several seeds of both)."""
    if gap is None:
        return None
    stds = [src.value(f"{arm}.std", "arms", arm, "test", "macro_f1", "std") for arm in (ENC, DEC)]
    if any(s.value is None for s in stds):
        return None
    size, low, high = abs(gap.q("diff")), min(s.value for s in stds), max(s.value for s in stds)
    verdict = "gap_below_both" if size < low else "gap_above_both" if size > high else "gap_between"
    return Finding(id="architecture.seed_spread", kind="difference", section=1,
                   test="|decoder - encoder LoRA macro F1| against each arm's standard deviation over seeds",
                   verdict=verdict, subjects=[ENC, DEC], quantities=[*stds, gap.quantities[0]],
                   facts={"n_seeds": min(len(src.results["arms"][arm]["seeds"]) for arm in (ENC, DEC))})


def architecture_split_finding(src: Source) -> Finding | None:
    """Decoder minus encoder LoRA, split exactly by tier: macro F1 by class share, accuracy by example share."""
    if not (src.has(ENC) and src.has(DEC)) or not _has_tail(src):
        return None
    enc_run = src.first_run(ENC)
    tiers = src.results["runs"][enc_run]["test"]["per_tier"]
    evaluable = sum(tiers[t]["n_evaluable"] for t in src.tiers)
    quantities, macro = [], {}
    for tier in src.tiers:
        paths = {arm: f"{RESULTS}#/arms/{arm}/per_tier/{tier}" for arm in (ENC, DEC)}
        means = [src.results["arms"][arm]["per_tier"][tier]["mean_f1"]["mean"] for arm in (ENC, DEC)]
        recalls = [src.results["arms"][arm]["per_tier"][tier]["recall"]["mean"] for arm in (ENC, DEC)]
        share = tiers[tier]["n_evaluable"] / evaluable if evaluable else 0.0
        macro[tier] = None if None in means else share * (means[1] - means[0])
        accuracy = None if None in recalls else tiers[tier]["true_share"] * (recalls[1] - recalls[0])
        sources = " − ".join(paths[arm] for arm in (DEC, ENC))
        quantities += [Quantity(name=f"{tier}.macro_f1_gap_from_tier", value=macro[tier], path=sources + " (mean_f1)"),
                       Quantity(name=f"{tier}.accuracy_gap_from_tier", value=accuracy, path=sources + " (recall)")]
    defined = {t: v for t, v in macro.items() if v is not None}
    if not defined:
        return None
    return Finding(id="architecture.tier_split", kind="decomposition", section=1,
                   test="Δ macro F1 = Σ tiers class share × Δ tier mean F1; the tier with the larger |part| holds the gap",
                   verdict=max(defined, key=lambda t: abs(defined[t])), subjects=[ENC, DEC], quantities=quantities)


def hidden_tail_finding(src: Source) -> Finding | None:
    """What the aggregates hide: zero-F1 classes concentrated in the rare tier."""
    if not (src.has(ENC) and src.has(DEC)) or len(src.tiers) < 2:
        return None
    quantities = []
    for arm in (ENC, DEC):
        run = src.first_run(arm)
        quantities += [src.value(f"{arm}.rare_zero", "runs", run, "test", "per_tier", src.rare, "zero_f1_count"),
                       src.value(f"{arm}.rare_n", "runs", run, "test", "per_tier", src.rare, "n_evaluable"),
                       src.value(f"{arm}.zero", "runs", run, "test", "zero_f1_count")]
    common_share = src.value("common_true_share", "runs", src.first_run(ENC), "test", "per_tier", src.tiers[-1],
                             "true_share")
    values = {q.name: q.value for q in quantities}
    hidden = any(values[f"{arm}.rare_zero"] for arm in (ENC, DEC))
    return Finding(id="aggregates.hide", kind="tiers", section=1,
                   test="a rare-tier class has zero F1 on either LoRA model",
                   verdict="rare_classes_at_zero" if hidden else "no_rare_class_at_zero",
                   subjects=[ENC, DEC], quantities=quantities + [common_share])


# --- Section 2 --------------------------------------------------------------------------


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
        finding = Finding(id=f"weighting.{arm}", kind="effect", section=2, test=_test_name(source),
                          verdict=verdicts.get("macro_f1", "undefined"), subjects=[arm, WEIGHTED[arm]],
                          quantities=quantities,
                          facts={"verdicts": verdicts, "source": source, "lifted": [c["label"] for c in effect["lifted_off_zero"]],
                                 "fell": [c["label"] for c in effect["fell_to_zero"]]})
        finding.facts["accuracy_split"] = _accuracy_split(finding, src.tiers)
        for tier in src.tiers:  # pooled precision of the tier's predictions = recall x true share / predicted share
            for when in ("before", "after"):
                parts = [finding.q(f"{tier}.recall_{when}"), finding.q(f"{tier}.true_share"),
                         finding.q(f"{tier}.share_{when}")]
                value = parts[0] * parts[1] / parts[2] if None not in parts and parts[2] else None
                finding.quantities.append(Quantity(name=f"{tier}.precision_{when}", value=value, path=" × ".join(
                    q.path for q in finding.quantities if q.name in (f"{tier}.recall_{when}", f"{tier}.true_share",
                                                                     f"{tier}.share_{when}"))))
        for tier, value in finding.facts["accuracy_split"].items():
            sources = " × ".join(q.path for q in finding.quantities if q.name in (f"{tier}.true_share",
                                                                                    f"{tier}.delta_recall"))
            finding.quantities.append(Quantity(name=f"{tier}.accuracy_change_from_tier", value=value, path=sources))
        out.append(finding)
    for index, row in enumerate(src.results.get("weighting_did", [])):
        path = f"{RESULTS}#/weighting_did/{index}"
        prefix = "weighting.did" if row["encoder"] == ENC else "weighting.did_full"
        out.append(Finding(id=f"{prefix}.{row['metric']}", kind="difference", section=2,
                           test=_test_name(src.source_of(row)), verdict=difference_verdict(row), subjects=[ENC, DEC],
                           quantities=[Quantity(name="did", value=row["diff"], path=path + "/diff"),
                                       Quantity(name="did_lo", value=row["ci"][0], path=path + "/ci/0"),
                                       Quantity(name="did_hi", value=row["ci"][1], path=path + "/ci/1")],
                           facts={"metric": row["metric"], "source": src.source_of(row)}))
    mechanism = weighting_mechanism(src, out, config.report.equal_within)
    return out + ([mechanism] if mechanism else [])


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
    if DEC not in effects or ENC not in effects or not _has_tail(src):
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
    elif under[ENC] is not None and under[DEC] is not None and under[ENC] != under[DEC]:
        more_under = DEC if under[DEC] < under[ENC] else ENC
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


# --- Section 3 ---------------------------------------------------------------------------


def tier_findings(src: Source, config: StudyConfig) -> list[Finding]:
    if not (src.has(ENC) and src.has(DEC)):
        return []
    out = []
    data = src.results["data"]
    classes = {row["label"]: row for row in (src.results.get("class_differences") or {}).get("classes", [])}
    for tier in src.tiers:
        rows = [row for row in classes.values() if row["tier"] == tier]
        nonzero = {arm: sorted((r["label"] for r in rows if r[key] > 0), key=lambda label: -classes[label][key])
                   for arm, key in ((ENC, "f1_a"), (DEC, "f1_b"))}
        quantities = []
        for arm in (ENC, DEC):
            run = src.first_run(arm)
            quantities += [src.value(f"{arm}.mean_f1", "runs", run, "test", "per_tier", tier, "mean_f1"),
                           src.value(f"{arm}.zero", "runs", run, "test", "per_tier", tier, "zero_f1_count"),
                           src.value(f"{arm}.n", "runs", run, "test", "per_tier", tier, "n_evaluable"),
                           src.value(f"{arm}.recall", "runs", run, "test", "per_tier", tier, "recall")]
        better = sum(r["diff"] > 0 for r in rows)
        worse = sum(r["diff"] < 0 for r in rows)
        untied = better + worse
        p = binomtest(better, untied).pvalue if untied else None
        powerless = untied == 0 or 2 * 0.5 ** untied >= 0.05  # even a clean sweep could not reach p < 0.05
        n_classes = data["tier_sizes"][tier]
        wiped = [arm for arm in (ENC, DEC) if rows and not nonzero[arm]]
        fragile = [arm for arm in (ENC, DEC) if 0 < len(nonzero[arm]) <= config.report.fragile_tier_classes
                   and len(rows) > len(nonzero[arm])]
        verdict = ("too_few_classes" if powerless else
                   "decoder_more_classes" if p < 0.05 and better > worse else
                   "encoder_more_classes" if p < 0.05 and worse > better else "no_class_level_winner")
        out.append(Finding(id=f"tier.{tier}", kind="tiers", section=3,
                           test="two-sided sign test over the tier's classes of decoder minus encoder F1 (p < 0.05)",
                           verdict=verdict, subjects=[ENC, DEC, tier], quantities=quantities,
                           facts={"tier": tier, "n_classes": n_classes, "n_scored": len(rows),
                                  "decoder_higher": better, "encoder_higher": worse, "tied": len(rows) - better - worse,
                                  "sign_test_p": p, "wiped": wiped, "fragile": fragile,
                                  "nonzero": nonzero, "fragile_limit": config.report.fragile_tier_classes}))
    recall = src.comparison(ENC, DEC, "rare_recall")
    if recall:
        row, quantities, _ = recall
        out.append(Finding(id="tier.rare_recall", kind="difference", section=3, test=_test_name(row["source"]),
                           verdict=difference_verdict(row), subjects=[ENC, DEC], quantities=quantities,
                           facts={"metric": "rare_recall", "source": row["source"]}))
    out.append(confusion_finding(src))
    rho = [src.value(f"{arm}.rho", "runs", src.first_run(arm), "test", "spearman_f1_vs_train_count", "rho")
           for arm in (ENC, DEC)]
    p_values = [src.value(f"{arm}.rho_p", "runs", src.first_run(arm), "test", "spearman_f1_vs_train_count", "p")
                for arm in (ENC, DEC)]
    follows = all(r.value is not None and r.value > 0 and p.value is not None and p.value < 0.05
                  for r, p in zip(rho, p_values))
    undefined = any(r.value is None for r in rho)
    biggest = max(src.tiers, key=lambda t: src.results["data"]["tier_sizes"][t])
    within = {}
    for arm, key in ((ENC, "f1_a"), (DEC, "f1_b")):
        rows = [c for c in (src.results.get("class_differences") or {}).get("classes", []) if c["tier"] == biggest]
        counts = [c["train_count"] for c in rows]
        within[arm] = (float(spearmanr(counts, [c[key] for c in rows]).statistic)
                       if len(rows) >= 3 and len(set(counts)) > 1 else None)
    out.append(Finding(id="tier.count_correlation", kind="tiers", section=3,
                       test="Spearman rho of per-class F1 with train count > 0 at p < 0.05 for both models",
                       verdict="counts_constant" if undefined else
                       "f1_follows_count" if follows else "no_clear_count_dependence",
                       subjects=[ENC, DEC], quantities=rho + p_values,
                       facts={"within_tier": biggest, "within_rho": within,
                              "across_only": bool(_has_tail(src) and all(v is not None and v <= 0 for v in within.values()))}))
    return out


def confusion_finding(src: Source) -> Finding:
    """Where the rare tier's test examples go, for both LoRA models."""
    flows = {arm: src.results["runs"][src.first_run(arm)]["test"].get("tier_flow", {}).get(src.rare) for arm in (ENC, DEC)}
    quantities = []
    for arm in (ENC, DEC):
        base = ("runs", src.first_run(arm), "test", "tier_flow", src.rare)
        quantities += [src.value(f"{arm}.n", *base, "n_examples"), src.value(f"{arm}.correct", *base, "correct")]
        quantities += [src.value(f"{arm}.to.{tier}", *base, "to_tier", tier) for tier in src.tiers]
    def unique_top(flow: dict | None) -> str | None:
        tops = (flow or {}).get("top_absorbers", [])
        if not tops or (len(tops) > 1 and tops[1]["count"] == tops[0]["count"]):
            return None
        return tops[0]["label"]

    for arm in (ENC, DEC):
        base = ("runs", src.first_run(arm), "test", "tier_flow", src.rare)
        quantities += [src.value(f"{arm}.wrong", *base, "wrong"),
                       src.value(f"{arm}.wrong_into_largest", *base, "into_largest_classes", "wrong_count")]
    shared = unique_top(flows[ENC]) is not None and unique_top(flows[ENC]) == unique_top(flows[DEC])
    return Finding(id="tier.confusions", kind="confusion", section=3,
                   test="the top absorber of wrongly predicted rare-tier examples is the same class for both models",
                   verdict="same_top_absorber" if shared else "different_top_absorbers", subjects=[ENC, DEC],
                   quantities=quantities, facts={"flows": flows})


# --- Section 4 ----------------------------------------------------------------------------


def latency_finding(src: Source) -> Finding | None:
    models = (src.latency or {}).get("models", {})
    if ENC not in models or DEC not in models:
        return None
    quantities = []
    for arm in (ENC, DEC):
        merged = models[arm]["variants"]["merged"]
        best = max(range(len(merged["batched"])), key=lambda i: merged["batched"][i]["examples_per_s"])
        base = f"{LATENCY}#/models/{arm}/variants/merged"
        quantities += [Quantity(name=f"{arm}.p50", value=merged["single"]["p50_ms"], path=base + "/single/p50_ms"),
                       Quantity(name=f"{arm}.p95", value=merged["single"]["p95_ms"], path=base + "/single/p95_ms"),
                       Quantity(name=f"{arm}.throughput", value=merged["batched"][best]["examples_per_s"],
                                path=f"{base}/batched/{best}/examples_per_s")]
    ratio_p50 = quantities[3].value / quantities[0].value
    ratio_throughput = quantities[2].value / quantities[5].value
    return Finding(id="latency.ratio", kind="latency", section=4, test="measured ratios, decoder over encoder",
                   verdict="decoder_slower" if ratio_p50 > 1 else "decoder_faster", subjects=[ENC, DEC],
                   quantities=quantities, facts={"p50_ratio": ratio_p50, "throughput_ratio": ratio_throughput})


def shared_measurement_findings(src: Source) -> list[Finding]:
    """Arms priced from another arm's measurement of the same network (a merged LoRA is a full fine-tune's shape):
    where the study also timed them separately, the gap between the two timings is the machine's timing noise."""
    models = (src.latency or {}).get("models", {})
    out = []
    for arm, served in deployment.served_models(src.latency or {}, [a for a in ARMS if src.has(a)]).items():
        if served.measured_as == arm or arm not in models or served.measured_as.removesuffix("_cw") == arm:
            continue
        quantities = [Quantity(name=f"{a}.p50", value=models[a]["variants"]["merged"]["single"]["p50_ms"],
                               path=f"{LATENCY}#/models/{a}/variants/merged/single/p50_ms")
                      for a in (arm, served.measured_as)]
        own, shared = (q.value for q in quantities)
        if max(own, shared) / min(own, shared) <= 1 + deployment.TIE_TOLERANCE["p95"]:
            continue  # the two timings agree: pricing from either reads the same
        out.append(Finding(id=f"latency.shared.{arm}", kind="latency", section=4,
                           test="one network timed twice: the relative gap of the two p50s",
                           verdict="same_network", subjects=[arm, served.measured_as], quantities=quantities,
                           facts={"p50_ratio": max(own, shared) / min(own, shared)}))
    return out


def decision_findings(src: Source, config: StudyConfig) -> list[Finding]:
    if not src.latency or not src.latency.get("models"):
        return []
    arms = [arm for arm in ARMS if src.has(arm)]
    models = deployment.served_models(src.latency, arms)
    out = []
    has_tail = _has_tail(src)
    for context in config.deployment.contexts:
        metric = context.primary_metric if has_tail or context.primary_metric != "rare_recall" else "accuracy"

        def quality(arm: str, metric: str = metric) -> float | None:
            return _metric_level(src, arm, metric)

        def indistinguishable(a: str, b: str, metric: str = metric) -> bool:
            found = src.comparison(a, b, metric)
            return found is not None and not found[0]["distinguishable"]

        rows = deployment.context_rows(models, context, config.deployment)
        decision = deployment.decide(rows, context, quality, indistinguishable)
        flip = deployment.what_would_change(models, context, config.deployment, quality, indistinguishable,
                                            decision["choice"])
        for row in rows:
            row["quality"] = quality(row["arm"])
        behind = [arm for arm in decision.get("remaining") or [] if arm != decision["choice"]]
        out.append(Finding(id=f"decision.{context.name}", kind="decision", section=4,
                           test="deployment.decide: constraint, then the primary metric's interval, then "
                                + ", ".join(context.tie_breakers),
                           verdict=decision["decided_by"], subjects=[a for a in [decision["choice"]] if a],
                           quantities=_decision_quantities(src, decision, metric),
                           facts={"context": context.model_dump(mode="json"), "metric": metric,
                                  "metric_substituted": metric != context.primary_metric, "decision": decision,
                                  "rows": rows, "flip": flip, "flip_search_factor": deployment.FLIP_RANGE,
                                  "contrast": _decision_contrast(src, decision, rows, metric),
                                  # what a point-estimate tie is decided against: the first arm still tied with it
                                  "next_in_line": {"arm": behind[0], "quality": quality(behind[0])} if behind else None}))
    return out


def _has_tail(src: Source) -> bool:
    """At least two tiers with classes in them: otherwise there is no rare tier to speak of."""
    sizes = src.results["data"]["tier_sizes"]
    return sum(1 for tier in src.tiers if sizes.get(tier, 0) > 0) >= 2


def _metric_level(src: Source, arm: str, metric: str) -> float | None:
    level = src.results["arms"].get(arm, {}).get("ci", {}).get(metric)
    return None if level is None else level["mean"]


def _decision_quantities(src: Source, decision: dict, metric: str) -> list[Quantity]:
    if decision["choice"] is None:
        return []
    arm = decision["choice"]
    return [src.value("choice.metric", "arms", arm, "ci", metric, "mean"),
            src.value("choice.metric_lo", "arms", arm, "ci", metric, "ci", 0),
            src.value("choice.metric_hi", "arms", arm, "ci", metric, "ci", 1)]


def _decision_contrast(src: Source, decision: dict, rows: list[dict], metric: str) -> dict | None:
    """The arm the choice is measured against: the runner-up among feasible arms on the primary metric."""
    choice = decision["choice"]
    feasible = [row for row in rows if row["meets"] and row["arm"] != choice and row["quality"] is not None]
    if choice is None or not feasible:
        return None
    other = max(feasible, key=lambda row: row["quality"])
    found = src.comparison(other["arm"], choice, metric)
    if found and found[2] == -1:  # keep the direction evaluation stored: a pair's difference exists once, with one sign
        found = src.comparison(choice, other["arm"], metric)
    return {"arm": other["arm"], "diff": found[0] if found else None}


# --- Section 5 ------------------------------------------------------------------------------


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


# --- the whole set ---------------------------------------------------------------------------


def uncertainty_finding(src: Source) -> Finding:
    info = src.results.get("uncertainty", {"source": "test_resampling", "n_seeds": 1})
    return Finding(id="uncertainty", kind="uncertainty", section=0, test="results.uncertainty.source",
                   verdict=info["source"], quantities=[src.value("n_seeds", "uncertainty", "n_seeds")],
                   facts=dict(info))


def derive(results: dict, latency: dict | None, config: StudyConfig) -> Findings:
    """Every finding the note may word, from the run's results and latency."""
    src = Source(results, latency, config)
    found = [uncertainty_finding(src), *systems_findings(src)]
    found += [f for f in (architecture_split_finding(src), hidden_tail_finding(src)) if f]
    found += weighting_findings(src, config) + tier_findings(src, config)
    ratio = latency_finding(src)
    found += ([ratio] if ratio else []) + shared_measurement_findings(src) + decision_findings(src, config)
    found += bottleneck_findings(src, config)
    return Findings(uncertainty=found[0].facts, findings=found)

