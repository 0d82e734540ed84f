"""The cost model and the per-context decision rule, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lorastudy.measure import break_even, deployment
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
    # a merged LoRA and a full fine-tune of one model are one computation, priced alike from the slower timing on
    # each measure: single requests from the full fine-tune's (11 ms mean), throughput the lower (480/s), memory
    # the higher
    for arm in ("encoder_full", "encoder_lora", "encoder_lora_cw"):
        assert models[arm].measured_as == "encoder_full" and models[arm].p95_ms == 13.0
        assert models[arm].examples_per_s == 480 and models[arm].memory_mb == 80.0
    with pytest.raises(StudyError, match="price_per_hour.mps"):
        deployment.context_rows(models, realtime(), PRICES)


QUALITY = {"enc": 0.70, "enc_cw": 0.71, "dec": 0.74}


def evidence(quality: dict, pairs: dict | None = None, metric: str = "accuracy", width: float = 0.05):
    """Point estimates, and per pair (a, b) the interval of b - a: given, or the difference of the point
    estimates +- width (so a gap of more than `width` is clear)."""
    pairs = pairs or {}

    def difference(a, b):
        if (a, b) in pairs:
            return pairs[(a, b)]
        if (b, a) in pairs:
            diff, lo, hi = pairs[(b, a)]
            return -diff, -hi, -lo
        if a not in quality or b not in quality:
            return None
        diff = quality[b] - quality[a]
        return diff, diff - width, diff + width
    return deployment.Evidence(metric, quality.get, difference)


def rule(tied_pairs=(), quality=None):
    """The old helper's meaning: a listed pair is not distinguishable (a wide interval), any other pair is clear."""
    quality = quality or QUALITY
    pairs = {}
    for a, b in tied_pairs:
        diff = quality[b] - quality[a]
        pairs[(a, b)] = (diff, diff - 0.2, diff + 0.2)
    return evidence(quality, pairs, width=abs(0.001))


LOOSE = {"max_drop": 1.0, "min_share": 0.0}  # no quality floor: the other rules alone


def decide(models, context, ev, prices=PRICES):
    return deployment.decide(deployment.context_rows(models, context, prices), context, prices, ev)


def test_a_clear_quality_lead_decides_even_at_a_higher_cost():
    models = {"enc": served("enc", 10.0), "dec": served("dec", 60.0)}
    decision = decide(models, realtime(), rule())
    assert decision["choice"] == "dec" and decision["decided_by"] == "quality"


def test_a_quality_tie_goes_to_a_material_cost_and_an_equal_cost_never_decides():
    models = {"enc": served("enc", 10.0), "dec": served("dec", 60.0)}
    context = realtime(quality_floor=LOOSE)
    decision = decide(models, context, rule([("dec", "enc")]))
    assert decision["choice"] == "enc" and decision["decided_by"] == "cost"  # 1 instance vs 3
    assert decision["saving"] >= 73.0 and decision["ranking"] == "unranked"  # at least one always-on instance
    # the same cost (one instance each at a low rate): p95 decides, not cost
    calm = realtime(peak_rps=1, quality_floor=LOOSE)
    decision = decide(models, calm, rule([("dec", "enc")]))
    assert decision["choice"] == "enc" and decision["decided_by"] == "p95"
    # equal in everything: the higher point estimate, and the decision says so
    twins = {"enc": served("enc", 10.0), "enc_cw": served("enc_cw", 10.0)}
    decision = decide(twins, calm, rule([("enc_cw", "enc")]))
    assert decision["choice"] == "enc_cw" and decision["decided_by"] == "point_estimate"


def audit(**extra) -> ContextConfig:
    return ContextConfig(**{"name": "audit", "kind": "audit", "primary_metric": "rare_recall", "examples": 117_659,
                            "window_minutes": 1440, "monthly_predictions": 117_659, **extra})


def test_the_quality_floor_excludes_a_cheap_bad_arm():
    """Issue #30: TF-IDF at 6.3% rare recall must not win over 25.9% because it costs a fraction of a cent less."""
    models = {"tfidf": served("tfidf", 0.5, examples_per_s=9000.0), "enc_cw": served("enc_cw", 8.0, 480.0),
              "dec": served("dec", 60.0, 62.0)}
    quality = {"tfidf": 0.063, "enc_cw": 0.259, "dec": 0.106}
    wide = {("enc_cw", "tfidf"): (-0.196, -0.40, 0.01), ("enc_cw", "dec"): (-0.153, -0.36, 0.05)}
    decision = decide(models, audit(), evidence(quality, wide, "rare_recall"))
    assert decision["choice"] == "enc_cw" and decision["decided_by"] == "quality"
    assert decision["floor"] == pytest.approx(0.259 * 0.9)
    assert {a: decision["standing"][a]["status"] for a in ("tfidf", "dec")} == {"tfidf": "below_floor",
                                                                              "dec": "below_floor"}
    # the absolute rule binds on a large metric: 3 points below 80%, not 90% of it
    assert deployment.floor_of(realtime(), 0.80) == pytest.approx(0.77)
    assert deployment.floor_of(realtime(quality_floor={"minimum": 0.9}), 0.80) == pytest.approx(0.9)
    nothing = decide(models, audit(quality_floor={"minimum": 0.5}), evidence(quality, wide, "rare_recall"))
    assert nothing["choice"] is None and nothing["decided_by"] == "below_floor"


def test_a_cost_difference_below_materiality_never_decides():
    models = {"tfidf": served("tfidf", 0.5, examples_per_s=9000.0), "enc": served("enc", 8.0, 480.0)}
    quality = {"tfidf": 0.75, "enc": 0.76}
    unranked = {("enc", "tfidf"): (-0.01, -0.025, 0.005)}  # bounded above the 73% floor, not equivalent
    decision = decide(models, audit(primary_metric="accuracy"), evidence(quality, unranked))
    rows = {row["arm"]: row for row in deployment.context_rows(models, audit(), PRICES)}
    assert rows["tfidf"]["monthly_cost"] < rows["enc"]["monthly_cost"] < 0.01  # fractions of a cent
    assert decision["decided_by"] != "cost" and decision["cost_immaterial"]
    # ... and neither does a large relative gap that is small in dollars, nor a few dollars that are a small share
    cheap = DeploymentConfig(price_per_hour={"cpu": 0.1}, cost_materiality_usd=10.0, cost_materiality_share=0.1)
    rt = realtime(quality_floor=LOOSE, peak_rps=1)
    two = {"a": served("a", 10.0), "b": served("b", 12.0)}
    ev = evidence({"a": 0.70, "b": 0.71}, {("b", "a"): (-0.01, -0.05, 0.03)})
    assert decide(two, rt, ev, cheap)["decided_by"] != "cost"  # $73 each
    strict = cheap.model_copy(update={"cost_materiality_usd": 500.0})
    slow = {"a": served("a", 10.0), "b": served("b", 60.0)}
    assert decide(slow, realtime(quality_floor=LOOSE), ev, strict)["decided_by"] != "cost"  # 3 instances against 1: $146 < $500
    assert decide(slow, realtime(quality_floor=LOOSE), ev, cheap)["decided_by"] == "cost"


def test_each_arm_is_judged_by_its_own_interval_against_the_floor():
    """Issue #30: TF-IDF (6.3%) and decoder LoRA (10.6%) were 'tied' with the best while encoder LoRA (10.1%) was not.
    An arm stays a candidate only when its interval bounds it above the floor (non-inferiority), never on its point
    estimate alone, and never because a neighbour's interval was wider."""
    models = {arm: served(arm, 8.0, 480.0) for arm in ("best", "dec", "enc", "tfidf")}
    quality = {"best": 0.259, "dec": 0.106, "enc": 0.101, "tfidf": 0.063}
    pairs = {("best", "dec"): (-0.153, -0.31, 0.004), ("best", "enc"): (-0.158, -0.30, -0.01),
             ("best", "tfidf"): (-0.196, -0.45, 0.06)}
    decision = decide(models, audit(), evidence(quality, pairs, "rare_recall"))
    status = {arm: entry["status"] for arm, entry in decision["standing"].items()}
    assert status == {"best": "leader", "dec": "below_floor", "enc": "clearly_below", "tfidf": "below_floor"}
    assert decision["candidates"] == ["best"] and decision["choice"] == "best"
    # a point estimate under the best, but an interval that keeps it above the floor: a candidate the data cannot rank
    close = {**pairs, ("best", "dec"): (-0.01, -0.02, 0.04)}  # wider than the 3-point margin, above the floor
    quality_close = {**quality, "dec": 0.249}
    near = decide(models, audit(), evidence(quality_close, close, "rare_recall"))
    assert near["standing"]["dec"]["status"] == "unranked" and near["candidates"] == ["best", "dec"]
    # ... and a point estimate above the floor whose interval reaches under it is out, whatever the point says
    reach = {**pairs, ("best", "dec"): (-0.01, -0.04, 0.02)}
    far = decide(models, audit(), evidence(quality_close, reach, "rare_recall"))
    assert quality_close["dec"] > far["floor"] and far["standing"]["dec"]["status"] == "below_floor"


def test_equivalent_and_not_distinguishable_are_told_apart():
    models = {"a": served("a", 10.0), "b": served("b", 10.0)}
    calm = realtime(peak_rps=1)
    inside = decide(models, calm, evidence({"a": 0.760, "b": 0.758}, {("a", "b"): (-0.002, -0.008, 0.004)}))
    assert inside["standing"]["b"]["status"] == "equivalent" and inside["ranking"] == "equivalent"
    wider = decide(models, calm, evidence({"a": 0.760, "b": 0.758}, {("a", "b"): (-0.002, -0.02, 0.016)}))
    assert wider["standing"]["b"]["status"] == "unranked" and wider["ranking"] == "unranked"
    assert inside["choice"] == wider["choice"] == "a" and wider["decided_by"] == "point_estimate"
    # the margin is per metric, and a context can set its own
    assert deployment.margin_of(calm, PRICES, "rare_recall") == 0.03
    assert deployment.margin_of(realtime(equivalence_margin=0.05), PRICES, "accuracy") == 0.05
    own = decide(models, realtime(peak_rps=1, equivalence_margin=0.05),
                 evidence({"a": 0.760, "b": 0.758}, {("a", "b"): (-0.002, -0.02, 0.016)}))
    assert own["standing"]["b"]["status"] == "equivalent"


def family_models(encoder_ms: float, decoder_ms: float) -> dict:
    return {"encoder_lora": served("encoder_lora", encoder_ms), "decoder_lora": served("decoder_lora", decoder_ms),
            "tfidf_logreg": served("tfidf_logreg", 0.5)}


def test_encoder_or_decoder_lora_is_answered_with_a_break_even_that_flips_with_the_numbers():
    quality = {"encoder_lora": 0.759, "decoder_lora": 0.757, "tfidf_logreg": 0.5}
    unranked = {("encoder_lora", "decoder_lora"): (-0.002, -0.02, 0.016)}
    ev = evidence(quality, unranked)
    answer = break_even.family_answer(family_models(10.0, 47.0), realtime(), PRICES, ev)
    assert answer["family"] == "encoder" and answer["decided_by"] == "cost"  # 1 instance against 2
    # the decoder needs a second instance at 47 ms: a speed-up that brings it to one makes it the choice
    speed = answer["speedup"]
    assert speed["arm"] == "decoder_lora" and 1.0 < speed["factor"] < 47.0 / 10.0 * 2
    again = break_even.family_answer(family_models(10.0, 47.0 / speed["factor"] / 1.01), realtime(), PRICES, ev)
    assert again["family"] == "decoder"
    # and a quality gain that makes it clearly better does too
    gain = answer["gain"]
    assert gain["arm"] == "decoder_lora" and 0.0 < gain["gain"] < 0.05
    lifted = break_even.family_answer(family_models(10.0, 47.0), realtime(), PRICES,
                                      ev.lifted(frozenset({"decoder_lora"}), gain["gain"] + 0.002))
    assert lifted["family"] == "decoder"
    # flip the latencies: the decoder is the cheap one, and the break-even now concerns the encoder
    flipped = break_even.family_answer(family_models(47.0, 10.0), realtime(), PRICES, ev)
    assert flipped["family"] == "decoder" and flipped["other"] == "encoder" and flipped["speedup"]["arm"] == "encoder_lora"
    # a quality gap beyond the floor: no speed-up helps, only a gain does
    far = evidence({"encoder_lora": 0.60, "decoder_lora": 0.76}, {})
    beyond = break_even.family_answer(family_models(10.0, 47.0), realtime(), PRICES, far)
    assert beyond["family"] == "decoder" and beyond["speedup"] is None
    # its +-0.05 interval is wider than the 0.03 floor: no point below the decoder bounds it above the floor, so the
    # encoder has to overtake; then the decoder's own interval reaches under the new floor and cost is moot
    assert beyond["gain"]["gain"] == pytest.approx(0.76 - 0.60, abs=0.002)


def test_what_would_change_is_computed_from_the_numbers():
    quality = {"encoder_lora": 0.759, "decoder_lora": 0.757}
    ev = evidence(quality, {("encoder_lora", "decoder_lora"): (-0.002, -0.02, 0.016)})
    models = family_models(10.0, 47.0)
    models.pop("tfidf_logreg")
    rows = deployment.context_rows(models, realtime(), PRICES)
    decision = deployment.decide(rows, realtime(), PRICES, ev)
    assert decision["choice"] == "encoder_lora"
    runner = break_even.runner_up_gain(rows, realtime(), PRICES, ev, decision["choice"])
    assert runner["arm"] == "decoder_lora" and runner["gain"] > 0
    # a different gap gives a different answer: nothing generic
    wider = evidence(quality, {("encoder_lora", "decoder_lora"): (-0.002, -0.05, 0.046)})
    # (with a wider interval the decoder is out under the floor until it overtakes; then the encoder's is)
    assert break_even.runner_up_gain(rows, realtime(), PRICES, wider, "encoder_lora")["gain"] == pytest.approx(
        0.002, abs=0.001) != pytest.approx(runner["gain"], abs=0.001)
    # the context's own quantities: a lower arrival rate lets the decoder run on one instance
    flip = break_even.what_would_change(models, realtime(), PRICES, ev, "encoder_lora")
    assert flip is not None and flip["new_choice"] != "encoder_lora"


def test_capacity_is_stated_in_operational_terms():
    row = deployment.realtime_row(served("dec", 47.0), realtime(), 0.1)
    assert row["busy_instances"] == pytest.approx(20 * 0.047)  # one machine 94% busy at the peak
    assert row["instances"] == 2 and row["monthly_cost"] == pytest.approx(146.0)
    assert row["compute_cost"] == pytest.approx(2_000_000 * 0.047 / 3600 * 0.1)  # raw compute, $2.61 a month
    batch = deployment.batch_row(served("m", 10.0, examples_per_s=10.0), audit(), 0.1)
    assert batch["compute_cost"] == batch["monthly_cost"]


def test_an_arm_that_misses_the_sla_is_never_chosen_and_the_flip_is_computed():
    models = {"enc": served("enc", 10.0), "dec": served("dec", 60.0, spread=0.5)}
    ev = rule()
    tight = realtime(p95_sla_ms=70, quality_floor=LOOSE)  # the decoder's single p95 is ~87 ms
    # (the default floor, 3 points below the decoder whatever its speed, would set enc's 0.70 aside)
    assert decide(models, realtime(p95_sla_ms=70), ev)["decided_by"] == "below_floor"
    decision = decide(models, tight, ev)
    assert decision["choice"] == "enc" and decision["standing"]["dec"]["status"] == "misses_target"
    flip = break_even.what_would_change(models, tight, PRICES, ev, "enc")
    assert flip["quantity"] == "p95_sla_ms" and flip["direction"] == "up" and flip["new_choice"] == "dec"
    assert 80 < flip["value"] < 100  # just above the decoder's p95 at this rate
    nothing = decide(models, realtime(p95_sla_ms=5), ev)
    assert nothing["choice"] is None and nothing["decided_by"] == "no_arm_meets"


def test_a_better_arm_that_misses_the_target_says_what_speed_up_would_bring_it_in():
    """The demo's real-time context on CPU: only TF-IDF meets 100 ms; the encoder (670 ms mean) is 18 points better."""
    models = {"tfidf": served("tfidf", 3.0), "enc": served("enc", 670.0, spread=0.5)}
    ev = evidence({"tfidf": 0.576, "enc": 0.759})
    rows = deployment.context_rows(models, realtime(), PRICES)
    # the floor is set by the best arm whatever its speed: the only arm that meets the target is not measured
    # against itself, so 18 points below the best is under the floor and nothing is recommended
    floored = deployment.decide(rows, realtime(), PRICES, ev)
    assert floored["choice"] is None and floored["decided_by"] == "below_floor"
    assert floored["floor"] == pytest.approx(0.759 - 0.03)
    decision = deployment.decide(rows, realtime(quality_floor=LOOSE), PRICES, ev)
    assert decision["choice"] == "tfidf" and decision["standing"]["enc"]["status"] == "misses_target"
    faster = break_even.better_if_faster(models, rows, realtime(), PRICES, ev, "tfidf")
    assert faster["arm"] == "enc" and faster["quality"] == 0.759
    # a single request's p95 (~1000 ms) must come under the 100 ms target: about 10x, well inside the range
    assert 8 < faster["factor"] < 14 and faster["mean_ms"] == pytest.approx(670.0 / faster["factor"])
    assert deployment.decide(deployment.context_rows(
        {**models, "enc": deployment.faster_by(models["enc"], faster["factor"])}, realtime(), PRICES),
        realtime(), PRICES, ev)["choice"] == "enc"
    # nothing better misses the target: nothing to say
    assert break_even.better_if_faster(models, rows, realtime(), PRICES, evidence({"tfidf": 0.8, "enc": 0.7}),
                                       "tfidf") is None


def test_when_neither_lora_family_meets_the_target_each_gets_its_speed_up_and_a_flip_prefers_an_arm():
    models = {"tfidf_logreg": served("tfidf_logreg", 3.0), "encoder_lora": served("encoder_lora", 670.0, spread=0.5),
              "decoder_lora": served("decoder_lora", 1384.0, spread=0.5)}
    ev = evidence({"tfidf_logreg": 0.576, "encoder_lora": 0.736, "decoder_lora": 0.688})
    # with the default floor the decoder, 4.8 points below the encoder, is under it at any speed: no speed-up
    assert break_even.family_answer(models, realtime(), PRICES, ev)["each_speedup"]["decoder"] is None
    answer = break_even.family_answer(models, realtime(quality_floor=LOOSE), PRICES, ev)
    assert answer["family"] is None
    encoder, decoder = answer["each_speedup"]["encoder"], answer["each_speedup"]["decoder"]
    assert 1 < encoder["factor"] < decoder["factor"]  # the decoder is slower: it needs the larger speed-up
    assert encoder["mean_ms"] == pytest.approx(670.0 / encoder["factor"])
    # a tighter SLA leaves no arm at all, a looser one brings the encoder in: the change worth naming is the latter
    flip = break_even.what_would_change(models, realtime(quality_floor=LOOSE), PRICES, ev, "tfidf_logreg")
    assert flip["new_choice"] == "encoder_lora" and flip["quantity"] == "p95_sla_ms" and flip["direction"] == "up"


def test_values_equal_as_printed_are_a_tie_and_batch_speed_is_job_time():
    """Issue #30: "the higher point estimate" once printed 47.1264% against 47.1264%; a batch job was ranked by one
    request's p95."""
    calm = realtime(peak_rps=1, quality_floor=LOOSE)
    twins = {"a": served("a", 10.0, memory=101.0), "b": served("b", 10.0, memory=100.0)}  # within tolerance
    ev = evidence({"a": 0.4712644, "b": 0.4712641}, {("a", "b"): (-3e-7, -0.02, 0.02)})
    tie = decide(twins, calm, ev)
    assert tie["decided_by"] == "tie" and tie["choice"] == "b" and set(tie["remaining"]) == {"a", "b"}
    batch = ContextConfig(name="b", kind="batch", examples=10_000, window_minutes=60, quality_floor=LOOSE,
                          primary_metric="accuracy")
    # a answers one request faster, b scores the job twice as fast; the cost gap is fractions of a cent
    pair = {"a": served("a", 5.0, examples_per_s=200.0), "b": served("b", 20.0, examples_per_s=400.0)}
    close = evidence({"a": 0.70, "b": 0.69}, {("a", "b"): (-0.01, -0.05, 0.03)})
    decision = decide(pair, batch, close)
    assert decision["decided_by"] == "p95" and decision["choice"] == "b"


def test_a_tie_left_by_cost_and_speed_is_decided_on_a_stated_ground_not_a_point_estimate():
    """Issue #30: a 0.012 edge inside the seed noise chose a one-seed arm over a three-seed arm as if it were a
    decision. A clear lead on another reported metric decides first, then the arm whose seed variance is measured;
    only then the point estimate, which the note calls a call inside the noise."""
    calm = realtime(peak_rps=1, quality_floor=LOOSE)
    twins = {"a": served("a", 10.0), "b": served("b", 10.0)}
    unranked = {("a", "b"): (-0.012, -0.07, 0.05)}  # b - a on the deciding metric: the data cannot rank them
    base = evidence({"a": 0.522, "b": 0.510}, unranked, metric="macro_f1")

    def with_ground(secondary=None, seeds=None):
        return deployment.Evidence(base.metric, base.quality, base.difference, secondary, seeds)

    assert decide(twins, calm, base)["decided_by"] == "point_estimate"
    # b is clearly ahead of a on accuracy and behind on nothing: that decides, against the point estimate
    lead = {("a", "b"): [("accuracy", 0.025, 0.003, 0.047)], ("b", "a"): [("accuracy", -0.025, -0.047, -0.003)]}
    decision = decide(twins, calm, with_ground(secondary=lambda x, y: lead[(x, y)]))
    assert (decision["choice"], decision["decided_by"]) == ("b", "secondary")
    assert decision["ground"]["leads"][0]["against"] == "a" and decision["ground"]["leads"][0]["metric"] == "accuracy"
    # a lead on one metric with a clear deficit on another is no ground
    mixed = {("a", "b"): [("accuracy", 0.025, 0.003, 0.047), ("rare_recall", -0.1, -0.2, -0.01)],
             ("b", "a"): [("accuracy", -0.025, -0.047, -0.003), ("rare_recall", 0.1, 0.01, 0.2)]}
    seeds = {"a": 1, "b": 3}.get
    decision = decide(twins, calm, with_ground(secondary=lambda x, y: mixed[(x, y)], seeds=seeds))
    # ... nor are b's three seeds: a ground never picks an arm clearly behind on a reported metric
    assert (decision["choice"], decision["decided_by"]) == ("a", "point_estimate")
    only_ahead = {("a", "b"): [("accuracy", 0.025, -0.003, 0.047)], ("b", "a"): [("accuracy", -0.025, -0.047, 0.003)]}
    decision = decide(twins, calm, with_ground(secondary=lambda x, y: only_ahead[(x, y)], seeds=seeds))
    assert (decision["choice"], decision["decided_by"]) == ("b", "seeds")  # then the measured variance decides
    assert decision["ground"]["fewer"] == {"a": 1}
    # a lead between one-seed arms is no ground: its interval holds the test set's noise only
    one_seed = decide(twins, calm, with_ground(secondary=lambda x, y: lead[(x, y)], seeds=lambda arm: 1))
    assert one_seed["decided_by"] == "point_estimate" and one_seed["choice"] == "a"
    same = decide(twins, calm, with_ground(secondary=lambda x, y: [], seeds=lambda arm: 3))
    assert same["decided_by"] == "point_estimate" and same["choice"] == "a"  # no ground: the point estimate


def test_a_tie_goes_to_the_arm_that_ships_a_tenth_of_the_trained_weights_before_seed_counts():
    """Issue #30: seed count is no property of the shipped model; an adapter a tenth the size (or less) of a full
    copy is. Within 10x, the footprint decides nothing and the seed counts do."""
    calm = realtime(peak_rps=1, quality_floor=LOOSE)
    twins = {"a": served("a", 10.0), "b": served("b", 10.0)}
    base = evidence({"a": 0.522, "b": 0.510}, {("a", "b"): (-0.012, -0.07, 0.05)}, metric="macro_f1")

    def decided(trainable, seeds={"a": 1, "b": 3}.get):
        ev = deployment.Evidence(base.metric, base.quality, base.difference, None, seeds, trainable)
        return decide(twins, calm, ev)

    small_b = decided({"a": 22_600_000, "b": 312_000}.get)
    assert (small_b["choice"], small_b["decided_by"]) == ("b", "footprint")
    assert small_b["ground"]["nearest"] == "a" and small_b["ground"]["nearest_trainable"] == 22_600_000
    small_a = decided({"a": 312_000, "b": 22_600_000}.get)  # the footprint outranks b's three seeds
    assert (small_a["choice"], small_a["decided_by"]) == ("a", "footprint")
    close = decided({"a": 3_000_000, "b": 312_000}.get)  # under 10x apart: the seeds decide
    assert (close["choice"], close["decided_by"]) == ("b", "seeds")
    unknown = decided({"a": None, "b": 312_000}.get)  # a missing count is no ground
    assert unknown["decided_by"] == "seeds"
    # a one-seed arm's clear lead on another metric is no ground to pick it, yet it stops a ground from picking the
    # arm it leads (the demo's nightly: encoder LoRA + weighting 2.6 pp behind on accuracy, [-5.1, -0.2])
    lead = {("a", "b"): [("accuracy", -0.026, -0.051, -0.002)], ("b", "a"): [("accuracy", 0.026, 0.002, 0.051)]}
    behind = decide(twins, calm, deployment.Evidence(base.metric, base.quality, base.difference,
                                                     lambda x, y: lead[(x, y)], {"a": 1, "b": 3}.get,
                                                     {"a": 22_600_000, "b": 312_000}.get))
    assert (behind["choice"], behind["decided_by"]) == ("a", "point_estimate")
    assert [(g["by"], g["arm"]) for g in behind["blocked"]] == [("footprint", "b")]  # the note says why it did not
