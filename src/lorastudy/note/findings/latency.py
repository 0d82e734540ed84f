"""Section 4's timing facts: the measured encoder/decoder ratios, whether the timings are fit to decide on, and
what one network served as two arms shows (its two timings, its memory baseline)."""

from __future__ import annotations

from lorastudy.measure import deployment, timing_fitness
from lorastudy.note.findings.base import DEC, ENC, LATENCY, Finding, Quantity, Source
from lorastudy.study.config import ARMS


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


MEMORY_AGREE = 0.05
"""Two peaks (or two additions) of resident memory within 5% of each other read as the same."""


def memory_baseline_findings(src: Source) -> list[Finding]:
    """One network served as two arms whose "memory added" differs while their peaks agree: the later one was
    loaded into a process that already held more (what the earlier model left allocated), so the difference is the
    baseline, not the model, and the decision prices both as one network."""
    models = (src.latency or {}).get("models", {})
    out = []
    for lora, full in timing_fitness.same_network_pairs(models):
        merged = {arm: models[arm]["variants"]["merged"] for arm in (lora, full)}
        if any(m.get("memory_added_mb") is None or m.get("memory_before_load_mb") is None or
               not m.get("peak_memory_mb") for m in merged.values()):
            continue
        added = [merged[arm]["memory_added_mb"] for arm in (lora, full)]
        peaks = [merged[arm]["peak_memory_mb"] for arm in (lora, full)]
        if max(peaks) > (1 + MEMORY_AGREE) * min(peaks) or max(added) <= (1 + MEMORY_AGREE) * min(added):
            continue
        quantities = [Quantity(name=f"{arm}.{key}", value=merged[arm][key],
                               path=f"{LATENCY}#/models/{arm}/variants/merged/{key}")
                      for arm in (lora, full) for key in ("memory_added_mb", "memory_before_load_mb", "peak_memory_mb")]
        out.append(Finding(id=f"latency.memory_baseline.{lora}", kind="latency", section=4,
                           test=f"peaks within {MEMORY_AGREE:.0%} while memory added differs by more",
                           verdict="baseline_differs", subjects=[full, lora], quantities=quantities, facts={}))
    return out


def _single_attention(src: Source, arms: list[str]) -> list[str] | None:
    """The attention kernels the arms' single requests ran with, when they differ: then "one network" was two
    computations, and part of a timing gap may be the kernel, not the machine."""
    models = (src.latency or {}).get("models", {})
    kernels = [((models.get(arm, {}).get("variants", {}).get("merged", {}).get("attention") or {}).get("single"))
               for arm in arms]
    return kernels if all(kernels) and len(set(kernels)) > 1 else None


def fitness_finding(src: Source) -> Finding | None:
    """Whether the timings are fit to decide on (`measure.timing_fitness`): the worst of the repeated timings of one
    computation, against the tolerance."""
    fit = timing_fitness.fitness(src.latency)
    if fit["fit"] is None:
        return None
    worst = fit["worst"]
    slower, faster = max(worst["values"]), min(worst["values"])
    at = dict(zip(worst["values"], worst["paths"]))  # each printed timing's own pointer, so check traces it
    quantities = [Quantity(name=f"{worst['kind']}.slower_ms", value=slower, path=at[slower]),
                  Quantity(name=f"{worst['kind']}.faster_ms", value=faster, path=at[faster]),
                  Quantity(name=f"{worst['kind']}.drift_ratio", value=worst["ratio"], path="slower_ms / faster_ms")]
    return Finding(id="latency.fitness", kind="latency", section=4,
                   test=f"every pair of timings of one computation within 1 + {fit['tolerance']:g} of each other "
                        "(re-timed requests, a reference workload between models, arms served as one network)",
                   verdict="fit" if fit["fit"] else "unfit", subjects=list(worst["subjects"]), quantities=quantities,
                   facts={"drift": fit["drift"], "tolerance": fit["tolerance"], "worst_kind": worst["kind"],
                          "tolerance_ratio": 1.0 + fit["tolerance"],
                          "only_same_network": {check["kind"] for check in fit["checks"]} == {"same_network"},
                          "percentile": worst.get("percentile"),
                          "attention": _single_attention(src, worst["subjects"]) if worst["kind"] == "same_network"
                          else None,
                          "checks": [check["kind"] for check in fit["checks"]], "n_checks": len(fit["checks"])})
