"""The plan of `lorastudy next`: the proposal read from the run's findings, checked against what the run can
provide, and turned into runs with a budget and an estimated time. Nothing here trains or writes.

The runs are the design's arms x seeds, or the subset asked for and fitted to the time given (`subset`): the
design (and so the folder its runs train in, and the prediction) stays the proposal's whichever subset runs, so a
later, larger subset reuses the runs a smaller one finished.

Everything is checked before any work is spent, each problem one line (StudyError, exit 2): a proposal the note
did not type, a change this tool cannot make, arms the study did not train, damaged study artifacts, a model
that cannot be opened offline, and a top-up with no rows to draw. A top-up the source has no unused rows for is
replaced by the within-class learning curve (`variation.SUBSAMPLE`), which tests the same hypothesis from below,
unless that cannot move the metric either (then one line says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lorastudy.core import artifacts, integrity
from lorastudy.core.errors import StudyError
from lorastudy.followup import subset as subsets
from lorastudy.followup.subset import Subset
from lorastudy.study import variation
from lorastudy.study.arms import ArmSpec
from lorastudy.study.config import StudyConfig, stable_hash
from lorastudy.study.config_loading import load_config
from lorastudy.study.data import build_data, load_prepared, split_source
from lorastudy.study.prepared_data import PreparedData
from lorastudy.study.training import is_finished, run_path_for

FINDINGS = "evaluation/findings.json"


@dataclass
class Plan:
    """The experiment as it will run: the design (possibly the learning curve in place of a top-up), the subset
    of its runs that trains, budget and estimated time, and the frozen proposal it came from."""

    run_dir: Path
    proposal: dict
    design: variation.Design
    substituted: dict | None
    config: StudyConfig
    data: PreparedData
    subset: Subset
    specs: list[ArmSpec]
    rows_changed: dict[str, int]
    steps_per_run: int
    estimated_s: float
    estimate_basis: str
    max_minutes: float | None = None
    cut_to_fit: bool = False
    """Whether `max_minutes` dropped runs from what was asked (the design, or `--arms` x `--seeds`)."""
    max_is_default: bool = False
    """Whether `max_minutes` is `subsets.DEFAULT_MAX_MINUTES`, a target the estimate may exceed."""
    finished: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return folder_of(self.run_dir, self.design)

    @property
    def is_subset(self) -> bool:
        return (list(self.subset.arms), list(self.subset.seeds)) != (self.design.arms, self.design.seeds)

    @property
    def train_rows(self) -> int:
        return sum(self.data.train_counts)

    def budget(self) -> dict:
        return {"n_runs": len(self.specs), "steps_per_run": self.steps_per_run, "train_rows": self.train_rows,
                "rows_changed": self.rows_changed, "batch_size": self.specs[0].train.batch_size,
                "estimated_s": self.estimated_s, "estimate_basis": self.estimate_basis,
                "arms": list(self.subset.arms), "seeds": list(self.subset.seeds),
                "proposed_runs": len(self.design.arms) * len(self.design.seeds), "max_minutes": self.max_minutes,
                "max_minutes_is_default": self.max_is_default, "cut_to_fit": self.cut_to_fit}

    def describe(self) -> list[str]:
        """The plan in a few lines (what `--dry-run` prints)."""
        d = self.design
        budget = self.budget()
        lines = [f"lorastudy next {self.run_dir}: the experiment Section 5 proposed (frozen in {FINDINGS})"]
        if self.substituted:
            lines.append(f"  instead of: {self.substituted['from']} ({self.substituted['reason']})")
        lines += [f"  change:     {d.change} = {d.value}" + (f", tau {d.tau:g}" if d.tau is not None else "")
                  + (f" ({d.describe})" if d.describe else ""),
                  f"  arms:       {', '.join(self.subset.arms)}; seeds: {', '.join(map(str, self.subset.seeds))}"
                  + (f" ({budget['n_runs']} of the {budget['proposed_runs']} proposed runs: {', '.join(d.arms)} x "
                     f"seeds {', '.join(map(str, d.seeds))}"
                     + (f", to fit {self.max_minutes:g} min" if self.cut_to_fit else "") + ")"
                     if self.is_subset else ""),
                  f"  budget:     {budget['n_runs']} run{'s' if budget['n_runs'] != 1 else ''} of "
                  f"{self.steps_per_run:,} steps (batch "
                  f"{budget['batch_size']}) on {self.train_rows:,} training examples"
                  + (f" ({sum(self.rows_changed.values()):,} rows changed in {len(self.rows_changed)} classes)"
                     if self.rows_changed else ""),
                  f"  predicts:   {d.arms[0]}'s {d.metric} {d.direction} {metric_level(d.threshold, d.metric)}"
                  + (f" (unchanged; with {len(self.subset.seeds)} of {len(d.seeds)} seeds the interval is wider, so "
                     "'inconclusive' is likelier and 'held' no easier)"
                     if len(self.subset.seeds) < len(d.seeds) else ""),
                  f"  runs in:    {self.folder}/runs/ ({len(self.finished)} of {len(self.specs)} finished earlier)",
                  f"  estimate:   {_minutes(self.estimated_s)} of training ({self.estimate_basis})"]
        if self.max_is_default and self.estimated_s > self.max_minutes * 60:
            lines.append(f"  note:       over the default {self.max_minutes:g}-minute target: the smallest honest "
                         f"subset ({len(self.subset.seeds)} seeds of {self.subset.arms[0]}) needs longer on this "
                         "machine; --max-minutes makes the limit strict")
        return lines


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def folder_of(run_dir: Path, design: variation.Design) -> Path:
    """<run dir>/next/<design key>: its runs/<arm>__seed<k>/ apart from the study's own runs/; one folder per
    design, whichever subset of it runs."""
    key = f"{artifacts.safe_name(design.change)}-{stable_hash(design.model_dump(mode='json'))[:8]}"
    return Path(run_dir) / integrity.NEXT_FOLDER / key


def read_proposal(run_dir: Path) -> dict:
    """The frozen prediction finding of the run's note (findings.json is only read)."""
    path = run_dir / FINDINGS
    if not path.is_file():
        raise StudyError(f"{path} does not exist, so there is no proposal to run.",
                         f"write the note first: lorastudy report {run_dir}")
    found = artifacts.read_json(path)
    prediction = next((f for f in found.get("findings", []) if isinstance(f, dict) and f.get("id") == "prediction"),
                      None) if isinstance(found, dict) else None
    if prediction is None or not (prediction.get("facts") or {}).get("design"):
        raise StudyError(f"{path} holds no typed proposal (finding 'prediction' with facts.design).",
                         f"re-write the note with this lorastudy: lorastudy report {run_dir}")
    return prediction


def make_plan(run_dir: Path, max_minutes: float | None = None, arms: list[str] | None = None,
              seeds: list[int] | None = None, default_budget: bool = False) -> Plan:
    """Read and check the proposal against the run; the runs (`arms` x `seeds` of the design, none = all, fitted to
    `max_minutes`, none = no limit), data and budget it needs. `default_budget`: with nothing asked, fit to
    `subsets.DEFAULT_MAX_MINUTES` as a target rather than a cap. Raises StudyError."""
    run_dir = Path(run_dir)
    if not (run_dir / integrity.RESOLVED_CONFIG).is_file():
        raise StudyError(f"{run_dir} is not a run directory (no {integrity.RESOLVED_CONFIG}).",
                         "give the output_dir of a finished `lorastudy run`.")
    proposal = read_proposal(run_dir)
    config = load_config(run_dir / integrity.RESOLVED_CONFIG)
    design = variation.read_design(proposal["facts"]["design"], str(run_dir / FINDINGS))
    variation.check_design(design, config)
    study_runs = [f"{arm}__seed{seed}" for seed in design.seeds for arm in design.arms]
    integrity.require_intact(run_dir, integrity.stage_inputs(run_dir, study_runs) + integrity.check_study_files(
        run_dir, [run_dir / integrity.RESOLVED_CONFIG, run_dir / "evaluation" / "results.json"]))
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    level = (results.get("arms", {}).get(design.arms[0], {}).get("ci") or {}).get(design.metric) or {}
    if level.get("ci") is None:
        raise StudyError(f"The proposal predicts {design.arms[0]}'s {design.metric}, which the study did not measure "
                         "with an interval.", "re-write the note with this lorastudy, or run the study's evaluation.")
    data = load_prepared(run_dir)
    design, substituted, data, rows_changed = _training_data(design, config, run_dir, data, level["mean"])
    start = subsets.asked(design.arms, design.seeds, arms, seeds)
    varied = variation.varied_config(config, design)
    every = variation.varied_specs(varied, design, data.fingerprint)
    _check_models(varied, design)
    steps = variation.planned_steps(every[0].train, sum(data.train_counts))
    finished = [spec.run_name for spec in every if is_finished(run_path_for(folder_of(run_dir, design), spec), spec)]
    seconds, basis_of = _run_seconds(run_dir, design, every, steps, _summary(run_dir))
    parallel = 1 if varied.execution.backend == "local" else varied.execution.max_concurrent or 1

    def estimate(chosen: Subset) -> float:
        """Wall seconds of the subset's unfinished runs, `parallel` at a time (finished ones are skipped)."""
        return subsets.makespan([seconds[name] for name in chosen.run_names if name not in finished], parallel)

    max_is_default = default_budget and max_minutes is None and arms is None and seeds is None
    if max_is_default:
        max_minutes = subsets.DEFAULT_MAX_MINUTES
    chosen = subsets.fit(start, subsets.min_seeds(design.seeds), estimate, max_minutes, strict=not max_is_default)
    specs = [spec for spec in every if spec.run_name in chosen.run_names]
    basis = basis_of(chosen.arms) + (f"; {min(parallel, len(specs))} runs at a time" if min(parallel, len(specs)) > 1
                                     else "")
    return Plan(run_dir, proposal, design, substituted, varied, data, chosen, specs, rows_changed, steps,
                estimate(chosen), basis, max_minutes, chosen != start, max_is_default,
                [name for name in finished if name in chosen.run_names])


def _summary(run_dir: Path) -> dict:
    path = run_dir / "data" / "summary.json"
    return artifacts.read_json(path) if path.exists() else {}


def _check_models(config: StudyConfig, design: variation.Design) -> None:
    """Each model the runs load opens offline as its arms will open it (preflight's own check)."""
    from lorastudy.study.preflight import check_model_source

    for family in dict.fromkeys(arm.split("_")[0] for arm in design.arms):
        check_model_source(config, family)


def _training_data(design: variation.Design, config: StudyConfig, run_dir: Path, data: PreparedData,
                   now: float) -> tuple[variation.Design, dict | None, PreparedData, dict[str, int]]:
    """The training data of the new runs: the study's, topped up, or (no rows to draw) subsampled."""
    if design.change not in (variation.TOP_UP, variation.SUBSAMPLE):
        return design, None, data, {}
    rows = None
    if design.change == variation.TOP_UP and data.cleaning.get("unused_rows"):
        frame, labels, cleaning, warnings = split_source(config)
        if build_data(config, (frame, labels, cleaning, warnings)).fingerprint != data.fingerprint:
            raise StudyError(f"The data source no longer gives the data of {run_dir} (its fingerprint differs), so "
                             "its unused rows cannot be told apart.", "restore the source the study was run on.")
        rows = variation.available_rows(data, frame[frame["split"] == ""])
        rows = rows[rows["label_id"].isin(variation.rare_classes(data))]
    substituted = None
    if design.change == variation.TOP_UP and (rows is None or not len(rows)):
        reason = ("the study's split used every row of the source" if rows is None else
                  "none of its unused rows is of a rare-tier class with a new text")
        substituted = {"from": f"{design.change} = {design.value}", "reason": reason}
        design = _learning_curve(design, now, reason)
    if design.change == variation.TOP_UP:
        topped, added = variation.topped_up(data, rows, design.value, config.split.seed)
        if not added:
            raise StudyError(f"Every rare-tier class already has {design.value} training examples or more, so the "
                             "top-up would train on the study's own data.", "nothing to run for this proposal.")
        return design, None, topped, added
    smaller, removed = variation.subsampled(data, design.value, config.split.seed)
    if not removed:
        raise StudyError("The learning curve cannot run: every rare-tier class has a single training example, so "
                         "none can be subsampled.", "add labelled data for the rare tier to test this proposal.")
    return design, substituted, smaller, removed


def _learning_curve(design: variation.Design, now: float, reason: str) -> variation.Design:
    """The top-up's hypothesis tested from below: with half of each rare-tier class's examples the metric should
    fall past its current value minus the same noise allowance; impossible to see when that is below 0."""
    threshold = now - design.noise_allowance
    if threshold <= 0:
        raise StudyError(f"The proposal tops up the rare tier from unused rows, but {reason}; the learning curve in "
                         f"its place cannot show a fall either: {design.arms[0]}'s {design.metric} ({now:.3f}) is "
                         f"within its noise allowance ({design.noise_allowance:.3f}) of 0.",
                         "add labelled data for the rare tier; this run cannot test the proposal.")
    return design.model_copy(update={
        "change": variation.SUBSAMPLE, "value": variation.SUBSAMPLE_FRACTION, "threshold": threshold,
        "direction": "below", "describe": "keep half of each rare-tier class's training examples (the learning "
                                          "curve seen from below)"})


def _run_seconds(run_dir: Path, design: variation.Design, specs: list[ArmSpec], steps: int,
                 summary: dict) -> tuple[dict[str, float], Callable[[tuple[str, ...]], str]]:
    """Seconds of training of each run (and the estimate's basis for some arms), from the study's own run of its
    arm (and seed): its measured seconds per step times the planned steps, plus what it spent besides its steps
    (loading, evaluation, saving). The study's step times were measured under the backend's concurrency, as the
    new runs train (`subset.makespan`)."""
    factor = 1.0
    if design.change == "data.max_length":
        share = ((summary.get("truncation") or {}).get(design.arms[0].split("_")[0]) or {}).get("share") or 0.0
        old = (summary.get("truncation") or {}).get("max_length") or design.value
        factor = (1 - share) + share * design.value / old  # an upper bound: truncated texts at the new length
    seconds: dict[str, float] = {}
    timed: dict[str, tuple[float, float]] = {}
    for spec in specs:
        record = _study_record(run_dir, spec.arm, spec.seed)
        per_step = record.get("seconds_per_step") or 0.0
        besides = max(0.0, (record.get("wall_time_s") or 0.0) - per_step * (record.get("steps") or 0))
        seconds[spec.run_name] = besides + per_step * factor * steps
        timed.setdefault(spec.arm, (per_step, besides))
    caveats = ([f"steps x{factor:.2f} for the longer texts"] if factor != 1.0 else []) + (
        ["MLP adapters add compute this does not count"] if design.change.endswith("include_mlp") else [])

    def basis_of(arms: tuple[str, ...]) -> str:
        return "; ".join([f"{arm}: {timed[arm][0]:.3f} s per step and {timed[arm][1]:.0f} s per run besides, as its "
                          "study runs took" for arm in arms] + caveats)

    return seconds, basis_of


def _study_record(run_dir: Path, arm: str, seed: int) -> dict:
    """The study's run.json of this arm and seed, or of its first seed."""
    for path in [run_dir / "runs" / f"{arm}__seed{seed}" / "run.json", *sorted((run_dir / "runs").glob(f"{arm}__seed*/run.json"))]:
        if path.exists():
            return artifacts.read_json(path)
    raise StudyError(f"The study has no finished run of {arm} to time the experiment by.",
                     "run the study's training first.")


def metric_level(value: float, metric: str) -> str:
    """A threshold as the note prints it: a share of examples as a percentage, an F1 to three decimals."""
    return f"{value:.1%}" if metric in ("accuracy", "rare_recall") else f"{value:.3f}"
