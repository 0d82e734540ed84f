"""Section 4, latency and deployment: measured ratios, shared measurements and one decision per context."""

from __future__ import annotations

from pydantic import BaseModel

from lorastudy.measure import deployment
from lorastudy.note.findings.base import DEC, ENC, LATENCY, Finding, Quantity, Source, Verdicts, has_tail
from lorastudy.study.config import ARMS, StudyConfig


class ArmQuality(BaseModel):
    arm: str
    quality: float | None


class ContextVerdicts(Verdicts):
    context: str
    """The context's name (the list runs in the order of the decision findings)."""
    margin: float | None = None
    """How far the choice is ahead of the runner-up that meets the target, on the deciding metric (the size of the
    stored difference, whichever way evaluation stored it); None without that contrast."""
    margin_ci: list[float] | None = None
    """The interval of that lead, choice minus runner-up: the stored interval, negated and swapped when the stored
    difference runs the other way."""
    tied_set_narrowed: bool = False
    """Cost, p95 or memory set some of the tied arms aside before the point estimate decided, so the note names the
    arms still left."""
    several_left: bool = False
    """More than two arms were still tied when the point estimate decided: the arm it is decided against is "the
    next" of several, not named."""
    flip_choice: ArmQuality | None = None
    """What the smallest flipping change would choose, with its quality on the deciding metric; None when it would
    choose no arm at all (or nothing flips)."""


class DeploymentVerdicts(Verdicts):
    contexts: list[ContextVerdicts] = []
    """One per decision finding, in the same order."""
    steady: list[str] = []
    """The contexts with a choice that no arrival rate, p95 target, volume or window in the searched range changes:
    only a different quality result would."""
    all_steady: bool = False
    """Every context is steady, so the sentence about steady choices needs not name them."""


def context_verdicts(finding: Finding) -> ContextVerdicts:
    decision, contrast, flip = finding.facts["decision"], finding.facts["contrast"], finding.facts["flip"]
    margin = margin_ci = None
    if contrast and contrast["diff"]:
        diff, (lo, hi) = contrast["diff"]["diff"], contrast["diff"]["ci"]
        margin, margin_ci = abs(diff), [lo, hi] if diff >= 0 else [-hi, -lo]
    remaining = decision.get("remaining") or []
    new_row = next((row for row in finding.facts["rows"] if row["arm"] == flip["new_choice"]), None) \
        if flip and flip.get("new_choice") else None
    return ContextVerdicts(context=finding.facts["context"]["name"], margin=margin, margin_ci=margin_ci,
                           tied_set_narrowed=len(remaining) < len(decision.get("tied") or []),
                           several_left=len(remaining) > 2,
                           flip_choice=ArmQuality(arm=new_row["arm"], quality=new_row["quality"]) if new_row else None)


def deployment_verdicts(found: list[Finding]) -> DeploymentVerdicts:
    decisions = [f for f in found if f.kind == "decision"]
    steady = [d.facts["context"]["name"] for d in decisions
              if not d.facts["flip"] and d.facts["decision"]["choice"] is not None]
    return DeploymentVerdicts(contexts=[context_verdicts(d) for d in decisions], steady=steady,
                              all_steady=bool(steady) and len(steady) == len(decisions))


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
    tail = has_tail(src)
    for context in config.deployment.contexts:
        metric = context.primary_metric if tail or context.primary_metric != "rare_recall" else "accuracy"

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
        contrast = _decision_contrast(src, decision, rows, metric)
        out.append(Finding(id=f"decision.{context.name}", kind="decision", section=4,
                           test="deployment.decide: constraint, then the primary metric's interval, then "
                                + ", ".join(context.tie_breakers),
                           verdict=decision["decided_by"], subjects=[a for a in [decision["choice"]] if a],
                           quantities=_decision_quantities(src, decision, metric, contrast),
                           facts={"context": context.model_dump(mode="json"), "metric": metric,
                                  "metric_substituted": metric != context.primary_metric, "decision": decision,
                                  "rows": rows, "flip": flip, "flip_search_factor": deployment.FLIP_RANGE,
                                  "contrast": contrast,
                                  # what a point-estimate tie is decided against: the first arm still tied with it
                                  "next_in_line": {"arm": behind[0], "quality": quality(behind[0])} if behind else None}))
    return out


def _metric_level(src: Source, arm: str, metric: str) -> float | None:
    level = src.results["arms"].get(arm, {}).get("ci", {}).get(metric)
    return None if level is None else level["mean"]


def _decision_quantities(src: Source, decision: dict, metric: str, contrast: dict | None) -> list[Quantity]:
    if decision["choice"] is None:
        return []
    arm = decision["choice"]
    quantities = [src.value("choice.metric", "arms", arm, "ci", metric, "mean"),
                  src.value("choice.metric_lo", "arms", arm, "ci", metric, "ci", 0),
                  src.value("choice.metric_hi", "arms", arm, "ci", metric, "ci", 1)]
    if decision["decided_by"] == "quality" and contrast and contrast["diff"]:
        # the note prints the lead as choice minus runner-up, whichever way evaluation stored the pair
        _, lead, _ = src.comparison(contrast["arm"], arm, metric)
        quantities += [q.model_copy(update={"name": q.name.replace("diff", "margin")}) for q in lead]
    return quantities


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
