"""Section 3, per class and per tier: sign tests over a tier's classes, rare-tier recall, confusions, counts."""

from __future__ import annotations

from scipy.stats import binomtest, spearmanr

from lorastudy.measure.label_groups import group_split, label_groups
from lorastudy.note.findings.base import narrowly_clear, DEC, ENC, RESULTS, Finding, Quantity, Source, Verdicts, difference_verdict, has_tail, \
    interval_test, one_run_arms
from lorastudy.study.config import StudyConfig


HEAD_ABSORBS = 0.5
"""The share of a model's misclassified rare-tier examples the three largest classes must take for the note to say
that errors flow into the head."""


class TierVerdicts(Verdicts):
    first_seed_only: list[str] = []
    """Arms with several seeds: per-class facts (a tier wiped out, a tier mean resting on few classes) read their
    first seed only, which the note says."""
    both_wrong_on_rare: bool = False
    """Both LoRA models predicted some rare-tier test examples wrongly, and the three largest classes absorb at least
    half of either model's misclassified rare-tier examples: only then is where they go a finding worth a sentence
    (the confusion table shows the rest)."""
    majority_absorbers: list[str] = []
    """LoRA arms that, in every seed, send the largest class a larger share of their misclassified rare-tier test
    examples than that class's share of the training examples: errors pulled toward the prior (`tier.prior_pull`),
    not one seed's top absorber."""


def tier_verdicts(src: Source, found: list[Finding]) -> TierVerdicts:
    confusions = next((f for f in found if f.id == "tier.confusions"), None)
    flows = confusions.facts["flows"] if confusions else {}
    pull = next((f for f in found if f.id == "tier.prior_pull"), None)
    return TierVerdicts(
        majority_absorbers=list(pull.facts["every_seed"]) if pull else [],
        first_seed_only=[arm for arm, entry in src.results["arms"].items() if entry["n_seeds"] > 1],
        both_wrong_on_rare=all(bool((flows.get(arm) or {}).get("wrong")) for arm in (ENC, DEC)) and any(
            flows[arm]["into_largest_classes"]["wrong_count"] >= HEAD_ABSORBS * flows[arm]["wrong"] for arm in (ENC, DEC)))


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
        out.append(Finding(id="tier.rare_recall", kind="difference", section=3, test=interval_test(row["source"]),
                           verdict=difference_verdict(row), subjects=[ENC, DEC], quantities=quantities,
                           facts={"metric": "rare_recall", "source": row["source"], "narrow": narrowly_clear(row["ci"]),
                                  "one_run": one_run_arms(src, [ENC, DEC])}))
    out.append(confusion_finding(src))
    out += [pull] if (pull := prior_pull_finding(src)) else []
    groups = label_group_finding(src)
    out += [groups] if groups else []
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
                              "seed": (src.results["runs"][src.first_run(ENC)].get("seed")
                                       if src.results["arms"][ENC].get("n_seeds", 1) > 1 else None),
                              "across_only": bool(has_tail(src) and all(v is not None and v <= 0 for v in within.values()))}))
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


def prior_pull_finding(src: Source) -> Finding | None:
    """How much of each LoRA model's misclassified rare-tier test examples goes to the largest class, per seed and
    pooled, against that class's share of the training examples. An arm is pulled toward the prior when every seed
    sends it more than its share; an arm with a seed whose tier flow does not list the class among its top absorbers
    has no pooled share (its count there is unknown, not zero). One seed's top absorber is no such finding."""
    counts = src.results["data"].get("train_counts") or []
    if not counts or sum(counts) == 0 or not (src.has(ENC) and src.has(DEC)):
        return None
    largest = src.results["data"]["labels"][max(range(len(counts)), key=counts.__getitem__)]
    prior = max(counts) / sum(counts)
    quantities = [Quantity(name="largest.train_share", value=prior,
                           path=f"{RESULTS} data.train_counts: the largest ÷ their sum")]
    every_seed, pooled = [], {}
    for arm in (ENC, DEC):
        into, wrong, shares = 0, 0, []
        for seed in src.results["arms"][arm]["seeds"]:
            flow = src.results["runs"].get(f"{arm}__seed{seed}", {}).get("test", {}).get("tier_flow", {}).get(src.rare)
            if not flow or not flow.get("wrong"):
                continue
            count = next((t["count"] for t in flow.get("top_absorbers") or [] if t["label"] == largest), None)
            shares.append(None if count is None else count / flow["wrong"])
            into, wrong = into + (count or 0), wrong + flow["wrong"]
        if not wrong:
            continue
        if any(share is None for share in shares):
            continue  # a seed that does not list the class among its top absorbers: its count is unknown, not 0
        pooled[arm] = into / wrong
        quantities.append(Quantity(name=f"{arm}.share_into_largest", value=pooled[arm],
                                   path=f"{RESULTS} runs.{arm}__seed*.test.tier_flow.{src.rare}: into the largest ÷ wrong, pooled"))
        if shares and all(share > prior for share in shares):
            every_seed.append(arm)
    if not pooled:
        return None
    return Finding(id="tier.prior_pull", kind="confusion", section=3,
                   test="every seed sends the largest class more of its misclassified rare-tier examples than the "
                        "class's share of the training examples",
                   verdict="pulled" if every_seed else "not_pulled", subjects=[ENC, DEC], quantities=quantities,
                   facts={"largest": largest, "every_seed": every_seed,
                          "others": {arm: [other for other in pooled if other != arm] for arm in pooled},
                          "n_seeds": {arm: src.results["arms"][arm]["n_seeds"] for arm in pooled}})


def label_group_finding(src: Source) -> Finding | None:
    """Decoder minus encoder LoRA per-class F1, split exactly by the labels' own groups (`measure.label_groups`,
    first seed: the class table's population), with the confusion that carries the largest group's part.

    Verdict: the group holding the largest |part|; None (no finding) when the labels have no group structure."""
    diffs = src.results.get("class_differences") or {}
    classes = diffs.get("classes") or []
    groups = label_groups(src.results["data"]["labels"])
    if not classes or groups is None or not (src.has(ENC) and src.has(DEC)):
        return None
    seeded = _seed_mean_classes(src)  # every seed's per-class F1 where read: the tier table's population
    if seeded:
        classes, zero_every = seeded
    else:
        zero_every = None
    split = group_split(classes, groups)
    if not split["parts"] or split["gap"] == 0:
        return None
    top = max(split["parts"], key=lambda g: abs(split["parts"][g]))
    path = f"{RESULTS}#/class_differences/classes (f1_b - f1_a by label group / classes)"
    quantities = [Quantity(name=f"{DEC}_minus_{ENC}.macro_f1 part of group {g}", value=v, path=path)
                  for g, v in split["parts"].items()]
    quantities.append(Quantity(name=f"{DEC}_minus_{ENC}.macro_f1 share of group {top}",
                               value=split["parts"][top] / split["gap"], path=path))
    behind = DEC if split["parts"][top] < 0 else ENC
    confusion = None
    run = f"{behind}__seed{diffs.get('seed', src.results['arms'][behind]['seeds'][0])}"
    for index, pair in enumerate(((src.results["runs"].get(run) or {}).get("test") or {}).get("confused_pairs") or []):
        if groups.get(pair["true"]) == top:
            confusion = {"arm": behind, "true": pair["true"], "predicted": pair["predicted"], "count": pair["count"],
                         "seed": int(run.rsplit("__seed", 1)[1])}
            quantities.append(src.value(f"{behind}.confused_count", "runs", run, "test", "confused_pairs", index,
                                        "count"))
            break
    return Finding(id="groups.split", kind="decomposition", section=3,
                   test="Δ macro F1 over the evaluable classes = Σ label groups (Σ per-class F1 difference / classes); "
                        "the group with the largest |part| holds the gap",
                   verdict=top, subjects=[ENC, DEC],
                   quantities=quantities,
                   facts={"groups": sorted(split["parts"], key=lambda g: split["parts"][g]),
                          "sizes": split["sizes"], "share": split["parts"][top] / split["gap"],
                          "seed": None if seeded else diffs.get("seed"), "confusion": confusion,
                          "zero_every_seed": None if zero_every is None else
                          {arm: sum(1 for label in zero_every[arm] if groups.get(label) == top) for arm in (ENC, DEC)},
                          "n_in_group": split["sizes"][top],
                          "zero": {DEC: split["zero_b"][top], ENC: split["zero_a"][top]},
                          "same_direction": split["parts"][top] * split["gap"] > 0})


def _seed_mean_classes(src: Source) -> tuple[list[dict], dict[str, set[str]]] | None:
    """Per-class F1 of both LoRA arms averaged over all their seeds (per_class rows), as class_differences rows
    (f1_a encoder, f1_b decoder), and per arm the classes at F1 0 on every seed; None without every seed's rows."""
    means, zero = {}, {}
    for arm in (ENC, DEC):
        runs = [src.per_class.get(f"{arm}__seed{seed}") for seed in src.results["arms"][arm]["seeds"]]
        if not runs or any(r is None for r in runs):
            return None
        labels = set.intersection(*({row["label"] for row in r} for r in runs))
        means[arm] = {label: sum(next(row["f1"] for row in r if row["label"] == label) for r in runs) / len(runs)
                      for label in labels}
        zero[arm] = {label for label in labels if all(next(row["f1"] for row in r if row["label"] == label) == 0
                                                      for r in runs)}
    labels = sorted(set(means[ENC]) & set(means[DEC]))
    return [{"label": label, "f1_a": means[ENC][label], "f1_b": means[DEC][label]} for label in labels], zero
