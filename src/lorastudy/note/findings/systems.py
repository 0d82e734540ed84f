"""Section 1, the systems-level comparison: encoder vs decoder LoRA, full fine-tune and TF-IDF."""

from __future__ import annotations

from typing import Literal

from lorastudy.measure.budget import matched_budget
from lorastudy.note.findings.base import narrowly_clear, DEC, ENC, RESULTS, Finding, Quantity, Source, Verdicts, difference_verdict, \
    has_tail, interval_test, one_run_arms, seed_bound


class SystemsVerdicts(Verdicts):
    metrics_reading: Literal["neither", "both", "accuracy_only", "macro_f1_only", "opposite"] | None = None
    """How decoder minus encoder LoRA reads on accuracy and macro F1 together: neither metric separates them,
    both favour one, only one does (the lead lies where that metric weighs most: frequent classes for
    accuracy, classes with few test examples for macro F1), or they point opposite ways. None without both
    comparisons. One call from two verdicts, so the note cannot pair a sentence with the wrong metric."""
    accuracy_favours: str | None = None
    """The LoRA arm with the higher accuracy when the interval excludes 0, else None: the arm the note names as
    favoured is read from the verdict's sign here, not picked from the subjects by the template."""
    macro_f1_favours: str | None = None
    """The LoRA arm with the higher macro F1 when the interval excludes 0, else None (as `accuracy_favours`)."""
    tier_split_over_seeds: bool = False
    """Some arm trained several seeds, so the tier split of the gap reads seed means: the note says all runs are
    averaged."""
    rare_zero_differs: bool = False
    """The two LoRA models leave different numbers of rare-tier classes at zero F1: only then is there a contrast
    the aggregates hide for the note to point at."""
    macro_f1_seed_bound: bool = False
    """Macro F1 does not separate the LoRA arms and its interval is mostly run-to-run variation (the seed
    t-half-width exceeds the test bootstrap's): the note says macro F1 fails on seed variance, not on the classes
    it weighs."""
    locate: Literal["macro_f1", "accuracy"] | None = None
    """Which gap the tier split locates: macro F1's when its interval excludes 0, else accuracy's when that one
    does; None when neither separates the arms, so a gap indistinguishable from zero is never located."""
    locate_tier: str | None = None
    """The tier holding the larger part of the located gap (the split's verdict for macro F1, its accuracy part
    otherwise)."""


def favoured_arm(finding: Finding | None) -> str | None:
    """The arm a difference favours: its second subject when b is higher, its first when a is; None when the
    interval includes 0 (or there is no such difference)."""
    if finding is None or finding.verdict not in ("a_higher", "b_higher"):
        return None
    return finding.subjects[1] if finding.verdict == "b_higher" else finding.subjects[0]


def systems_verdicts(src: Source, found: list[Finding]) -> SystemsVerdicts:
    by_id = {f.id: f for f in found}
    macro, accuracy = (by_id.get(f"diff.{ENC}.{DEC}.{metric}") for metric in ("macro_f1", "accuracy"))
    reading = None
    if macro and accuracy:
        if macro.verdict == accuracy.verdict:
            reading = "neither" if macro.verdict == "not_distinguishable" else "both"
        elif macro.verdict == "not_distinguishable":
            reading = "accuracy_only"
        elif accuracy.verdict == "not_distinguishable":
            reading = "macro_f1_only"
        else:
            reading = "opposite"
    hide = by_id.get("aggregates.hide")
    split = by_id.get("architecture.tier_split")
    locate = ("macro_f1" if macro and macro.verdict != "not_distinguishable" else
              "accuracy" if accuracy and accuracy.verdict != "not_distinguishable" else None) if split else None
    bound = (macro.facts.get("seed_bound") or {}) if macro and macro.verdict == "not_distinguishable" else {}
    return SystemsVerdicts(
        macro_f1_seed_bound=bool(bound.get("seeds_dominate")), locate=locate,
        locate_tier=None if locate is None else split.verdict if locate == "macro_f1" else split.facts["accuracy_tier"],
        metrics_reading=reading, accuracy_favours=favoured_arm(accuracy), macro_f1_favours=favoured_arm(macro),
        tier_split_over_seeds=src.results.get("uncertainty", {}).get("n_seeds", 1) > 1,
        rare_zero_differs=bool(hide) and hide.q(f"{ENC}.rare_zero") != hide.q(f"{DEC}.rare_zero"))


def systems_findings(src: Source) -> list[Finding]:
    out = []
    for a, b, metric in ((ENC, DEC, "macro_f1"), (ENC, DEC, "accuracy"), ("encoder_full", ENC, "macro_f1"),
                         ("encoder_full", ENC, "accuracy"), ("tfidf_logreg", ENC, "macro_f1"),
                         ("tfidf_logreg", DEC, "macro_f1")):
        found = src.comparison(a, b, metric) if src.has(a) and src.has(b) else None
        if found:
            row, quantities, _ = found
            raw = next(r for r in src.results["comparisons"] if r["metric"] == metric and {r["a"], r["b"]} == {a, b})
            sign = 1 if raw["b"] == b else -1
            seeds = seed_bound(raw) if row["source"] == "test_and_seeds" else None
            facts = {"metric": metric, "source": row["source"], "one_run": one_run_arms(src, [a, b]),
                     "narrow": narrowly_clear(row["ci"]),
                     "seed_bound": seeds, "seed_values": [sign * v for v in raw.get("seed_values") or []],
                     "seeds": raw.get("seeds") or []}
            out.append(Finding(id=f"diff.{a}.{b}.{metric}", kind="difference", section=1,
                               test=interval_test(row["source"]), verdict=difference_verdict(row), subjects=[a, b],
                               quantities=quantities, facts=facts))
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
    if not (src.has(ENC) and src.has(DEC)) or not has_tail(src):
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
                       Quantity(name=f"{tier}.accuracy_gap_from_tier", value=accuracy, path=sources + " (recall)"),
                       Quantity(name=f"{tier}.recall_gap", value=None if None in recalls else recalls[1] - recalls[0],
                                path=sources + " (recall)"),
                       Quantity(name=f"{tier}.example_share", value=tiers[tier]["true_share"],
                                path=f"{RESULTS}#/runs/{enc_run}/test/per_tier/{tier}/true_share")]
    defined = {t: v for t, v in macro.items() if v is not None}
    if not defined:
        return None
    accuracy_parts = {q.name.split(".")[0]: q.value for q in quantities
                      if q.name.endswith(".accuracy_gap_from_tier") and q.value is not None}
    return Finding(id="architecture.tier_split", kind="decomposition", section=1,
                   test="Δ macro F1 = Σ tiers class share × Δ tier mean F1; the tier with the larger |part| holds the gap",
                   verdict=max(defined, key=lambda t: abs(defined[t])), subjects=[ENC, DEC], quantities=quantities,
                   facts={"accuracy_tier": max(accuracy_parts, key=lambda t: abs(accuracy_parts[t]))
                          if accuracy_parts else None})


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


def matched_budget_finding(src: Source) -> Finding | None:
    """Decoder minus encoder LoRA validation macro F1 at the same number of training examples seen (mean over
    seeds, `measure.budget`), beside the same gap at each arm's own budget; only when the own budgets differ.

    Verdict: the matched gap's direction, "b_higher"/"a_higher"/"not_distinguishable" from the seed-paired
    t-interval when both arms share several seeds, "b_ahead_one_run"/"a_ahead_one_run"/"tied" on one seed."""
    if not (src.has(ENC) and src.has(DEC)):
        return None
    m = matched_budget(src.results, src.config, ENC, DEC)
    if m is None or m["own"][ENC]["examples"] == m["own"][DEC]["examples"]:
        return None
    quantities = []
    for arm in (ENC, DEC):
        seed, index = m["pointer"][arm]
        quantities.append(Quantity(name=f"{arm}.val_macro_f1_matched", value=m["level"][arm],
                                   path=f"{RESULTS}#/runs/{arm}__seed{seed}/training/val_curve/{index}/val_macro_f1"))
        seed, index = m["final_pointer"][arm]
        quantities.append(Quantity(name=f"{arm}.val_macro_f1_own_budget", value=m["own"][arm]["val_macro_f1"],
                                   path=f"{RESULTS}#/runs/{arm}__seed{seed}/training/val_curve/{index}/val_macro_f1"))
        quantities.append(Quantity(name=f"{arm}.val_macro_f1_gain_past_matched",
                                   value=m["own"][arm]["val_macro_f1"] - m["level"][arm],
                                   path=f"runs/{arm}__seed*/train_log.jsonl (own budget minus matched, seed mean)"))
        quantities.append(Quantity(name=f"{arm}.val_macro_f1_last_gain", value=m["last_gain"][arm],
                                   path=f"runs/{arm}__seed*/train_log.jsonl (last two validation points, seed mean)"))
        quantities.append(Quantity(name=f"{arm}.matched_steps", value=m["steps"][arm],
                                   path=f"runs/{arm}__seed*/train_log.jsonl (step)"))
        quantities.append(Quantity(name=f"{arm}.own_examples", value=m["own"][arm]["examples"],
                                   path=f"runs/{arm}__seed*/train_log.jsonl (step x batch size)"))
    logs = f"runs/{{{ENC},{DEC}}}__seed*/train_log.jsonl"
    ci = m["ci"] or [None, None]
    quantities += [Quantity(name="matched_examples", value=m["examples"], path=logs + " (step x batch size)"),
                   Quantity(name=f"{DEC}_minus_{ENC}.val_macro_f1_matched_diff", value=m["diff"], path=logs),
                   Quantity(name=f"{DEC}_minus_{ENC}.val_macro_f1_matched_diff_lo", value=ci[0], path=logs),
                   Quantity(name=f"{DEC}_minus_{ENC}.val_macro_f1_matched_diff_hi", value=ci[1], path=logs),
                   Quantity(name=f"{DEC}_minus_{ENC}.val_macro_f1_own_budget_diff", value=m["own_diff"], path=logs),
                   Quantity(name=f"{DEC}_minus_{ENC}.val_macro_f1_budget_part", value=m["budget_part"], path=logs)]
    if m["ci"] is not None:
        verdict = difference_verdict({"distinguishable": m["distinguishable"], "diff": m["diff"]})
    else:
        verdict = "tied" if m["diff"] == 0 else "b_ahead_one_run" if m["diff"] > 0 else "a_ahead_one_run"
    reverses = m["diff"] * m["own_diff"] < 0
    more = [arm for arm in (ENC, DEC) if m["own"][arm]["examples"] > m["examples"]]
    # the longer-trained arm is mid-schedule at the matched budget (its learning rate not yet annealed): the
    # comparison there flatters the other arm, so an advantage it shows is an upper bound
    shorter = next((arm for arm in (ENC, DEC) if arm not in more[:1]), None) if more else None
    shorter_ahead = shorter is not None and (m["diff"] > 0) == (shorter == DEC) and m["diff"] != 0
    epochs = {arm: (src.results["runs"][src.first_run(arm)].get("training") or {}).get("epochs") for arm in (ENC, DEC)}
    return Finding(id="architecture.matched_budget", kind="difference", section=1,
                   test="decoder minus encoder LoRA validation macro F1 at the largest number of training examples "
                        "both saw (seed means; 95% t-interval over the shared seeds' paired differences when "
                        "there are several)",
                   verdict=verdict, subjects=[ENC, DEC], quantities=quantities,
                   facts={"examples": m["examples"], "steps": m["steps"], "n_seeds": min(m["n_seeds"].values()),
                          "several_seeds": m["ci"] is not None, "same_steps": len(set(m["steps"].values())) == 1,
                          "seeds": m["seeds"], "reverses": reverses, "trained_longer": more[0] if more else None,
                          "not_longer": [arm for arm in (ENC, DEC) if arm not in more[:1]],
                          "still_rising": {arm: (g is not None and g > 0) for arm, g in m["last_gain"].items()},
                          "one_point": [arm for arm, g in m["last_gain"].items() if g is None],
                          "two_points": [arm for arm in (ENC, DEC) if len(m["curves"][arm]) == 2],
                          "shorter": shorter, "shorter_ahead": shorter_ahead,
                          "epochs": epochs if all(epochs.values()) else None,
                          "curves": m["curves"], "paired": m["paired"]})
