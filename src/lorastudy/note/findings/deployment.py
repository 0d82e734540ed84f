"""Section 4, deployment: one decision per context and the verdicts the note words about it (the timing facts
are findings/latency.py)."""

from __future__ import annotations

from pydantic import BaseModel

from lorastudy.measure import break_even, deployment, timing_fitness
from lorastudy.note.findings.base import Finding, Quantity, Source, Verdicts, has_tail, one_run_arms
from lorastudy.note.formatting import metric_value
from lorastudy.study.config import ARMS, LORA_ARMS, StudyConfig


class ArmQuality(BaseModel):
    arm: str
    quality: float | None


class FamilyAnswer(BaseModel):
    """Encoder LoRA or decoder LoRA in one context, and what would make the other family the right choice."""

    family: str | None
    """The family the rule picks among the LoRA arms alone; None when no LoRA arm qualifies."""
    arm: str | None
    """The LoRA arm it picks."""
    decided_by: str
    """deployment.decide's verdict over the LoRA arms (quality, cost, p95, memory, point_estimate, ...)."""
    other: str | None = None
    """The other family."""
    gain: float | None = None
    """Points on the context's metric the other family's LoRA arms would need to gain to be chosen; None: no gain
    up to break_even.MAX_GAIN (or a perfect score) does."""
    gain_arm: ArmQuality | None = None
    """The other family's arm that such a gain would make the choice, with its quality after the gain."""
    gain_from: float | None = None
    """That arm's measured quality before the gain (the note prints from and to, never a rounded gain to add)."""
    speedup: float | None = None
    """How many times faster the other family would have to serve (latency divided, throughput multiplied) to be
    chosen as its quality stands; None: no speed-up up to break_even.FLIP_RANGE does."""
    speedup_arm: str | None = None
    """The other family's arm such a speed-up would make the choice."""
    speedup_mean_ms: float | None = None
    """That arm's mean single-request latency at the break-even speed-up (real-time), in ms."""
    speedup_examples_per_s: float | None = None
    """That arm's batched throughput at the break-even speed-up (batch and audit)."""
    gain_arm_named: bool = False
    """The arm that gain would make the choice is not the family's plain LoRA arm (e.g. its weighted twin), so the
    note names it."""
    each_speedup: dict[str, float | None] = {}
    """When neither family meets the target: per family, the speed-up that would make its LoRA arm the choice
    (None: none up to break_even.SPEEDUP_RANGE)."""
    each_mean_ms: dict[str, float | None] = {}
    """... and that arm's mean single-request latency at it, in ms."""


class Capacity(BaseModel):
    """One arm's capacity in a context, in operational terms (a row of deployment.context_rows)."""

    arm: str
    meets: bool = True
    instances: int | None = None
    mean_ms: float | None = None
    busy_instances: float | None = None
    monthly_cost: float | None = None
    compute_cost: float | None = None
    examples_per_s: float | None = None
    time_s: float | None = None
    p95_at_rate_ms: float | None = None
    sla_ms: float | None = None


class Faster(BaseModel):
    """A better arm that misses the context's target, and how much faster it would have to serve to be chosen."""

    arm: str
    quality: float
    factor: float | None = None
    mean_ms: float | None = None
    examples_per_s: float | None = None


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
    """Cost, p95 or memory set some of the candidates aside before the point estimate decided, so the note names the
    arms still left."""
    several_left: bool = False
    """More than two arms were still candidates when the point estimate decided: the arm it is decided against is
    "the next" of several, not named."""
    flip_choice: ArmQuality | None = None
    """What the smallest flipping change would choose, with its quality on the deciding metric; None when it would
    choose no arm at all (or nothing flips)."""
    candidates: list[str] = []
    """The arms still candidates after the floor and the equivalence test, best first."""
    equivalent: list[str] = []
    """Candidates whose difference from the best lies wholly inside the equivalence margin."""
    unranked: list[str] = []
    """Candidates the data cannot rank against the best: not distinguishable, not equivalent either."""
    below_floor: list[str] = []
    """Arms that meet the target whose difference interval reaches under the context's quality floor: the data
    cannot show they are no worse than the floor allows."""
    clearly_below: list[str] = []
    """Arms that meet the target whose difference interval lies below zero: clearly worse than the best."""
    misses_target: list[str] = []
    """Arms that cannot meet the context's latency or window target."""
    leader_chosen: bool = False
    """The choice is the arm with the best point estimate, so the note says "against it" rather than naming it."""
    dropped: list[str] = []
    """Candidates the tie breakers set aside before the point estimate decided (e.g. the decoder for its cost)."""
    narrowed_by: list[str] = []
    """The tie breakers that set candidates aside, in order (cost, p95, memory)."""
    ranking: str | None = None
    """How the candidates other than the best stand: "equivalent" (all inside the margin), "unranked" (the data
    cannot rank at least one of them), None (a single candidate)."""
    cost_immaterial: bool = False
    """The candidates' costs differ, but by less than the materiality, so cost did not decide."""
    cheap_compute: bool = False
    """Real-time: the raw compute of every candidate is below the cost materiality, so the machines kept on for the
    peak and the SLA, not the requests' compute, set the cost."""
    family: FamilyAnswer | None = None
    """Encoder LoRA or decoder LoRA here, with the break-even; None unless both families have a LoRA arm."""
    capacity: list[Capacity] = []
    """The chosen arm, then the best (on the metric) LoRA arm of each family the choice is not of: how busy one
    instance is at the peak, instances, always-on against raw compute cost (real-time), or job time (batch)."""
    runner_up: ArmQuality | None = None
    """The best other arm that meets the target, and its quality (for what a quality result would change)."""
    runner_up_gain: float | None = None
    """The gain on the metric that would make the runner-up the choice; None when no gain within range does."""
    lead_clear: bool = False
    """The choice's lead over the next arm that meets the target excludes zero; otherwise the floor, not the data,
    set that arm aside, and the note says so."""
    faster: "Faster | None" = None
    """The best arm that misses the target, when it is better than the choice, and the speed-up that would make it
    the choice (None when none up to break_even.SPEEDUP_RANGE does)."""
    runner_up_level: float | None = None
    """The runner-up's level on the metric after that gain (what the note prints)."""
    withheld: bool = False
    """The timings are unfit (timing_fitness) and the choice would change with timings off by the measured drift:
    the note names no arm for this context on these timings."""
    drift_alternatives: list[str | None] = []
    """What the rule would choose instead under that drift (None: no arm)."""
    tied_with: list[str] = []
    """On a tie (deployment.decide's "tie"): the other arms that print alike and tie on cost, speed and memory."""
    choice_one_run: bool = False
    """The choice trained one seed while other arms trained several: its own training variance is in none of the
    intervals it was ranked by, which the recommendation says."""
    runner_up_visible: bool = False
    """The runner-up's break-even level prints differently from its quality (a gain the note can state), and the
    choice is no tie."""
    runner_up_in_noise: bool = False
    """That level lies inside the runner-up's paired interval against the choice: no change to the runner-up is
    needed, a replicate run could reorder them, which the note says instead of calling it a lever."""
    thin_margin: list[Capacity] = []
    """Real-time: the arms shown at the peak whose p95 there lies within `THIN_MARGIN` of the target: a burst or a
    slower machine breaches it, which the note flags."""
    misses_most: bool = False
    """The choice's deciding metric is a share of examples found (accuracy, rare-tier recall) whose whole interval
    lies below one half: even the chosen arm misses most of them, so it cannot serve the context alone."""
    leads: list[dict] = []
    """On a "secondary" decision: each clear lead on another metric that decided it, with `named` False when it is
    over the arm the sentence already names (the first the data cannot rank), so the note says it once."""
    unranked_arm: str | None = None
    """The arm whose difference from the best the note quotes when the data cannot rank the candidates: the choice
    itself when a ground chose it over the best, else the best-placed arm the data cannot rank against the choice."""
    unranked_is_choice: bool = False
    """`unranked_arm` is the choice, so the note says "it" rather than naming it twice."""
    job_times: list[Capacity] = []
    """Batch and audit: the chosen arm and the best LoRA arm of each other family, with one instance's job time, so
    the note says what each takes to run (empty for real-time, or with no other family to compare)."""
    over_window: list[str] = []
    """Of `job_times`, the arms one instance cannot finish within the window: they run on several in parallel,
    billed per second, so the job costs the same."""
    best_quality: ArmQuality | None = None
    """The arm with the best point estimate on the context's metric, whatever its speed: the quality-only reading
    the note gives when it withholds a choice."""


SECONDARY_METRICS = ("accuracy", "macro_f1", "rare_recall")
"""The quality metrics the note reports: a tie on a context's own metric is broken by a clear lead on another."""


def _by_status(decision: dict, *statuses: str) -> list[str]:
    standing = decision.get("standing") or {}
    return sorted((arm for arm, entry in standing.items() if entry["status"] in statuses),
                  key=lambda arm: -(standing[arm]["quality"] or 0.0))


def _family(answer: dict | None) -> FamilyAnswer | None:
    if answer is None:
        return None
    gain, speed = answer.get("gain"), answer.get("speedup")
    each = answer.get("each_speedup") or {}
    return FamilyAnswer(family=answer["family"], arm=answer["choice"], decided_by=answer["decided_by"],
                        other=answer["other"], gain=gain["gain"] if gain else None,
                        gain_arm=ArmQuality(arm=gain["arm"], quality=gain.get("quality_after")) if gain else None,
                        gain_from=gain["quality_after"] - gain["gain"] if gain and gain.get("quality_after") is not None
                        else None,
                        gain_arm_named=bool(gain) and gain["arm"] != f"{answer['other']}_lora",
                        speedup=speed["factor"] if speed else None, speedup_arm=speed["arm"] if speed else None,
                        speedup_mean_ms=speed["mean_ms"] if speed else None,
                        speedup_examples_per_s=speed["examples_per_s"] if speed else None,
                        each_speedup={f: (e["factor"] if e else None) for f, e in each.items()},
                        each_mean_ms={f: (e["mean_ms"] if e else None) for f, e in each.items()})


def context_verdicts(finding: Finding, materiality_usd: float = 10.0) -> ContextVerdicts:
    decision, contrast, flip = finding.facts["decision"], finding.facts["contrast"], finding.facts["flip"]
    margin = margin_ci = None
    if contrast and contrast["diff"]:
        diff, (lo, hi) = contrast["diff"]["diff"], contrast["diff"]["ci"]
        margin, margin_ci = abs(diff), [lo, hi] if diff >= 0 else [-hi, -lo]
    remaining = decision.get("remaining") or []
    new_row = next((row for row in finding.facts["rows"] if row["arm"] == flip["new_choice"]), None) \
        if flip and flip.get("new_choice") else None
    candidates = decision.get("candidates") or decision.get("tied") or []
    compute = [row.get("compute_cost") for row in finding.facts["rows"] if row["arm"] in candidates]
    runner = finding.facts.get("runner_up")
    timing = finding.facts.get("timing") or {}
    rated = [row for row in finding.facts["rows"] if row.get("quality") is not None]
    capacity = _capacity(finding.facts["rows"], decision.get("choice"), finding.facts["context"].get("kind") == "realtime")
    unranked = _by_status(decision, "unranked")
    quoted = (decision.get("choice") if decision.get("choice") in unranked
              else unranked[0] if unranked else None)
    job_times = capacity if finding.facts["context"].get("kind") != "realtime" and len(capacity) > 1 else []
    best = max(rated, key=lambda row: row["quality"]) if rated else None
    return ContextVerdicts(context=finding.facts["context"]["name"], margin=margin, margin_ci=margin_ci,
                           tied_set_narrowed=len(remaining) < len(decision.get("tied") or []),
                           several_left=len(remaining) > 2,
                           flip_choice=ArmQuality(arm=new_row["arm"], quality=new_row["quality"]) if new_row else None,
                           candidates=candidates, equivalent=_by_status(decision, "equivalent"),
                           unranked=_by_status(decision, "unranked"),
                           below_floor=_by_status(decision, "below_floor"),
                           clearly_below=_by_status(decision, "clearly_below"),
                           misses_target=_by_status(decision, "misses_target"),
                           ranking=decision.get("ranking"),
                           leader_chosen=decision.get("leader") is not None and decision.get("leader") == decision.get("choice"),
                           dropped=[arm for arm in candidates if arm not in remaining] if remaining else [],
                           narrowed_by=list(decision.get("narrowed_by") or []),
                           cost_immaterial=bool(decision.get("cost_immaterial")),
                           cheap_compute=(finding.facts["context"].get("kind") == "realtime" and bool(compute)
                                          and all(c is not None and c < materiality_usd for c in compute)),
                           family=_family(finding.facts.get("family")),
                           capacity=capacity,
                           runner_up=ArmQuality(arm=runner["arm"], quality=runner["quality"]) if runner else None,
                           runner_up_gain=runner.get("gain") if runner else None,
                           lead_clear=bool(margin_ci) and margin_ci[0] > 0,
                           faster=Faster(**{k: v for k, v in finding.facts["faster"].items() if k in Faster.model_fields})
                           if finding.facts.get("faster") else None,
                           runner_up_level=(runner["quality"] + runner["gain"]
                                            if runner and runner.get("gain") is not None else None),
                           withheld=timing.get("fit") is False and bool(timing.get("alternatives")),
                           drift_alternatives=list(timing.get("alternatives") or []),
                           best_quality=ArmQuality(arm=best["arm"], quality=best["quality"]) if best else None,
                           job_times=job_times,
                           unranked_arm=quoted, unranked_is_choice=quoted is not None and quoted == decision.get("choice"),
                           over_window=[c.arm for c in job_times if c.instances and c.instances > 1],
                           thin_margin=[c for c in capacity
                                        if c.p95_at_rate_ms and c.sla_ms and c.meets
                                        and c.p95_at_rate_ms > (1 - THIN_MARGIN) * c.sla_ms],
                           misses_most=_misses_most(finding),
                           leads=[{**lead, "named": lead["against"] not in _by_status(decision, "unranked")[:1]}
                                  for lead in (decision.get("ground") or {}).get("leads") or []],
                           choice_one_run=bool(finding.facts.get("choice_one_run")),
                           tied_with=[arm for arm in remaining if arm != decision.get("choice")]
                           if finding.verdict == "tie" else [],
                           runner_up_in_noise=_in_noise(decision, runner, rated),
                           runner_up_visible=bool(runner and runner.get("gain") is not None
                                                  and finding.verdict != "tie" and metric_value(
                                                      runner["quality"], finding.facts["metric"]) != metric_value(
                                                      runner["quality"] + runner["gain"], finding.facts["metric"])))


def _support(secondary, decision: dict, behind: list[str]) -> list[dict]:
    """On a point-estimate call, the other metrics on which the choice is clearly ahead of the arm it was called
    against (and behind on none): not a ground (one-seed intervals lack training variance), but where the rest of
    the evidence points, which the note says beside the call."""
    if decision["decided_by"] != "point_estimate" or not behind:
        return []
    diffs = secondary(behind[0], decision["choice"])
    if any(hi < 0 for _, _, _, hi in diffs):
        return []
    return [{"metric": m, "diff": d, "lo": lo, "hi": hi} for m, d, lo, hi in diffs if lo > 0]


THIN_MARGIN = 0.1
"""A p95 at the peak within 10% of the target: the queue's tail grows steeply near saturation, so the margin is thin."""
SHARE_METRICS = ("accuracy", "rare_recall")
"""Metrics that are a share of examples got right: below one half, the model misses most of them."""


def _misses_most(finding: Finding) -> bool:
    if finding.facts.get("metric") not in SHARE_METRICS or finding.facts["decision"]["choice"] is None:
        return False
    hi = next((q.value for q in finding.quantities if q.name == "choice.metric_hi"), None)
    return hi is not None and hi < 0.5


def _in_noise(decision: dict, runner: dict | None, rated: list[dict]) -> bool:
    """The runner-up's break-even level minus the choice's quality lies within the runner-up's paired interval."""
    entry = (decision.get("standing") or {}).get((runner or {}).get("arm")) or {}
    chosen = next((row["quality"] for row in rated if row["arm"] == decision.get("choice")), None)
    if runner is None or runner.get("gain") is None or entry.get("hi") is None or chosen is None:
        return False
    return runner["quality"] + runner["gain"] - chosen <= entry["hi"]


def _capacity(rows: list[dict], choice: str | None, realtime: bool) -> list[Capacity]:
    """The choice, then the best LoRA arm of each other family: one that meets the target, or for a real-time
    context one that misses it too (the note then says it misses the target even idle, which is why it is out)."""
    if choice is None:
        return []
    shown = [choice]
    for family in ("encoder", "decoder"):
        lora = [row for row in rows if row["arm"] in LORA_ARMS and row["arm"].startswith(family)
                and row.get("quality") is not None and (realtime or row.get("meets", True))]
        if lora and not choice.startswith(family):
            shown.append(max(lora, key=lambda row: row["quality"])["arm"])
    by_arm = {row["arm"]: row for row in rows}
    return [Capacity(**{key: value for key, value in by_arm[arm].items() if key in Capacity.model_fields})
            for arm in shown]


class DeploymentVerdicts(Verdicts):
    contexts: list[ContextVerdicts] = []
    """One per decision finding, in the same order."""
    steady: list[str] = []
    """The contexts with a choice that no arrival rate, p95 target, volume or window in the searched range changes:
    only a different quality result would (each context's own sentence says which)."""
    all_steady: bool = False
    """Every context is steady, so the sentence about steady choices needs not name them."""
    hold_under_drift: bool = False
    """The timings are unfit, yet no context's choice changes with every timing off by the measured drift."""
    one_family: str | None = None
    """Every context answers encoder-or-decoder LoRA with this family and no speed-up would change it: the note
    answers once for all contexts, with each context's quality break-even, instead of once per context."""


def context_verdicts_of(found: list[Finding]) -> list[ContextVerdicts]:
    return [context_verdicts(d, d.facts.get("cost_materiality_usd", 10.0)) for d in found if d.kind == "decision"]


def deployment_verdicts(found: list[Finding]) -> DeploymentVerdicts:
    decisions = [f for f in found if f.kind == "decision"]
    steady = [d.facts["context"]["name"] for d in decisions
              if not d.facts["flip"] and d.facts["decision"]["choice"] is not None]
    contexts = context_verdicts_of(found)
    answers = [c.family for c in contexts]
    one = {a.family for a in answers if a} if answers and all(a and a.family and a.speedup is None
                                                                  for a in answers) else set()
    unfit = any(d.facts.get("timing", {}).get("fit") is False for d in decisions)
    return DeploymentVerdicts(contexts=contexts, steady=steady,
                              hold_under_drift=unfit and not any(c.withheld or c.drift_alternatives for c in contexts), all_steady=bool(steady) and len(steady) == len(decisions),
                              one_family=one.pop() if len(one) == 1 and len(answers) > 1 else None)


def decision_findings(src: Source, config: StudyConfig) -> list[Finding]:
    if not src.latency or not src.latency.get("models"):
        return []
    arms = [arm for arm in ARMS if src.has(arm)]
    models = deployment.served_models(src.latency, arms)
    fit = timing_fitness.fitness(src.latency)
    out = []
    tail = has_tail(src)
    for context in config.deployment.contexts:
        metric = context.primary_metric if tail or context.primary_metric != "rare_recall" else "accuracy"

        def quality(arm: str, metric: str = metric) -> float | None:
            return _metric_level(src, arm, metric)

        def difference(a: str, b: str, metric: str = metric) -> tuple[float, float, float] | None:
            found = src.comparison(a, b, metric)
            return None if found is None else (found[0]["diff"], *found[0]["ci"])

        others = [m for m in SECONDARY_METRICS if m != metric and (tail or m != "rare_recall")]

        def secondary(a: str, b: str, others: list[str] = others) -> list[tuple[str, float, float, float]]:
            found = ((m, src.comparison(a, b, m)) for m in others)
            return [(m, row[0]["diff"], *row[0]["ci"]) for m, row in found if row is not None]

        def seeds(arm: str) -> int:
            return int(src.results["arms"][arm].get("n_seeds", 1))

        def trainable(arm: str) -> int | None:
            return (src.results["runs"][src.first_run(arm)].get("parameters") or {}).get("trainable")

        def level_ci(arm: str, metric: str = metric) -> tuple[float, float] | None:
            found = ((src.results["arms"].get(arm) or {}).get("ci") or {}).get(metric) or {}
            return tuple(found["ci"]) if found.get("ci") else None  # type: ignore[return-value]

        evidence = deployment.Evidence(metric, quality, difference, secondary, seeds, trainable, level_ci)
        rows = deployment.context_rows(models, context, config.deployment)
        decision = deployment.decide(rows, context, config.deployment, evidence)
        flip = break_even.what_would_change(models, context, config.deployment, evidence, decision["choice"])
        family = break_even.family_answer(models, context, config.deployment, evidence)
        runner_up = break_even.runner_up_gain(rows, context, config.deployment, evidence, decision["choice"])
        faster = break_even.better_if_faster(models, rows, context, config.deployment, evidence, decision["choice"])
        timing = {"fit": fit["fit"], "drift": fit["drift"]}
        if fit["fit"] is False:  # contended timings: does the choice survive timings off by the measured drift?
            timing["alternatives"] = timing_fitness.drift_alternatives(models, context, config.deployment, evidence,
                                                                       decision["choice"], fit["drift"])
        if flip and fit["fit"] is False:  # the threshold moves with the timings: the range their drift allows
            flip.update(low=flip["value"] / fit["drift"], high=flip["value"] * fit["drift"])
        for row in rows:
            row["quality"] = quality(row["arm"])
        if family:
            family.pop("rows", None)
        # the numbers the note derives, each under a generic key beside the metric it is on (so a check of the
        # note reads them as that metric) and the one arm it is about
        derived = {"floor": {"metric": metric, "arm": decision["leader"], "value": decision["floor"]}}  # set by the best
        contrast = _decision_contrast(src, decision, rows, metric)
        if contrast and contrast["diff"]:
            diff, (lo, hi) = contrast["diff"]["diff"], contrast["diff"]["ci"]
            # the interval of the lead read the other way round (the difference itself is the stored one)
            derived["lead"] = {"metric": metric, "a": contrast["arm"], "b": decision["choice"],
                               "ci": [lo, hi] if diff >= 0 else [-hi, -lo]}
        if family and family.get("gain"):
            gain = family["gain"]
            lifted = " ".join(arm for arm in LORA_ARMS if arm.startswith(family["other"]) and arm in models)
            derived["family_gain"] = {"metric": metric, "arms": lifted, "delta": gain["gain"],  # the family's arms
                                      "value": gain["quality_after"]}
        for name, each in ((family or {}).get("each_speedup") or {}).items():
            if each:  # about the family's LoRA arm, as the note names it
                derived[f"{name}_speedup"] = {"arm": f"{name}_lora", "factor": each["factor"],
                                              "mean_ms": each["mean_ms"], "examples_per_s": each["examples_per_s"]}
        if family and family.get("speedup"):
            speed = family["speedup"]
            derived["family_speedup"] = {"arm": speed["arm"], "factor": speed["factor"], "mean_ms": speed["mean_ms"],
                                         "examples_per_s": speed["examples_per_s"]}
        if faster and faster.get("factor"):
            derived["faster"] = {"arm": faster["arm"], "factor": faster["factor"], "mean_ms": faster["mean_ms"],
                                 "examples_per_s": faster["examples_per_s"]}
        derived["cost_spread"], derived["cost_saving"] = decision["cost_spread"], decision["saving"]
        if runner_up and runner_up.get("gain") is not None:
            derived["runner_up_level"] = {"metric": metric, "arm": runner_up["arm"],
                                          "value": runner_up["quality"] + runner_up["gain"]}
        behind = [arm for arm in decision.get("remaining") or [] if arm != decision["choice"]]
        out.append(Finding(id=f"decision.{context.name}", kind="decision", section=4,
                           test="deployment.decide: constraint, then each arm's paired difference from the best: "
                                "equivalence margin, below zero, or reaching under the quality floor; then " + ", ".join(context.tie_breakers)
                                + " (cost only when material)",
                           verdict=decision["decided_by"], subjects=[a for a in [decision["choice"]] if a],
                           quantities=_decision_quantities(src, decision, metric),
                           facts={"context": context.model_dump(mode="json"), "metric": metric,
                                  "metric_substituted": metric != context.primary_metric, "decision": decision,
                                  "rows": rows, "flip": flip, "flip_search_factor": break_even.FLIP_RANGE,
                                  "family": family, "runner_up": runner_up, "faster": faster, "derived": derived,
                                  "cost_materiality_usd": config.deployment.cost_materiality_usd,
                                  "cost_materiality_share": config.deployment.cost_materiality_share,
                                  "contrast": contrast, "timing": timing,
                                  "choice_one_run": bool(one_run_arms(src, [a for a in [decision["choice"]] if a])),
                                  # what a point-estimate tie is decided against: the first arm still tied with it
                                  "next_in_line": {"arm": behind[0], "quality": quality(behind[0])} if behind else None,
                                  "support": _support(secondary, decision, behind),
                                  "support_one_run": bool(behind) and decision["choice"] is not None
                                  and seeds(decision["choice"]) == 1 and seeds(behind[0]) == 1}))
    return out


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
