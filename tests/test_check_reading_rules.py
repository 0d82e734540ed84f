"""How people write numbers that `check` must read (issue #28): each correct sentence about the fixture run
(tests/fixtures/run) is supported, and the same sentence falsified (a digit off by more than its rounding, or the
values moved to the other arm) is contradicted.
"""

from __future__ import annotations

import pytest

from lorastudy.check.fact_matching import CONTRADICTED, SUPPORTED
from lorastudy.check.facts import Vocabulary, _flatten
from lorastudy.check.number_reading import read_note_numbers
from test_check_formats import outcome_of, seeded_run  # noqa: F401 (seeded_run is a fixture)

CASES = {
    # class-by-class comparisons recomputed from the per-class files (33 wins, 11 losses, 1 tie)
    "classes won": ("Class by class, decoder LoRA beats encoder LoRA on 33 classes and loses on 11.", "33", "36"),
    "classes lost, seeds as the topic": ("Averaged over seeds, decoder LoRA is worse than encoder LoRA on 11 classes.",
                                         "11", "14"),
    "the verb before the count": ("Decoder LoRA is better than encoder LoRA on 33 classes, worse on 11 and tied on 1.",
                                  "11", "14"),
    "k largest classes": ("On the three largest classes, decoder LoRA's mean F1 is 0.823.", "0.823", "0.853"),
    # deployment arithmetic in human units
    "CPU-hours": ("For real-time triage, 2M requests a month at decoder LoRA's 61.3 ms mean is 34.1 CPU-hours.",
                  "34.1", "37.1"),
    "a window in hours": ("The compliance audit must finish within a 24-hour window.", "24", "27"),
    "hardware threads": ("Latency was measured with 2 threads.", "2", "5"),
    "times the SLA": ("Decoder LoRA's p95 sits at 0.77x the real-time SLA.", "0.77x", "0.87x"),
    "slower": ("Batched, decoder LoRA is 7.5x slower than encoder LoRA.", "7.5x", "8.5x"),
    # a verb that is not money: "costs" next to a score
    "costs a score": ("Choosing encoder LoRA over decoder LoRA costs 0.038 accuracy.", "0.038", "0.068"),
    # precision pooled over a group's classes: Σ true positives / Σ predictions
    "pooled precision": ("Pooled over the verb classes, decoder LoRA's precision is 0.772.", "0.772", "0.742"),
    # an interval's end bounds the estimate before it: its kind and arms, and only an interval's ends support it
    "an interval's end": ("Decoder LoRA beats encoder LoRA on accuracy by 3.8 points (95% CI 2.1 to 5.5).", "2.1", "2.9"),
}


@pytest.mark.parametrize("case", CASES, ids=CASES.keys())
def test_a_correct_number_is_supported_and_a_falsified_one_contradicted(case):
    sentence, printed, wrong = CASES[case]
    assert outcome_of(sentence, printed) == SUPPORTED
    assert outcome_of(sentence.replace(printed, wrong, 1), wrong) == CONTRADICTED


SWAPS = {
    # each value moved to the other arm must be caught
    "a correlation named earlier": ("The rank correlation between class F1 and training count is 0.902 for decoder "
                                    "LoRA vs 0.943 for encoder LoRA.", "0.902", "0.943"),
    "'it' is the model of the sentence before": ("For the nightly batch I pick encoder LoRA. It takes 3.1 minutes on "
                                                 "one machine; decoder LoRA takes 23.1 minutes.", "3.1", "23.1"),
    "zero on one arm only": ("Encoder LoRA and decoder LoRA each leave classes at zero F1: 5 only on the encoder, "
                             "4 only on the decoder.", "5", "4"),
    "a tier's share of the predictions": ("## 3. Per-class analysis\n\nUnweighted, decoder LoRA sent 4.8% of its predictions to rare classes, "
                                          "against 2.8% for encoder LoRA.", "4.8%", "2.8%"),
}


@pytest.mark.parametrize("case", SWAPS, ids=SWAPS.keys())
def test_values_moved_to_the_other_arm_are_contradicted(case):
    sentence, first, second = SWAPS[case]
    assert outcome_of(sentence, first) == SUPPORTED and outcome_of(sentence, second) == SUPPORTED
    swapped = sentence.replace(first, "@", 1).replace(second, first, 1).replace("@", second, 1)
    assert outcome_of(swapped, first) == CONTRADICTED
    assert outcome_of(swapped, second) == CONTRADICTED


def test_each_number_of_a_slashed_cell_takes_its_part_of_the_header():
    table = ("## 4. Latency\n\n| Model | p50 / p95 (ms) |\n|---|---|\n| Encoder LoRA | 11.8 / 15.5 |\n"
             "| Decoder LoRA | 58.4 / 76.5 |\n")
    assert outcome_of(table, "15.5") == SUPPORTED and outcome_of(table, "58.4") == SUPPORTED
    swapped = table.replace("11.8 / 15.5", "58.4 / 15.5").replace("58.4 / 76.5", "11.8 / 76.5")
    assert outcome_of(swapped, "58.4") == CONTRADICTED and outcome_of(swapped, "11.8") == CONTRADICTED


def test_a_predicted_value_is_a_numeric_prediction():
    from lorastudy.check.entity_names import _Names
    from lorastudy.check.note_sections import _sections
    from lorastudy.check.rubric_evidence import _evidence

    block = _sections("## 5. Next\n\nPrediction: the decoder's weighting gain will stay near 2 points of macro F1.\n")[5]
    (test,) = [t for item, t in _evidence(_Names.of(Vocabulary()))[5] if "numeric prediction" in item]
    assert test(block, [])
    assert not test(_sections("## 5. Next\n\nThe decoder's weighting gain was small.\n")[5], [])


def test_a_group_of_classes_the_run_does_not_record_is_not_checkable():
    sentence = "Over the 7 motion-related classes, mean F1 is 0.512 for decoder LoRA vs 0.431 for encoder LoRA."
    assert {outcome_of(sentence, n) for n in ("7", "0.512", "0.431")} == {"not checkable"}


def test_a_step_is_a_coordinate_not_a_gap(seeded_run):
    sentence = "At step 125, encoder LoRA's validation macro F1 was 0.425 against decoder LoRA's 0.5."
    assert outcome_of(sentence, "125", seeded_run) == SUPPORTED
    assert outcome_of(sentence.replace("125", "128"), "128", seeded_run) == CONTRADICTED


def test_how_often_is_not_a_ratio():
    (reading,) = read_note_numbers("Decoder LoRA labelled adj.all glosses as adv.all 9 times.")
    assert reading.unit != "x" and reading.kind != "ratio"


def test_trainable_weights_are_not_class_weighting():
    note = "## 1. Systems-level comparison\n\nDecoder LoRA holds 2.0x as many trainable weights as encoder LoRA.\n"
    (reading,) = [r for r in read_note_numbers(note) if r.printed == "2.0x"]
    assert not any(arm.endswith("_cw") for arm in reading.named["arm"])


def test_a_records_descriptive_fields_and_a_multi_word_class_name_no_other_class():
    vocab = Vocabulary(labels=["architecture", "law", "criminal law"])
    facts = []
    _flatten({"comparisons": [{"a": "encoder_lora", "b": "decoder_lora", "kind": "architecture", "metric": "accuracy",
                               "diff": 0.03}],
              "per_class": [{"label": "criminal law", "f1": 0.5}]}, "results.json", [], [], vocab, facts)
    diff, f1 = facts
    assert "label" not in diff.entities and diff.entities["arm"] == {"encoder_lora", "decoder_lora"}
    assert f1.entities["label"] == {"criminal law"}


def test_neither_about_the_aggregates_is_no_class_by_class_count():
    """"Neither aggregate shows ..." is about the metrics: the count after it is one arm's zero-F1 count."""
    sentence = "Neither aggregate shows that decoder LoRA leaves {} classes at zero F1."
    assert outcome_of(sentence.format(5), "5") == SUPPORTED
    assert outcome_of(sentence.format(8), "8") == CONTRADICTED


GROUP_TABLE = ("| Class group | Classes | Encoder LoRA F1 | Decoder LoRA F1 | Gap | Share of macro-F1 gap |\n"
               "|---|---|---|---|---|---|\n| verb.* | 15 | 0.379 | 0.458 | 0.0791 | 41.2% |\n")


@pytest.mark.parametrize("printed, wrong", [("15", "18"), ("0.458", "0.488"), ("0.0791", "0.0761"), ("41.2%", "44.2%")])
def test_a_row_of_a_part_of_speech_group(printed, wrong):
    """"verb.*" names the verb classes: their number, each arm's mean F1 over them, the gap between the two arms its
    header names, and the verbs' share of the macro-F1 gap (Σ over verbs of ΔF1 / Σ over all classes of ΔF1)."""
    assert outcome_of(GROUP_TABLE, printed) == SUPPORTED
    assert outcome_of(GROUP_TABLE.replace(f"| {printed} |", f"| {wrong} |"), wrong) == CONTRADICTED


def test_a_model_set_against_after_the_number_leaves_it_to_the_sentence_before():
    sentence = "Weighting helped decoder LoRA. Macro F1 rose {} points, against {} points on the encoder LoRA."
    assert outcome_of(sentence.format("0.8", "2.1"), "0.8") == SUPPORTED
    assert outcome_of(sentence.format("2.1", "0.8"), "2.1") == CONTRADICTED


def test_glosses_are_no_loss_and_the_weighted_arms_are_all_weighted_arms():
    (reading,) = [r for r in read_note_numbers("All weighted arms stop at 41 of 87 rare glosses.") if r.printed == "87"]
    assert not reading.difference
    assert {"encoder_lora_cw", "decoder_lora_cw"} <= reading.entities["arm"]


def test_a_pair_in_brackets_after_a_metric_is_that_metric():
    """"on macro F1 (43.8% vs 37.4%)": the brackets hold the metric named right before them; "1 epoch (125 steps)"
    keeps the kind its own bracket names."""
    sentence = "Decoder LoRA leads on macro F1 ({} vs {}) and on accuracy."
    assert outcome_of(sentence.format("43.8%", "37.4%"), "43.8%") == SUPPORTED
    assert outcome_of(sentence.format("60.4%", "37.4%"), "60.4%") == CONTRADICTED  # its accuracy, not its macro F1
    (steps,) = [r for r in read_note_numbers("Decoder LoRA trained 1 epoch (125 steps).") if r.printed == "125"]
    assert steps.kind == "steps"


def test_the_best_arm_is_whichever_arm_is_best():
    sentence = "Encoder LoRA's accuracy is 3.8 points below the best arm ({})."
    assert outcome_of(sentence.format("60.4%"), "60.4%") == SUPPORTED
    assert outcome_of(sentence.format("63.4%"), "63.4%") == CONTRADICTED


def test_took_away_is_no_time():
    (reading,) = [r for r in read_note_numbers("On decoder LoRA the rare tier added 0.96 macro-F1 points and the common "
                                               "tier took away 0.26.") if r.printed == "0.26"]
    assert reading.kind != "time"


def test_a_seed_mean_takes_one_value_per_seed_never_two_points_of_one_seed():
    """A slot blanks list positions, so one seed's validation-curve points (val_curve.0, val_curve.1) shared a
    group and were averaged into a 'mean over 2 seeds' no run reports: a fact a falsified number could match."""
    from lorastudy.check.facts import Fact, _seed_means

    def point(seed: int, position: int, value: float) -> Fact:
        return Fact(value, "macro_f1", {"arm": frozenset({"encoder_lora"})},
                    f"evaluation/results.json: runs.encoder_lora__seed{seed}.training.val_curve.{position}.val_macro_f1",
                    "runs.{arm}.training.val_curve.{#}.val_macro_f1")

    one_seed = [point(42, 0, 0.37), point(42, 1, 0.48)]
    _seed_means(one_seed)
    assert not any(f.source.startswith("mean over") for f in one_seed)
    two_seeds = [point(42, 0, 0.37), point(42, 1, 0.48), point(43, 0, 0.39), point(43, 1, 0.50)]
    _seed_means(two_seeds)
    means = sorted(round(f.value, 3) for f in two_seeds if f.source.startswith("mean over 2 seeds"))
    assert means == [0.38, 0.49]  # each position's mean over the two seeds, nothing across positions


ARM_SEGMENTS = {
    # (arm_segments) a clause whose model is qualified as weighted is the weighted arm's, not its unweighted twin's
    "the weighted decoder": ("Macro F1 of the weighted decoder is 44.6%, against 39.5% for the weighted encoder.",
                             "44.6%", "43.8%"),
    # a parenthesis that names no model glosses the number before it: that clause's model
    "a parenthesis glosses its clause": ("Encoder LoRA's p50 is 11.8 ms (15.5 ms p95), decoder LoRA's 58.4 ms "
                                         "(76.5 ms p95).", "15.5 ms", "76.5 ms"),
    # in a sentence about weighting, "A → B" is before → after
    "before and after weighting": ("With weighting, macro F1 went 37.4% → 39.5% on encoder LoRA, 43.8% → 44.6% on "
                                   "decoder LoRA.", "39.5%", "37.4%"),
}


@pytest.mark.parametrize("case", ARM_SEGMENTS, ids=ARM_SEGMENTS.keys())
def test_each_number_belongs_to_the_arm_of_its_own_segment(case):
    sentence, printed, other = ARM_SEGMENTS[case]
    assert outcome_of(sentence, printed) == SUPPORTED
    if other in sentence:  # swapped with the other arm's number of the sentence
        sentence = sentence.replace(printed, "@", 1).replace(other, printed, 1).replace("@", other, 1)
    else:  # the unweighted twin's value put in its place
        sentence = sentence.replace(printed, other, 1)
    assert outcome_of(sentence, other) == CONTRADICTED


def test_an_unqualified_model_keeps_both_twins_and_a_chain_keeps_its_arms():
    """Where the wording does not settle it, the wider reading stays: no false contradiction."""
    assert outcome_of("With weighting, decoder LoRA's macro F1 is 44.6%.", "44.6%") == SUPPORTED
    assert outcome_of("With weighting, decoder LoRA's macro F1 is 43.8% before and 44.6% after.", "43.8%") == SUPPORTED


def test_a_number_set_against_another_is_no_interval_end():
    """"0.374 vs 0.438" or "0.374 → 0.395" prints point values: a stored CI end of the same arm and metric does not
    support it (an interval prints "CI 0.356 to 0.392"), so a number moved onto a nearby CI end is caught."""
    from lorastudy.check.derivations import FactIndex
    from lorastudy.check.fact_matching import judge
    from lorastudy.check.facts import Fact

    def fact(arm: str, key: str, value: float) -> Fact:
        return Fact(value, "macro_f1", {"arm": frozenset({arm})}, f"evaluation/results.json: arms.{arm}.{key}",
                    "arms.{arm}." + key.replace("[0]", "[#]").replace("[1]", "[#]"))

    index = FactIndex.of([fact("encoder_lora", "test.macro_f1.mean", 0.374), fact("encoder_lora", "ci.macro_f1.ci[0]", 0.356),
                          fact("encoder_lora", "ci.macro_f1.ci[1]", 0.392), fact("decoder_lora", "test.macro_f1.mean", 0.438)],
                         [], {})

    def outcome(sentence: str, printed: str) -> str:
        (reading,) = [r for r in read_note_numbers(sentence) if r.printed == printed]
        return judge(reading, index).outcome

    sentence = "Encoder LoRA's macro F1 is {} vs 0.438 for decoder LoRA."
    assert outcome(sentence.format("0.374"), "0.374") == SUPPORTED
    assert outcome(sentence.format("0.356"), "0.356") == CONTRADICTED
    assert outcome("Encoder LoRA's macro F1 is 0.374 (CI 0.356 to 0.392).", "0.356") == SUPPORTED


def test_a_change_between_validation_scores_is_no_test_change():
    """A relative change derived from two validation scores does not support a note's (test) relative change."""
    from lorastudy.check.derivations import FactIndex
    from lorastudy.check.fact_matching import judge
    from lorastudy.check.facts import Fact

    def fact(arm: str, value: float, split: str) -> Fact:
        key = "test.macro_f1.mean" if split == "test" else "val_curve.1.val_macro_f1"
        entities = {"arm": frozenset({arm})} | ({"split": frozenset({"validation"})} if split != "test" else {})
        return Fact(value, "macro_f1", entities, f"evaluation/results.json: arms.{arm}.{key}", "arms.{arm}." + key)

    index = FactIndex.of([fact("encoder_lora", 0.374, "test"), fact("encoder_lora_cw", 0.395, "test"),
                          fact("encoder_lora", 0.400, "validation"), fact("encoder_lora_cw", 0.420, "validation")], [], {})

    def outcome(printed: str) -> str:
        sentence = f"Weighting gave encoder LoRA a {printed} relative gain in macro F1."
        (reading,) = [r for r in read_note_numbers(sentence) if r.printed == printed]
        return judge(reading, index).outcome

    assert outcome("5.6%") == SUPPORTED
    assert outcome("5.0%") == CONTRADICTED


BEFORE_AFTER_TABLE = ("## 2. Class weighting\n\n| Tier | Encoder LoRA before | Encoder LoRA after | Decoder LoRA before | "
                      "Decoder LoRA after |\n|---|---|---|---|---|\n| Macro F1 | 37.4% | 39.5% | 43.8% | 44.6% |\n")


@pytest.mark.parametrize("printed, other", [("39.5%", "37.4%"), ("44.6%", "43.8%")])
def test_a_column_after_weighting_is_the_weighted_arm(printed, other):
    """"| Encoder LoRA before | Encoder LoRA after |" in a table about weighting: after is the weighted twin."""
    assert outcome_of(BEFORE_AFTER_TABLE, printed) == SUPPORTED and outcome_of(BEFORE_AFTER_TABLE, other) == SUPPORTED
    swapped = BEFORE_AFTER_TABLE.replace(printed, "@", 1).replace(other, printed, 1).replace("@", other, 1)
    assert outcome_of(swapped, printed) == CONTRADICTED and outcome_of(swapped, other) == CONTRADICTED


@pytest.mark.parametrize("opener", ["With weights,", "With class weighting,", "Weighted,"])
def test_a_sentence_opening_with_weighting_is_about_the_weighted_arms(opener):
    """"With weights, macro F1 is 39.5% on encoder LoRA ...": the condition the sentence opens with names the arms."""
    sentence = f"{opener} macro F1 is 39.5% on encoder LoRA and 44.6% on decoder LoRA."
    assert outcome_of(sentence, "39.5%") == SUPPORTED and outcome_of(sentence, "44.6%") == SUPPORTED
    assert outcome_of(sentence.replace("39.5%", "37.4%"), "37.4%") == CONTRADICTED  # the unweighted twin's value
    assert outcome_of(sentence.replace("44.6%", "43.8%"), "43.8%") == CONTRADICTED


def test_a_row_pointing_back_is_about_the_tier_of_the_row_above():
    """"| Precision of those extra predictions |" under a row of extra rare predictions: the rare tier's marginal
    precision (extra hits / extra predictions pooled over seeds: 29.7% and 15.4% on the fresh demo run)."""
    from pathlib import Path

    run = Path(__file__).parent / "fixtures" / "notes" / "fresh_demo" / "artifacts"
    table = ("## 2. Class weighting\n\n| Seed means | Encoder LoRA | Decoder LoRA |\n|---|---|---|\n"
             "| Extra correct rare rows (of 63) | 10.0 | 4.7 |\n| Precision of those extra predictions | {} | {} |\n")
    assert outcome_of(table.format("30%", "15%"), "30%", run) == SUPPORTED
    assert outcome_of(table.format("30%", "15%"), "15%", run) == SUPPORTED
    assert outcome_of(table.format("15%", "30%"), "15%", run) == CONTRADICTED
    assert outcome_of(table.format("15%", "30%"), "30%", run) == CONTRADICTED


@pytest.mark.parametrize("opener", ["Unweighted,", "Before weighting,"])
def test_a_sentence_opening_without_weighting_is_about_the_unweighted_arms(opener):
    """"## 2. Class weighting ... Unweighted, macro F1 is 37.4% ...": the unweighted arms', not their weighted twins'."""
    sentence = f"## 2. Class weighting\n\n{opener} macro F1 is 37.4% on encoder LoRA and 43.8% on decoder LoRA.\n"
    assert outcome_of(sentence, "37.4%") == SUPPORTED and outcome_of(sentence, "43.8%") == SUPPORTED
    assert outcome_of(sentence.replace("37.4%", "39.5%"), "39.5%") == CONTRADICTED  # the weighted twin's value
    assert outcome_of(sentence.replace("43.8%", "44.6%"), "44.6%") == CONTRADICTED
