"""The run directory's lock: one `run` (or timing) per directory at a time."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from lorastudy.core.errors import StudyError


@contextmanager
def study_lock(run_dir: Path) -> Iterator[None]:
    """One `run` per run directory, held as an OS file lock on `.lock`.

    The kernel grants the lock atomically and drops it when the holder's process dies, so two runs
    can never both own the directory and a crashed run never blocks the next one. The file itself
    stays (deleting a lock file while a contender has it open would let both hold a lock).
    """
    lock = FileLock(run_dir / ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StudyError(f"Another lorastudy run is using {run_dir}.",
                         "wait for it to finish, or use another --output-dir.") from None
    try:
        yield
    finally:
        lock.release()
