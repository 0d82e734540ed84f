"""The package's layers (pyproject.toml [tool.importlinter]) hold: no module imports from a layer above its own.

cli > followup > pipeline > serve > (note | check) > measure > study > core; note and check never import each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the project's contracts, on the `lorastudy` package found in `src`."""
    executable = Path(sys.executable).with_name("lint-imports")
    assert executable.exists(), "import-linter is missing: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200"}  # the report unwrapped
    return subprocess.run([str(executable), "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_package_keeps_its_layers():
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a core module importing from note is reported, with the line."""
    shutil.copytree(ROOT / "src" / "lorastudy", tmp_path / "lorastudy",
                    ignore=shutil.ignore_patterns("__pycache__", "course_data", "templates"))
    errors = tmp_path / "lorastudy" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom lorastudy.note import findings  # noqa: E402\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "lorastudy.core is not allowed to import lorastudy.note" in done.stdout, done.stdout
    assert "lorastudy.core.errors -> lorastudy.note.findings" in done.stdout, done.stdout
