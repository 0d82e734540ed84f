"""What each trained arm costs to serve in each operational context, and which arm each context deploys.

`latency.py` measures; this module turns the measurements into operational terms
and applies one decision rule per context. Formulas (P = price of one
instance-hour on the device, `deployment.price_per_hour`):

Real-time (p95 SLA in ms at an arrival rate of R requests/s). An instance serves
one request at a time; requests arrive as a Poisson stream and wait in one queue
shared by c instances (M/G/c, first come first served). The service time of a
request is drawn from the measured single-request latencies, so the p95 *at the
context's rate* includes queueing. `p95_at_rate_ms` is the 95th percentile of
simulated response times (SIMULATED_REQUESTS requests, seed 0, the first 10%
dropped as warm-up).
    instances   = the smallest c (up to MAX_INSTANCES) whose p95 at rate <= SLA;
                  none when even an idle instance's p95 exceeds the SLA
    utilisation = R * mean service time / instances;  headroom = 1 - utilisation
    monthly_cost = instances * P * 730 h (always on, sized for the rate)

Batch and audit (N examples within a W-minute window; X = best batched examples/s):
    time_s = N / X;  instances = ceil(time_s / 60 W);  headroom = 1 - time_s / (instances * 60 W)
    cost_per_run = P * time_s / 3600 (billed per instance-second: the same for any number of instances)
    monthly_cost = cost_per_run * runs per month (monthly_predictions / N, else 30 for batch, 1 for audit)

Capacity in operational terms (real-time): `busy_instances` = R * mean service time, how busy one
instance would be at the peak (above about 0.7 a single queue's p95 climbs fast, at 1 it never drains);
`compute_cost` = monthly_predictions * mean service time * P, the raw compute the requests use, against
`monthly_cost`, the instances kept on for the peak and the SLA. For batch and audit the two are the same.

Decision rule per context, over every trained arm (a weighted arm serves exactly
like its unweighted twin, so it takes that twin's measurements). q(arm) is the
point estimate on the context's primary metric; every arm is compared with the
best by one comparison, the stored paired difference (arm - best) with its interval:
1. keep the arms that meet the context's constraint;
2. quality floor: the best feasible arm (highest q) leads; the floor is
   max(top - quality_floor.max_drop, top * quality_floor.min_share, quality_floor.minimum), top the best q of any
   arm (target met or not). The leader is out when its q is under the floor (a better arm misses the target);
3. every other arm is judged on its own paired difference to the leader, never on its point estimate alone:
   with margin m (ContextConfig.equivalence_margin, else DeploymentConfig.equivalence_margins of the metric) an
   arm whose difference interval lies inside [-m, +m] is `equivalent`; one whose interval lies below 0 is
   `clearly_below` and out; one whose interval reaches under the floor (q(leader) + lower end < floor) is
   `below_floor` and out: the data cannot show it is no worse than the floor allows (a non-inferiority test at
   the floor); otherwise it is `unranked` (the data cannot rank it against the leader, yet bound it above the
   floor) and stays a candidate. The interval test applies only where the leader's own interval
   (Evidence.level_ci) clears the floor: when it does not, the data cannot resolve a gap of the floor's size, so
   every arm alike, the leader included, is held to the floor by its point estimate (`floor_test`), as is an arm
   without a stored difference;
4. among the candidates the tie breakers decide in order (cost, then speed, then memory). A cost difference
   decides only when it is material: above cost_materiality_usd a month and above cost_materiality_share of
   the cheaper arm's cost; speed (the "p95" breaker: p95 at rate for real-time, job time for batch and audit)
   and memory separate values more than TIE_TOLERANCE apart. What remains goes to a stated ground
   (tie_grounds.py), else to the higher point estimate as printed (`shown`); equal as printed is a tie ("tie").
The floor (step 2) is set by the best arm whatever its speed. When the timings are unfit (timing_fitness),
`timing_fitness.drift_alternatives` says whether the choice survives timings off by the measured drift.
What would change a choice, and the encoder-or-decoder break-even: `break_even.py`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from lorastudy.study.config import ContextConfig, DeploymentConfig
from lorastudy.core.errors import StudyError
from lorastudy.measure import tie_grounds

HOURS_PER_MONTH = 730
RUNS_PER_MONTH = {"batch": 30, "audit": 1}
SIMULATED_REQUESTS = 5_000
MAX_INSTANCES = 64
TIE_TOLERANCE = {"cost": 0.01, "p95": 0.05, "memory": 0.05}  # relative differences that count as equal


@dataclass(frozen=True)
class Served:
    """How one arm serves: the measured latency of its deployed architecture."""

    arm: str
    measured_as: str
    p95_ms: float
    mean_ms: float
    samples_ms: tuple[float, ...]
    examples_per_s: float
    memory_mb: float
    device: str


def served_models(latency: dict, arms: list[str]) -> dict[str, Served]:
    """Each trained arm with the measurements of the computation it deploys as.

    A weighted arm serves exactly like its unweighted twin, and a merged LoRA like a full fine-tune of the same
    model, so every arm of a family is priced alike, from the slower of the family's timings on each measure
    (single requests from the timing with the higher mean, the lowest batched throughput, the most memory): timing
    noise between two copies of the same computation must never decide a context, nor flatter one."""
    models = latency.get("models", {})
    out = {}
    for arm in arms:
        family = arm.split("_")[0]
        timed = [k for k in dict.fromkeys((f"{family}_lora", f"{family}_lora_cw", arm, arm.removesuffix("_cw"),
                                           f"{family}_full", f"{family}_full_cw")) if k in models]
        if not timed:
            continue
        merged = {key: models[key]["variants"]["merged"] for key in timed}
        key = max(timed, key=lambda k: merged[k]["single"]["mean_ms"])
        single = merged[key]["single"]
        out[arm] = Served(arm=arm, measured_as=key, p95_ms=single["p95_ms"], mean_ms=single["mean_ms"],
                          samples_ms=tuple(single.get("samples_ms") or [single["mean_ms"]]),
                          examples_per_s=min(max(row["examples_per_s"] for row in m["batched"])
                                             for m in merged.values()),
                          memory_mb=max(m.get("memory_added_mb", m.get("peak_memory_mb", 0.0)) for m in merged.values()),
                          device=merged[key].get("device") or latency.get("environment", {}).get("device", "cpu"))
    return out


def price_per_hour(deployment: DeploymentConfig, device: str) -> float:
    kind = device.split(":")[0]
    if kind not in deployment.price_per_hour:
        raise StudyError(f"No instance price for device '{kind}'.",
                         f"--set deployment.price_per_hour.{kind}=<USD per hour>.")
    return deployment.price_per_hour[kind]


# --- the cost model --------------------------------------------------------------


@lru_cache(maxsize=4096)
def simulated_p95_ms(samples_ms: tuple[float, ...], rate_rps: float, instances: int) -> float:
    """p95 response time (queue wait + service) of an M/G/c queue fed by the measured service times."""
    if rate_rps * float(np.mean(samples_ms)) / 1000.0 >= instances:
        return math.inf  # the queue grows without bound
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1000.0 / rate_rps, SIMULATED_REQUESTS))
    service = rng.choice(np.asarray(samples_ms), SIMULATED_REQUESTS)
    free_at = [0.0] * instances
    response = np.empty(SIMULATED_REQUESTS)
    for i, (arrival, duration) in enumerate(zip(arrivals, service)):
        start = max(arrival, heapq.heappop(free_at))
        heapq.heappush(free_at, start + duration)
        response[i] = start + duration - arrival
    return float(np.percentile(response[SIMULATED_REQUESTS // 10:], 95))


def realtime_row(served: Served, context: ContextConfig, price: float) -> dict:
    samples, rate, sla = served.samples_ms, context.peak_rps, context.p95_sla_ms
    instances, p95_at_rate = None, None
    if float(np.percentile(samples, 95)) <= sla:
        first = max(1, math.ceil(rate * served.mean_ms / 1000.0))
        for count in range(first, MAX_INSTANCES + 1):
            p95_at_rate = simulated_p95_ms(samples, rate, count)
            if p95_at_rate <= sla:
                instances = count
                break
    busy = rate * served.mean_ms / 1000.0
    utilisation = busy / instances if instances else None
    monthly = instances * price * HOURS_PER_MONTH if instances else None
    return {"meets": instances is not None, "instances": instances, "p95_single_ms": served.p95_ms,
            "mean_ms": served.mean_ms, "busy_instances": busy,
            "compute_cost": (context.monthly_predictions * served.mean_ms / 1000.0 / 3600.0 * price
                             if context.monthly_predictions else None),
            "p95_at_rate_ms": p95_at_rate if instances else None, "sla_ms": sla, "peak_rps": rate,
            "utilisation": utilisation, "headroom": None if utilisation is None else 1.0 - utilisation,
            "monthly_cost": monthly,
            "cost_per_million": (monthly / context.monthly_predictions * 1e6
                                 if monthly is not None and context.monthly_predictions else None)}


def batch_row(served: Served, context: ContextConfig, price: float) -> dict:
    time_s = context.examples / served.examples_per_s
    window_s = context.window_minutes * 60.0
    instances = math.ceil(time_s / window_s)
    runs = (context.monthly_predictions / context.examples if context.monthly_predictions
            else RUNS_PER_MONTH[context.kind])
    per_run = price * time_s / 3600.0
    return {"meets": instances <= MAX_INSTANCES, "instances": instances, "examples": context.examples,
            "examples_per_s": served.examples_per_s, "time_s": time_s, "window_s": window_s,
            "headroom": 1.0 - time_s / (instances * window_s), "runs_per_month": runs, "cost_per_run": per_run,
            "monthly_cost": per_run * runs, "compute_cost": per_run * runs, "cost_per_million": price / (3600.0 * served.examples_per_s) * 1e6}


def context_rows(models: dict[str, Served], context: ContextConfig, deployment: DeploymentConfig) -> list[dict]:
    """One row per arm: whether it meets the context's constraint, instances, headroom, cost."""
    rows = []
    for arm, served in models.items():
        price = price_per_hour(deployment, served.device)
        cost = realtime_row if context.kind == "realtime" else batch_row
        rows.append({"arm": arm, "context": context.name, "kind": context.kind,
                     "device": served.device, "price_per_hour": price, "p95_ms": served.p95_ms,
                     "memory_mb": served.memory_mb, **cost(served, context, price)})
    return rows


# --- the decision rule ---------------------------------------------------------------

Quality = Callable[[str], "float | None"]
Difference = Callable[[str, str], "tuple[float, float, float] | None"]
"""difference(a, b): b - a on the context's metric with its interval, (diff, lo, hi); None when not measured."""
CANDIDATE = ("leader", "equivalent", "unranked")
Secondary = Callable[[str, str], "list[tuple[str, float, float, float]]"]
"""secondary(a, b): b - a on each other quality metric the note reports, [(metric, diff, lo, hi)]."""


@dataclass(frozen=True)
class Evidence:
    """What the evaluation says about quality on one metric: each arm's point estimate and each pair's difference;
    optionally the grounds of a tie (tie_grounds.py): other metrics' differences, trained weights, seed counts."""

    metric: str
    quality: Quality
    difference: Difference
    secondary: Secondary | None = None
    seeds: Callable[[str], int] | None = None
    trainable: Callable[[str], int | None] | None = None
    level_ci: Callable[[str], "tuple[float, float] | None"] | None = None
    """An arm's own 95% interval on the metric: whether the best is itself resolved above the floor."""

    def lifted(self, arms: frozenset[str], gain: float) -> "Evidence":
        """The same evidence with `arms` `gain` higher (their differences to every other arm move with them)."""
        def quality(arm: str) -> float | None:
            value = self.quality(arm)
            return None if value is None else value + (gain if arm in arms else 0.0)

        def difference(a: str, b: str) -> tuple[float, float, float] | None:
            found = self.difference(a, b)
            if found is None:
                return None
            shift = gain * ((b in arms) - (a in arms))
            return tuple(x + shift for x in found)  # type: ignore[return-value]

        def level_ci(arm: str) -> tuple[float, float] | None:
            found = self.level_ci(arm) if self.level_ci else None
            return None if found is None else (found[0] + gain * (arm in arms), found[1] + gain * (arm in arms))
        return Evidence(self.metric, quality, difference, self.secondary, self.seeds, self.trainable,
                        level_ci if self.level_ci else None)


def margin_of(context: ContextConfig, deployment: DeploymentConfig, metric: str) -> float:
    return context.equivalence_margin or deployment.equivalence_margins.get(metric, 0.01)


def floor_of(context: ContextConfig, best: float) -> float:
    """The context's floor from the best quality any arm reached, whether or not it meets the target: fixed before
    the target filters the arms, so the only arm that meets a target is not waved through by measuring it against
    itself. `quality_floor.minimum` is an absolute floor on top."""
    rule = context.quality_floor
    return max(best - rule.max_drop, best * rule.min_share, -math.inf if rule.minimum is None else rule.minimum)


def shown(value: float, metric: str) -> str:
    """A quality as the note prints it (47.3%, F1 0.473): two arms that print alike are a tie, never ranked."""
    return f"{100 * value:.1f}" if metric in ("accuracy", "rare_recall") else f"{value:.3f}"


def decide(rows: list[dict], context: ContextConfig, deployment: DeploymentConfig, evidence: Evidence) -> dict:
    """Apply the module's decision rule to one context's rows."""
    quality = evidence.quality
    margin = margin_of(context, deployment, evidence.metric)
    standing: dict[str, dict] = {}
    for row in rows:
        if not row["meets"]:
            standing[row["arm"]] = {"status": "misses_target", "quality": quality(row["arm"]), "metric": evidence.metric}
        elif quality(row["arm"]) is None:
            standing[row["arm"]] = {"status": "no_quality", "quality": None, "metric": evidence.metric}
    feasible = sorted((row for row in rows if row["arm"] not in standing), key=lambda row: -quality(row["arm"]))
    out = {"choice": None, "decided_by": "no_arm_meets", "leader": None, "candidates": [], "tied": [],
           "remaining": [], "standing": standing, "margin": margin, "floor": None, "ranking": None,
           "cost_immaterial": False, "cost_spread": None, "saving": None, "narrowed_by": [], "ground": None}
    if not feasible:
        return out
    leader = feasible[0]["arm"]
    floor = floor_of(context, max(q for row in rows if (q := quality(row["arm"])) is not None))
    candidates: list[dict] = []
    top = quality(leader)
    own = evidence.level_ci(leader) if evidence.level_ci else None
    resolved = own is None or own[0] >= floor - 1e-12
    for row in feasible:
        arm, value = row["arm"], quality(row["arm"])
        entry: dict = {"quality": value, "metric": evidence.metric}
        found = None if arm == leader else evidence.difference(leader, arm)
        if found is not None:
            entry.update(diff=found[0], lo=found[1], hi=found[2])
        # the lowest level the data leave the arm at, where the best's own interval clears the floor (the data resolve
        # a gap of the floor's size); otherwise only the point estimate is held to the floor, for every arm alike
        lowest = value if found is None or not resolved else top + found[1]
        if top < floor - 1e-12:
            status = "below_floor"
        elif arm == leader:
            status = "leader"
        elif found is not None and -margin <= found[1] and found[2] <= margin:
            status = "equivalent"
        elif found is not None and found[2] < 0:
            status = "clearly_below"
        elif lowest < floor - 1e-12:
            status = "below_floor"
        else:
            status = "unranked"
        standing[arm] = {"status": status, **entry, "floor_test": "interval" if lowest < value else "point"}
        if status in CANDIDATE:
            candidates.append(row)
    out.update(leader=leader, floor=floor, candidates=[row["arm"] for row in candidates])
    out["tied"] = out["candidates"]
    if not candidates:
        return {**out, "decided_by": "below_floor"}
    others = [standing[row["arm"]]["status"] for row in candidates[1:]]
    out["ranking"] = None if not others else "unranked" if "unranked" in others else "equivalent"
    costs = [row["monthly_cost"] for row in candidates]
    out["cost_spread"] = max(costs) - min(costs)
    remaining, decided_by = candidates, "quality" if len(candidates) == 1 else None
    for breaker in context.tie_breakers:
        if decided_by:
            break
        values = {row["arm"]: _breaker_value(row, breaker) for row in remaining}
        best = min(values.values())
        if breaker == "cost":
            allowed = max(deployment.cost_materiality_usd, deployment.cost_materiality_share * best)
        else:
            allowed = best * TIE_TOLERANCE[breaker]
        close = [row for row in remaining if values[row["arm"]] <= best + allowed + 1e-9]
        if breaker == "cost" and len(close) == len(remaining) and max(values.values()) - best > 1e-9:
            out["cost_immaterial"] = True  # the costs differ, by less than matters
        if len(close) < len(remaining):
            out["narrowed_by"].append(breaker)
            if breaker == "cost" and len(close) == 1:
                out["saving"] = min(v for a, v in values.items() if a != close[0]["arm"]) - best
            remaining = close
            decided_by = breaker if len(close) == 1 else None
    if not decided_by and len(remaining) > 1 and (ground := tie_grounds.tie_ground([r["arm"] for r in remaining],
                                                                                    evidence)):
        return {**out, "choice": ground["arm"], "decided_by": ground["by"], "ground": ground,
                "remaining": [row["arm"] for row in remaining]}
    if not decided_by and len(remaining) > 1:
        out["blocked"] = tie_grounds.blocked_grounds([r["arm"] for r in remaining], evidence)
    top = shown(max(quality(row["arm"]) for row in remaining), evidence.metric)
    level = [row for row in remaining if shown(quality(row["arm"]), evidence.metric) == top]
    if not decided_by and len(level) > 1:  # equal as printed: a tie, named by the lowest cost, speed, memory
        choice = min(level, key=lambda row: tuple(_breaker_value(row, b) for b in context.tie_breakers))
        return {**out, "choice": choice["arm"], "decided_by": "tie", "remaining": [row["arm"] for row in level]}
    choice = max(remaining, key=lambda row: quality(row["arm"]))
    return {**out, "choice": choice["arm"], "decided_by": decided_by or "point_estimate",
            "remaining": [row["arm"] for row in remaining]}


def _breaker_value(row: dict, breaker: str) -> float:
    """The "p95" breaker is speed as the context meets it: p95 at the arrival rate for real-time, the job time for
    batch and audit (a batch job is served by throughput; one request's p95 says nothing about it)."""
    speed = row["time_s"] if row.get("time_s") is not None else row.get("p95_at_rate_ms") or row["p95_ms"]
    return {"cost": row["monthly_cost"], "p95": speed, "memory": row["memory_mb"]}[breaker]


def faster_by(served: Served, factor: float) -> Served:
    return Served(arm=served.arm, measured_as=served.measured_as, p95_ms=served.p95_ms / factor,
                  mean_ms=served.mean_ms / factor, samples_ms=tuple(x / factor for x in served.samples_ms),
                  examples_per_s=served.examples_per_s * factor, memory_mb=served.memory_mb, device=served.device)
