"""`lorastudy check` on hand-written notes: section evidence, length, number matching, exit code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lorastudy.check import check_note, count_prose_words, matches, note_numbers
from lorastudy.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
RUN = FIXTURES / "run"
GOOD = FIXTURES / "notes" / "human_note.md"
SHALLOW = FIXTURES / "notes" / "shallow_note.html"


def test_differently_worded_human_note_is_complete_and_traceable():
    outcome = check_note(GOOD, RUN)
    assert [(s.number, s.missing) for s in outcome.sections] == [(n, []) for n in range(1, 6)]
    assert outcome.unmatched_numbers == []
    assert outcome.complete


def test_shallow_html_note_reports_what_is_missing():
    outcome = check_note(SHALLOW)
    by_number = {s.number: s for s in outcome.sections}
    assert by_number[1].complete and by_number[2].complete and by_number[5].complete
    assert by_number[4].heading is None and "a recommendation" in by_number[4].missing
    assert by_number[3].present == ["specific classes named"]
    assert set(by_number[3].missing) == {"tier breakdown", "mean F1 per tier for both models",
                                         "zero-F1 per tier for both models"}
    assert not outcome.complete


def test_note_missing_the_decoder_weighting_numbers(tmp_path):
    text = GOOD.read_text().replace("With sqrt-inverse weights the decoder went from 60.4% to 59.8% accuracy, macro F1 "
                                    "0.438 to 0.446 and zero-F1 classes 5 to 3. ", "")
    note = tmp_path / "note.md"
    note.write_text(text)
    section2 = check_note(note).sections[1]
    assert section2.missing == ["accuracy after weighting", "zero-F1 count after weighting"]


def test_cli_exit_codes():
    runner = CliRunner()
    assert runner.invoke(app, ["check", str(GOOD), "--results", str(RUN)]).exit_code == 0
    result = runner.invoke(app, ["check", str(SHALLOW)])
    assert result.exit_code == 1
    assert "tier breakdown" in result.output
    assert runner.invoke(app, ["check", str(FIXTURES / "nope.md")]).exit_code == 2


def test_untraceable_numbers_are_listed(tmp_path):
    note = tmp_path / "note.md"
    note.write_text(GOOD.read_text().replace("11.8 ms", "12.9 ms").replace("0.146 | 5", "0.151 | 5"))
    assert check_note(note, RUN).unmatched_numbers == ["0.151", "12.9 ms"]


@pytest.mark.parametrize("printed, known", [
    ("61.3%", 0.6127), ("0.412", 0.41234), ("+2.1 pp", -0.0213), ("2.1 min", 126.0), ("22.7M", 22_730_541),
    ("$1,234.50", 1234.5), ("3.4 ms", 3.44)])
def test_rounding_and_units_match(printed, known):
    (_, value, decimals, unit), = note_numbers(printed)
    assert matches(value, decimals, unit, np.array([known]))


@pytest.mark.parametrize("printed, known", [("61.4%", 0.6127), ("0.413", 0.41234), ("2.1 min", 2.3), ("0.412", 41.2)])
def test_near_misses_do_not_match(printed, known):
    (_, value, decimals, unit), = note_numbers(printed)
    assert not matches(value, decimals, unit, np.array([known]))


def test_what_is_not_a_metric():
    text = "In Section 3, seed 42, week 2 of 2026, version `2.13.0` ran on a 2.20GHz CPU; 45 classes."
    assert [n[0] for n in note_numbers(text)] == ["45"]


def test_prose_count_skips_tables_figures_code_and_log():
    text = "\n".join(["## 1. Results", "One two three.", "| a | b |", "|---|---|", "| 1 | 2 |", "![fig](x.png)",
                      "*Figure 1: a caption here*", "```", "code words here", "```", "## Experiment log", "many log words"])
    assert count_prose_words(text) == 3
