"""Whether a latency measurement is fit to decide on: one computation timed twice must read the same.

A shared machine (other jobs, thermal limits, a noisy neighbour) can slow one model's timing and not the next's, and
then a deployment decision ranks the machine's load, not the models. Three checks, each a ratio of two timings of
the same computation (slower / faster), read from `latency/latency.json`:

* `retimed`: a model's first `RETIMED_REQUESTS` single requests are timed again after its batched runs (the same
  texts, so only the machine can differ); ratio of the two medians `latency.benchmark` records
  (`first_median_ms`, `retimed_median_ms`).
* `reference`: a fixed workload (`reference_ms`: a float32 matrix product chain on the serving threads, ~10 ms, its
  fastest of `REFERENCE_REPEATS`, so a passing interrupt does not count and a sustained load does) is timed before
  the first model and after each one (`latency.bench_study`); ratio of the slowest to the fastest reading.
* `same_network`: two arms served as one network (a merged LoRA and the full fine-tune of the same model) that
  were timed separately; ratio of their single-request p50s, of their p95s (a p95 target decides on the tail), and
  of their per-example times at their fastest batch (a batch job is priced from throughput).

The measurement is fit when every ratio is at most 1 + `DRIFT_TOLERANCE`; `drift` is the largest ratio, the factor
by which any one timing may be off. With no check available (an older latency.json, one model), fitness is unknown
and the note says so.
"""

from __future__ import annotations

import time
from typing import Callable

from lorastudy.measure import deployment

DRIFT_TOLERANCE = 0.2
"""Two timings of one computation more than 20% apart: a deployment ratio (often 2-10x) survives 20%, a capacity
count (instances, busy share) near its threshold does not, so beyond it the note decides nothing on latency alone."""
RETIMED_REQUESTS = 20
REFERENCE_SIZE, REFERENCE_REPEATS = 512, 30
"""Four 512 x 512 products (~1 GFLOP, ~10 ms on 2 cores): long enough that timer and scheduler noise stay small."""


def reference_ms() -> float:
    """Fastest time of a fixed float32 matrix product chain (CPU, the serving threads): the machine's own speed.

    The fastest of the repeats, as timeit advises: a median of sub-millisecond timings on a shared VM moved 2x on an
    idle machine, while the fastest moves only when the machine is slower for the whole reading."""
    import torch

    a = torch.randn(REFERENCE_SIZE, REFERENCE_SIZE, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(REFERENCE_REPEATS):
        start = time.perf_counter()
        for _ in range(4):
            a @ a
        times.append((time.perf_counter() - start) * 1000.0)
    return float(min(times))


def same_network_pairs(models: dict) -> list[tuple[str, str]]:
    """Pairs of timed arms that serve as one network: a LoRA arm (merged) and the full fine-tune of its model."""
    return [(f"{family}_lora", f"{family}_full") for family in ("encoder", "decoder")
            if f"{family}_lora" in models and f"{family}_full" in models]


def _fastest_batch(model: dict) -> tuple[int, dict] | None:
    """The batched row with the highest throughput (the one a batch context is priced from), with its index."""
    rows = model.get("variants", {}).get("merged", {}).get("batched") or []
    found = [(i, row) for i, row in enumerate(rows) if row.get("ms_per_example")]
    return max(found, key=lambda pair: pair[1].get("examples_per_s") or 0.0) if found else None


def fitness(latency: dict | None, tolerance: float = DRIFT_TOLERANCE) -> dict:
    """The checks above over one latency document: {"fit": True/False/None, "drift", "tolerance", "checks", "worst"}."""
    models = (latency or {}).get("models", {})
    checks = []
    for arm, entry in models.items():
        single = entry.get("variants", {}).get("merged", {}).get("single", {})
        first, again = single.get("first_median_ms"), single.get("retimed_median_ms")
        if first and again:
            base = f"latency/latency.json#/models/{arm}/variants/merged/single/"
            checks.append({"kind": "retimed", "subjects": [arm], "ratio": max(first, again) / min(first, again),
                           "values": [first, again], "paths": [base + "first_median_ms", base + "retimed_median_ms"]})
    readings = (latency or {}).get("reference_ms") or []
    if len(readings) >= 2 and min(readings) > 0:
        checks.append({"kind": "reference", "subjects": [], "ratio": max(readings) / min(readings),
                       "values": [min(readings), max(readings)],
                       "paths": [f"latency/latency.json#/reference_ms/{readings.index(v)}"
                                 for v in (min(readings), max(readings))]})
    for lora, full in same_network_pairs(models):
        for percentile in ("p50", "p95"):  # a p95-decided context needs the tail fit as well as the median
            values = [models[arm]["variants"]["merged"]["single"].get(f"{percentile}_ms") or 0.0 for arm in (lora, full)]
            if min(values) > 0:
                checks.append({"kind": "same_network", "percentile": percentile, "subjects": [lora, full],
                               "ratio": max(values) / min(values), "values": values,
                               "paths": [f"latency/latency.json#/models/{arm}/variants/merged/single/{percentile}_ms"
                                         for arm in (lora, full)]})
        fastest = [_fastest_batch(models[arm]) for arm in (lora, full)]  # a batch job is priced from throughput
        if all(fastest):
            values = [row["ms_per_example"] for _, row in fastest]
            checks.append({"kind": "same_network", "percentile": "batched per-example time", "subjects": [lora, full],
                           "ratio": max(values) / min(values), "values": values,
                           "paths": [f"latency/latency.json#/models/{arm}/variants/merged/batched/{index}/ms_per_example"
                                     for arm, (index, _) in zip((lora, full), fastest)]})
    if not checks:
        return {"fit": None, "drift": None, "tolerance": tolerance, "checks": [], "worst": None}
    worst = max(checks, key=lambda check: check["ratio"])
    return {"fit": worst["ratio"] <= 1.0 + tolerance, "drift": worst["ratio"], "tolerance": tolerance,
            "checks": checks, "worst": worst}


def drift_alternatives(models: dict, context, config, evidence, choice: str | None, drift: float) -> list[str | None]:
    """The other choices the rule makes when the timings are off by up to `drift` (timing_fitness): every arm
    slower, every arm faster, and the choice slower while every other measurement is faster. Empty: the choice
    holds under the measured drift."""
    chosen = models[choice].measured_as if choice in models else None

    def choice_with(factor: Callable) -> str | None:
        moved = {arm: deployment.faster_by(served, factor(served)) for arm, served in models.items()}
        return deployment.decide(deployment.context_rows(moved, context, config), context, config, evidence)["choice"]

    found = {choice_with(lambda s: 1 / drift), choice_with(lambda s: drift)}
    if chosen:
        found.add(choice_with(lambda s: 1 / drift if s.measured_as == chosen else drift))
    return sorted(found - {choice}, key=str)
