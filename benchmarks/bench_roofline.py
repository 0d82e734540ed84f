"""How close lorastudy's LoRA training and batched inference come to this machine's bf16 matmul peak.

For each model of the demo profile (encoder all-MiniLM-L6-v2, decoder SmolLM2-135M) and its LoRA recipe,
in one process, next to the bf16 dense-matmul peak measured in the same run (median of a measurement
before each model and one at the end):

* training: `training.train_run` itself (StudyTrainer, the recipe's precision, length grouping), with
  wall-clock timers around the phases of every optimizer step: data (sampler + collation), forward (+ loss),
  backward, optimizer (gradient clipping + AdamW), Trainer overhead (the rest of the step: callbacks,
  scheduler, zero_grad, logging). The first steps (warm-up), steps that ran the per-epoch evaluation and
  the profiled steps are left out. Then the top operators of a few decoder steps from `torch.profiler`.
* batched inference: the served model (`trained.load_trained`, LoRA merged) timed by `latency.measure_model`
  on the validation texts at the study's batch sizes; the best one counts, as in the latency stage.

Model FLOPs (stated in the output): with N = parameters outside the embeddings (LoRA and head included),
N_t = trainable parameters and T = real (unpadded) tokens,
  training  = (2N forward + 2N input gradients + 2N_t weight gradients) x T per step,
  inference = 2N x T.
Attention-score matmuls (~4 x layers x width x tokens per token, under 1% at ~17-token glosses) are not counted;
padding is not counted either, so padding shows as lost share.

`--compare` trains each model twice per repeat, alternating: once as lorastudy trains (after), once with the
training fast path off (`runtime.training_weights` as a no-op: the recipe before it existed), same process,
same data and seed, so the two sides see the same machine load; medians over `--repeats`.
`--compare-allocator` does the same for `runtime.keep_freed_memory` (glibc keeps freed memory for the next
batch), which is process-wide: each side trains in a fresh process of this script, alternating.
`--processes N` trains N runs at once, each in its own process with `--threads` threads, as the demo's process
backend does, and states their summed rate as a share of the N x threads peak measured before and after.

    python benchmarks/bench_roofline.py --quick                 # 640 training examples, one epoch
    python benchmarks/bench_roofline.py --quick --compare --repeats 3
    python benchmarks/bench_roofline.py --family decoder        # the demo recipe (4,000 examples)
    python benchmarks/bench_roofline.py --family decoder --threads 1 --compare-allocator --repeats 2
    python benchmarks/bench_roofline.py --family decoder --threads 1 --processes 2   # the demo's setting

Printed as shares and ratios, never asserted: the machine is shared and its peak moves with load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import machine, matmul_peak_gflops, study_config  # noqa: E402

HERE = Path(__file__).resolve().parent
WARMUP_STEPS = 2
PROFILE_AT_STEP, PROFILE_STEPS = 5, 3
PHASES = ("data", "forward", "backward", "optimizer", "trainer")


# --- timing the Trainer's phases ---------------------------------------------------


class StepClock:
    """Per optimizer step: seconds in each phase, examples, real and padded tokens; which steps to leave out."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self._step_start = 0.0

    def begin_step(self) -> None:
        self.end_step()
        self._step_start = time.perf_counter()
        self.steps.append({"phases": defaultdict(float), "examples": 0, "tokens": 0, "padded_tokens": 0,
                           "excluded": len(self.steps) < WARMUP_STEPS})

    def end_step(self) -> None:
        if self.steps and "wall" not in self.steps[-1]:
            self.steps[-1]["wall"] = time.perf_counter() - self._step_start

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.steps:
                self.steps[-1]["phases"][name] += time.perf_counter() - start

    def exclude_current(self) -> None:
        if self.steps:
            self.steps[-1]["excluded"] = True

    def summary(self) -> dict:
        kept = [s for s in self.steps if not s["excluded"] and "wall" in s]
        wall = sum(s["wall"] for s in kept)
        phases = {name: sum(s["phases"][name] for s in kept) for name in PHASES if name != "trainer"}
        phases["trainer"] = wall - sum(phases.values())
        return {"steps_measured": len(kept), "steps_total": len(self.steps), "seconds": wall,
                "first_step_s": self.steps[0].get("wall") if self.steps else None,
                "examples": sum(s["examples"] for s in kept), "tokens": sum(s["tokens"] for s in kept),
                "padded_tokens": sum(s["padded_tokens"] for s in kept),
                "phase_seconds": phases, "phase_shares": {k: v / wall for k, v in phases.items()} if wall else {}}


def timed_trainer_class(base, clock: StepClock, profile: dict | None):
    """`training.StudyTrainer` with `clock` around its phases (and torch.profiler over a few steps if asked)."""
    from transformers import TrainerCallback

    class OptimizerTimer(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            clock.steps[-1]["phases"]["optimizer"] += time.perf_counter() - self._start

        def on_step_begin(self, args, state, control, **kwargs):
            if profile is not None and state.global_step == PROFILE_AT_STEP:
                from torch.profiler import ProfilerActivity, profile as torch_profile

                profile["profiler"] = torch_profile(activities=[ProfilerActivity.CPU])
                profile["profiler"].__enter__()
            if profile is not None and "profiler" in profile and "done" not in profile:
                clock.exclude_current()
                clock.steps[-1]["profiled"] = True

        def on_step_end(self, args, state, control, **kwargs):
            if profile is not None and state.global_step == PROFILE_AT_STEP + PROFILE_STEPS and "profiler" in profile:
                profile["profiler"].__exit__(None, None, None)
                profile["done"] = state.global_step - PROFILE_AT_STEP

    class TimedTrainer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(OptimizerTimer())
            backward = self.accelerator.backward

            def timed_backward(loss, **kw):
                with clock.phase("backward"):
                    return backward(loss, **kw)

            self.accelerator.backward = timed_backward

        def get_batch_samples(self, *args, **kwargs):
            clock.begin_step()
            with clock.phase("data"):
                batches, items = super().get_batch_samples(*args, **kwargs)
            for batch in batches:
                mask = batch["attention_mask"]
                clock.steps[-1]["examples"] += int(mask.shape[0])
                clock.steps[-1]["tokens"] += int(mask.sum())
                clock.steps[-1]["padded_tokens"] += int(mask.numel())
            return batches, items

        def compute_loss(self, *args, **kwargs):
            with clock.phase("forward"):
                return super().compute_loss(*args, **kwargs)

        def _clip_grad_norm(self, model):
            with clock.phase("optimizer"):
                return super()._clip_grad_norm(model)

        def evaluate(self, *args, **kwargs):
            clock.exclude_current()
            return super().evaluate(*args, **kwargs)

        def train(self, *args, **kwargs):
            try:
                return super().train(*args, **kwargs)
            finally:
                clock.end_step()

    return TimedTrainer


# --- FLOPs -------------------------------------------------------------------------


def matmul_parameters(model) -> int:
    """Parameters a token multiplies through: everything but the embedding tables (each counted once)."""
    embeddings = {id(m.weight) for m in model.modules() if type(m).__name__ == "Embedding"}
    seen, total = set(), 0
    for param in model.parameters():
        if id(param) not in seen and id(param) not in embeddings:
            seen.add(id(param))
            total += param.numel()
    return total


# --- one model ---------------------------------------------------------------------


def train_once(family: str, quick: bool, threads: int, fast: bool, profile: bool, work: Path) -> dict:
    """One `train_run` of the family's LoRA arm, timed by phase; `fast=False` turns the training fast path off."""
    from lorastudy.core import artifacts, runtime
    from lorastudy.study import lora, training
    from lorastudy.study.arms import arm_spec
    from lorastudy.study.data import prepare_data

    config = study_config(quick, family, threads)
    data = prepare_data(config, work)
    spec = arm_spec(config, f"{family}_lora", config.seeds[0], data.fingerprint)
    clock, recorded = StepClock(), ({} if profile else None)
    counted: dict[str, int] = {}
    original_trainer, original_apply = training.StudyTrainer, lora.apply_lora
    original_fast_path = runtime.training_weights

    def counting_apply(model, lora_config, fam):
        wrapped = original_apply(model, lora_config, fam)
        counted["n"] = matmul_parameters(wrapped)
        counted["trainable"] = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
        return wrapped

    training.StudyTrainer = timed_trainer_class(original_trainer, clock, recorded)
    lora.apply_lora = counting_apply
    if not fast:
        runtime.training_weights = lambda model, precision: contextlib.nullcontext()
    run_dir = Path(tempfile.mkdtemp(prefix=f"roofline-{family}-", dir=work))
    try:
        run_path = training.train_run(spec, data, run_dir, config)
    finally:
        training.StudyTrainer, runtime.training_weights, lora.apply_lora = \
            original_trainer, original_fast_path, original_apply
    run = artifacts.read_json(run_path / "run.json")
    summary = clock.summary()
    flops_per_token = 4 * counted["n"] + 2 * counted["trainable"]
    result = {"fast_path": fast, "run_path": str(run_path), "val_macro_f1": run["best_val_macro_f1"],
              "run_wall_time_s": run["wall_time_s"], "peak_memory_mb": run["peak_memory_mb"],
              "precision": run["precision"], "attention": run.get("attention"), **summary,
              "n_matmul_parameters": counted["n"], "n_trainable": counted["trainable"],
              "flops_per_token": flops_per_token,
              "examples_per_s": summary["examples"] / summary["seconds"],
              "gflops": flops_per_token * summary["tokens"] / summary["seconds"] / 1e9}
    if recorded and "profiler" in recorded:
        steps = recorded.get("done", PROFILE_STEPS)
        result["top_operators"] = top_operators(recorded["profiler"], steps)
        padded = sum(s["padded_tokens"] for s in clock.steps if s.get("profiled"))
        matmul_ms = sum(op["ms_per_step"] for op in top_operators(recorded["profiler"], steps, limit=None)
                        if op["operator"] in ("aten::mm", "aten::bmm", "aten::addmm"))
        all_ms = sum(op["ms_per_step"] for op in top_operators(recorded["profiler"], steps, limit=None))
        result["profiled_matmuls"] = {"ms_per_step": matmul_ms, "other_operators_ms_per_step": all_ms - matmul_ms,
                                      "gflops_on_padded_tokens": flops_per_token * padded / steps / matmul_ms / 1e6}
    return result


def top_operators(profiler, steps: int, limit: int | None = 12) -> list[dict]:
    """The aten operators with the most self CPU time per step, and their share of all operator time."""
    events = [e for e in profiler.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"operator": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "calls_per_step": e.count / steps, "share": e.self_cpu_time_total / total} for e in events[:limit]]


def inference(run_path: str, family: str, quick: bool, threads: int, work: Path) -> dict:
    """Batched inference of the served model (LoRA merged) as the latency stage measures it, on validation texts."""
    from lorastudy.core import artifacts
    from lorastudy.study.config import LatencyConfig
    from lorastudy.study.data import prepare_data
    from lorastudy.measure.latency import measure_model
    from lorastudy.study.trained import load_trained

    config = study_config(quick, family, threads)
    texts = prepare_data(config, work).texts("val")
    model, tokenizer = load_trained(Path(run_path), merged=True)
    cfg = LatencyConfig(single_requests=4, warmup=2, batch_sizes=config.latency.batch_sizes,
                        batched_examples=len(texts), threads=threads)
    precision = artifacts.read_json(Path(run_path) / "run.json")["precision"]
    measured = measure_model(model, tokenizer, texts, cfg, max_length=config.data.max_length, device="cpu",
                             precision=precision)
    best = max(measured["batched"], key=lambda row: row["examples_per_s"])
    lengths = tokenizer(texts, truncation=True, max_length=config.data.max_length)["input_ids"]
    tokens_per_example = sum(map(len, lengths)) / len(lengths)
    n = matmul_parameters(model)
    return {"batch_size": best["batch_size"], "examples_per_s": best["examples_per_s"],
            "padding_share": best["padding_share"], "attention": (measured["attention"] or {}).get("batched"),
            "precision": precision,
            "n_matmul_parameters": n, "tokens_per_example": tokens_per_example,
            "gflops": 2 * n * tokens_per_example * best["examples_per_s"] / 1e9}


# --- serving storage, side by side ------------------------------------------------------


def compare_serving(run_dir: Path, family: str, repeats: int, threads: int) -> dict:
    """Batched inference of a finished study's first-seed LoRA arm, served with Linear weights only in bf16
    ("before") and with the whole model in bf16 ("after"), alternating, each next to its own peak measurement;
    plus both sides' validation macro F1 and how many validation argmaxes they share."""
    from sklearn.metrics import f1_score

    from lorastudy.core import runtime
    from lorastudy.study.config import LatencyConfig
    from lorastudy.study.data import load_prepared
    from lorastudy.measure.latency import measure_model
    from lorastudy.serve.predict import Predictor, locate_run

    predictor = Predictor(locate_run(run_dir, f"{family}_lora"))
    config, model, tokenizer = predictor.run.config, predictor.model, predictor.tokenizer
    data = load_prepared(run_dir)
    texts, labels = data.texts("val"), data.label_ids("val")
    lengths = tokenizer(texts, truncation=True, max_length=config.data.max_length)["input_ids"]
    tokens_per_example = sum(map(len, lengths)) / len(lengths)
    n = matmul_parameters(model)
    cfg = LatencyConfig(single_requests=4, warmup=2, batch_sizes=config.latency.batch_sizes,
                        batched_examples=len(texts), threads=threads)
    storage = {"before": runtime.linear_parameter, "after": runtime.every_parameter}
    original = runtime.SERVED_PARAMETERS[predictor.precision]
    sides: dict[str, dict] = {side: {"shares": [], "kernels": []} for side in storage}
    try:
        for side, select in storage.items():
            runtime.SERVED_PARAMETERS[predictor.precision] = select
            sides[side]["predictions"] = predictor.logits(texts).argmax(axis=1)
            sides[side]["val_macro_f1"] = f1_score(labels, sides[side]["predictions"], average="macro")
        for repeat in range(repeats):
            for side in (storage if repeat % 2 == 0 else list(storage)[::-1]):
                runtime.SERVED_PARAMETERS[predictor.precision] = storage[side]
                peak = matmul_peak_gflops(threads, "bfloat16")
                measured = measure_model(model, tokenizer, texts, cfg, max_length=config.data.max_length,
                                         device="cpu", precision=predictor.precision, desc=f"{family} {side}")
                best = max(measured["batched"], key=lambda row: row["examples_per_s"])
                share = 2 * n * tokens_per_example * best["examples_per_s"] / 1e9 / peak
                sides[side]["shares"].append(share)
                sides[side]["kernels"].append(f"batch {best['batch_size']}, {measured['attention']['batched']}")
                print(f"[{family}] serving {side} #{repeat + 1}: {best['examples_per_s']:.0f} examples/s, "
                      f"{share:.0%} of a {peak:.0f} GFLOP/s peak ({sides[side]['kernels'][-1]})", flush=True)
    finally:
        runtime.SERVED_PARAMETERS[predictor.precision] = original
    agree = float((sides["before"].pop("predictions") == sides["after"].pop("predictions")).mean())
    return {**sides, "argmax_agreement": agree, "precision": predictor.precision, "n_matmul_parameters": n}


def serving_report(record: dict) -> str:
    lines = ["| model | serving | share of same-run bf16 peak (median; each repeat) | val macro F1 |",
             "|---|---|---|---|"]
    for family, result in record["serving"].items():
        for side, label in (("before", "Linear weights in bf16"), ("after", "whole model in bf16")):
            shares = result[side]["shares"]
            lines.append(f"| {family} | {label} | {statistics.median(shares):.0%} "
                         f"({', '.join(f'{s:.0%}' for s in shares)}; {result[side]['kernels'][0]}) | "
                         f"{result[side]['val_macro_f1']:.4f} |")
        ratios = [a / b for a, b in zip(result["after"]["shares"], result["before"]["shares"])]
        lines.append(f"| {family} | after / before | {statistics.median(ratios):.2f}x "
                     f"({', '.join(f'{r:.2f}' for r in ratios)}) | argmax agreement {result['argmax_agreement']:.1%} |")
    return "\n".join(lines)


def trained_in_children(args: argparse.Namespace, family: str, count: int, *extra: str) -> list[dict]:
    """`count` processes of this script at once, each training `family` only (no profile, no inference) with
    `--threads` threads; each one's training run, with the peak that process measured (`own_peak`)."""
    command = [sys.executable, __file__, "--family", family, "--threads", str(args.threads), "--no-profile",
               "--no-inference", *(["--quick"] if args.quick else []), *extra]
    with tempfile.TemporaryDirectory(prefix="roofline-children-") as tmp:
        outs = [Path(tmp) / f"process{i}.json" for i in range(count)]
        children = [subprocess.Popen([*command, "--json", str(out)], stdout=subprocess.DEVNULL) for out in outs]
        if any([child.wait() for child in children]):
            raise SystemExit(f"a {family} training process failed")
        records = [json.loads(out.read_text()) for out in outs]
    return [{**record["families"][family]["training"]["after"][0], "own_peak": record["bf16_peak_gflops"]["median"]}
            for record in records]


def compare_allocator(args: argparse.Namespace, families: list[str]) -> dict:
    """Training with glibc's default allocator and with `runtime.keep_freed_memory`, alternating; each run in a
    fresh process of this script (the setting is process-wide), next to that process's own peak measurement."""
    sides: dict[str, list[dict]] = {"glibc": [], "kept": []}
    for family in families:
        for repeat in range(args.repeats):
            for side in (list(sides) if repeat % 2 == 0 else list(sides)[::-1]):
                run = trained_in_children(args, family, 1, "--allocator", side)[0]
                sides[side].append({"family": family, "share": run["gflops"] / run["own_peak"], **run})
                print(f"[{family}] {side} #{repeat + 1}: {run['examples_per_s']:.1f} examples/s, "
                      f"{sides[side][-1]['share']:.0%} of a {run['own_peak']:.0f} GFLOP/s peak, first step "
                      f"{run['first_step_s']:.1f} s, run {run['run_wall_time_s']:.0f} s, "
                      f"peak memory {run['peak_memory_mb']:.0f} MB", flush=True)
    return sides


def train_concurrently(args: argparse.Namespace, families: list[str]) -> dict:
    """`--processes` runs of a family at once, each in its own process with `--threads` threads (as the demo's
    process backend trains); their model FLOP rates summed, against the bf16 peak of processes x threads measured
    before and after."""
    total_threads = args.processes * args.threads
    result = {}
    for family in families:
        peaks = [matmul_peak_gflops(total_threads, "bfloat16")]
        runs = trained_in_children(args, family, args.processes)
        peaks.append(matmul_peak_gflops(total_threads, "bfloat16"))
        result[family] = {"peaks": peaks, "threads": total_threads, "processes": runs}
    return result


def concurrent_report(result: dict) -> str:
    lines = ["| model | process | examples/s | GFLOP/s | share of its own 1-process peak | val macro F1 |",
             "|---|---|---|---|---|---|"]
    for family, measured in result.items():
        for i, run in enumerate(measured["processes"], 1):
            lines.append(f"| {family} | #{i} | {run['examples_per_s']:.1f} | {run['gflops']:.1f} | "
                         f"{run['gflops'] / run['own_peak']:.0%} of {run['own_peak']:.0f} | {run['val_macro_f1']:.4f} |")
        total = sum(run["gflops"] for run in measured["processes"])
        peak = statistics.median(measured["peaks"])
        lines.append(f"| {family} | all at once | {sum(run['examples_per_s'] for run in measured['processes']):.1f} | "
                     f"{total:.1f} | **{total / peak:.0%}** of the {measured['threads']}-thread peak {peak:.0f} "
                     f"(measured {', '.join(f'{p:.0f}' for p in measured['peaks'])}: "
                     f"{', '.join(f'{total / p:.0%}' for p in measured['peaks'])}) | |")
    return "\n".join(lines)


def allocator_report(sides: dict[str, list[dict]]) -> str:
    lines = ["| model | allocator | share of own bf16 peak (median; each run) | examples/s | first step, s | "
             "run wall time, s | peak memory, MB | val macro F1 |", "|---|---|---|---|---|---|---|---|"]
    for family in dict.fromkeys(run["family"] for runs in sides.values() for run in runs):
        runs = {side: [run for run in sides[side] if run["family"] == family] for side in sides}
        for side, label in (("glibc", "glibc default"), ("kept", "keep_freed_memory")):
            rows = runs[side]
            shares = ", ".join(f"{row['share']:.0%}" for row in rows)
            f1 = ", ".join(f"{row['val_macro_f1']:.4f}" for row in rows)
            lines.append(f"| {family} | {label} | {median_of(rows, 'share'):.0%} ({shares}) | "
                         f"{median_of(rows, 'examples_per_s'):.1f} | {median_of(rows, 'first_step_s'):.1f} | "
                         f"{median_of(rows, 'run_wall_time_s'):.0f} | {median_of(rows, 'peak_memory_mb'):.0f} | {f1} |")
        ratios = [k["examples_per_s"] / g["examples_per_s"] for k, g in zip(runs["kept"], runs["glibc"])]
        lines.append(f"| {family} | kept / glibc (paired) | {statistics.median(ratios):.2f}x "
                     f"({', '.join(f'{r:.2f}' for r in ratios)}) | | | | | |")
    return "\n".join(lines)


# --- the report --------------------------------------------------------------------


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report(record: dict) -> str:
    peak = record["bf16_peak_gflops"]
    lines = [f"bf16 dense-matmul peak, same run: {peak['median']:.1f} GFLOP/s "
             f"(measurements {', '.join(f'{p:.0f}' for p in peak['samples'])}); threads {record['threads']}",
             "training FLOPs/step = (4N + 2N_t) x real tokens; inference = 2N x real tokens "
             "(N: non-embedding parameters incl. LoRA and head, N_t: trainable)", "",
             "| model | path | examples/s | GFLOP/s | share of bf16 peak | s/step | padding | val macro F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for family, result in record["families"].items():
        for side in ("before", "after"):
            runs = result["training"].get(side)
            if not runs:
                continue
            gflops = median_of(runs, "gflops")
            per_step = statistics.median(r["seconds"] / r["steps_measured"] for r in runs)
            padding = 1 - statistics.median(r["tokens"] / r["padded_tokens"] for r in runs)
            f1 = ", ".join(f"{r['val_macro_f1']:.4f}" for r in runs)
            lines.append(f"| {family} (N={runs[0]['n_matmul_parameters'] / 1e6:.1f}M) | training, {side} | "
                         f"{median_of(runs, 'examples_per_s'):.1f} | {gflops:.1f} | {gflops / peak['median']:.0%} | "
                         f"{per_step:.3f} | {padding:.0%} | {f1} |")
        if "before" in result["training"] and "after" in result["training"]:
            ratios = [a["examples_per_s"] / b["examples_per_s"]
                      for a, b in zip(result["training"]["after"], result["training"]["before"])]
            lines.append(f"| {family} | after / before (paired runs) | {statistics.median(ratios):.2f}x "
                         f"({', '.join(f'{r:.2f}' for r in ratios)}) | | | | | |")
        inf = result.get("inference")
        if inf:
            lines.append(f"| {family} | batched inference (batch {inf['batch_size']}, {inf['attention']}) | "
                         f"{inf['examples_per_s']:.1f} | {inf['gflops']:.1f} | {inf['gflops'] / peak['median']:.0%} | "
                         f" | {inf['padding_share']:.0%} | |")
    for family, result in record["families"].items():
        runs = result["training"].get("after") or result["training"].get("before")
        shares = {k: statistics.median(r["phase_shares"][k] for r in runs) for k in PHASES}
        seconds = {k: statistics.median(r["phase_seconds"][k] / r["steps_measured"] for r in runs) for k in PHASES}
        lines += ["", f"{family} LoRA training step, by phase (median over runs of the per-step mean, "
                      f"{runs[0]['steps_measured']} steps each):",
                  "| phase | ms/step | share |", "|---|---|---|"]
        lines += [f"| {k} | {seconds[k] * 1e3:.1f} | {shares[k]:.0%} |" for k in PHASES]
        profiled = next((r["top_operators"] for r in runs if r.get("top_operators")), None)
        matmuls = next((r["profiled_matmuls"] for r in runs if r.get("profiled_matmuls")), None)
        if matmuls:
            lines += ["", f"{family}, profiled steps: matmuls (mm, bmm) {matmuls['ms_per_step']:.0f} ms/step at "
                          f"{matmuls['gflops_on_padded_tokens']:.0f} GFLOP/s (model FLOPs on padded tokens, "
                          f"{matmuls['gflops_on_padded_tokens'] / peak['median']:.0%} of the peak); all other "
                          f"operators {matmuls['other_operators_ms_per_step']:.0f} ms/step (profiler overhead included)"]
        if profiled:
            lines += ["", f"{family}: top aten operators of {PROFILE_STEPS} profiled steps (self CPU time):",
                      "| operator | ms/step | calls/step | share |", "|---|---|---|---|"]
            lines += [f"| {op['operator']} | {op['ms_per_step']:.1f} | {op['calls_per_step']:.0f} | {op['share']:.0%} |"
                      for op in profiled]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="640 training examples, one epoch")
    parser.add_argument("--family", choices=["encoder", "decoder", "both"], default="both")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--compare", action="store_true", help="also train with the fast path off, alternating")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-profile", action="store_true", help="skip the torch.profiler operator table")
    parser.add_argument("--json", type=Path, help="write the raw record here")
    parser.add_argument("--serving", type=Path, metavar="RUN_DIR",
                        help="no training: compare serving storage on a finished study's first-seed LoRA arms")
    parser.add_argument("--no-inference", action="store_true", help="time training only")
    parser.add_argument("--allocator", choices=["kept", "glibc"], default="kept",
                        help="kept: as lorastudy trains (runtime.keep_freed_memory); glibc: its default settings")
    parser.add_argument("--compare-allocator", action="store_true",
                        help="train with each allocator setting in its own process, alternating, --repeats times")
    parser.add_argument("--processes", type=int, default=1,
                        help="train this many runs at once, each in its own process with --threads threads")
    args = parser.parse_args()
    families = ["encoder", "decoder"] if args.family == "both" else [args.family]
    if args.compare_allocator:
        print(allocator_report(compare_allocator(args, families)))
        return
    if args.processes > 1:
        print(concurrent_report(train_concurrently(args, families)))
        return

    import torch

    from lorastudy.core import runtime

    runtime.set_threads(args.threads)
    torch.set_num_threads(args.threads)
    if args.allocator == "glibc":
        runtime.keep_freed_memory = lambda: False
    peaks: list[float] = []
    record = {"command": "python benchmarks/bench_roofline.py " + " ".join(sys.argv[1:]), "threads": args.threads,
              "machine": machine(), "families": {}}
    started = time.perf_counter()
    if args.serving:
        record["serving"] = {family: compare_serving(args.serving, family, args.repeats, args.threads)
                             for family in families}
        print(serving_report(record))
        if args.json:
            args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="roofline-") as tmp:
        work = Path(tmp)
        for family in families:
            peaks.append(matmul_peak_gflops(args.threads, "bfloat16"))
            print(f"[{family}] bf16 peak {peaks[-1]:.0f} GFLOP/s", flush=True)
            sides = ("before", "after") if args.compare else ("after",)
            training_runs: dict[str, list[dict]] = {side: [] for side in sides}
            for repeat in range(args.repeats):
                for side in (sides if repeat % 2 == 0 else sides[::-1]):
                    profile = not args.no_profile and family == "decoder" and repeat == 0
                    result = train_once(family, args.quick, args.threads, side == "after", profile, work)
                    training_runs[side].append(result)
                    print(f"[{family}] training {side} #{repeat + 1}: {result['examples_per_s']:.1f} examples/s, "
                          f"{result['gflops']:.0f} GFLOP/s, val macro F1 {result['val_macro_f1']:.4f}", flush=True)
            served = training_runs["after"][0]["run_path"] if "after" in training_runs else None
            record["families"][family] = {
                "training": training_runs,
                "inference": inference(served, family, args.quick, args.threads, work)
                if served and not args.no_inference else None}
        peaks.append(matmul_peak_gflops(args.threads, "bfloat16"))
    record["bf16_peak_gflops"] = {"median": statistics.median(peaks), "samples": peaks}
    record["wall_time_s"] = time.perf_counter() - started
    print(report(record))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
