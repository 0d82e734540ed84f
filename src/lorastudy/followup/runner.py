"""`lorastudy next RUN_DIR`: run the experiment the note's Section 5 proposed and score its prediction.

The runs train with the study's own machinery (`execution.train_runs`, so every backend, retry and the
finished-check `training.is_finished`) into `<run dir>/next/<design key>/runs/`, under the run directory's lock;
the study's runs/, data/ and results are only read. An interrupted `next` resumes like a study: finished runs
(their run.json sealed and every artifact verifying) are skipped. The result is scored on the study's test set
(`measure.next_result`), written to `evaluation/next.json` (recorded in manifest.json) and worded in the note,
which is re-written with findings.json left as it was: the proposal stays frozen.
"""

from __future__ import annotations

import time

from pathlib import Path

from tqdm.auto import tqdm

from lorastudy.core import artifacts, integrity, runtime
from lorastudy.core.lock import study_lock
from lorastudy.followup.plan import Plan, make_plan, metric_level
from lorastudy.measure.next_result import evaluate_next, prediction_verdict, training_seconds, write_next
from lorastudy.pipeline import write_report
from lorastudy.study.execution import check_backend, train_runs

SCHEMA_VERSION = 1


def run_next(run_dir: Path, dry_run: bool = False, max_minutes: float | None = None, arms: list[str] | None = None,
             seeds: list[int] | None = None) -> Plan:
    """Plan (and unless `dry_run`, run, score and report) the proposed experiment, or the subset of its runs
    asked for and fitted to `max_minutes` (`followup.subset`; nothing asked: the default target); returns the
    plan."""
    run_dir = Path(run_dir)
    if dry_run:
        plan = make_plan(run_dir, max_minutes, arms, seeds, default_budget=True)
        tqdm.write("\n".join(plan.describe()))
        return plan
    with study_lock(run_dir):
        plan = make_plan(run_dir, max_minutes, arms, seeds, default_budget=True)
        tqdm.write("\n".join(plan.describe()))
        check_backend(plan.config.execution)
        runtime.set_threads(plan.config.threads)
        artifacts.write_json(plan.folder / "design.json", {"proposal": plan.proposal,
                                                           "design": plan.design.model_dump(mode="json"),
                                                           "substituted": plan.substituted, "plan": plan.budget()})
        started = time.monotonic()
        train_runs(plan.specs, plan.data, plan.folder, plan.config)
        wall_s = time.monotonic() - started  # runs train side by side: their summed wall times overstate the wait
        design = plan.design
        arms = evaluate_next(run_dir, plan.folder, list(plan.subset.arms), list(plan.subset.seeds), design.metric,
                             plan.config.evaluation, plan.config.split.seed)
        budget = plan.budget()
        earlier = _earlier_record(run_dir, plan)
        if earlier and len(plan.finished) == len(plan.specs):  # only re-scored: what was run and how long it took stand
            budget, wall_s = earlier["plan"], earlier.get("wall_s")
        record = {
            "schema_version": SCHEMA_VERSION,
            "proposal": {"finding": plan.proposal, "source": "evaluation/findings.json"},
            "design": design.model_dump(mode="json"), "substituted": plan.substituted,
            "folder": plan.folder.relative_to(run_dir).as_posix(), "plan": budget, "arms": arms,
            "training_s": training_seconds(arms), "wall_s": wall_s,
            "verdict": prediction_verdict(arms[0]["result"]["ci"], design.threshold, design.direction),
        }
        path = write_next(run_dir, record)
        integrity.record_study_files(run_dir, [path])
        result, metric = arms[0]["result"], design.metric
        tqdm.write(f"{design.arms[0]}'s {metric}: {metric_level(result['mean'], metric)} [{metric_level(result['ci'][0], metric)}, "
                   f"{metric_level(result['ci'][1], metric)}] against the threshold {metric_level(design.threshold, metric)}: "
                   f"{record['verdict']}.")
        tqdm.write(f"Note written: {write_report(run_dir, keep_findings=True)}")
    return plan


def _earlier_record(run_dir: Path, plan: Plan) -> dict | None:
    """The record an earlier `next` wrote for the same runs (same folder, arms and seeds), if any."""
    path = run_dir / "evaluation" / "next.json"
    if not path.exists():
        return None
    earlier = artifacts.read_json(path)
    same = (earlier.get("folder") == plan.folder.relative_to(run_dir).as_posix()
            and earlier.get("plan", {}).get("arms") == list(plan.subset.arms)
            and earlier.get("plan", {}).get("seeds") == list(plan.subset.seeds))
    return earlier if same else None
