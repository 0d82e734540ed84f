"""Wall time of one whole study under each execution backend (local, process, ray), as ratios against local.

Each backend runs the same study from scratch, into its own run directory, through the CLI in a child
process: the timing is what a user waits for (imports, Ray start-up, data, training, evaluation, latency,
the note). Beside it: the sum of the runs' own training times (parallel runs that slow each other down show
up here), the largest per-run peak memory (with `process` and `ray`, each run's own process), and whether
evaluation/results.json is identical to local's (timestamps and paths aside).

The goal on a 2-core CPU is ray <= 1.10x local: the backend is for more GPUs or machines, and must not cost
much where there is nothing to gain. Run it on an idle machine; the load average is printed with the results.

    python benchmarks/bench_backends.py                    # the demo study, three times (about 45 min on 2 cores)
    python benchmarks/bench_backends.py --profile smoke    # the smoke study, a few minutes
    python benchmarks/bench_backends.py --write-results    # also records the table in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKENDS = ("local", "process", "ray")
SECTION_START, SECTION_END = "<!-- bench_backends: start -->", "<!-- bench_backends: end -->"


def run_study(profile: str, backend: str, overrides: list[str], run_dir: Path) -> dict:
    """One whole study under `backend`; its wall time and what its runs recorded."""
    command = [sys.executable, "-m", "lorastudy.cli", "run", "--config", profile, "--output-dir", str(run_dir),
               "--set", f"execution.backend={backend}"]
    for item in overrides:
        command += ["--set", item]
    run_dir.parent.mkdir(parents=True)
    log = run_dir.parent / f"{backend}.log"
    print(f"{backend}: {' '.join(command[1:])} (log: {log})", flush=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{backend}: the study failed (exit {done.returncode}); see {log}")
    runs = [json.loads(path.read_text()) for path in sorted((run_dir / "runs").glob("*/run.json"))]
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    results.pop("study", None)
    return {"backend": backend, "wall_time_s": wall, "runs": len(runs),
            "runs_wall_time_s": sum(run["wall_time_s"] for run in runs),
            "max_peak_memory_mb": max(run["peak_memory_mb"] for run in runs),
            "peak_memory_scope": sorted({run.get("peak_memory_scope", "study") for run in runs}),
            "results": results}


def table(measured: list[dict]) -> str:
    local = next(row for row in measured if row["backend"] == "local")
    lines = ["| backend | study wall time (s) | ratio vs local | sum of run training times (s) "
             "| largest run peak memory (MB) | peak memory of | results.json = local |",
             "|---|---|---|---|---|---|---|"]
    for row in measured:
        same = "yes" if row["results"] == local["results"] else "NO"
        lines.append(f"| {row['backend']} | {row['wall_time_s']:.1f} | {row['wall_time_s'] / local['wall_time_s']:.2f}x "
                     f"| {row['runs_wall_time_s']:.1f} | {row['max_peak_memory_mb']:.0f} "
                     f"| {', '.join(row['peak_memory_scope'])} | {same} |")
    return "\n".join(lines)


def write_results(section: str) -> None:
    """Put the section into RESULTS.md between its markers (replacing an earlier one), or append it."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    block = f"{SECTION_START}\n{section}\n{SECTION_END}"
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["demo", "smoke"], default="demo")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="backends to time (local is always timed: the ratios are against it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a config override for every backend, e.g. execution.resources.decoder.num_cpus=2")
    parser.add_argument("--write-results", action="store_true", help="record the table in benchmarks/RESULTS.md")
    args = parser.parse_args()

    backends = ["local", *[b for b in args.backends if b != "local"]]
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as work:
        measured = [run_study(args.profile, backend, args.overrides, Path(work) / backend / "study")
                    for backend in backends]
    report = table(measured)
    command = " ".join(["python benchmarks/bench_backends.py", f"--profile {args.profile}",
                        *[f"--set {item}" for item in args.overrides],
                        *([f"--backends {' '.join(args.backends)}"] if set(args.backends) != set(BACKENDS) else [])])
    machine = (f"{platform.machine()}, {os.cpu_count()} cores; load average before "
               f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; benchmark wall time "
               f"{(time.perf_counter() - started) / 60:.1f} min")
    section = (f"## Execution backends ({args.profile} study)\n\nReproduce: `{command}`\n\nMachine: {machine}.\n\n"
               f"{report}\n\nGoal on a 2-core CPU: ray <= 1.10x local.")
    print(section)
    if args.write_results:
        write_results(section)


if __name__ == "__main__":
    main()
