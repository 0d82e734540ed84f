"""The generated note: traceable numbers, honest wording, length, escaping, self-contained HTML."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from lorastudy.check import check_note
from lorastudy.config import load_config
from lorastudy.report import build_note, within_noise, write_note

FIXTURE = Path(__file__).parent / "fixtures" / "run"
EVIL = "<script>alert(1)</script>"


def _load() -> tuple[dict, dict, list[dict], object]:
    results = json.loads((FIXTURE / "evaluation" / "results.json").read_text())
    latency = json.loads((FIXTURE / "latency" / "latency.json").read_text())
    runs = [json.loads(p.read_text()) for p in sorted((FIXTURE / "runs").glob("*/run.json"))]
    return results, latency, runs, load_config(FIXTURE / "config.resolved.yaml")


def _section(markdown: str, number: int) -> str:
    return re.search(rf"## {number}\..*?(?=\n## )", markdown, re.S).group(0)


def _set_comparison(results: dict, a: str, b: str, metric: str, ci: list[float], seed_diffs: list[float] | None = None):
    for c in results["comparisons"]:
        if (c["a"], c["b"], c["metric"]) == (a, b, metric):
            c["ci"] = ci
            if seed_diffs is not None:
                c["seed_diffs"] = seed_diffs


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "run"
    shutil.copytree(FIXTURE, run_dir)
    write_note(run_dir)
    return run_dir


@pytest.mark.parametrize("name", ["note.md", "note.html"])
def test_every_number_traceable_and_every_section_complete(written, name):
    outcome = check_note(written / "note" / name, written)
    assert outcome.unmatched_numbers == []
    assert outcome.numbers_checked > 200
    assert [s.missing for s in outcome.sections] == [[]] * 5
    assert outcome.complete


def test_a_number_not_in_the_run_is_flagged(written, tmp_path):
    note = tmp_path / "note.md"
    note.write_text((written / "note" / "note.md").read_text().replace("| 60.4% |", "| 63.9% |", 1))
    assert check_note(note, written).unmatched_numbers == ["63.9%"]


def test_prose_within_the_word_limit():
    results, latency, runs, config = _load()
    note = build_note(results, latency, runs, config)
    assert 500 < note.prose_words <= config.report.max_prose_words


def test_significant_differences_name_a_direction():
    note = build_note(*_load()).markdown
    assert "on macro F1 the decoder is ahead" in _section(note, 1)
    assert "On the decoder, weighting moved macro F1 by +0.008 [-0.007, 0.023] (1.8% relative)" in note
    assert re.search(r"On the decoder, weighting[^.]*\.[^:]*: within run-to-run variation", note)
    assert "recommend **decoder LoRA**, because both meet the target and its macro F1 is higher" in note


def test_wording_switches_when_the_interval_contains_zero():
    results, latency, runs, config = _load()
    _set_comparison(results, "encoder_lora", "decoder_lora", "macro_f1", [-0.002, 0.13])
    results["weighting_effect"]["decoder_lora"]["ci"]["macro_f1"] = [0.002, 0.014]
    note = build_note(results, latency, runs, config).markdown
    assert "on macro F1 the decoder is within run-to-run variation" in _section(note, 1)
    assert "the decoder is ahead" not in note
    assert re.search(r"On the decoder, weighting[^:]*: a real gain", note)
    assert "the quality difference is within run-to-run variation, so cost decides" in _section(note, 4)
    assert "recommend **encoder LoRA**" in note


def test_several_seeds_use_the_seed_spread():
    assert within_noise(0.02, [0.01, 0.03], [0.05, -0.03, 0.04])
    assert not within_noise(0.02, [0.01, 0.03], [0.021, 0.019, 0.02])
    results, latency, runs, config = _load()
    _set_comparison(results, "encoder_lora", "decoder_lora", "macro_f1", [0.05, 0.08], [0.12, -0.05, 0.12])
    assert "within run-to-run variation" in _section(build_note(results, latency, runs, config).markdown, 1)


def test_collapsed_arm_is_flagged_loudly():
    results, latency, runs, config = _load()
    results["runs"]["decoder_lora_cw__seed42"]["collapse"].update(collapsed=True, reason="one class predicted",
                                                                   n_predicted_classes=1)
    note = build_note(results, latency, runs, config).markdown
    assert "**Warning: decoder\\_lora\\_cw\\_\\_seed42 collapsed (one class predicted)" in note
    assert "Decoder LoRA + weighting **(collapsed)**" in note


def test_missing_latency_says_how_to_produce_it(tmp_path):
    results, _, runs, config = _load()
    note = build_note(results, None, runs, config)
    assert "`lorastudy bench RUN_DIR`" in _section(note.markdown, 4)
    assert not re.search(r"\d+\.\d ms", _section(note.markdown, 4))
    path = tmp_path / "note.md"
    path.write_text(note.markdown)
    section4 = check_note(path).sections[3]
    assert "latency numbers for both models" in section4.missing


def test_labels_are_escaped_in_markdown_and_html(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    results = json.loads((run_dir / "evaluation" / "results.json").read_text())
    old = results["class_differences"]["classes"][0]["label"]
    text = json.dumps(results).replace(f'"{old}"', json.dumps(EVIL)).replace('"noun.artifact"', json.dumps(EVIL))
    (run_dir / "evaluation" / "results.json").write_text(text)
    html_path = write_note(run_dir)
    page = html_path.read_text()
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # majority row, class table, lifted/dropped lists
    assert EVIL not in (run_dir / "note" / "note.md").read_text()


def test_html_is_self_contained_with_embedded_figures(written):
    page = (written / "note" / "note.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    assert "@media print" in page
    figures = sorted(p.name for p in (written / "note" / "figures").glob("*.png"))
    assert figures == ["f1_encoder_vs_decoder.png", "f1_vs_train_count.png", "latency.png", "weighting_by_tier.png"]
    assert all((written / "note" / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in figures)


def test_build_note_is_pure():
    results, latency, runs, config = _load()
    before = copy.deepcopy(results)
    assert build_note(results, latency, runs, config).markdown == build_note(results, latency, runs, config).markdown
    assert results == before


def test_a_model_that_misses_the_sla_is_not_recommended_for_real_time():
    results, latency, runs, config = _load()
    latency = copy.deepcopy(latency)
    for row in latency["costs"]:
        if row["model"] == "decoder_lora" and row["kind"] == "realtime":
            row.update(meets_sla=False, p95_ms=row["sla_ms"] * 1.5, instances=None, headroom=None,
                       monthly_cost=None, cost_per_million=None)
    section = _section(build_note(results, latency, runs, config).markdown, 4)
    realtime = next(line for line in section.splitlines() if line.startswith("- **real-time triage**"))
    assert "recommend **encoder LoRA**" in realtime and "only it meets the target" in realtime


def test_different_training_budgets_are_stated_as_a_limitation():
    results, latency, runs, config = _load()
    runs = copy.deepcopy(runs)
    for run in runs:
        if run["arm"] == "decoder_lora":
            run.update(epochs=0.6, steps=75)
    assert "decoder LoRA 0.6 (75 steps)" in build_note(results, latency, runs, config).markdown
    for run in runs:
        run.update(epochs=2, steps=250)
    assert "training budgets differ" not in build_note(results, latency, runs, config).markdown


def test_recommendation_quotes_the_chosen_models_advantage_with_a_positive_interval():
    results, latency, runs, config = _load()
    results = copy.deepcopy(results)
    for c in results["comparisons"]:
        if (c["a"], c["b"], c["metric"]) == ("encoder_lora", "decoder_lora", "macro_f1"):
            c.update(diff=-0.12, ci=[-0.144, -0.096], within_noise=False)
    section = _section(build_note(results, latency, runs, config).markdown, 4)
    nightly = next(line for line in section.splitlines() if line.startswith("- **nightly batch**"))
    assert "recommend **encoder LoRA**" in nightly and "higher by 0.120 [0.096, 0.144]" in nightly


@pytest.mark.parametrize("zero_counts,expected", [((3, 3), "both leave 3 of"), ((2, 5), "the worst is decoder LoRA with 5 of")])
def test_rare_zero_f1_wording_names_the_worst_only_when_there_is_one(zero_counts, expected):
    results, latency, runs, config = _load()
    for arm, zeros in zip(("encoder_lora", "decoder_lora"), zero_counts):
        results["runs"][f"{arm}__seed42"]["test"]["per_tier"]["rare"]["zero_f1_count"] = zeros
    section = _section(build_note(results, latency, runs, config).markdown, 3)
    assert expected in section.replace("*", "")


@pytest.mark.parametrize("ci,expected", [([-0.02, 0.05], "so cost decides"), ([0.01, 0.06], "recall decides")])
def test_the_audit_recommendation_weighs_the_rare_recall_interval(ci, expected):
    results, latency, runs, config = _load()
    results = copy.deepcopy(results)
    diff = (results["runs"]["decoder_lora__seed42"]["test"]["per_tier"]["rare"]["recall"]
            - results["runs"]["encoder_lora__seed42"]["test"]["per_tier"]["rare"]["recall"])
    results["comparisons"].append({"name": "encoder_lora vs decoder_lora", "a": "encoder_lora", "b": "decoder_lora",
                                   "kind": "architecture", "metric": "rare_recall", "diff": diff, "ci": ci,
                                   "within_noise": ci[0] <= 0 <= ci[1], "seed_diffs": [diff], "seeds": [42]})
    section = _section(build_note(results, latency, runs, config).markdown, 4)
    audit = next(line for line in section.splitlines() if line.startswith("- **compliance audit**"))
    assert expected in audit and f"[{100 * ci[0]:+.1f} pp, {100 * ci[1]:+.1f} pp]" in audit
