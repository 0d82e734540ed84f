"""The latency harness on a tiny model.

Timing values are never asserted (shared, noisy machines): only their shape,
orderings and the identities that hold whatever the speed.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from lorastudy.core import artifacts
from lorastudy.measure import latency, timing_fitness
from lorastudy.study.config import LatencyConfig
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError

WORDS = "the a my bank card loan fee charge account credit report late payment dispute never paid".split()
TEXTS = [" ".join(WORDS[: 1 + (i * 7) % len(WORDS)]) for i in range(48)]
SMALL = LatencyConfig(single_requests=12, warmup=2, batch_sizes=[1, 4, 16], batched_examples=32,
                      score_examples=1000, threads=1)


@pytest.fixture(scope="module")
def tokenizer():
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


def tiny_bert(tokenizer) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(tokenizer), num_labels=5, max_position_embeddings=64)
    return BertForSequenceClassification(config)


def check_measurement(result: dict, cfg: LatencyConfig) -> None:
    single = result["single"]
    assert single["n_requests"] == cfg.single_requests
    assert 0 < single["p50_ms"] <= single["p95_ms"] <= single["p99_ms"]
    assert single["mean_ms"] > 0 and single["mean_tokens"] > 2
    assert [row["batch_size"] for row in result["batched"]] == cfg.batch_sizes
    for row in result["batched"]:
        assert row["ms_per_example"] > 0
        assert row["n_examples"] == math.ceil(cfg.batched_examples / row["batch_size"]) * row["batch_size"]
        assert row["examples_per_s"] == pytest.approx(1000 / row["ms_per_example"], rel=1e-9)
        assert 0 <= row["padding_share"] < 1
    assert result["batched"][0]["padding_share"] == 0  # a batch of one is never padded
    best = max(result["batched"], key=lambda row: row["examples_per_s"])
    assert result["best_batch_size"] == best["batch_size"]
    assert result["score_examples"] == cfg.score_examples == 1000  # not the default 64,000: the key is generic
    assert result["time_for_score_examples_s"] == pytest.approx(cfg.score_examples / best["examples_per_s"])
    assert result["peak_memory_mb"] > 10
    assert result["precision"] == "fp32" and result["device"] == "cpu" and result["threads"] == 1
    assert result["attention"].keys() == set(latency.SERVING_PATHS)
    assert set(result["attention"].values()) <= set(latency.ATTENTION_KERNELS)


def test_measure_model_reports_every_key_with_sane_orderings(tokenizer):
    result = latency.measure_model(tiny_bert(tokenizer), tokenizer, TEXTS, SMALL, max_length=16, device="cpu")
    check_measurement(result, SMALL)
    # the first requests are timed again at the end: the same texts, so only the machine can tell them apart
    assert len(result["single"]["retimed_ms"]) == min(timing_fitness.RETIMED_REQUESTS, SMALL.single_requests)
    assert result["single"]["retimed_median_ms"] > 0 and result["single"]["first_median_ms"] > 0


def fitness_document(retimed_scale: float = 1.0, reference=(2.0, 2.1), full_p50: float | None = 10.4,
                     full_p95: float = 14.0) -> dict:
    single = {"p50_ms": 10.0, "p95_ms": 14.0, "first_median_ms": 10.0, "retimed_median_ms": 10.0 * retimed_scale}
    models = {"encoder_lora": {"variants": {"merged": {"single": single}}}}
    if full_p50 is not None:
        models["encoder_full"] = {"variants": {"merged": {"single": {"p50_ms": full_p50, "p95_ms": full_p95}}}}
    return {"models": models, "reference_ms": list(reference)}


def test_timings_of_one_computation_that_disagree_make_the_latencies_unfit():
    """Issue #30: one network was timed 1.5x apart on a contended CPU and Section 4 decided on it."""
    calm = timing_fitness.fitness(fitness_document())
    assert calm["fit"] is True and {c["kind"] for c in calm["checks"]} == {"retimed", "reference", "same_network"}
    assert calm["drift"] == pytest.approx(1.05)  # the reference's 2.1 / 2.0 is the worst
    assert timing_fitness.fitness(fitness_document(full_p50=15.0))["worst"]["kind"] == "same_network"
    slowed = timing_fitness.fitness(fitness_document(retimed_scale=1.5))
    assert slowed["fit"] is False and slowed["drift"] == pytest.approx(1.5) and slowed["worst"]["kind"] == "retimed"
    assert timing_fitness.fitness(fitness_document(reference=(2.0, 3.0)))["fit"] is False
    assert timing_fitness.fitness({"models": {}})["fit"] is None  # nothing timed twice: unknown, not fit
    # issue #30: the p50s agreed (1.11x) while the p95s read 1.41x apart; a p95 target decides on the tail
    tail = timing_fitness.fitness(fitness_document(full_p50=11.1, full_p95=19.7))
    assert tail["fit"] is False and tail["worst"]["percentile"] == "p95"
    assert tail["drift"] == pytest.approx(19.7 / 14.0)


def test_a_choice_that_timing_drift_could_flip_is_found():
    from lorastudy.measure import deployment
    from lorastudy.study.config import ContextConfig, DeploymentConfig

    def served(arm, mean_ms):
        return deployment.Served(arm=arm, measured_as=arm, p95_ms=mean_ms, mean_ms=mean_ms, samples_ms=(mean_ms,),
                                 examples_per_s=100.0, memory_mb=100.0, device="cpu")

    prices = DeploymentConfig(price_per_hour={"cpu": 0.1})
    context = ContextConfig(name="rt", kind="realtime", p95_sla_ms=100, peak_rps=1, primary_metric="accuracy",
                            quality_floor={"max_drop": 1.0, "min_share": 0.0})
    quality = {"fast": 0.70, "slow": 0.80}
    evidence = deployment.Evidence("accuracy", quality.get, lambda a, b: (quality[b] - quality[a],) * 3)
    near = {"fast": served("fast", 10.0), "slow": served("slow", 90.0)}  # the better arm meets 100 ms by 10%
    assert timing_fitness.drift_alternatives(near, context, prices, evidence, "slow", 1.5) == ["fast"]
    clear = {"fast": served("fast", 10.0), "slow": served("slow", 40.0)}
    assert timing_fitness.drift_alternatives(clear, context, prices, evidence, "slow", 1.5) == []


def test_merged_and_unmerged_lora_both_measure(tokenizer):
    lora = PeftLoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
    unmerged = get_peft_model(tiny_bert(tokenizer), lora)
    for module in unmerged.modules():  # LoRA B starts at zero; make the merge change the weights
        if hasattr(module, "lora_B"):
            torch.nn.init.normal_(module.lora_B["default"].weight)
    batch = tokenizer(TEXTS[:6], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = unmerged.eval()(**batch).logits
    check_measurement(latency.measure_model(unmerged, tokenizer, TEXTS, SMALL, max_length=16, device="cpu"), SMALL)

    merged = unmerged.merge_and_unload()
    with torch.inference_mode():
        assert torch.allclose(merged(**batch).logits, expected, atol=1e-5)
    check_measurement(latency.measure_model(merged, tokenizer, TEXTS, SMALL, max_length=16, device="cpu"), SMALL)
    assert latency._saved_weights_mb(merged) > 0


@pytest.mark.parametrize("attention", ["auto", "eager", "sdpa"])
def test_the_serving_attention_kernel_is_chosen_and_recorded(attention, tokenizer):
    model = tiny_bert(tokenizer)
    cfg = SMALL.model_copy(update={"attention": attention})
    result = latency.measure_model(model, tokenizer, TEXTS, cfg, max_length=16, device="cpu")
    # the first single requests are timed again after the batches, so the single path's kernel is the last one set
    assert result["attention"]["single"] == model.config._attn_implementation
    if attention != "auto":
        assert result["attention"] == {"single": attention, "batched": attention}


def test_each_serving_path_runs_on_its_own_kernel(tokenizer, monkeypatch):
    """Single requests and batches are timed on the kernel chosen for their path, whatever was timed before."""
    model = tiny_bert(tokenizer)
    monkeypatch.setattr(latency, "choose_serving_attention", lambda *args: {"single": "sdpa", "batched": "eager"})
    calls = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append((len(kwargs["input_ids"]), module.config._attn_implementation)),
        with_kwargs=True)
    model.set_attn_implementation("eager")
    result = latency.measure_model(model, tokenizer, TEXTS, SMALL, max_length=16, device="cpu")
    assert result["attention"] == {"single": "sdpa", "batched": "eager"}
    assert {kernel for size, kernel in calls if size == 1} == {"sdpa"}
    assert {kernel for size, kernel in calls if size > 1} == {"eager"}


def test_a_model_without_switchable_attention_is_measured_as_it_is(tokenizer):
    class Wrapped(torch.nn.Module):  # e.g. a custom model that is not a transformers PreTrainedModel
        def __init__(self):
            super().__init__()
            self.inner = tiny_bert(tokenizer)

        def forward(self, **batch):
            return self.inner(**batch)

    result = latency.measure_model(Wrapped(), tokenizer, TEXTS, SMALL, max_length=16, device="cpu")
    assert result["attention"] is None


def test_benchmark_samples_with_replacement_when_texts_are_few():
    seen = []
    result = latency.benchmark(lambda batch: seen.append(list(batch)), ["one", "two three"], SMALL)
    assert result["single"]["n_requests"] == SMALL.single_requests
    assert result["single"]["mean_tokens"] is None and result["batched"][0]["padding_share"] is None
    assert {len(batch) for batch in seen} == {1, 4, 16}
    with pytest.raises(StudyError):
        latency.benchmark(lambda batch: None, [], SMALL)


def test_batches_are_length_sorted_neighbours_spread_over_the_texts():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]
    batches = latency._sorted_batches(lengths, size=2, examples=6)
    assert [[lengths[i] for i in batch] for batch in batches] == [[1, 2], [5, 6], [9, 10]]
    assert latency._padding_share(batches, lengths) == pytest.approx(1 - 33 / 36)
    few = latency._sorted_batches([3, 1], size=4, examples=4)  # fewer texts than one batch: repeated, still sorted
    assert [[[3, 1][i] for i in batch] for batch in few] == [[1, 1, 3, 3]]


def test_contexts_without_their_numbers_are_refused_at_config_time():
    with pytest.raises(StudyError, match="p95_sla_ms"):
        load_config("smoke", ['deployment.contexts=[{"name": "x", "kind": "realtime", "peak_rps": 5}]'])
    with pytest.raises(StudyError, match="window_minutes"):
        load_config("smoke", ['deployment.contexts=[{"name": "x", "kind": "batch", "examples": 5}]'])


# --- the study stage: resume -------------------------------------------------------


def fake_run_dir(tmp_path, arms: list[str]):
    frame = pd.DataFrame({"text": TEXTS[:10], "label": "x", "label_id": 0, "split": ["test"] * 6 + ["train"] * 4})
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "dataset.parquet")
    for arm in arms:
        artifacts.write_json(tmp_path / "runs" / f"{arm}__seed42" / "run.json",
                             {"arm": arm, "config_hash": f"hash-{arm}", "method": "lora", "family": "encoder"})


def test_bench_study_writes_latency_json_and_resumes(tmp_path, monkeypatch):
    fake_run_dir(tmp_path, ["encoder_lora", "decoder_lora"])
    calls = []

    def fake_bench_run(run_path, config, texts, device):
        calls.append(run_path.name)
        assert len(texts) == 6  # the test split only
        merged = {"single": {"p95_ms": 30, "mean_ms": 20}, "device": device,
                  "batched": [{"batch_size": 32, "examples_per_s": 400}]}
        return {"arm": run_path.name.split("__")[0], "variants": {"merged": merged},
                "size_on_disk_mb": {"adapter": 1.0, "merged": 10.0}}

    monkeypatch.setattr(latency, "bench_run", fake_bench_run)
    config = load_config("smoke", ["arms=[encoder_lora, encoder_full, decoder_lora]"])
    document = latency.bench_study(tmp_path, config)
    assert calls == ["encoder_lora__seed42", "decoder_lora__seed42"]  # encoder_full is not trained: skipped
    on_disk = artifacts.read_json(tmp_path / "latency" / "latency.json")
    assert on_disk["schema_version"] == latency.SCHEMA_VERSION and set(on_disk["models"]) == {"encoder_lora", "decoder_lora"}
    assert "costs" not in on_disk  # what a model costs is deployment.py's, computed when the note is written
    assert len(on_disk["reference_ms"]) == 3 and min(on_disk["reference_ms"]) > 0  # before, and after each model
    assert on_disk["environment"]["torch_threads"] >= 1

    latency.bench_study(tmp_path, config)
    assert len(calls) == 2  # same runs, same settings: kept

    monkeypatch.setattr(latency, "SCHEMA_VERSION", latency.SCHEMA_VERSION + 1)
    latency.bench_study(tmp_path, config)
    assert len(calls) == 4  # what a newer lorastudy measures differently is measured again

    latency.bench_study(tmp_path, load_config("smoke", ["arms=[encoder_lora, decoder_lora]",
                                                        "latency.single_requests=7"]))
    assert len(calls) == 6  # other benchmark settings: measured again

    latency.bench_study(tmp_path, load_config("smoke", ["arms=[encoder_lora, decoder_lora]",
                                                        "latency.single_requests=7",
                                                        "deployment.price_per_hour.cpu=0.4"]))
    assert len(calls) == 6  # a price is not a measurement: nothing is measured again


def test_bench_study_without_trained_runs_says_what_to_do(tmp_path):
    fake_run_dir(tmp_path, [])
    with pytest.raises(StudyError, match="train first"):
        latency.bench_study(tmp_path, load_config("smoke"))
    with pytest.raises(StudyError, match="data stage"):
        latency.bench_study(tmp_path / "nowhere", load_config("smoke"))


# --- real runs and the command ------------------------------------------------------

TINY = ["latency.single_requests=6", "latency.warmup=1", "latency.batch_sizes=[1, 4]",
        "latency.batched_examples=8", "latency.threads=1"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASTUDY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def trained_lora_run(run_dir, cache) -> None:
    """A run folder as training leaves it: spec.json, an encoder LoRA adapter + head, run.json."""
    from lorastudy.study import classifiers, lora, model_sources, trained
    from lorastudy.study.arms import arm_spec

    spec = arm_spec(load_config("smoke"), "encoder_lora", 42, "fingerprint")
    run_path = run_dir / "runs" / spec.run_name
    artifacts.write_json(run_path / "spec.json", spec.model_dump(mode="json"))
    resolved = model_sources.resolve_source(spec.model.source, cache_dir=cache)
    model, tokenizer, _ = classifiers.load_classifier(resolved, 5, pooling=spec.model.pooling)
    peft_model = lora.apply_lora(model, spec.model.lora, "encoder")
    trained.save_model(peft_model, tokenizer, run_path / "model")
    artifacts.write_json(run_path / "run.json", {"arm": spec.arm, "config_hash": spec.config_hash(), "method": "lora",
                                                 "family": "encoder", "parameters": lora.count_parameters(peft_model)})


def test_bench_command_on_a_run_directory_measures_both_variants(tmp_path, cache, capsys):
    fake_run_dir(tmp_path, [])
    trained_lora_run(tmp_path, cache)
    latency.bench_command(tmp_path, "smoke", ["arms=[encoder_lora]", *TINY])
    entry = artifacts.read_json(tmp_path / "latency" / "latency.json")["models"]["encoder_lora"]
    assert set(entry["variants"]) == {"merged", "unmerged"}
    sizes = entry["size_on_disk_mb"]
    assert 0 < sizes["adapter"] < sizes["merged"]  # the adapter alone is a fraction of the merged model
    for variant in entry["variants"].values():
        assert variant["load_time_s"] > 0 and variant["single"]["n_requests"] == 6
    assert entry["parameters"]["trainable"] < entry["parameters"]["total"]
    printed = capsys.readouterr().out
    for title in ("Latency and throughput", "real-time tagging", "nightly batch", "rare-class audit"):
        assert title in printed
    assert "unmerged" in printed


def test_bench_cli_on_a_model_source_prints_tables(tmp_path, cache):
    from typer.testing import CliRunner

    from lorastudy.cli import app

    texts = tmp_path / "requests.txt"
    texts.write_text("my card was charged twice\n\nthe bank never answered my dispute letter\n")
    args = ["bench", "tiny:bert", "--config", "smoke", "--texts", str(texts)]
    result = CliRunner().invoke(app, [*args, *[item for pair in TINY for item in ("--set", pair)]])
    assert result.exit_code == 0, result.output
    assert "Latency and throughput" in result.output and "real-time tagging" in result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["bench", str(tmp_path / "no-such-model")])
    assert missing.exit_code == 2 and "error:" in missing.output and "Traceback" not in missing.output


def test_tfidf_run_is_timed_with_sklearn(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from lorastudy.study.training import save_tfidf

    fake_run_dir(tmp_path, ["tfidf_logreg"])
    run_path = tmp_path / "runs" / "tfidf_logreg__seed42"
    artifacts.write_json(run_path / "run.json", {"arm": "tfidf_logreg", "config_hash": "h", "method": "tfidf",
                                                 "family": "none"})
    pipeline = Pipeline([("tfidf", TfidfVectorizer()), ("logreg", LogisticRegression(max_iter=50))])
    save_tfidf(pipeline.fit(TEXTS, [i % 3 for i in range(len(TEXTS))]), run_path / "model")
    entry = latency.bench_run(run_path, load_config("smoke", TINY), TEXTS, "cpu")
    assert set(entry["variants"]) == {"merged"} and entry["size_on_disk_mb"]["merged"] > 0
    variant = entry["variants"]["merged"]
    assert variant["single"]["n_requests"] == 6 and variant["single"]["mean_tokens"] is None
    assert variant["batched"][0]["padding_share"] is None and variant["device"] == "cpu"


def test_inference_arms_times_each_architecture_once():
    from lorastudy.measure.latency import inference_arms

    assert inference_arms(["tfidf_logreg", "encoder_lora", "encoder_lora_cw", "decoder_lora_cw", "decoder_lora"]) == [
        "tfidf_logreg", "encoder_lora", "decoder_lora"]
    assert inference_arms(["encoder_lora_cw"]) == ["encoder_lora_cw"]


def test_peak_memory_sees_an_allocation_and_nests():
    import numpy as np

    from lorastudy.core.runtime import PeakMemory

    with PeakMemory("cpu") as outer:
        with PeakMemory("cpu") as inner:
            block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
            del block
        after = PeakMemory("cpu")
        with after:
            pass
    assert inner.peak_mb >= after.peak_mb + 50
    assert outer.peak_mb >= inner.peak_mb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_memory_returns_freed_heap_pages_to_the_os():
    """Otherwise a run's peak also counts what the runs before it freed (3.7 GB after the demo decoder)."""
    import numpy as np

    from lorastudy.core import runtime

    arrays = [np.ones(8000) for _ in range(4000)]  # 64 KB each: heap memory, not mmap; ~250 MB
    kept = arrays[::10]  # live blocks in between keep the heap from shrinking on its own
    del arrays
    before = runtime.current_memory_mb()
    runtime.release_memory()
    assert runtime.current_memory_mb() < before - 150
    assert len(kept) == 400


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("keep", [True, False])
def test_keep_freed_memory_keeps_what_a_batch_frees_until_release_memory(keep):
    """Freed 20 MiB blocks (above glibc's adaptive mmap threshold) stay resident for the next batch; default
    glibc hands them back. A fresh process each: the setting is process-wide."""
    script = f"""
import numpy as np
from lorastudy.core import runtime
kept = {keep} and runtime.keep_freed_memory()
blocks = [np.ones(20 * 2**20 // 8) for _ in range(10)]  # 200 MiB in 20 MiB blocks, touched
before = runtime.current_memory_mb()
del blocks
freed = before - runtime.current_memory_mb()
runtime.release_memory()
released = before - runtime.current_memory_mb()
print(kept, round(freed), round(released))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    kept, freed, released = out[0] == "True", float(out[1]), float(out[2])
    assert kept is keep
    assert released > 150  # release_memory still trims on request
    if keep:
        assert freed < 20
    else:
        assert freed > 150
