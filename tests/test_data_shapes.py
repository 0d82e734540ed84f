"""Every data shape a user brings, end to end through the real CLI: data -> training -> note (issue 12).

Each case writes a small CSV (tests/data_shapes.py) and runs `lorastudy run -c smoke --set data.source=FILE`
with the size caps lifted and a lighter recipe (five arms, one epoch, a short latency stage) so the whole
matrix stays around two minutes on two cores. A case ends with exit 0 and a note, or, where the study
cannot be done, with exit 2 and one error line that names a fix; never with a traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from data_shapes import write_shape

LIGHT = [
    "split.train_size=null", "split.val_size=null", "split.test_size=null",
    "arms=[tfidf_logreg,encoder_lora,encoder_lora_cw,decoder_lora,decoder_lora_cw]", "train.epochs=1",
    "evaluation.bootstrap_samples=50", "latency.single_requests=3", "latency.warmup=0", "latency.batch_sizes=[8]",
    "latency.batched_examples=8", "latency.compare_unmerged=false", "latency.attention=eager",
]


@dataclass(frozen=True)
class Case:
    shape: str
    overrides: tuple[str, ...] = ()
    error: str | None = None  # a fragment of the one-line error, when the study cannot be done
    note_says: tuple[tuple[str, str], ...] = field(default=())  # (what the note must state, regex over note.md)


CASES = {
    "balanced": Case("balanced", note_says=(("that the classes are balanced: no long tail",
                                             r"(?i)balanced|no long tail"),)),
    "numeric_labels": Case("numeric_labels", note_says=(("that the classes are balanced: no long tail",
                                                         r"(?i)balanced|no long tail"),)),
    "two_classes": Case("two_classes", note_says=(("the number of classes", r"\b2 classes"),)),
    "three_classes": Case("three_classes", note_says=(("the number of classes", r"\b3 classes"),)),
    "many_small_classes": Case("many_small_classes", ("split.val_fraction=0.3", "split.test_fraction=0.3"),
                               note_says=(("the number of classes", r"\b160 classes"),)),
    "many_small_classes_default_split": Case("many_small_classes", error="too small to stratify"),
    "singleton_classes": Case("singleton_classes", note_says=(
        ("that some classes have no test examples, so their recall is undefined",
         r"(?i)no test examples|zero test support|without test examples"),)),
    "classes_missing_from_eval": Case("classes_missing_from_eval", ("data.split_column=split",), note_says=(
        ("that some classes have no validation or test examples",
         r"(?i)no (val|validation|test) examples"),)),
    "long_texts": Case("long_texts", note_says=(("the share of texts truncated at max_length", r"(?i)truncat"),)),
    "html_and_path_labels": Case("html_and_path_labels"),
    "duplicates": Case("duplicates", note_says=(("the train/test leakage in its limitations", r"(?i)leak"),)),
    "duplicates_deduplicated": Case("duplicates", ("data.deduplicate=true",), note_says=(
        ("that duplicates shared between splits were dropped", r"(?i)deduplicat|duplicates? .*dropped"),)),
    "many_scripts": Case("many_scripts"),
    "too_few_rows": Case("too_few_rows", error="too small to stratify"),
}


SLOW = {"two_classes", "balanced", "many_small_classes", "duplicates_deduplicated", "many_scripts", "html_and_path_labels"}
"""Shapes whose code path a faster case also takes (three_classes, numeric_labels, the default-split error,
duplicates; the label and script shapes go through the same reading of the CSV as the others): `pytest -m slow` runs them, CI's time budget does not."""


def _cases(names) -> list:
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in names]


@pytest.fixture(scope="module")
def studies(tmp_path_factory, request):
    """One run per case, shared by the tests below: the cases the selected tests need start at once, two at a
    time (the smoke profile trains on one thread, so two studies fill two cores)."""

    def study(name: str) -> tuple[subprocess.CompletedProcess, Path]:
        case = CASES[name]
        folder = tmp_path_factory.mktemp(name)
        source = write_shape(case.shape, folder)
        sets = [arg for item in (f"data.source={source}", *LIGHT, *case.overrides) for arg in ("--set", item)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        process = subprocess.run([sys.executable, "-m", "lorastudy.cli", "run", "-c", "smoke", *sets,
                                  "--output-dir", str(folder / "run")],
                                 capture_output=True, text=True, env=env, timeout=600)
        return process, folder / "run"

    needed = {item.callspec.params["name"] for item in request.session.items  # the others start when asked
              if item.module is request.module and hasattr(item, "callspec")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = {name: pool.submit(study, name) for name in CASES if name in needed}

        def run(name: str) -> tuple[subprocess.CompletedProcess, Path]:
            if name not in running:
                running[name] = pool.submit(study, name)
            return running[name].result()

        yield run


@pytest.mark.parametrize("name", _cases(CASES))
def test_shape_runs_end_to_end(name, studies):
    process, run_dir = studies(name)
    assert "Traceback" not in process.stderr, process.stderr[-3000:]
    expected_error = CASES[name].error
    if expected_error is None:
        assert process.returncode == 0, process.stderr[-3000:]
        assert (run_dir / "note" / "note.md").is_file() and (run_dir / "note" / "note.html").is_file()
    else:
        assert process.returncode == 2, process.stderr[-3000:]
        errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and expected_error in errors[0] and "Fix:" in errors[0], process.stderr


@pytest.mark.parametrize("name", _cases(name for name, case in CASES.items() if case.note_says))
def test_note_states_the_peculiarity_of_the_shape(name, studies):
    """What the note must say for each shape (listed in CASES[name].note_says as (statement, regex))."""
    process, run_dir = studies(name)
    assert process.returncode == 0, process.stderr[-3000:]
    note = (run_dir / "note" / "note.md").read_text(encoding="utf-8")
    for statement, pattern in CASES[name].note_says:
        assert re.search(pattern, note), f"the note should state {statement} (/{pattern}/)"


def test_note_shows_the_leakage_count_from_the_data_summary(studies):
    """The note's limitations give the number of test rows whose text is also in training."""
    process, run_dir = studies("duplicates")
    assert process.returncode == 0, process.stderr[-3000:]
    seen = json.loads((run_dir / "data" / "summary.json").read_text())["duplicates"]["test_rows_seen_in_train"]
    assert seen > 0
    assert re.search(rf"\b{seen}\b", (run_dir / "note" / "note.md").read_text(encoding="utf-8"))


def test_labels_with_html_and_path_characters_are_escaped_in_the_note(studies):
    """The labels appear in the HTML note escaped, never as markup, and no file escapes the run directory."""
    process, run_dir = studies("html_and_path_labels")
    assert process.returncode == 0, process.stderr[-3000:]
    html = (run_dir / "note" / "note.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;billing&lt;/b&gt;" in html and "<b>billing</b>" not in html
    assert not (run_dir.parent / "etc").exists() and not list(run_dir.parent.parent.glob("passwd*"))
