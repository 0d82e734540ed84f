"""The cost model and the per-context decision rule, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lorastudy.measure import deployment
from lorastudy.study.config import ContextConfig, DeploymentConfig
from lorastudy.measure.deployment import Served
from lorastudy.core.errors import StudyError

PRICES = DeploymentConfig(price_per_hour={"cpu": 0.1})


def served(arm: str, mean_ms: float, examples_per_s: float = 500.0, spread: float = 0.0, memory: float = 100.0,
           device: str = "cpu") -> Served:
    samples = tuple(np.linspace(mean_ms * (1 - spread), mean_ms * (1 + spread), 50))
    return Served(arm=arm, measured_as=arm, p95_ms=float(np.percentile(samples, 95)), mean_ms=float(np.mean(samples)),
                  samples_ms=samples, examples_per_s=examples_per_s, memory_mb=memory, device=device)


def realtime(**extra) -> ContextConfig:
    return ContextConfig(**{"name": "rt", "kind": "realtime", "p95_sla_ms": 100, "peak_rps": 20,
                            "monthly_predictions": 2_000_000, "primary_metric": "accuracy", **extra})


def test_queue_p95_exceeds_the_isolated_p95_as_utilisation_rises():
    fast = served("a", 10.0)
    light = deployment.simulated_p95_ms(fast.samples_ms, 10.0, 1)   # utilisation 0.1
    heavy = deployment.simulated_p95_ms(fast.samples_ms, 90.0, 1)   # utilisation 0.9
    assert 10.0 <= light < 20.0 < heavy
    # M/D/1 at rho 0.9: mean wait rho*S/(2(1-rho)) = 45 ms, so the p95 response is far above one request's 10 ms
    assert heavy > 10.0 + 45.0
    assert deployment.simulated_p95_ms(fast.samples_ms, 100.0, 1) == math.inf  # saturated
    assert deployment.simulated_p95_ms(fast.samples_ms, 150.0, 2) < heavy       # two instances share the load


def test_realtime_row_adds_instances_until_the_p95_at_rate_meets_the_sla():
    row = deployment.realtime_row(served("dec", 60.0), realtime(), 0.1)  # 20 req/s x 60 ms = 1.2 busy instances
    assert row["meets"] and row["instances"] >= 2 and row["p95_at_rate_ms"] <= 100
    assert row["utilisation"] == pytest.approx(20 * 0.060 / row["instances"])
    assert row["headroom"] == pytest.approx(1 - row["utilisation"])
    assert row["monthly_cost"] == pytest.approx(row["instances"] * 0.1 * 730)
    assert row["cost_per_million"] == pytest.approx(row["monthly_cost"] / 2_000_000 * 1e6)
    slow = deployment.realtime_row(served("slow", 150.0), realtime(), 0.1)  # one request alone misses the SLA
    assert not slow["meets"] and slow["instances"] is None and slow["monthly_cost"] is None


def test_batch_row_rounds_instances_up_and_bills_time():
    context = ContextConfig(name="b", kind="batch", examples=64_000, window_minutes=60, monthly_predictions=64_000 * 30)
    row = deployment.batch_row(served("m", 10.0, examples_per_s=10.0), context, 0.1)
    assert row["time_s"] == pytest.approx(6400.0) and row["instances"] == 2
    assert row["headroom"] == pytest.approx(1 - 6400 / 7200)
    assert row["cost_per_run"] == pytest.approx(0.1 * 6400 / 3600) and row["runs_per_month"] == 30
    assert row["monthly_cost"] == pytest.approx(30 * 0.1 * 6400 / 3600)
    audit = ContextConfig(name="a", kind="audit", examples=1000, window_minutes=10)
    assert deployment.batch_row(served("m", 10.0), audit, 0.1)["runs_per_month"] == 1


def test_arms_of_one_family_serve_as_one_measurement_and_prices_follow_the_device():
    latency = {"models": {"encoder_lora": {"variants": {"merged": {
        "single": {"p95_ms": 12.0, "mean_ms": 10.0, "samples_ms": [9.0, 10.0, 11.0]},
        "batched": [{"examples_per_s": 300.0}, {"examples_per_s": 500.0}], "memory_added_mb": 80.0,
        "device": "mps"}}}}}
    latency["models"]["encoder_full"] = {"variants": {"merged": {
        "single": {"p95_ms": 13.0, "mean_ms": 11.0}, "batched": [{"examples_per_s": 480.0}], "device": "mps"}}}
    models = deployment.served_models(latency, ["encoder_full", "encoder_lora", "encoder_lora_cw", "decoder_lora"])
    assert set(models) == {"encoder_full", "encoder_lora", "encoder_lora_cw"}  # the decoder was never measured
    assert models["encoder_lora_cw"].measured_as == "encoder_lora" and models["encoder_lora"].examples_per_s == 500
    # a merged LoRA and a full fine-tune of one model are one computation: one measurement serves both
    assert models["encoder_full"].measured_as == "encoder_lora" and models["encoder_full"].p95_ms == 12.0
    with pytest.raises(StudyError, match="price_per_hour.mps"):
        deployment.context_rows(models, realtime(), PRICES)


QUALITY = {"enc": 0.70, "enc_cw": 0.71, "dec": 0.74}


def rule(tied_pairs=()):
    def indistinguishable(a, b):
        return {a, b} in [set(p) for p in tied_pairs]
    return QUALITY.get, indistinguishable


def test_a_clear_quality_lead_decides_even_at_a_higher_cost():
    models = {"enc": served("enc", 10.0), "dec": served("dec", 60.0)}
    quality, tied = rule()
    rows = deployment.context_rows(models, realtime(), PRICES)
    decision = deployment.decide(rows, realtime(), quality, tied)
    assert decision["choice"] == "dec" and decision["decided_by"] == "quality"


def test_a_quality_tie_goes_to_cost_and_an_equal_cost_never_decides():
    models = {"enc": served("enc", 10.0), "dec": served("dec", 60.0)}
    quality, tied = rule([("dec", "enc")])
    decision = deployment.decide(deployment.context_rows(models, realtime(), PRICES), realtime(), quality, tied)
    assert decision["choice"] == "enc" and decision["decided_by"] == "cost"  # 1 instance vs 2
    # the same cost (one instance each at a low rate): p95 decides, not cost
    calm = realtime(peak_rps=1)
    decision = deployment.decide(deployment.context_rows(models, calm, PRICES), calm, quality, tied)
    assert decision["choice"] == "enc" and decision["decided_by"] == "p95"
    # equal in everything: the higher point estimate, and the decision says so
    twins = {"enc": served("enc", 10.0), "enc_cw": served("enc_cw", 10.0)}
    quality, tied = rule([("enc_cw", "enc")])
    decision = deployment.decide(deployment.context_rows(twins, calm, PRICES), calm, quality, tied)
    assert decision["choice"] == "enc_cw" and decision["decided_by"] == "point_estimate"


def test_an_arm_that_misses_the_sla_is_never_chosen_and_the_flip_is_computed():
    models = {"enc": served("enc", 10.0), "dec": served("dec", 60.0, spread=0.5)}
    quality, tied = rule()
    tight = realtime(p95_sla_ms=70)  # the decoder's single p95 is ~87 ms
    decision = deployment.decide(deployment.context_rows(models, tight, PRICES), tight, quality, tied)
    assert decision["choice"] == "enc"
    flip = deployment.what_would_change(models, tight, PRICES, quality, tied, "enc")
    assert flip["quantity"] == "p95_sla_ms" and flip["direction"] == "up" and flip["new_choice"] == "dec"
    assert 80 < flip["value"] < 100  # just above the decoder's p95 at this rate
    nothing = deployment.decide(deployment.context_rows(models, realtime(p95_sla_ms=5), PRICES),
                                realtime(p95_sla_ms=5), quality, tied)
    assert nothing["choice"] is None and nothing["decided_by"] == "no_arm_meets"
