"""Atomic reads and writes of run-directory artifacts.

Every artifact is written to a temporary file in the same folder and renamed
into place, so a killed process never leaves a half-written file that a later
run could mistake for a result.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from safetensors import SafetensorError

from lorastudy.core.errors import StudyError

# What a damaged or foreign file raises while a library parses it. The tokenizers library's Rust parser
# raises a bare `Exception`, which `reading` matches by exact type only, so real bugs keep their traceback.
# struct.error: a binary header read past the end of a truncated file (transformers' GGUF reader).
PARSE_ERRORS = (OSError, ValueError, KeyError, EOFError, SafetensorError, struct.error)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        _fault_point(path)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise StudyError(f"Could not write {path}: {exc.strerror or exc}.",
                         "check that the folder is writable and the disk has space.") from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _fault_point(path: Path) -> None:
    """Crash-test hook: `LORASTUDY_KILL_BEFORE=<file name>` SIGKILLs the process just before that
    artifact is moved into place, so the interruption tests can stop a study at an exact point."""
    target = os.environ.get("LORASTUDY_KILL_BEFORE")
    if target and path.name == target:
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success it replaces `path` whole (a saved model, a cache entry)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = path.with_name(f".{path.name}.{os.getpid()}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StudyError(f"Could not write {path}: {exc.strerror or exc}.",
                         "check that the folder is writable and the disk has space.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def make_folder(folder: Path, fix: str) -> Path:
    """Create a folder (and its parents) up front, so an impossible output fails before any work is done."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudyError(f"Cannot create the folder {folder}: {exc.strerror or exc}.", fix) from None
    return Path(folder)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


@contextmanager
def reading(source: Path | str, fix: str) -> Iterator[None]:
    """Parse `source` (a file, or words naming a group of files) inside this block: a parse error becomes one
    `StudyError` line naming it and `fix`. Only parse errors: anything else is a bug and keeps its traceback."""
    try:
        yield
    except StudyError:
        raise
    except Exception as exc:
        if not isinstance(exc, PARSE_ERRORS) and type(exc) is not Exception:
            raise
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise StudyError(f"Could not read {source} ({type(exc).__name__}: {detail}).", fix) from exc


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"Missing artifact {path}.", "run the stage that produces it first.")
    with reading(path, "delete it and re-run the stage that writes it."):
        return json.loads(path.read_text(encoding="utf-8"))


def as_json(obj: Any) -> Any:
    """`obj` as it reads back from a JSON artifact (numpy values, paths and integer keys made plain)."""
    return json.loads(json.dumps(obj, default=_json_default))


def canonical_json(obj: Any) -> str:
    """One text per JSON value (sorted keys, no spaces): what a content hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def append_jsonl(path: Path, record: dict) -> None:
    """Append one line; a torn last line is ignored by `read_jsonl`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=_json_default) + "\n")
        handle.flush()


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines log. A torn last line (a kill mid-append) is skipped; a malformed line
    before it means the file was damaged or edited, and is an error rather than silently lost records."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise StudyError(f"{path} line {number} is not valid JSON ({exc.msg}).",
                             "delete the file's run folder and re-run that arm.") from None
    return records


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Save named arrays as safetensors (no pickle, loadable anywhere)."""
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    return Path(path)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not Path(path).is_file():
        raise StudyError(f"Missing artifact {path}.", "run the stage that produces it first.")
    with reading(path, "delete it and re-run the stage that writes it."):
        return load_file(str(path))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def safe_name(text: str) -> str:
    """A file-name fragment derived from a label or config value that cannot escape its folder."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))
    cleaned = cleaned.strip("._") or "unnamed"
    return cleaned[:100]
