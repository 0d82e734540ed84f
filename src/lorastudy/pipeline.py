"""The whole study, top to bottom: data, arms, evaluation, latency, note.

Each stage reads and writes artifacts in the run directory, so a study that is
interrupted picks up where it stopped, and any stage can be re-run alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from lorastudy.core import artifacts, integrity
from lorastudy.core.lock import study_lock
from lorastudy.study.config import StudyConfig
from lorastudy.study.arms import arm_spec
from lorastudy.study.config_loading import dump_config, load_config
from lorastudy.core.errors import StudyError

STAGES = ("data", "train", "evaluate", "bench", "report")


def run_study(config: StudyConfig | str | Path | dict | None = None, *, output_dir: str | Path | None = None,
              stages: Sequence[str] = STAGES, overrides: Sequence[str] = ()) -> Path:
    """Run the study (or some of its stages) and return the run directory."""
    if not isinstance(config, StudyConfig):
        config = load_config(config, list(overrides))
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise StudyError(f"Unknown stage(s) {', '.join(unknown)}.", f"choose from: {', '.join(STAGES)}.")
    run_dir = Path(output_dir or config.output_dir)
    _ensure_writable(run_dir)
    with study_lock(run_dir):
        _check_config_matches(run_dir, config)
        artifacts.write_text(run_dir / "config.resolved.yaml", dump_config(config))
        integrity.record_study_files(run_dir, [run_dir / "config.resolved.yaml"])
        from lorastudy.study.preflight import preflight

        preflight(config, run_dir, stages)  # every input opened before the data is prepared or a step trains
        from lorastudy.core import runtime

        runtime.set_threads(config.threads)
        if "train" in stages:
            from lorastudy.study.execution import check_backend

            check_backend(config.execution)

        if "data" in stages or "train" in stages:
            from lorastudy.study.data import prepare_data

            data = prepare_data(config, run_dir)
        if "train" in stages:
            from lorastudy.study.execution import train_runs

            specs = [arm_spec(config, arm, seed, data.fingerprint) for arm, seed in config.arm_seeds()]
            train_runs(specs, data, run_dir, config)
        if "evaluate" in stages or "bench" in stages:
            run_names = [f"{arm}__seed{seed}" for arm, seed in config.arm_seeds()]
            integrity.require_intact(run_dir, integrity.stage_inputs(run_dir, run_names))
        if "evaluate" in stages:
            from lorastudy.measure.evaluation import evaluate_study

            evaluate_study(run_dir, config)
            integrity.record_study_files(run_dir, integrity.existing(run_dir, integrity.EVALUATION_FILES))
        if "bench" in stages:
            from lorastudy.measure.latency import bench_study

            bench_study(run_dir, config)
        if "report" in stages:
            note = write_report(run_dir)
            tqdm.write(f"Note written: {note}")
    return run_dir


def write_report(run_dir: Path, keep_findings: bool = False) -> Path:
    """The note, built only from intact artifacts: a damaged input is one error naming it and its rebuild.
    `keep_findings`: findings.json is left as it is (see `note.report.write_note`)."""
    from lorastudy.note.report import write_note

    integrity.require_intact(run_dir, integrity.report_inputs(run_dir))
    return write_note(run_dir, keep_findings)


def _ensure_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(f"Cannot create the run directory {run_dir}: {exc.strerror}.",
                         "choose a writable --output-dir.") from exc
    if not os.access(run_dir, os.W_OK):
        raise StudyError(f"The run directory {run_dir} is not writable.", "choose a writable --output-dir.")


def _check_config_matches(run_dir: Path, config: StudyConfig) -> None:
    """A run directory holds one study; a different data setup there would mix results."""
    previous = run_dir / "config.resolved.yaml"
    if not previous.exists():
        return
    state = integrity.check_study_files(run_dir, [previous])[0]
    if state.state == "damaged":  # nothing to compare with; it is written again from this config
        tqdm.write(f"{state.describe()}: writing it again from this config.", file=sys.stderr)
        return
    old = load_config(previous)
    if old.data != config.data or old.split != config.split or old.tiers != config.tiers:
        raise StudyError(f"{run_dir} holds a study with different data, split or tier settings.",
                         "use another --output-dir, or delete the old run directory.")
