"""The machine a run happens on: device, precision, threads, seeds, memory, versions.

Recorded in every run so that the experiment log can say exactly where a number came from.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import urlsplit

import numpy as np
import psutil

MEMORY_SAMPLE_S = 0.005
MEMORY_METHOD = ("CPU: the process's resident-set high-water mark (Linux VmHWM, reset when the block starts; "
                 "RSS sampled by a background thread where that is unavailable), including Python and the libraries; "
                 "GPU: torch.cuda.max_memory_allocated")
# run.json's "peak_memory_scope", whose process the peak is of: "run" = a fresh process that trained only
# this run (execution backends process and ray); "study" = the study's own process, which keeps what the
# runs before it left (backend local).
MemoryScope = Literal["run", "study"]
# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit systems.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGEST_HEAP_BLOCK = 32 * 2**20
LIBRARIES = ("torch", "transformers", "peft", "accelerate", "scikit-learn", "numpy", "gguf", "datasets")


def device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(requested: str, dev: str | None = None) -> str:
    """`auto`: bf16 where the hardware has it (Ampere+ GPU, AVX-512 BF16 CPU), fp16 on older GPUs, else fp32."""
    if requested != "auto":
        return requested
    dev = dev or device()
    if dev == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


def choose_attention(requested: str, dev: str | None = None) -> str:
    """`auto`: eager on CPU, sdpa elsewhere.

    Measured on the demo models (2-core CPU, bf16, batches of 32 x ~17 tokens): SDPA's CPU kernel spends
    ~11 ms per layer in its backward pass on such short sequences, so a SmolLM2 LoRA step takes 1.85 s
    with sdpa and 1.42 s with eager, and a MiniLM step 0.26 s vs 0.23 s.
    """
    if requested != "auto":
        return requested
    return "eager" if (dev or device()) == "cpu" else "sdpa"


def set_threads(threads: int | None) -> int:
    """torch's threads and, with them, the BLAS/OpenMP pools numpy and scikit-learn use (TF-IDF's solver):
    a 1-thread run beside another must not spread onto the other's core (measured: the TF-IDF run slowed a
    1-thread encoder run beside it from 5.5 to 1.3 steps/s)."""
    import torch
    from threadpoolctl import threadpool_limits

    if threads:
        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)
    return torch.get_num_threads()


def torch_dtype(precision: str):
    """The torch dtype of a precision name (fp32, bf16, fp16)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def autocast(precision: str, dev: str) -> contextlib.AbstractContextManager:
    """Mixed precision for bf16/fp16 (matmuls in the low dtype, norms and softmax in float32); fp32: nothing."""
    import torch

    if precision not in ("bf16", "fp16"):
        return contextlib.nullcontext()
    return torch.autocast(dev.split(":")[0], dtype=torch_dtype(precision))


@contextlib.contextmanager
def parameters_as(model, precision: str, select: Callable[[Any, Any], bool]) -> Iterator[None]:
    """Store the float32 parameters that `select(module, parameter)` picks in the autocast dtype while a block runs.

    Autocast re-casts a float32 Linear weight on every call; one stored in the autocast dtype gives
    bit-identical results without that cost. Other parameters (embeddings, norms) change what runs in
    low precision. Tied weights get one copy; the float32 originals are put back afterwards.
    """
    import torch

    dtype = torch_dtype(precision)
    swapped, copies = [], {}
    if dtype != torch.float32:
        for module in model.modules():
            for name, original in list(module.named_parameters(recurse=False)):
                if original.dtype != torch.float32 or not select(module, original):
                    continue
                if id(original) not in copies:
                    copies[id(original)] = torch.nn.Parameter(original.detach().to(dtype), requires_grad=False)
                swapped.append((module, name, original))
                setattr(module, name, copies[id(original)])
    try:
        yield
    finally:
        for module, name, original in swapped:
            setattr(module, name, original)


def linear_parameter(module, parameter) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear)


def every_parameter(module, parameter) -> bool:
    return True


# What `serving` stores in the run's precision. bf16 stores the whole model, as bf16 checkpoints are served: the
# residual stream, embeddings and norms then run in bf16 too, not only the matmuls (benchmarks/RESULTS.md: 1.2x
# the batched throughput of bf16 Linear weights alone on both demo models, validation macro F1 within 0.004).
# fp16 stores only the Linear weights: a residual stream in fp16's narrow range can overflow.
SERVED_PARAMETERS = {"bf16": every_parameter, "fp16": linear_parameter}


@contextlib.contextmanager
def serving(model, precision: str, dev: str) -> Iterator[None]:
    """How a trained model answers requests: no autograd, `SERVED_PARAMETERS` in the run's precision, autocast.

    One definition for the saved logits, the latency stage and `lorastudy predict`, so all three see one model.
    """
    import torch

    select = SERVED_PARAMETERS.get(precision, linear_parameter)
    with parameters_as(model, precision, select), torch.inference_mode(), autocast(precision, dev):
        yield


def served_weights(precision: str) -> str:
    """`serving`'s storage, in words for model cards and logs."""
    select = SERVED_PARAMETERS.get(precision)
    if select is None:
        return "float32"
    return f"{'all' if select is every_parameter else 'Linear'} weights in {precision}, under autocast"


def training_weights(model, precision: str) -> contextlib.AbstractContextManager:
    """How a model trains under bf16/fp16 autocast: its frozen Linear weights stored in the autocast dtype.

    Bit-identical to autocast over float32 weights, which rounds every frozen weight to the same bf16 tensor
    on every forward pass (all ~106M frozen weights of a decoder LoRA step, re-cast each step). Trainable
    weights (LoRA, heads, full fine-tunes) stay float32 for the optimizer; the float32 frozen weights come
    back afterwards, so merging and serving see the model as it was trained.
    """
    return parameters_as(model, precision, lambda module, parameter: linear_parameter(module, parameter)
                         and not parameter.requires_grad)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def peak_memory_mb() -> float:
    """Peak resident memory of this process (CPU) or peak allocated (GPU), in MiB."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_memory_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def release_memory() -> None:
    """Free unreachable objects and hand freed heap pages back to the OS, before measuring what a model adds.

    glibc keeps freed pages resident (3.7 GB of RSS after the demo decoder, 0.9 GB after `malloc_trim`), and
    a model loaded into them would not raise the RSS. Training runs do not call it: pages handed back are
    faulted in again by the next run.
    """
    gc.collect()
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


def keep_freed_memory() -> bool:
    """Let glibc keep the memory training frees for the next batch instead of handing it back to the kernel.

    By default glibc returns the free top of its heap and every block above its (adaptive) mmap threshold to
    the kernel, and the next batch that needs as much faults it in again, zeroed. A decoder LoRA step on the
    demo's longest batches (the first of each length group) needs ~3 GB of activations; on a VM whose memory
    the host backs lazily, fresh pages cost ~1.5 s per GB. With every tensor up to glibc's 32 MiB ceiling on
    the heap and the heap never trimmed, only the first long batch of a run pays: demo decoder runs train
    1.06x faster, bit-identical, same peak memory (benchmarks/RESULTS.md). `release_memory` still trims on
    request. Returns whether the allocator took the settings (False off glibc).
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)) and bool(mallopt(M_TRIM_THRESHOLD, -1))


def _glibc(function: str) -> Callable | None:
    """A glibc allocator function; None off Linux or under another libc (musl), where there is nothing to tune."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), function)
    except (OSError, AttributeError):
        return None


class PeakMemory:
    """Peak memory while the block runs: the kernel's resident-set high-water mark on Linux, the
    allocator's peak on a GPU, sampled RSS elsewhere.

    On Linux the high-water mark (VmHWM) is reset on entry and read on exit: exact, and free. A
    sampling thread that wakes every few milliseconds would preempt one of the two OpenMP threads
    on a 2-core machine and slow training itself. Blocks may nest: an inner block's reset would
    hide memory from the outer one, so an inner block hands its peak to the blocks around it.
    """

    _active: list["PeakMemory"] = []

    def __init__(self, device: str):
        self.device = device
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        elif not _reset_high_water_mark():
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        PeakMemory._active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        PeakMemory._active.remove(self)
        if self.device.startswith("cuda"):
            import torch

            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        elif self._thread is None:
            self.peak_mb = max(self.peak_mb, _high_water_mark_mb())
        else:
            self._stop.set()
            self._thread.join()
        for outer in PeakMemory._active:
            outer.peak_mb = max(outer.peak_mb, self.peak_mb)

    def _sample(self) -> None:
        process = psutil.Process()
        while True:
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
            if self._stop.wait(MEMORY_SAMPLE_S):
                self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
                return


def _reset_high_water_mark() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _high_water_mark_mb() > 0


def _high_water_mark_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


@lru_cache(maxsize=1)
def hub_unavailable() -> str | None:
    """Why the Hugging Face Hub cannot be used right now (offline mode, or its host unreachable), else None.

    Asked before any download that is not in the local cache: the hub clients otherwise retry
    for half a minute, printing each retry, before they fail.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=5):
            return None
    except OSError as exc:
        return f"{endpoint.hostname}:{port} cannot be reached ({exc.strerror or type(exc).__name__})"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info() -> dict:
    import torch

    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "bf16_cpu": cpu_supports_bf16(),
        "libraries": versions,
        "git_commit": git_commit(),
    }
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
