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

Decision rule per context, over every trained arm (a weighted arm serves exactly
like its unweighted twin, so it takes that twin's measurements):
1. keep the arms that meet the context's constraint;
2. the best on the context's primary metric leads; every arm whose difference
   from it is not distinguishable (its interval contains 0) is tied with it;
3. ties are broken by `tie_breakers` in order (cost, then p95, then memory); a
   breaker separates only values more than TIE_TOLERANCE apart, so equal costs
   never decide; what remains tied goes to the higher point estimate, and the
   decision says so.
What would change it: each quantity the context fixes (arrival rate and SLA, or
volume and window) is moved up and down by factors of up to FLIP_RANGE, the rule
re-run, and the nearest value at which the choice changes is reported.
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

HOURS_PER_MONTH = 730
RUNS_PER_MONTH = {"batch": 30, "audit": 1}
SIMULATED_REQUESTS = 5_000
MAX_INSTANCES = 64
TIE_TOLERANCE = {"cost": 0.01, "p95": 0.05, "memory": 0.05}  # relative differences that count as equal
FLIP_RANGE = 16.0
FLIP_STEPS = 8  # per direction, geometric (factors of sqrt(2))
QUANTITIES = {"realtime": ("peak_rps", "p95_sla_ms"), "batch": ("examples", "window_minutes"),
              "audit": ("examples", "window_minutes")}


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

    A weighted arm serves exactly like its unweighted twin, and a merged LoRA like a full fine-tune of the
    same model, so every arm of a family takes one measurement (the LoRA arm's when there is one): timing
    noise between two copies of the same computation must never decide a context.
    """
    models = latency.get("models", {})
    out = {}
    for arm in arms:
        family = arm.split("_")[0]
        key = next((k for k in (f"{family}_lora", f"{family}_lora_cw", arm, arm.removesuffix("_cw"),
                                f"{family}_full", f"{family}_full_cw") if k in models), None)
        if key is None:
            continue
        merged = models[key]["variants"]["merged"]
        single = merged["single"]
        out[arm] = Served(arm=arm, measured_as=key, p95_ms=single["p95_ms"], mean_ms=single["mean_ms"],
                          samples_ms=tuple(single.get("samples_ms") or [single["mean_ms"]]),
                          examples_per_s=max(row["examples_per_s"] for row in merged["batched"]),
                          memory_mb=merged.get("memory_added_mb", merged.get("peak_memory_mb", 0.0)),
                          device=merged.get("device") or latency.get("environment", {}).get("device", "cpu"))
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
    utilisation = rate * served.mean_ms / 1000.0 / instances if instances else None
    monthly = instances * price * HOURS_PER_MONTH if instances else None
    return {"meets": instances is not None, "instances": instances, "p95_single_ms": served.p95_ms,
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
            "monthly_cost": per_run * runs, "cost_per_million": price / (3600.0 * served.examples_per_s) * 1e6}


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
Tied = Callable[[str, str], bool]


def decide(rows: list[dict], context: ContextConfig, quality: Quality, indistinguishable: Tied) -> dict:
    """Apply the module's decision rule to one context's rows."""
    feasible = [row for row in rows if row["meets"] and quality(row["arm"]) is not None]
    if not feasible:
        return {"choice": None, "decided_by": "no_arm_meets", "leader": None, "tied": [], "remaining": []}
    leader = max(feasible, key=lambda row: quality(row["arm"]))
    tied = [leader] + [row for row in feasible if row is not leader and indistinguishable(leader["arm"], row["arm"])]
    remaining, decided_by = tied, "quality" if len(tied) == 1 else None
    for breaker in context.tie_breakers:
        if decided_by:
            break
        values = {row["arm"]: _breaker_value(row, breaker) for row in remaining}
        best = min(values.values())
        close = [row for row in remaining if values[row["arm"]] <= best * (1 + TIE_TOLERANCE[breaker]) + 1e-9]
        if len(close) < len(remaining):
            remaining = close
            decided_by = breaker if len(close) == 1 else None
    choice = max(remaining, key=lambda row: quality(row["arm"]))
    return {"choice": choice["arm"], "decided_by": decided_by or "point_estimate", "leader": leader["arm"],
            "tied": [row["arm"] for row in tied], "remaining": [row["arm"] for row in remaining]}


def _breaker_value(row: dict, breaker: str) -> float:
    return {"cost": row["monthly_cost"], "p95": row.get("p95_at_rate_ms") or row["p95_ms"],
            "memory": row["memory_mb"]}[breaker]


def what_would_change(models: dict[str, Served], context: ContextConfig, deployment: DeploymentConfig,
                      quality: Quality, indistinguishable: Tied, choice: str | None) -> dict | None:
    """The nearest change of one of the context's quantities that changes the choice, or null if none within range.

    `value` is the threshold (named `value` so that its kind is read from `quantity`)."""
    nearest = None
    for quantity in QUANTITIES[context.kind]:
        base = getattr(context, quantity)
        for direction in (1, -1):
            previous = base
            for step in range(1, FLIP_STEPS + 1):
                value = base * FLIP_RANGE ** (direction * step / FLIP_STEPS)
                new = _choice_at(models, context, deployment, quality, indistinguishable, quantity, value)
                if new != choice:
                    value = _refine(models, context, deployment, quality, indistinguishable, quantity, previous,
                                    value, choice)
                    new = _choice_at(models, context, deployment, quality, indistinguishable, quantity, value)
                    distance = abs(math.log(value / base))
                    if nearest is None or distance < nearest["distance"]:
                        nearest = {"quantity": quantity, "base": base, "value": value, "new_choice": new,
                                   "direction": "up" if direction > 0 else "down", "distance": distance}
                    break
                previous = value
    return nearest


def _choice_at(models, context, deployment, quality, indistinguishable, quantity: str, value: float) -> str | None:
    if quantity in ("examples",):
        value = max(1, round(value))
    moved = context.model_copy(update={quantity: value})
    return decide(context_rows(models, moved, deployment), moved, quality, indistinguishable)["choice"]


def _refine(models, context, deployment, quality, indistinguishable, quantity: str, same: float, changed: float,
            choice: str | None) -> float:
    """Bisect (geometrically) between a value that keeps the choice and one that changes it."""
    for _ in range(6):
        middle = math.sqrt(same * changed)
        if _choice_at(models, context, deployment, quality, indistinguishable, quantity, middle) == choice:
            same = middle
        else:
            changed = middle
    return changed
