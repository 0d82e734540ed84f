"""Where the study's runs train: one after another in this process, each in its own child process, or as
Ray tasks on a local or remote cluster.

Every backend trains a run with the same `training.train_run`, so the artifacts and the study's results do
not depend on where a run trained. Only the driver decides what is finished (`training.is_finished`), and
evaluation, latency and the note always run on the driver after training: latency is never measured while
runs train.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from lorastudy.core import artifacts
from lorastudy.study.config import ExecutionConfig, RunResources, StudyConfig
from lorastudy.study.arms import ArmSpec
from lorastudy.study.prepared_data import PreparedData
from lorastudy.core.errors import StudyError
from lorastudy.study.training import is_finished, run_path_for, train_run

# Written by the driver into the run directory while runs train; a worker that reads the same token there
# shares the driver's filesystem and writes its run in place, any other returns the run's files.
TOKEN_FILE = ".driver-token"
# Environment variables the Ray workers get from the driver: lorastudy's own, and Hugging Face's offline
# and verbosity switches.
FORWARDED_ENV_PREFIXES = ("LORASTUDY_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")


@dataclass(frozen=True)
class RunOutcome:
    """What a worker hands back: the run's run.json, and its files when the driver cannot see the worker's disk."""

    run_name: str
    record: dict
    files: dict[str, bytes] | None


def check_backend(execution: ExecutionConfig) -> None:
    """Fail before any work when the configured backend cannot run here."""
    if execution.backend == "ray":
        _import_ray()


def train_runs(specs: list[ArmSpec], data: PreparedData, run_dir: Path, config: StudyConfig) -> None:
    """Train every unfinished run with the configured backend.

    Raises a StudyError naming the runs that still failed after their retries; every run that finished is kept.
    """
    backend = config.execution.backend
    pending = []
    for spec in specs:
        if is_finished(run_path_for(run_dir, spec), spec):
            tqdm.write(f"{spec.run_name}: finished earlier (config {spec.config_hash()}), skipped.")
        else:
            pending.append(spec)
    if not pending:
        return
    if backend == "local":
        for done, spec in enumerate(pending, start=1):
            run_path = train_run(spec, data, run_dir, config)
            report_run(RunOutcome(spec.run_name, artifacts.read_json(run_path / "run.json"), None), run_dir,
                       done, len(pending))
        return
    train = _train_in_processes if backend == "process" else _train_on_ray
    run_dir = Path(run_dir).resolve()  # workers may start in another folder
    with driver_token(run_dir) as token:
        failures = train(pending, data, run_dir, config, None if config.execution.return_artifacts else token)
    if failures:
        attempts = 1 + config.execution.max_retries
        listed = "; ".join(f"{name} ({error})" for name, error in failures.items())
        raise StudyError(f"{len(failures)} of {len(specs)} runs failed after {attempts} attempt(s): {listed}.",
                         "the finished runs are kept; fix the cause and run the same command again to train "
                         "only the missing runs.")


@contextmanager
def driver_token(run_dir: Path) -> Iterator[str]:
    """A fresh token in the run directory for as long as runs train (see TOKEN_FILE)."""
    token = uuid.uuid4().hex
    path = Path(run_dir) / TOKEN_FILE
    artifacts.write_text(path, token)
    try:
        yield token
    finally:
        path.unlink(missing_ok=True)


# --- the worker side ----------------------------------------------------------


def train_in_worker(spec: ArmSpec, data: PreparedData, run_dir: str, config: StudyConfig,
                    token: str | None, env: dict[str, str] | None = None) -> RunOutcome:
    """Train one run in a fresh process: in place when this worker sees the driver's run directory (it finds
    `token` there), else in a scratch folder whose files go back to the driver.

    `env`: the driver's forwarded variables now (FORWARDED_ENV_PREFIXES); a process forked from the forkserver
    would otherwise see them as they were when the server started.
    """
    if env is not None:
        for key in [key for key in os.environ if key.startswith(FORWARDED_ENV_PREFIXES) and key not in env]:
            del os.environ[key]
        os.environ.update(env)
    _crash_hook(spec.run_name)
    if token is not None and _reads_token(Path(run_dir), token):
        run_path = train_run(spec, data, Path(run_dir), config, memory_scope="run")
        return RunOutcome(spec.run_name, artifacts.read_json(run_path / "run.json"), None)
    with tempfile.TemporaryDirectory(prefix="lorastudy-run-") as scratch:
        run_path = train_run(spec, data, Path(scratch), config, memory_scope="run")
        files = {path.relative_to(run_path).as_posix(): path.read_bytes()
                 for path in sorted(run_path.rglob("*")) if path.is_file()}
        return RunOutcome(spec.run_name, artifacts.read_json(run_path / "run.json"), files)


def _reads_token(run_dir: Path, token: str) -> bool:
    try:
        return (run_dir / TOKEN_FILE).read_text(encoding="utf-8") == token
    except OSError:
        return False


def _crash_hook(run_name: str) -> None:
    """Fault-injection hook for the tests: `LORASTUDY_CRASH_RUN=<run name>` SIGKILLs the process that starts
    that run, as a lost machine or an out-of-memory kill would; `<run name>:<flag file>` does it only once
    (the first process to create the flag file)."""
    target = os.environ.get("LORASTUDY_CRASH_RUN")
    if not target:
        return
    name, _, flag = target.partition(":")
    if name != run_name:
        return
    if flag:
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)


# --- the driver side ----------------------------------------------------------


def report_run(outcome: RunOutcome, run_dir: Path, done: int, total: int) -> None:
    """Write a returned run folder in place (run.json last, the folder swapped in whole) and print its one line.

    The only place a finished run is reported, for every backend: `[done/total] run: val macro F1, seconds,
    peak memory`.
    """
    if outcome.files is not None:
        with artifacts.atomic_dir(Path(run_dir) / "runs" / outcome.run_name) as tmp:
            for name in sorted(outcome.files, key=lambda name: name == "run.json"):
                artifacts.write_bytes(tmp / name, outcome.files[name])
    record = outcome.record
    collapsed = " COLLAPSED" if record["collapse"]["collapsed"] else ""
    returned = "" if outcome.files is None else f" (its {len(outcome.files)} files returned to the driver)"
    tqdm.write(f"[{done}/{total}] {outcome.run_name}: val macro F1 {record['best_val_macro_f1']:.3f}, "
               f"{record['wall_time_s']:.0f} s, peak memory {record['peak_memory_mb']:.0f} MB{collapsed}{returned}.")


def _one_line(exc: BaseException) -> str:
    """A worker's failure in one line: a StudyError as itself, anything else as its type and first line."""
    cause = getattr(exc, "cause", None) or exc  # Ray wraps the worker's exception; .cause is the original
    if isinstance(exc, BrokenProcessPool):
        return "its process died (killed, or out of memory)"
    if isinstance(cause, StudyError):
        return cause.one_line()
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no message'}"


def _train_in_processes(pending: list[ArmSpec], data: PreparedData, run_dir: Path, config: StudyConfig,
                        token: str | None) -> dict[str, str]:
    """Each run in its own child process, max_concurrent at a time (default 1); a crash fails only that
    attempt of that run.

    With several at once and `threads` unset, each run gets an equal share of the cores, as Ray gives a run its
    num_cpus: on 2 cores, two 1-thread runs train more examples per second than one 2-thread run (measured in
    benchmarks/RESULTS.md), because the many small operators of a step do not use a second thread well.
    """
    concurrent = config.execution.max_concurrent or 1
    if concurrent > 1 and not config.threads:
        config = config.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // concurrent)})
    # Each run forks from a server that imported torch and transformers once (~6 s per run saved), yet is
    # still a fresh process: a crash or a leak stays in its run.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "transformers", "peft", "lorastudy.study.training"])
    failures: dict[str, str] = {}
    finished = iter(range(1, len(pending) + 1))
    stop = threading.Event()  # set when the driver is interrupted: no run starts or retries after that

    def train(spec: ArmSpec) -> None:
        for attempt in range(1, config.execution.max_retries + 2):
            if stop.is_set():
                return
            try:
                with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                    outcome = pool.submit(train_in_worker, spec, data, str(run_dir), config, token,
                                          _forwarded_env()).result()
            except Exception as exc:  # the child's failure, whatever it was, fails this attempt only
                failures[spec.run_name] = _one_line(exc)
                tqdm.write(f"{spec.run_name}: attempt {attempt} failed: {failures[spec.run_name]}")
            else:
                failures.pop(spec.run_name, None)
                report_run(outcome, run_dir, next(finished), len(pending))
                return

    threads = ThreadPoolExecutor(max_workers=concurrent)  # each thread only waits on its run's process
    try:
        for future in [threads.submit(train, spec) for spec in pending]:
            future.result()
    except BaseException:
        stop.set()
        threads.shutdown(wait=False, cancel_futures=True)
        raise
    threads.shutdown()
    return failures


def _forwarded_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(FORWARDED_ENV_PREFIXES)}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise StudyError("execution.backend is 'ray' but Ray is not installed.",
                         "pip install 'lorastudy[ray]', or set execution.backend to local or process.") from None
    return ray


def _family(spec: ArmSpec) -> str:
    return "tfidf" if spec.method == "tfidf" else spec.family


def _resources(spec: ArmSpec, execution: ExecutionConfig, nodes: list[dict]) -> RunResources:
    """The run's resources; an unset GPU count is one GPU per run when the cluster has GPUs."""
    wanted = getattr(execution.resources, _family(spec))
    if wanted.num_gpus is not None:
        return wanted
    return wanted.model_copy(update={"num_gpus": float(any(node.get("GPU", 0) > 0 for node in nodes))})


def _train_on_ray(pending: list[ArmSpec], data: PreparedData, run_dir: Path, config: StudyConfig,
                  token: str | None) -> dict[str, str]:
    """Every run a Ray task in a fresh worker process (max_calls=1), at most max_concurrent in flight."""
    ray = _import_ray()
    execution = config.execution
    started = join_or_start(ray, execution.address)
    running: dict[Any, ArmSpec] = {}
    try:
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        _check_cluster_fits(nodes, pending, execution)
        task = ray.remote(max_calls=1)(train_in_worker)
        env = _forwarded_env()
        env["TQDM_DISABLE"] = "1"  # per-step bars of parallel runs would interleave in the logs
        data_ref = ray.put(data)
        queue, failures, done = list(pending), {}, 0
        limit = execution.max_concurrent or len(pending)
        with tqdm(total=len(pending), desc="runs", unit="run", dynamic_ncols=True) as bar:
            while queue or running:
                while queue and len(running) < limit:
                    spec = queue.pop(0)
                    resources = _resources(spec, execution, nodes)
                    run_config = config if config.threads else config.model_copy(
                        update={"threads": max(1, round(resources.num_cpus))})
                    ref = task.options(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
                                       max_retries=execution.max_retries, retry_exceptions=True,
                                       runtime_env={"env_vars": env},
                                       name=spec.run_name).remote(spec, data_ref, str(run_dir), run_config, token)
                    running[ref] = spec
                ready, _ = ray.wait(list(running), num_returns=1)
                spec = running.pop(ready[0])
                done += 1
                try:
                    outcome = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    failures[spec.run_name] = _one_line(exc)
                    tqdm.write(f"[{done}/{len(pending)}] {spec.run_name}: FAILED after "
                               f"{1 + execution.max_retries} attempt(s): {failures[spec.run_name]}")
                else:
                    report_run(outcome, run_dir, done, len(pending))
                bar.update(1)
        return failures
    finally:
        for ref in running:  # interrupted: no run keeps training for a driver that is gone
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def join_or_start(ray: Any, address: str) -> bool:
    """Connect this driver to Ray unless it already is; True when it connected (and so must disconnect)."""
    if ray.is_initialized():
        return False
    try:
        # address None: $RAY_ADDRESS if set, else a new local cluster. Workers' logs stay in Ray's log
        # folder; the driver prints one status line per run instead.
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    except ConnectionError as exc:
        where = address or os.environ.get("RAY_ADDRESS", "")
        raise StudyError(f"Could not join the Ray cluster at '{where}': {str(exc).splitlines()[0]}",
                         "start it (`ray start --head`) or fix execution.address / RAY_ADDRESS; leave both "
                         "empty to start a local cluster.") from None
    return True


def _check_cluster_fits(nodes: list[dict], pending: list[ArmSpec], execution: ExecutionConfig) -> None:
    """A run no node can host would wait forever: refuse it with the numbers instead."""
    for spec in pending:
        need = _resources(spec, execution, nodes)
        if not any(node.get("CPU", 0) >= need.num_cpus and node.get("GPU", 0) >= need.num_gpus for node in nodes):
            largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)), default={})
            raise StudyError(
                f"No node of the Ray cluster has the {need.num_cpus:g} CPU and {need.num_gpus:g} GPU that "
                f"{spec.run_name} asks for (largest node: {largest.get('CPU', 0):g} CPU, {largest.get('GPU', 0):g} GPU).",
                f"lower execution.resources.{_family(spec)}.num_cpus/num_gpus, or join a cluster that has them.")
