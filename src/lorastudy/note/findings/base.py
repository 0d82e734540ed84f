"""Shared types of the findings and the reader of the artifacts they rest on.

A `Finding` names its kind, the quantities it rests on (with the artifact path each was
read from), the test that decides it and the verdict; a section's `Verdicts` hold the calls
the note makes from several findings or from comparing numbers; `Source` reads
results.json and latency.json keeping the path of every value it takes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lorastudy.study.config import StudyConfig

ENC, DEC = "encoder_lora", "decoder_lora"
WEIGHTED = {"encoder_full": "encoder_full_cw", "encoder_lora": "encoder_lora_cw", "decoder_lora": "decoder_lora_cw"}
RESULTS, LATENCY = "evaluation/results.json", "latency/latency.json"


class Quantity(BaseModel):
    name: str
    value: float | None
    path: str


class Finding(BaseModel):
    id: str
    kind: Literal["data", "level", "difference", "effect", "decomposition", "mechanism", "tiers", "confusion",
                  "latency", "decision", "bottleneck", "prediction", "uncertainty"]
    section: int
    test: str
    verdict: str
    subjects: list[str] = Field(default_factory=list)
    quantities: list[Quantity] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)

    def q(self, name: str) -> float | None:
        return next(q.value for q in self.quantities if q.name == name)


class Verdicts(BaseModel):
    """A section's calls that combine findings or compare their numbers, made once so the template only words them.

    Each field's docstring says what it decides and why the note needs it decided."""

    model_config = ConfigDict(use_attribute_docstrings=True)


# --- reading artifacts with their paths --------------------------------------------


class Source:
    """results.json and latency.json, read with the path of every value taken."""

    def __init__(self, results: dict, latency: dict | None, config: StudyConfig):
        self.results, self.latency, self.config = results, latency, config
        self.per_class: dict[str, list[dict]] = {}  # run -> its per-class rows (evaluation/per_class), where read
        self.rare = results["data"]["tier_names"][0]
        self.tiers = results["data"]["tier_names"]
        several_seeds = results.get("uncertainty", {}).get("n_seeds", 1) > 1
        self.source = "test_and_seeds" if several_seeds else "test_resampling"

    def has(self, arm: str) -> bool:
        return arm in self.results["arms"]

    def value(self, name: str, *keys: Any) -> Quantity:
        node: Any = self.results
        for key in keys:
            node = node[key] if node is not None else None
        return Quantity(name=name, value=node, path=RESULTS + "#/" + "/".join(str(k) for k in keys))

    def first_run(self, arm: str) -> str:
        return f"{arm}__seed{self.results['arms'][arm]['seeds'][0]}"

    def source_of(self, interval: dict | None) -> str:
        """Where one interval came from: test resampling, or that and seeds (uncertainty.Uncertainty)."""
        return (interval or {}).get("source", self.source)

    def comparison(self, a: str, b: str, metric: str) -> tuple[dict, list[Quantity], int] | None:
        """b - a with its interval, whichever way round evaluation stored it; sign = +1 when stored as b - a."""
        for index, row in enumerate(self.results.get("comparisons", [])):
            if row["metric"] == metric and {row["a"], row["b"]} == {a, b}:
                sign = 1 if row["b"] == b else -1
                lo, hi = sorted(sign * x for x in row["ci"])
                path = f"{RESULTS}#/comparisons/{index}"
                quantities = [Quantity(name="diff", value=sign * row["diff"], path=path + "/diff"),
                              Quantity(name="diff_lo", value=lo, path=path + "/ci/0"),
                              Quantity(name="diff_hi", value=hi, path=path + "/ci/1")]
                return {"metric": metric, "diff": sign * row["diff"], "ci": [lo, hi],
                        "distinguishable": row["distinguishable"], "source": self.source_of(row)}, \
                    quantities, sign
        return None


def difference_verdict(row: dict) -> str:
    if not row["distinguishable"]:
        return "not_distinguishable"
    return "b_higher" if row["diff"] > 0 else "a_higher"



NARROW = 0.05
"""A clear interval whose nearer end lies within this share of its width from zero: clear, but narrowly."""


def narrowly_clear(ci: list[float]) -> bool:
    """The interval excludes zero by less than NARROW of its width: one more seed could move it back across."""
    lo, hi = ci
    return (lo > 0 or hi < 0) and min(abs(lo), abs(hi)) < NARROW * (hi - lo)


def interval_test(source: str) -> str:
    return {"test_resampling": "95% interval of the paired difference excludes 0 (bootstrap over test examples, "
                               "one training seed)",
            "test_and_seeds": "95% interval excludes 0 (bootstrap over test examples of the seed means, its "
                              "half-widths widened in quadrature by the t-interval over the shared seeds)"}[source]



def has_tail(src: Source) -> bool:
    """At least two tiers with classes in them: otherwise there is no rare tier to speak of."""
    sizes = src.results["data"]["tier_sizes"]
    return sum(1 for tier in src.tiers if sizes.get(tier, 0) > 0) >= 2


def one_run_arms(src: Source, arms: list[str]) -> list[str]:
    """The arms of a difference that trained one seed while some arm of the study trained several: their training
    variance is in no interval, so a difference called clear holds for that one training run."""
    if src.source != "test_and_seeds":
        return []
    return [arm for arm in arms if src.has(arm) and src.results["arms"][arm].get("n_seeds", 1) == 1]


def seed_bound(row: dict) -> dict | None:
    """How much of a several-seed interval is run-to-run variation: the Student-t half-width over the seed-paired
    values against the half-width the test bootstrap leaves (the interval widens the two in quadrature). None with
    fewer than two seed values."""
    import math
    from statistics import stdev

    from scipy.stats import t as student_t

    values = row.get("seed_values") or []
    if len(values) < 2:
        return None
    seeds_half = float(student_t.ppf(0.975, len(values) - 1) * stdev(values) / math.sqrt(len(values)))
    lo, hi = row["ci"]
    half = (hi - lo) / 2
    test_half = math.sqrt(max(half * half - seeds_half * seeds_half, 0.0))
    return {"seeds_half_width": seeds_half, "test_half_width": test_half, "dof": len(values) - 1,
            "seeds_dominate": bool(seeds_half > test_half)}



PROBE_KEYS = ("test_macro_f1_gain", "test_macro_f1_before", "test_macro_f1_after", "rare_recall_before",
              "rare_recall_after", "tau")


def probe_over_seeds(src: Source, arm: str) -> dict | None:
    """The post-hoc logit-adjustment probe of one arm as one number wherever the note cites it: each reading, and
    each end of the gain's test-bootstrap interval, the mean over the arm's seeds. None when no seed has a probe."""
    from statistics import mean

    probes = [p for seed in src.results["arms"][arm]["seeds"]
              if (p := src.results.get("logit_adjustment", {}).get(f"{arm}__seed{seed}"))]
    if not probes:
        return None
    out = {key: (mean(values) if len(values := [p[key] for p in probes if p.get(key) is not None]) == len(probes)
                 else None) for key in PROBE_KEYS}
    cis = [p["test_gain_ci"]["macro_f1"] for p in probes if (p.get("test_gain_ci") or {}).get("macro_f1")]
    return {**out, "taus": sorted({p["tau"] for p in probes}), "n_seeds": len(probes),
            "ci": [mean(lo for lo, _ in cis), mean(hi for _, hi in cis)] if len(cis) == len(probes) else None,
            "path": f"results.json logit_adjustment.{arm}__seed*, mean over {len(probes)} seed(s)"}


def pooled_tier_precision(src: Source, arm: str, tier: str) -> dict | None:
    """How often an arm's predictions of a tier's classes were right: correct / predicted, counted over its seeds'
    test predictions (predicted = predicted share x test examples; correct = recall x true share x test
    examples), with a 95% Wilson interval on one seed's worth of predictions (the seeds predict the same test
    examples, so pooling them is not more evidence)."""
    total = src.results["data"]["n_test_examples"]
    correct = predicted = 0
    seeds = src.results["arms"][arm]["seeds"]
    for seed in seeds:
        row = ((src.results["runs"].get(f"{arm}__seed{seed}") or {}).get("test") or {}).get("per_tier", {}).get(tier)
        if not row or row.get("recall") is None:
            return None
        correct += round(row["recall"] * row["true_share"] * total)
        predicted += round(row["predicted_share"] * total)
    if not predicted:
        return None
    return {"precision": correct / predicted, "correct": correct, "predicted": predicted, "n_seeds": len(seeds),
            "ci": wilson(correct / len(seeds), predicted / len(seeds))}


def wilson(successes: float, trials: float, z: float = 1.959964) -> list[float]:
    """The 95% Wilson score interval of a proportion (stays inside [0, 1] and is sound for few trials)."""
    import math

    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [max(0.0, centre - half), min(1.0, centre + half)]
