"""Latency, throughput, memory and size of the trained models, measured as they are served.

Measurement (`measure_model`)
-----------------------------
* A timed call is what a server's request handler does: tokenise, forward pass,
  argmax, labels back on the host. Timer: `time.perf_counter`; on a GPU
  `torch.cuda.synchronize()` before and after, so queued kernels are counted.
* Warm-up first (untimed): `latency.warmup` single requests (at least the ones timed again at the end) and one
  batch per batch size, because first calls pay for lazy initialisation and allocator growth.
* Single-example latency: `latency.single_requests` test texts drawn at random
  (seed 0), each sent alone at its real length (a batch of one: no padding);
  p50/p95/p99/mean over those requests.
* Batched throughput: for each batch size b, ceil(`latency.batched_examples` / b)
  batches, each b neighbouring texts of the test set sorted by token length,
  spread evenly over that order and padded only to their longest text (dynamic
  padding): the batches of a scorer that sorts its whole job by length, so
  neither padding waste nor one part of the length distribution dominates.
  ms/example = total time / examples; examples/s = 1000 / ms per example.
  `padding_share` (padded positions / all positions) shows how little padding was timed.
* Fitness (`timing_fitness`): the first requests are timed again at the end, and a fixed reference workload
  before the first model and after each, so a contended machine is detected rather than ranked.
* Time to score `latency.score_examples` examples = that many / the best examples/s.
* Attention kernel (`latency.attention`, auto by default), chosen per serving path:
  before the warm-up, one single request and one batch of the largest batch size
  (neighbours at the median length) are timed with each kernel (eager, sdpa; best of 3);
  the faster kernel on the single request serves single requests, the faster on the batch
  serves batches. Both compute the same model (equal logits to 1e-5 in float32), so only
  speed depends on it.
* Peak memory (`runtime.PeakMemory`): on CPU the process's resident-set high-water
  mark during the measurement, which includes the Python runtime and libraries,
  which is why `memory_before_load_mb` is recorded beside it. On a GPU:
  `torch.cuda.max_memory_allocated`.

What the measurements cost in each operational context is `deployment.py`'s business.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from lorastudy.core import artifacts, integrity, runtime
from lorastudy.study.config import LatencyConfig, StudyConfig, stable_hash
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError
from lorastudy.core.quiet import quiet_library_calls
from lorastudy.measure.timing_fitness import RETIMED_REQUESTS, reference_ms

SCHEMA_VERSION = 5  # 3: attention per serving path; 4: fitness timings; 5: warm retimed requests, fastest reference
PIPED_WIDTH = 120
BUILTIN_TEXTS = (
    "I was charged a late fee even though my payment posted on time.",
    "The bank closed my checking account without notice and kept the remaining balance for three weeks.",
    "A debt collector keeps calling me at work about a loan I never took out.",
    "My credit report still shows an account that was paid in full two years ago, and the bureau "
    "has ignored both of my dispute letters, which has lowered my score and cost me a mortgage approval.",
    "Wrong interest rate on my card.",
    "The servicer lost my loan modification paperwork for the third time.",
    "Unauthorized transfer from my savings account.",
    "They refuse to send me the payoff statement I requested in writing.",
)

Predict = Callable[[list[str]], Any]


# --- measuring one model ----------------------------------------------------


def measure_model(model, tokenizer, texts: list[str], cfg: LatencyConfig, *, max_length: int, device: str,
                  desc: str = "latency", precision: str = "fp32") -> dict:
    """Single-request latency, batched throughput and peak memory of a classifier on real texts.

    `precision` is the run's training precision, served as `runtime.serving` says (bf16: the whole model in
    bf16 under autocast), ~2x fp32 throughput on a bf16 CPU at the same validation macro F1 (demo: within 0.005).
    """
    threads = runtime.set_threads(cfg.threads)
    model.eval().to(device)

    kernels: dict[str, str] = {}  # the serving attention kernel of each path, once chosen

    def predict(batch: list[str]) -> list[int]:
        if kernels:
            use_attention(model, kernels["single" if len(batch) == 1 else "batched"])
        encoded = tokenizer(batch, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return model(**encoded.to(device)).logits.argmax(-1).tolist()

    def token_counts(batch: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(batch, truncation=True, max_length=max_length)["input_ids"]]

    with runtime.serving(model, precision, device):
        kernels.update(choose_serving_attention(model, predict, texts, token_counts, cfg, device) or {})
        result = benchmark(predict, texts, cfg, device=device, token_counts=token_counts, desc=desc)
    return {**result, "precision": precision, "attention": kernels or None, "device": device, "threads": threads}


ATTENTION_KERNELS = ("sdpa", "eager")
SERVING_PATHS = ("single", "batched")


def choose_serving_attention(model, predict: Predict, texts: Sequence[str],
                             token_counts: Callable[[list[str]], list[int]], cfg: LatencyConfig,
                             device: str) -> dict[str, str] | None:
    """The attention kernel of each serving path (see the module docstring); None for a model without a switch.

    Measured, not assumed, and per path because the paths disagree: on the demo CPU sdpa answers single
    SmolLM2 requests ~25% faster than eager, while eager scores its batches ~10% faster. A server that both
    answers requests and scores batches switches the kernel by batch size, as `measure_model` does.
    """
    if getattr(getattr(model, "config", None), "_attn_implementation", None) is None \
            or not hasattr(model, "set_attn_implementation"):
        return None
    if cfg.attention != "auto":
        return dict.fromkeys(SERVING_PATHS, cfg.attention)
    order = np.argsort(token_counts(list(texts)), kind="stable")
    size = min(max(cfg.batch_sizes), len(texts))
    start = max(0, len(texts) // 2 - size // 2)
    probes = {"single": [texts[order[len(texts) // 2]]], "batched": [texts[i] for i in order[start:start + size]]}
    times = {}
    for kernel in ATTENTION_KERNELS:
        use_attention(model, kernel)
        for path, probe in probes.items():
            predict(probe)
            times[path, kernel] = min(_timed_ms(predict, probe, device) for _ in range(3))
    return {path: min(ATTENTION_KERNELS, key=lambda kernel: times[path, kernel]) for path in SERVING_PATHS}


def use_attention(model, kernel: str) -> None:
    """Switch the model's attention kernel (cheap: both kernels compute the same model from the same weights)."""
    if model.config._attn_implementation != kernel:
        model.set_attn_implementation(kernel)


def benchmark(predict: Predict, texts: Sequence[str], cfg: LatencyConfig, *, device: str = "cpu",
              token_counts: Callable[[list[str]], list[int]] | None = None, desc: str = "latency") -> dict:
    """Time any `predict(list of texts)`; `token_counts` sorts batches by tokens and measures their padding."""
    if not texts:
        raise StudyError("No texts to measure latency on.", "give at least one text (the test split is empty?).")
    single = np.random.default_rng(0).choice(len(texts), size=cfg.single_requests,
                                             replace=cfg.single_requests > len(texts)).tolist()
    lengths = token_counts(list(texts)) if token_counts else [len(text) for text in texts]
    plans = {size: _sorted_batches(lengths, size, cfg.batched_examples) for size in cfg.batch_sizes}
    # the retimed requests are warmed up too: their first timing must not be their first run (new shapes build kernels)
    warmup = [[texts[single[k % len(single)]]] for k in range(max(cfg.warmup, min(RETIMED_REQUESTS, len(single))))]
    warmup += [[texts[i] for i in batches[0]] for batches in plans.values()]
    total_calls = len(warmup) + len(single) + sum(len(batches) for batches in plans.values()) \
        + min(RETIMED_REQUESTS, len(single))

    with tqdm(total=total_calls, desc=desc, unit="call", leave=False) as bar, runtime.PeakMemory(device) as memory:
        for batch in warmup:
            predict(batch)
            bar.update()
        single_ms = []
        for i in single:
            single_ms.append(_timed_ms(predict, [texts[i]], device))
            bar.update()
        batched = []
        for size, batches in plans.items():
            elapsed_ms = 0.0
            for batch in batches:
                elapsed_ms += _timed_ms(predict, [texts[i] for i in batch], device)
                bar.update()
            n_examples = sum(len(batch) for batch in batches)
            ms_per_example = elapsed_ms / n_examples
            batched.append({"batch_size": size, "ms_per_example": ms_per_example,
                            "examples_per_s": 1000.0 / ms_per_example, "n_examples": n_examples,
                            "padding_share": _padding_share(batches, lengths) if token_counts else None})
        # the first requests again, after everything else: only the machine can make them differ (timing_fitness)
        retimed_ms = [_timed_ms(predict, [texts[i]], device) for i in single[:RETIMED_REQUESTS]]

    best = max(batched, key=lambda row: row["examples_per_s"])
    p50, p95, p99 = np.percentile(single_ms, [50, 95, 99])
    return {
        "single": {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
                   "mean_ms": float(np.mean(single_ms)), "n_requests": len(single_ms),
                   "samples_ms": [round(ms, 3) for ms in single_ms],  # the service-time distribution
                   "retimed_ms": [round(ms, 3) for ms in retimed_ms],  # the first requests again, at the end
                   "first_median_ms": float(np.median(single_ms[:len(retimed_ms)])) if retimed_ms else None,
                   "retimed_median_ms": float(np.median(retimed_ms)) if retimed_ms else None,
                   "mean_tokens": float(np.mean([lengths[i] for i in single])) if token_counts else None},
        "batched": batched,
        "best_batch_size": best["batch_size"],
        "score_examples": cfg.score_examples,
        "time_for_score_examples_s": cfg.score_examples / best["examples_per_s"],
        "peak_memory_mb": memory.peak_mb,
    }


def _timed_ms(predict: Predict, batch: list[str], device: str) -> float:
    _synchronize(device)
    start = time.perf_counter()
    predict(batch)
    _synchronize(device)
    return (time.perf_counter() - start) * 1000.0


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _sorted_batches(lengths: list[int], size: int, examples: int) -> list[list[int]]:
    """ceil(examples / size) runs of `size` neighbours in length order, spread evenly over the texts.

    These are the batches of a scorer that sorts a whole job by length: little
    padding, and every part of the length distribution represented. Texts repeat
    only when there are fewer of them than one batch.
    """
    order = sorted(list(range(len(lengths))) * math.ceil(size / len(lengths)), key=lengths.__getitem__)
    starts = np.linspace(0, len(order) - size, math.ceil(examples / size)).round().astype(int)
    return [order[start:start + size] for start in starts]


def _padding_share(batches: list[list[int]], lengths: list[int]) -> float:
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1.0 - real / padded


# --- the study's models -----------------------------------------------------


def bench_study(run_dir: Path, config: StudyConfig) -> dict:
    """Benchmark the first seed of every deployable architecture as deployed; write latency/latency.json.

    An arm whose entry was measured for the same run (config hash) and the same
    benchmark settings is kept as it is, so an interrupted bench resumes.
    """
    run_dir = Path(run_dir)
    out = run_dir / "latency" / "latency.json"
    previous = artifacts.read_json(out).get("models", {}) if integrity.reusable(
        run_dir, out, "measuring every model again") else {}
    texts = load_test_texts(run_dir)
    device = runtime.device()
    threads = runtime.set_threads(config.latency.threads or config.threads)
    settings = {"latency": config.latency.model_dump(mode="json"), "max_length": config.data.max_length,
                "device": device, "threads": threads, "schema_version": SCHEMA_VERSION}
    models: dict[str, dict] = {}
    reference = [reference_ms()]  # the machine's own speed before the first model and after each (timing_fitness)
    for arm in inference_arms(config.arms):
        run_path = run_dir / "runs" / f"{arm}__seed{config.seeds[0]}"
        if not (run_path / "run.json").exists():
            tqdm.write(f"[bench] {run_path.name}: not trained yet, skipped")
            continue
        run = artifacts.read_json(run_path / "run.json")
        bench_hash = stable_hash({"run": run["config_hash"], **settings})
        if previous.get(arm, {}).get("bench_hash") == bench_hash:
            tqdm.write(f"[bench] {run_path.name}: measured before with the same settings, kept")
            models[arm] = previous[arm]
            continue
        models[arm] = {**bench_run(run_path, config, texts, device), "bench_hash": bench_hash}
        reference.append(reference_ms())
        artifacts.write_json(out, _latency_document(models, config, device, reference))
        integrity.record_study_files(run_dir, [out])
    if not models:
        raise StudyError(f"No trained runs to benchmark in {run_dir / 'runs'}.",
                         "train first: lorastudy run --stage train.")
    document = _latency_document(models, config, device, reference)
    artifacts.write_json(out, document)
    integrity.record_study_files(run_dir, [out])
    return document


def inference_arms(arms: Sequence[str]) -> list[str]:
    """One arm per deployable architecture: class weighting changes the loss, not the served model,
    so a weighted arm is timed only when its unweighted twin is not in the study."""
    chosen: dict[str, str] = {}
    for arm in sorted(arms, key=lambda a: a.endswith("_cw")):
        chosen.setdefault(arm.removesuffix("_cw"), arm)
    return [arm for arm in arms if arm in chosen.values()]


def bench_run(run_path: Path, config: StudyConfig, texts: list[str], device: str) -> dict:
    """One trained run: as deployed (LoRA merged) and, for LoRA, unmerged; sizes on disk; load times."""
    run = artifacts.read_json(Path(run_path) / "run.json")
    if run["method"] == "tfidf":
        return _bench_tfidf(Path(run_path), run, config, texts)
    from lorastudy.study.trained import load_trained

    model_dir = Path(run_path) / "model"
    is_lora = run["method"] == "lora"
    variants, sizes = {}, {"adapter": _weights_mb(model_dir) if is_lora else None, "merged": None}
    for name, merged in (("merged", True), ("unmerged", False)):
        if name == "unmerged" and not (is_lora and config.latency.compare_unmerged):
            continue
        runtime.release_memory()  # what the previous model freed must not hide this one's memory
        before = runtime.current_memory_mb()
        start = time.perf_counter()
        model, tokenizer = load_trained(Path(run_path), merged=merged, allow_pickle=config.allow_pickle)
        load_time = time.perf_counter() - start
        measured = measure_model(model, tokenizer, texts, config.latency, max_length=config.data.max_length,
                                 device=device, desc=f"{run['arm']} ({name})", precision=run.get("precision", "fp32"))
        variants[name] = {**measured, "load_time_s": load_time, "memory_before_load_mb": before,
                          "memory_added_mb": measured["peak_memory_mb"] - before}
        if merged:
            sizes["merged"] = _saved_weights_mb(model) if is_lora else _weights_mb(model_dir)
        del model, tokenizer
    return {**_run_identity(run, run_path), "variants": variants, "size_on_disk_mb": sizes}


def _bench_tfidf(run_path: Path, run: dict, config: StudyConfig, texts: list[str]) -> dict:
    """The TF-IDF baseline: sklearn's predict timed on the same texts (no padding, no torch)."""
    from lorastudy.study.training import load_tfidf

    runtime.release_memory()
    before = runtime.current_memory_mb()
    start = time.perf_counter()
    pipeline = load_tfidf(run_path / "model")
    load_time = time.perf_counter() - start
    measured = benchmark(pipeline.predict, texts, config.latency, desc=f"{run['arm']}")
    variant = {**measured, "load_time_s": load_time, "memory_before_load_mb": before,
               "memory_added_mb": measured["peak_memory_mb"] - before, "precision": None,
               "device": "cpu", "threads": None}
    return {**_run_identity(run, run_path), "variants": {"merged": variant},
            "size_on_disk_mb": {"adapter": None, "merged": _weights_mb(run_path / "model", "*")}}


def _run_identity(run: dict, run_path: Path) -> dict:
    return {"arm": run["arm"], "run": Path(run_path).name, "family": run.get("family"), "method": run["method"],
            "run_config_hash": run["config_hash"], "parameters": run.get("parameters")}


def _latency_document(models: dict, config: StudyConfig, device: str, reference: list[float]) -> dict:
    return {"schema_version": SCHEMA_VERSION, "environment": runtime.environment_info(),
            "memory_method": runtime.MEMORY_METHOD, "reference_ms": reference,
            "models": models}


def load_test_texts(run_dir: Path) -> list[str]:
    """The test split's texts: the requests a deployed model would see."""
    import pandas as pd

    path = Path(run_dir) / "data" / "dataset.parquet"
    if not path.exists():
        raise StudyError(f"{path} is missing, so there are no test texts to measure on.",
                         "run the data stage first: lorastudy run --stage data.")
    frame = pd.read_parquet(path, columns=["text", "split"])
    return frame.loc[frame["split"] == "test", "text"].astype(str).tolist()


def _weights_mb(folder: Path, pattern: str = "*.safetensors") -> float:
    """Size of the weight files in a folder, in MiB (tokenizer and config files are not counted)."""
    return sum(path.stat().st_size for path in Path(folder).rglob(pattern) if path.is_file()) / 2**20


def _saved_weights_mb(model) -> float:
    """The merged model as it would ship: saved in safetensors to a scratch folder and measured."""
    with tempfile.TemporaryDirectory(prefix="lorastudy-merged-") as tmp, quiet_library_calls():
        model.save_pretrained(tmp)
        return _weights_mb(Path(tmp))


# --- `lorastudy bench` --------------------------------------------------------


def bench_command(target: Path, config: str | None, overrides: list[str], *, texts_file: Path | None = None) -> None:
    """Benchmark a run directory (every arm, written to latency/latency.json) or one model, and print tables."""
    path = Path(target)
    if (path / "data" / "dataset.parquet").exists() or (path / "config.resolved.yaml").exists():
        from lorastudy.core.lock import study_lock

        resolved = path / "config.resolved.yaml"
        study = load_config(config or (resolved if resolved.exists() else None), overrides)
        with study_lock(path):  # never time a model while a `run` trains in the same directory
            document = bench_study(path, study)
    else:
        study = load_config(config, overrides)
        texts = _read_texts(texts_file) if texts_file else list(BUILTIN_TEXTS)
        name, entry = _bench_single(str(target), study, texts)
        document = {"models": {name: entry}}
    render(document, study)


def _bench_single(target: str, study: StudyConfig, texts: list[str]) -> tuple[str, dict]:
    """A trained run folder (runs/<arm>__seed<k>) or any model source, measured on its own."""
    path = Path(target)
    device = runtime.device()
    runtime.set_threads(study.latency.threads or study.threads)
    if (path / "run.json").exists():
        entry = bench_run(path, study, texts, device)
        return entry["arm"], entry
    from lorastudy.study.classifiers import load_classifier
    from lorastudy.study.lora import count_parameters
    from lorastudy.study.model_sources import resolve_source

    start = time.perf_counter()
    resolved = resolve_source(target, cache_dir=_cache_dir(), allow_pickle=study.allow_pickle)
    model, tokenizer, _ = load_classifier(resolved, num_labels=2, trust_remote_code=study.trust_remote_code)
    load_time = time.perf_counter() - start
    measured = measure_model(model, tokenizer, texts, study.latency, max_length=study.data.max_length,
                             device=device, desc=path.name or target)
    entry = {"arm": None, "run": None, "family": None, "method": None, "parameters": count_parameters(model),
             "variants": {"merged": {**measured, "load_time_s": load_time}},
             "size_on_disk_mb": {"adapter": None, "merged": _weights_mb(resolved.path)}}
    return target, entry


def _cache_dir() -> Path:
    from lorastudy.study.model_sources import default_cache_dir

    return default_cache_dir()


def _read_texts(path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise StudyError(f"Cannot read the texts file {path}: {exc.strerror or exc}.",
                         "give a UTF-8 text file with one request per line.") from exc
    texts = [line for line in lines if line]
    if not texts:
        raise StudyError(f"The texts file {path} has no non-empty lines.", "give one request per line.")
    return texts


# --- printing -------------------------------------------------------------------


def render(document: dict, study: StudyConfig) -> None:
    """A latency table over all models and variants, then one cost table per context (deployment.py)."""
    from rich.console import Console

    from lorastudy.measure import deployment

    console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)  # logs and pipes are not 80 wide
    console.print(_latency_table(document["models"], study.latency.score_examples))
    served = deployment.served_models(document, list(document["models"]))
    for context in study.deployment.contexts:
        console.print(_cost_table(deployment.context_rows(served, context, study.deployment)))


def _latency_table(models: dict, score_examples: int):
    from rich import box
    from rich.table import Table

    setups = sorted({f"{m.get('device')}, {m.get('threads')} thread(s), {m.get('precision')}"
                     for entry in models.values() for m in entry["variants"].values()})
    table = Table(title=f"Latency and throughput ({'; '.join(setups)})", box=box.SIMPLE_HEAD)
    table.add_column("model", no_wrap=True)
    table.add_column("variant")
    for header in ("p50\nms", "p95\nms", "p99\nms", "ex/s\n@batch", f"{score_examples:,}\nex (s)",
                   "peak\nMiB", "load\ns", "disk\nMiB"):
        table.add_column(header, justify="right")
    for name, entry in models.items():
        for variant, measured in entry["variants"].items():
            single = measured["single"]
            best = max(measured["batched"], key=lambda row: row["examples_per_s"])
            size = entry["size_on_disk_mb"]["merged" if variant == "merged" else "adapter"]
            table.add_row(name, variant, _fmt(single["p50_ms"]), _fmt(single["p95_ms"]), _fmt(single["p99_ms"]),
                          f"{best['examples_per_s']:,.0f} @{best['batch_size']}",
                          _fmt(measured["time_for_score_examples_s"], ",.0f"),
                          _fmt(measured["peak_memory_mb"], ",.0f"), _fmt(measured.get("load_time_s"), ".1f"),
                          _fmt(size, ",.1f"))
    return table


def _cost_table(rows: list[dict]):
    from rich import box
    from rich.table import Table

    first = rows[0]
    price = f"{first['device']} at ${first['price_per_hour']:g}/h"
    if first["kind"] == "realtime":
        title = f"{first['context']}: p95 <= {first['sla_ms']:g} ms at {first['peak_rps']:g} req/s ({price})"
        headers = ("p95 alone\nms", "p95 at\nrate ms", "meets\nSLA", "inst.", "head-\nroom")
    else:
        title = f"{first['context']}: {first['examples']:,} examples in {first['window_s'] / 60:g} min ({price})"
        headers = ("time\nmin", "inst.", "head-\nroom", "$ per\nrun")
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("model", no_wrap=True)
    for header in (*headers, "$ per\n1M", "$ per\nmonth"):
        table.add_column(header, justify="right")
    for row in rows:
        if row["kind"] == "realtime":
            cells = (_fmt(row["p95_ms"]), _fmt(row["p95_at_rate_ms"]), "yes" if row["meets"] else "NO",
                     _fmt(row["instances"], "d"), _fmt(row["headroom"], ".0%"))
        else:
            cells = (_fmt(row["time_s"] / 60), _fmt(row["instances"], "d"), _fmt(row["headroom"], ".0%"),
                     _fmt(row["cost_per_run"], ".4f"))
        table.add_row(row["arm"], *cells, _fmt(row["cost_per_million"], ",.2f"), _fmt(row["monthly_cost"], ",.2f"))
    return table


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)
