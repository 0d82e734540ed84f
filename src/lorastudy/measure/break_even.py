"""What would change a deployment choice (issue #30): the rule of `deployment.decide` re-run with one thing moved.

Encoder LoRA or decoder LoRA (`family_answer`): the same rule over the LoRA arms alone; the break-even for
the other family is the smallest quality gain on the metric (`quality_gain`) and the smallest serving speed-up
(`speedup`, latency divided and throughput multiplied) that would make one of its arms the choice.
What would change it: each quantity the context fixes (arrival rate and SLA, or volume and window) is moved up
and down by factors of up to FLIP_RANGE, the rule re-run, and the nearest value at which the choice changes is reported; and the
gain the best other arm that meets the target would need to become the choice (`runner_up_gain`); and,
when a better arm misses the target, the speed-up (up to SPEEDUP_RANGE) that would make it the choice
(`better_if_faster`): what the target costs in quality, and what would recover it.
"""

from __future__ import annotations

import math
from typing import Callable

from lorastudy.measure.deployment import Evidence, Served, context_rows, decide, faster_by
from lorastudy.study.config import LORA_ARMS, ContextConfig, DeploymentConfig

FLIP_RANGE = 16.0
FLIP_STEPS = 8  # per direction, geometric (factors of sqrt(2))
QUANTITIES = {"realtime": ("peak_rps", "p95_sla_ms"), "batch": ("examples", "window_minutes"),
              "audit": ("examples", "window_minutes")}

MAX_GAIN = 0.5  # the largest quality gain searched (points on the metric, 0.5 = 50 points)
SPEEDUP_RANGE = 100.0  # the largest speed-up searched for a better arm that misses the target (a GPU, a new runtime)


def what_would_change(models: dict[str, Served], context: ContextConfig, deployment: DeploymentConfig,
                      evidence: Evidence, choice: str | None) -> dict | None:
    """The nearest change of one of the context's quantities that changes the choice, or null if none within range.

    `value` is the threshold (named `value` so that its kind is read from `quantity`)."""
    nearest = None
    for quantity in QUANTITIES[context.kind]:
        base = getattr(context, quantity)

        def choice_at(value: float, quantity: str = quantity) -> str | None:
            return _choice_at(models, context, deployment, evidence, quantity, value)

        for direction in (1, -1):
            found = _geometric_search(choice_at, base, direction, lambda new: new != choice)
            if found is None:
                continue
            value, new = found
            distance = abs(math.log(value / base))
            # a change that leaves no arm at all says less than one that brings another arm in: it counts only
            # when no change within range brings an arm in
            if nearest is None or (new is not None, -distance) > (nearest["new_choice"] is not None,
                                                                   -nearest["distance"]):
                nearest = {"quantity": quantity, "base": base, "value": value, "new_choice": new,
                           "direction": "up" if direction > 0 else "down", "distance": distance}
    return nearest


def _choice_at(models, context, deployment, evidence, quantity: str, value: float) -> str | None:
    if quantity in ("examples",):
        value = max(1, round(value))
    moved = context.model_copy(update={quantity: value})
    return decide(context_rows(models, moved, deployment), moved, deployment, evidence)["choice"]


def _geometric_search(choice_at: Callable[[float], "str | None"], base: float, direction: int,
                      wanted: Callable[["str | None"], bool], limit: float = FLIP_RANGE,
                      steps: int = FLIP_STEPS) -> tuple[float, "str | None"] | None:
    """The value nearest to `base` (within a factor `limit`, one direction) at which `wanted(choice_at(value))` holds."""
    previous = base
    for step in range(1, steps + 1):
        value = base * limit ** (direction * step / steps)
        if wanted(choice_at(value)):
            same, changed = previous, value
            for _ in range(6):  # bisect geometrically between a value that keeps the choice and one that changes it
                middle = math.sqrt(same * changed)
                if wanted(choice_at(middle)):
                    changed = middle
                else:
                    same = middle
            return changed, choice_at(changed)
        previous = value
    return None


def quality_gain(rows: list[dict], context: ContextConfig, deployment: DeploymentConfig, evidence: Evidence,
                 arms: list[str]) -> dict | None:
    """The smallest gain on the metric, for `arms` together, that makes one of them the choice (to 0.1 point);
    None when no gain up to MAX_GAIN (or up to a perfect score) does, e.g. because they miss the target."""
    lifted = frozenset(arms)
    levels = [evidence.quality(arm) for arm in arms if evidence.quality(arm) is not None]
    if not levels:
        return None
    top = min(MAX_GAIN, 1.0 - min(levels))

    def choice_at(gain: float) -> str | None:
        return decide(rows, context, deployment, evidence.lifted(lifted, gain))["choice"]

    if choice_at(0.0) in lifted:
        return {"gain": 0.0, "arm": choice_at(0.0)}
    if top <= 0 or choice_at(top) not in lifted:
        return None
    low, high = 0.0, top
    while high - low > 0.0005:
        middle = (low + high) / 2
        if choice_at(middle) in lifted:
            high = middle
        else:
            low = middle
    arm = choice_at(high)
    return {"gain": high, "arm": arm, "quality_after": evidence.quality(arm) + high}


def speedup(models: dict[str, Served], context: ContextConfig, deployment: DeploymentConfig, evidence: Evidence,
            arms: list[str], limit: float = FLIP_RANGE, steps: int = FLIP_STEPS) -> dict | None:
    """The smallest speed-up of `arms`' serving (latency divided, throughput multiplied; within `limit`) that
    makes one of them the choice; None when none does (a quality gap no speed closes)."""
    def choice_at(factor: float) -> str | None:
        faster = {arm: (faster_by(served, factor) if arm in arms else served) for arm, served in models.items()}
        return decide(context_rows(faster, context, deployment), context, deployment, evidence)["choice"]

    found = _geometric_search(choice_at, 1.0, 1, lambda new: new in arms, limit, steps)
    if found is None:
        return None
    factor, arm = found
    return {"factor": factor, "arm": arm, "mean_ms": models[arm].mean_ms / factor,
            "examples_per_s": models[arm].examples_per_s * factor}


def family_answer(models: dict[str, Served], context: ContextConfig, deployment: DeploymentConfig,
                  evidence: Evidence) -> dict | None:
    """Encoder LoRA or decoder LoRA: the rule applied to the LoRA arms alone, and what would make the other family
    the choice (a quality gain on the metric, or a serving speed-up). None unless both families have a LoRA arm."""
    lora = {arm: served for arm, served in models.items() if arm in LORA_ARMS}
    families = {family: [arm for arm in lora if arm.startswith(family)] for family in ("encoder", "decoder")}
    if not all(families.values()):
        return None
    rows = context_rows(lora, context, deployment)
    decision = decide(rows, context, deployment, evidence)
    if decision["choice"] is None:  # neither family meets the target: how much faster each would have to serve
        faster = {family: speedup(lora, context, deployment, evidence, arms, SPEEDUP_RANGE, 16)
                  for family, arms in families.items()}
        return {"family": None, "choice": None, "decided_by": decision["decided_by"], "other": None,
                "gain": None, "speedup": None, "each_speedup": faster, "rows": rows}
    family = decision["choice"].split("_")[0]
    other = "decoder" if family == "encoder" else "encoder"
    return {"family": family, "choice": decision["choice"], "decided_by": decision["decided_by"], "other": other,
            "gain": quality_gain(rows, context, deployment, evidence, families[other]),
            "speedup": speedup(lora, context, deployment, evidence, families[other]), "rows": rows}


def better_if_faster(models: dict[str, Served], rows: list[dict], context: ContextConfig,
                     deployment: DeploymentConfig, evidence: Evidence, choice: str | None) -> dict | None:
    """The best arm on the metric that misses the target, if it is better than the choice, and the speed-up (up to
    SPEEDUP_RANGE) at which it would be chosen: what the target costs in quality, and what would recover it."""
    chosen = evidence.quality(choice) if choice else None
    missing = [row["arm"] for row in rows if not row["meets"] and evidence.quality(row["arm"]) is not None
               and (chosen is None or evidence.quality(row["arm"]) > chosen)]
    if not missing:
        return None
    best = max(missing, key=evidence.quality)
    found = speedup(models, context, deployment, evidence, [best], SPEEDUP_RANGE, 16)
    return {"arm": best, "quality": evidence.quality(best), **(found or {"factor": None})}


def runner_up_gain(rows: list[dict], context: ContextConfig, deployment: DeploymentConfig, evidence: Evidence,
                   choice: str | None) -> dict | None:
    """What quality result would change the choice: the gain the best other arm that meets the target needs."""
    others = [row["arm"] for row in rows if row["meets"] and row["arm"] != choice
              and evidence.quality(row["arm"]) is not None]
    if choice is None or not others:
        return None
    runner = max(others, key=evidence.quality)
    found = quality_gain(rows, context, deployment, evidence, [runner])
    return {"arm": runner, "quality": evidence.quality(runner), **(found or {"gain": None})}
