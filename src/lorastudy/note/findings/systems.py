"""Section 1, the systems-level comparison: encoder vs decoder LoRA, full fine-tune and TF-IDF."""

from __future__ import annotations

from typing import Literal

from lorastudy.note.findings.base import DEC, ENC, RESULTS, Finding, Quantity, Source, Verdicts, difference_verdict, \
    has_tail, interval_test


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
    return SystemsVerdicts(
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
            out.append(Finding(id=f"diff.{a}.{b}.{metric}", kind="difference", section=1,
                               test=interval_test(row["source"]), verdict=difference_verdict(row), subjects=[a, b],
                               quantities=quantities,
                               facts={"metric": metric, "source": row["source"], "one_run": row["one_run"]}))
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
