"""lorastudy's pipeline against the course notebook's naive recipe, side by side.

Both sides train the same LoRA arm (same model, data, seed, thread count and
recipe hyper-parameters) and then score the same validation texts. Each side
runs in its own child process, so its peak memory is its own.

The naive recipe is the course notebook's: HF Trainer, dynamic padding to the
longest text of a random batch with pad_to_multiple_of=8, no length grouping,
float32; inference on the unmerged PEFT model under torch.no_grad on a fixed
batch of 64 padded to its longest text, single examples sliced from that batch.

lorastudy's side is exactly what `lorastudy run` does: `training.train_run`
(its precision, length grouping and caches) and, for inference, the deployed
model (`trained.load_trained(merged=True)`) timed by `latency.measure_model`.

Printed: ratios lorastudy / naive for training examples/s, batched inference
examples/s, single-example p50 latency, peak memory and final validation macro
F1; the machine's dense matmul peak (GFLOP/s) and the achieved GFLOP/s of
batched inference as a fraction of it.

    python benchmarks/bench_speed.py --quick            # a few minutes
    python benchmarks/bench_speed.py --write-results    # the demo recipe; updates benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXED_BATCH = 64


# --- the two sides (each runs in a child process) -------------------------------------


def study_config(quick: bool, family: str, threads: int):
    from lorastudy.study.config_loading import load_config

    overrides = [f"threads={threads}", f"arms=[{family}_lora]"]
    if quick:
        overrides += ["split.train_size=640", "split.val_size=256", "split.test_size=256",
                      f"models.{family}.lora_train.epochs=1"]
    return load_config("demo", overrides)


def prepared(config, work: Path):
    from lorastudy.study.data import prepare_data

    return prepare_data(config, work)


def naive_side(family: str, quick: bool, threads: int, work: Path) -> dict:
    import numpy as np
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    from lorastudy.core import runtime
    from lorastudy.study import classifiers, lora, model_sources
    from lorastudy.study.arms import arm_spec
    from lorastudy.core.runtime import PeakMemory
    from lorastudy.study.training import macro_f1

    config = study_config(quick, family, threads)
    runtime.set_threads(threads)
    data = prepared(config, work)
    spec = arm_spec(config, f"{family}_lora", config.seeds[0], data.fingerprint)
    runtime.seed_everything(spec.seed)
    source = model_sources.resolve_source(spec.model.source, cache_dir=model_sources.default_cache_dir())
    model, tokenizer, _ = classifiers.load_classifier(source, len(data.labels), pooling=spec.model.pooling)
    model = lora.apply_lora(model, spec.model.lora, spec.family)
    encoded = tokenizer(data.texts("train"), truncation=True, max_length=config.data.max_length)
    labels = data.label_ids("train")
    rows = [{**{k: v[i] for k, v in encoded.items()}, "labels": int(labels[i])} for i in range(len(labels))]

    timer = StepTimer(TrainerCallback)
    args = TrainingArguments(
        output_dir=str(work / "naive"), num_train_epochs=spec.train.epochs,
        per_device_train_batch_size=spec.train.batch_size, learning_rate=spec.train.learning_rate,
        weight_decay=spec.train.weight_decay, warmup_steps=spec.train.warmup_ratio, lr_scheduler_type="linear",
        eval_strategy="no", save_strategy="no", logging_strategy="no", seed=spec.seed, data_seed=spec.seed,
        use_cpu=True, report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8),
                      callbacks=[timer.callback])
    with PeakMemory("cpu") as train_memory:
        trainer.train()

    model.eval()
    val_texts = data.texts("val")
    with PeakMemory("cpu") as infer_memory, torch.no_grad():
        fixed = tokenizer(val_texts[:FIXED_BATCH], truncation=True, max_length=config.data.max_length,
                          padding=True, return_tensors="pt")
        model(**fixed)  # warm-up
        start = time.perf_counter()
        repeats = 3
        for _ in range(repeats):
            model(**fixed).logits.argmax(-1)
        batched_s = (time.perf_counter() - start) / repeats
        single_ms = []
        for i in range(FIXED_BATCH):
            one = {k: v[i:i + 1] for k, v in fixed.items()}
            start = time.perf_counter()
            model(**one).logits.argmax(-1)
            single_ms.append((time.perf_counter() - start) * 1000)
        predicted = []
        for begin in range(0, len(val_texts), FIXED_BATCH):
            batch = tokenizer(val_texts[begin:begin + FIXED_BATCH], truncation=True,
                              max_length=config.data.max_length, padding=True, return_tensors="pt")
            predicted.append(model(**batch).logits.argmax(-1).numpy())
    real_tokens = int(fixed["attention_mask"].sum())
    return {
        "train_examples_per_s": spec.train.batch_size / timer.seconds_per_step,
        "seconds_per_step": timer.seconds_per_step, "steps": timer.steps,
        "batched_examples_per_s": FIXED_BATCH / batched_s,
        "batched_gflops": flops_per_token(model) * real_tokens / batched_s / 1e9,
        "single_p50_ms": float(np.median(single_ms)),
        "peak_memory_mb": max(train_memory.peak_mb, infer_memory.peak_mb),
        "val_macro_f1": macro_f1(data.label_ids("val"), np.concatenate(predicted)),
        "precision": "fp32", "n_train": len(rows),
    }


def lorastudy_side(family: str, quick: bool, threads: int, work: Path) -> dict:
    from lorastudy.core import artifacts, runtime
    from lorastudy.study.config import LatencyConfig
    from lorastudy.study.arms import arm_spec
    from lorastudy.measure.latency import measure_model
    from lorastudy.core.runtime import PeakMemory
    from lorastudy.study.trained import load_trained
    from lorastudy.study.training import train_run

    config = study_config(quick, family, threads)
    runtime.set_threads(threads)
    data = prepared(config, work)
    spec = arm_spec(config, f"{family}_lora", config.seeds[0], data.fingerprint)
    with PeakMemory("cpu") as train_memory:
        run_path = train_run(spec, data, work, config)
    run = artifacts.read_json(run_path / "run.json")
    with PeakMemory("cpu") as infer_memory:
        model, tokenizer = load_trained(run_path, merged=True)
        val_texts = data.texts("val")
        # The study's batch sizes, as `lorastudy run` measures them; its best batch size is the one a scorer uses.
        cfg = LatencyConfig(single_requests=FIXED_BATCH, warmup=3, batch_sizes=config.latency.batch_sizes,
                            batched_examples=len(val_texts), threads=threads)
        measured = measure_model(model, tokenizer, val_texts, cfg, max_length=config.data.max_length, device="cpu",
                                 precision=run["precision"])
    batched = max(measured["batched"], key=lambda row: row["examples_per_s"])
    lengths = tokenizer(val_texts, truncation=True, max_length=config.data.max_length)["input_ids"]
    tokens_per_example = sum(map(len, lengths)) / len(lengths)
    flops = flops_per_token(model) * tokens_per_example * batched["examples_per_s"] / 1e9
    return {
        "train_examples_per_s": spec.train.batch_size / run["seconds_per_step"],
        "seconds_per_step": run["seconds_per_step"], "steps": run["steps"],
        "batched_examples_per_s": batched["examples_per_s"], "batched_gflops": flops,
        "single_p50_ms": measured["single"]["p50_ms"],
        "peak_memory_mb": max(train_memory.peak_mb, infer_memory.peak_mb),
        "val_macro_f1": run["best_val_macro_f1"], "precision": run["precision"],
        "inference_precision": measured.get("precision"), "n_train": len(data.texts("train")),
        "inference_batch_size": batched["batch_size"], "inference_attention": measured.get("attention"),
        "train_attention": run.get("attention"),
    }


class StepTimer:
    """Seconds per optimizer step, measured the way training.py measures them (step begin to step end)."""

    def __init__(self, base):
        timer = self

        class _Callback(base):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.total += time.perf_counter() - timer._start
                timer.steps += 1

        self.callback, self.total, self.steps, self._start = _Callback(), 0.0, 0, 0.0

    @property
    def seconds_per_step(self) -> float:
        return self.total / max(self.steps, 1)


def flops_per_token(model) -> float:
    """Forward FLOPs per token ~ 2 x the parameters a token passes through (embeddings are lookups)."""
    embedding_params = sum(m.weight.numel() for m in model.modules() if type(m).__name__ == "Embedding")
    total = sum(p.numel() for p in model.parameters())
    return 2.0 * (total - embedding_params)


# --- the machine ----------------------------------------------------------------------


def matmul_peak_gflops(threads: int, dtype_name: str, n: int = 2048, seconds: float = 2.0) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start) / 1e9


# --- the parent -----------------------------------------------------------------------


def run_child(side: str, family: str, quick: bool, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as work:
        out = Path(work) / "result.json"
        command = [sys.executable, __file__, "--child", side, "--family", family, "--threads", str(threads),
                   "--child-out", str(out), "--work", work] + (["--quick"] if quick else [])
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{side} side failed for {family}:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def compare(family: str, quick: bool, threads: int) -> dict:
    print(f"[{family}] naive recipe ...", flush=True)
    naive = run_child("naive", family, quick, threads)
    print(f"[{family}] lorastudy pipeline ...", flush=True)
    ours = run_child("lorastudy", family, quick, threads)
    ratios = {key: (ours[key] / naive[key] if naive.get(key) and ours.get(key) is not None else None)
              for key in ("train_examples_per_s", "batched_examples_per_s", "single_p50_ms", "peak_memory_mb",
                          "val_macro_f1")}
    return {"naive": naive, "lorastudy": ours, "ratios": ratios}


TARGETS = {  # lorastudy / naive, from the issue; p50 and memory: lower is better
    "train_examples_per_s": {"encoder": (">=", 1.5), "decoder": (">=", 2.0)},
    "batched_examples_per_s": {"encoder": (">=", 2.0), "decoder": (">=", 2.0)},
    "single_p50_ms": {"encoder": ("<=", 0.7), "decoder": ("<=", 0.7)},
}


def table(results: dict, peaks: dict) -> str:
    lines = ["| model | metric | naive | lorastudy | ratio | target |", "|---|---|---|---|---|---|"]
    for family, result in results.items():
        for key, label in (("train_examples_per_s", "training examples/s"),
                           ("batched_examples_per_s", "batched inference examples/s"),
                           ("single_p50_ms", "single-example p50 (ms)"), ("peak_memory_mb", "peak memory (MB)"),
                           ("val_macro_f1", "validation macro F1")):
            naive, ours, ratio = result["naive"][key], result["lorastudy"][key], result["ratios"][key]
            op, goal = TARGETS.get(key, {}).get(family, ("", None))
            verdict = "" if goal is None else (f"{op} {goal}: " + ("met" if (ratio >= goal if op == ">=" else ratio <= goal)
                                                                    else "**missed**"))
            lines.append(f"| {family} | {label} | {naive:.3f} | {ours:.3f} | {ratio:.2f}x | {verdict} |")
        peak = peaks.get(result["lorastudy"].get("inference_precision") or "fp32", peaks["fp32"])
        achieved = result["lorastudy"]["batched_gflops"]
        naive_gflops = result["naive"]["batched_gflops"]
        target = " (target >= 50%)" if family == "encoder" else ""
        if achieved:
            lines.append(f"| {family} | batched inference GFLOP/s (share of matmul peak) | {naive_gflops:.1f} "
                         f"({naive_gflops / peaks['fp32']:.0%} of fp32) | {achieved:.1f} ({achieved / peak:.0%}){target} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="640 training examples, one epoch: a few minutes")
    parser.add_argument("--family", choices=["encoder", "decoder", "both"], default="both")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--write-results", action="store_true", help="write benchmarks/RESULTS.md and latest.json")
    parser.add_argument("--child", choices=["naive", "lorastudy"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        side = naive_side if args.child == "naive" else lorastudy_side
        args.child_out.write_text(json.dumps(side(args.family, args.quick, args.threads, args.work)))
        return

    families = ["encoder", "decoder"] if args.family == "both" else [args.family]
    peaks = {"fp32": matmul_peak_gflops(args.threads, "float32"), "bf16": matmul_peak_gflops(args.threads, "bfloat16")}
    print(f"dense matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s", flush=True)
    started = time.perf_counter()
    results = {family: compare(family, args.quick, args.threads) for family in families}
    report = table(results, peaks)
    print(report)
    command = "python benchmarks/bench_speed.py" + (" --quick" if args.quick else "") + \
        ("" if args.family == "both" else f" --family {args.family}") + f" --threads {args.threads}"
    record = {"command": command, "machine": machine(), "threads": args.threads, "matmul_peak_gflops": peaks,
              "results": results, "wall_time_s": time.perf_counter() - started}
    if args.write_results:
        (HERE / "latest.json").write_text(json.dumps(record, indent=2) + "\n")
        (HERE / "RESULTS.md").write_text(results_markdown(record, report))
        print(f"wrote {HERE / 'RESULTS.md'}")


def machine() -> dict:
    from lorastudy.core.runtime import environment_info

    info = environment_info()
    return {"cpu": info["cpu"], "cores": info["cpu_count"], "bf16_cpu": info["bf16_cpu"], "python": platform.python_version(),
            "libraries": info["libraries"], "git_commit": info["git_commit"]}


def results_markdown(record: dict, report: str) -> str:
    m = record["machine"]
    return (f"# Speed: lorastudy vs the naive notebook recipe\n\n"
            f"Reproduce: `{record['command']} --write-results` (from the repository root, after `make setup`).\n\n"
            f"Machine: {m['cpu']}, {m['cores']} cores, {record['threads']} threads, AVX-512 BF16: {m['bf16_cpu']}; "
            f"torch {m['libraries'].get('torch')}, transformers {m['libraries'].get('transformers')}, "
            f"peft {m['libraries'].get('peft')}; git {str(m['git_commit'])[:12]}. "
            f"Dense matmul peak: fp32 {record['matmul_peak_gflops']['fp32']:.1f} GFLOP/s, "
            f"bf16 {record['matmul_peak_gflops']['bf16']:.1f} GFLOP/s. Benchmark wall time {record['wall_time_s'] / 60:.1f} min.\n\n"
            f"{report}\n\nRatios are lorastudy / naive (for latency and memory, lower is better). "
            f"Raw numbers: `benchmarks/latest.json`.\n")


if __name__ == "__main__":
    main()
