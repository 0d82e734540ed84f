"""Integrity of everything a study reads back: every artifact's size and sha256, recorded when it is written.

A run folder's files are recorded in its `run.json` (`artifacts`, written last and sealed with the sha256 of
its own content); the study-level files (config.resolved.yaml, data/, evaluation/, latency/latency.json) in
the run directory's `manifest.json`, refreshed right after each is written. A stage reuses a file only while
it matches its record: a damaged one is redone by its stage (with one line naming it), and where nothing can
redo it (`lorastudy report` alone, `--stage evaluate` alone) the error names the file and the command that
rebuilds it. Disk errors, partial copies between machines and hand edits all show up the same way.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal

from tqdm.auto import tqdm

from lorastudy.core import artifacts
from lorastudy.core.errors import StudyError

MANIFEST = "manifest.json"
RUN_RECORD = "run.json"
SEAL = "record_sha256"
RESOLVED_CONFIG = "config.resolved.yaml"
# The stage of `lorastudy run` that rebuilds a file, by the first part of its path in the run directory.
STAGE_OF = {"data": "data", "runs": "train", "evaluation": "evaluate", "latency": "bench"}
EVALUATION_FILES = ("evaluation/results.json", "evaluation/per_class/*.csv")
NEXT_RECORD = "evaluation/next.json"  # `lorastudy next`'s result; its runs are in next/<design key>/runs/
NEXT_FOLDER = "next"
NEXT_RUNS = f"{NEXT_FOLDER}/*/runs/*"
# Study-level files `verify` lists even when manifest.json does not record them.
STUDY_FILES = (RESOLVED_CONFIG, "data/*", *EVALUATION_FILES, NEXT_RECORD, "latency/latency.json")

State = Literal["ok", "damaged", "missing", "unrecorded"]


@dataclass(frozen=True)
class ArtifactState:
    """One artifact, named by its path in the run directory, and whether it still matches its record."""

    path: str
    state: State
    detail: str = ""
    size: int | None = None  # bytes on disk, when the file exists
    recorded: bool = True  # False for a file no record mentions (never written, or written before records)

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def describe(self) -> str:
        return f"{self.path} is {self.state}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Verification:
    """What `lorastudy verify` reports: every artifact's state, and what checking them cost."""

    states: list[ArtifactState] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[ArtifactState]:
        return [state for state in self.states if not state.ok]

    @property
    def bytes_checked(self) -> int:
        return sum(state.size or 0 for state in self.states if state.state in ("ok", "damaged"))


# --- records --------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_record(path: Path) -> dict:
    """What is recorded of an artifact: its size (a cheap first check) and its sha256."""
    return {"size": Path(path).stat().st_size, "sha256": sha256_file(path)}


def folder_records(folder: Path, exclude: Iterable[str] = ()) -> dict[str, dict]:
    """The record of every file under `folder`, keyed by its POSIX path relative to `folder`."""
    folder, skip = Path(folder), set(exclude)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {rel: file_record(p) for p in files if (rel := p.relative_to(folder).as_posix()) not in skip}


def check_file(path: Path, record: dict | None, shown_as: str, recorded_in: str) -> ArtifactState:
    """Compare one file with its record: size first, sha256 only when the size matches."""
    if not Path(path).is_file():
        return ArtifactState(shown_as, "missing", f"{recorded_in} records it" if record else "", None, record is not None)
    size = Path(path).stat().st_size
    if record is None:
        return ArtifactState(shown_as, "unrecorded", f"{recorded_in} has no size and sha256 for it", size, False)
    if size != record.get("size"):
        return ArtifactState(shown_as, "damaged", f"{size} bytes, {recorded_in} records {record.get('size')}", size)
    if sha256_file(path) != record.get("sha256"):
        return ArtifactState(shown_as, "damaged", f"sha256 differs from the one {recorded_in} records", size)
    return ArtifactState(shown_as, "ok", "", size)


def seal(record: dict) -> dict:
    """`record` as it reads back from JSON, plus the sha256 of its own content: any later edit shows."""
    plain = {k: v for k, v in artifacts.as_json(record).items() if k != SEAL}
    return {**plain, SEAL: _content_sha256(plain)}


def _content_sha256(record: dict) -> str:
    text = artifacts.canonical_json({k: v for k, v in record.items() if k != SEAL})
    return hashlib.sha256(text.encode()).hexdigest()


def _read_sealed(path: Path, shown_as: str) -> tuple[dict | None, ArtifactState]:
    """A sealed JSON record and its state: missing, damaged (unreadable or edited), unrecorded (never sealed)."""
    if not path.is_file():
        return None, ArtifactState(shown_as, "missing")
    size = path.stat().st_size
    try:
        record = artifacts.read_json(path)
    except StudyError:
        return None, ArtifactState(shown_as, "damaged", "not readable as JSON", size)
    if not isinstance(record, dict):
        return None, ArtifactState(shown_as, "damaged", "not a JSON object", size)
    if SEAL not in record:
        return record, ArtifactState(shown_as, "unrecorded", f"written by an older lorastudy: no {SEAL}", size)
    if record[SEAL] != _content_sha256(record):
        return None, ArtifactState(shown_as, "damaged", f"its content no longer matches its {SEAL}", size)
    return record, ArtifactState(shown_as, "ok", "", size)


# --- run folders -------------------------------------------------------------------


def sealed_run_record(run_path: Path, record: dict) -> dict:
    """run.json's content: `record`, the size and sha256 of every other file of the finished run, and the seal."""
    return seal({**record, "artifacts": folder_records(run_path, exclude=[RUN_RECORD])})


def read_run_record(run_path: Path) -> tuple[dict | None, ArtifactState]:
    """A run's run.json (None unless it is intact and records its artifacts) and its state."""
    run_path = Path(run_path)
    shown_as = f"runs/{run_path.name}/{RUN_RECORD}"
    record, state = _read_sealed(run_path / RUN_RECORD, shown_as)
    if state.state == "missing":
        return None, ArtifactState(shown_as, "missing", "the run has not finished")
    if state.ok and not isinstance(record.get("artifacts"), dict):
        return None, ArtifactState(shown_as, "unrecorded", "it records no artifacts", state.size)
    return (record if state.ok else None), state


def check_run_artifacts(run_path: Path, record: dict) -> list[ArtifactState]:
    """Every artifact an intact run.json records, against its size and sha256."""
    run_path = Path(run_path)
    return [check_file(run_path / rel, entry, f"runs/{run_path.name}/{rel}", f"runs/{run_path.name}/{RUN_RECORD}")
            for rel, entry in record["artifacts"].items()]


def check_run(run_path: Path) -> list[ArtifactState]:
    """run.json first, then every artifact it records (none when run.json itself is not intact)."""
    record, state = read_run_record(run_path)
    return [state] + (check_run_artifacts(run_path, record) if record else [])


# --- study-level files ----------------------------------------------------------------


def existing(run_dir: Path, patterns: Iterable[str]) -> list[Path]:
    """The files in the run directory that match `patterns` (temporary files of atomic writes left out)."""
    found = {p for pattern in patterns for p in Path(run_dir).glob(pattern) if p.is_file() and not p.name.startswith(".")}
    return sorted(found)


def read_manifest(run_dir: Path) -> tuple[dict[str, dict], ArtifactState]:
    """The study-level records (empty unless manifest.json is intact) and the manifest's own state."""
    record, state = _read_sealed(Path(run_dir) / MANIFEST, MANIFEST)
    return (record["files"] if state.ok else {}), state


def record_study_files(run_dir: Path, paths: Iterable[Path]) -> None:
    """Record (or refresh) study-level files in manifest.json; call right after writing them."""
    run_dir = Path(run_dir)
    files, _ = read_manifest(run_dir)
    for path in paths:
        files[Path(path).relative_to(run_dir).as_posix()] = file_record(path)
    artifacts.write_json(run_dir / MANIFEST, seal({"files": dict(sorted(files.items()))}))


def check_study_files(run_dir: Path, paths: Iterable[Path]) -> list[ArtifactState]:
    """Study-level files against manifest.json; with the manifest unusable, each present file is unrecorded."""
    run_dir = Path(run_dir)
    files, manifest = read_manifest(run_dir)
    states = [check_file(path, files.get(rel), rel, MANIFEST)
              for path in paths for rel in [Path(path).relative_to(run_dir).as_posix()]]
    if manifest.ok:
        return states
    return [replace(s, detail=manifest.describe()) if s.state == "unrecorded" else s for s in states]


def reusable(run_dir: Path, path: Path, redo: str) -> bool:
    """True when a study-level file exists and matches manifest.json. One that is damaged, unrecorded, or
    recorded but gone is named in one line on stderr, with `redo` saying what its stage does instead."""
    state = check_study_files(run_dir, [path])[0]
    if not state.ok and (state.state != "missing" or state.recorded):
        tqdm.write(f"{state.describe()}: {redo}.", file=sys.stderr)
    return state.ok


def require_intact(run_dir: Path, states: Iterable[ArtifactState]) -> None:
    """For a stage run alone: the first artifact that is not ok becomes one error naming it and its rebuild."""
    for state in states:
        if not state.ok:
            raise StudyError(f"{state.describe()} in {run_dir}.", f"rebuild it: {rebuild_command(run_dir, state.path)}")


def rebuild_command(run_dir: Path, path: str) -> str:
    """The command that rebuilds the artifact at `path` (relative to the run directory)."""
    stage = STAGE_OF.get(path.split("/")[0])
    config = "<your study config>" if path == RESOLVED_CONFIG else Path(run_dir) / RESOLVED_CONFIG
    return f"lorastudy run --config {config} --output-dir {run_dir}" + (f" --stage {stage}" if stage else "")


def stage_inputs(run_dir: Path, run_names: Iterable[str]) -> list[ArtifactState]:
    """What evaluate and bench read: data/ and every run of the study that has finished (has a run.json)."""
    run_dir = Path(run_dir)
    data = check_study_files(run_dir, [run_dir / "data" / name for name in ("dataset.parquet", "labels.json")])
    runs = [run_dir / "runs" / name for name in run_names]
    return data + [state for path in runs if (path / RUN_RECORD).exists() for state in check_run(path)]


def report_inputs(run_dir: Path) -> list[ArtifactState]:
    """What the note is built from: results.json, latency.json (once measured), the resolved config, the data
    summary, next.json (once `lorastudy next` ran), every run.json."""
    run_dir = Path(run_dir)
    files, _ = read_manifest(run_dir)
    study = [run_dir / "evaluation" / "results.json"]
    study += [run_dir / rel for rel in ("latency/latency.json", RESOLVED_CONFIG, "data/summary.json", NEXT_RECORD)
              if (run_dir / rel).exists() or rel in files]
    runs = sorted((run_dir / "runs").glob(f"*/{RUN_RECORD}"))
    return check_study_files(run_dir, study) + [read_run_record(path.parent)[1] for path in runs]


# --- `lorastudy verify` --------------------------------------------------------------------


def verify_run_dir(run_dir: Path) -> Verification:
    """The state of every artifact in a run directory: the manifest, the study-level files, every run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StudyError(f"{run_dir} is not a directory.", "give a run directory (a study's output_dir).")
    start = time.perf_counter()
    files, manifest = read_manifest(run_dir)
    study = sorted(set(existing(run_dir, STUDY_FILES)) | {run_dir / rel for rel in files})
    run_folders = sorted(p for pattern in ("runs/*", NEXT_RUNS) for p in run_dir.glob(pattern)
                         if p.is_dir() and not p.name.startswith("."))
    if not study and not run_folders and manifest.state == "missing":
        raise StudyError(f"{run_dir} holds no lorastudy artifacts.", "give a run directory (a study's output_dir).")
    states = [manifest] + check_study_files(run_dir, study)
    for folder in run_folders:  # named by where they are: runs/<run>/... or next/<design>/runs/<run>/...
        where = folder.parent.relative_to(run_dir).as_posix()
        states += [replace(state, path=where + state.path.removeprefix("runs")) for state in check_run(folder)]
    return Verification(states, time.perf_counter() - start)
