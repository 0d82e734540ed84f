"""The data layer: WordNet parsing, file and hub loading, splits, tiers, bad input, description."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lorastudy.study import data as data_module, sources, wordnet
from lorastudy.cli import app
from lorastudy.study.config import SplitConfig, TierConfig
from lorastudy.study.config_loading import load_config
from lorastudy.study.data import build_data, describe_data, load_prepared, prepare_data
from lorastudy.study.sources import load_examples
from lorastudy.study.splits import assign_splits
from lorastudy.study.summary import render_summary
from lorastudy.study.tiers import assign_tiers
from lorastudy.study.wordnet import LEXNAMES, find_wordnet_dir, parse_wordnet
from lorastudy.core.errors import StudyError
from wordnet_fixture import write_wordnet

LONG_TAIL = {"alpha": 500, "beta": 300, "gamma": 150, "delta": 40, "epsilon": 5, "zeta": 1}


def long_tail_frame() -> pd.DataFrame:
    rows = [(f"{label} example number {i}", label) for label, n in LONG_TAIL.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def config_for(source: Path | str, *overrides: str, tmp_path: Path | None = None):
    """The smoke profile (tiny models, offline) pointed at `source`, with no split caps unless overridden."""
    base = [f"data.source={source}", "split.train_size=null", "split.val_size=null", "split.test_size=null"]
    if tmp_path is not None:
        base.append(f"output_dir={tmp_path / 'run'}")
    return load_config("smoke", base + list(overrides))


# --- WordNet ---------------------------------------------------------------


def test_parse_wordnet_fixture(tmp_path):
    frame = parse_wordnet(write_wordnet(tmp_path / "dict"))
    assert len(frame) == 8  # license header lines skipped
    assert frame["label"].tolist() == ["noun.Tops", "noun.person", "noun.person", "verb.body", "verb.body",
                                       "adj.all", "adj.all", "adv.all"]
    texts = dict(zip(range(len(frame)), frame["text"]))
    assert texts[1] == 'a human being; "there was too much for one ___ to do"; "every ___ has rights"'
    assert texts[2] == 'a person who keeps watch; "the ___ slept"'  # 0b hex word count reaches the 11th lemma
    breathe = texts[3]
    assert "breathe" not in breathe.lower() and "respiring" not in breathe and "Take a breath" not in breathe
    assert breathe.startswith("draw air into, and expel out of, the lungs;")
    assert texts[4] == 'heave or utter a ___; breathe deeply and heavily; "She ___ sadly"'  # breathe: another synset
    assert texts[6] == 'easy to reach; "found a ___ spot for the can opener"; "kept it ___"'  # (p) marker dropped
    assert "|" not in "".join(frame["text"]) and not any(t.endswith(" ") for t in frame["text"])


def test_wordnet_source_through_config(tmp_path):
    cfg = config_for("wordnet-supersense", f"data.wordnet_dir={write_wordnet(tmp_path / 'dict')}")
    frame = load_examples(cfg.data)
    assert set(frame["label"]) <= set(LEXNAMES) and len(frame) == 8


def test_missing_wordnet_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(wordnet, "_wordnet_candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(StudyError, match="apt-get install wordnet-base"):
        find_wordnet_dir(None)
    with pytest.raises(StudyError, match="wordnet_dir"):
        find_wordnet_dir(str(tmp_path / "empty"))


def test_corrupt_wordnet_line_names_file_and_line(tmp_path):
    folder = write_wordnet(tmp_path / "dict")
    with open(folder / "data.adv", "a", encoding="utf-8") as handle:
        handle.write("00009999 xx r 01 oops 0 000 | broken\n")
    with pytest.raises(StudyError, match=r"data.adv line \d+"):
        parse_wordnet(folder)


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="WordNet 3.0 not installed")
def test_real_wordnet_has_45_classes_and_a_long_tail():
    frame = parse_wordnet(Path("/usr/share/wordnet"))
    counts = frame["label"].value_counts()
    assert len(counts) == 45 and len(frame) > 100_000
    assert counts.max() > 10_000 and counts.min() < 100
    assert frame["text"].str.contains("___").mean() > 0.1  # lemmas are masked in a good share of glosses


# --- files -----------------------------------------------------------------


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_load_with_named_columns(tmp_path, suffix):
    frame = pd.DataFrame({"body": ["good service", "bad fees", "late card"], "issue": ["x", "y", "x"], "n": [1, 2, 3]})
    path = write_table(frame, tmp_path / f"data{suffix}")
    cfg = config_for(path, "data.text_column=body", "data.label_column=issue")
    loaded = load_examples(cfg.data)
    assert loaded.columns.tolist() == ["text", "label"]
    assert loaded["text"].tolist() == frame["body"].tolist() and loaded["label"].tolist() == ["x", "y", "x"]


def test_split_column_is_used_as_given(tmp_path):
    frame = long_tail_frame()
    frame["part"] = np.where(np.arange(len(frame)) % 5 == 0, "test", np.where(np.arange(len(frame)) % 5 == 1,
                                                                             "validation", "train"))
    path = write_table(frame, tmp_path / "given.csv")
    prepared = build_data(config_for(path, "data.split_column=part"))
    got = prepared.frame.set_index("text")["split"]
    expected = frame.set_index("text")["part"].replace({"validation": "val"})
    assert (got == expected.loc[got.index]).all() and len(got) == len(frame)


# --- splits ----------------------------------------------------------------


def draw(frame: pd.DataFrame, **split_settings) -> np.ndarray:
    labels = frame["label"].to_numpy(object)
    return assign_splits(labels, np.full(len(labels), "", object), SplitConfig(**split_settings))


def test_split_is_deterministic_for_a_seed():
    frame = long_tail_frame()
    first, again = draw(frame, seed=7, val_size=100, test_size=150), draw(frame, seed=7, val_size=100, test_size=150)
    other = draw(frame, seed=8, val_size=100, test_size=150)
    assert (first == again).all() and not (first == other).all()


def test_split_keeps_natural_proportions_and_caps():
    frame = long_tail_frame()
    splits = draw(frame, seed=1, train_size=400, val_size=100, test_size=200, min_eval_per_class=0)
    assert [(splits == s).sum() for s in ("train", "val", "test")] == [400, 100, 200]
    population = frame["label"].value_counts(normalize=True)
    for name in ("train", "val", "test"):
        share = frame.loc[splits == name, "label"].value_counts(normalize=True)
        for label in ("alpha", "beta", "gamma", "delta"):
            assert abs(share[label] - population[label]) < 0.01, (name, label)


def test_min_eval_per_class_tops_up_rare_classes_without_taking_their_last_row():
    frame = long_tail_frame()
    plain = draw(frame, seed=3, train_size=300, val_size=50, test_size=60, min_eval_per_class=0)
    assert ((plain == "val") & (frame["label"] == "epsilon")).sum() == 0  # natural share: 5/996 * 50 < 1
    topped = draw(frame, seed=3, train_size=300, val_size=50, test_size=60, min_eval_per_class=2)
    per_split = pd.crosstab(frame["label"], topped)
    assert per_split.loc["epsilon", "val"] == 2 and per_split.loc["epsilon", "test"] == 2
    assert [(topped == s).sum() for s in ("train", "val", "test")] == [300, 50, 60]  # caps still exact
    assert "val" not in set(topped[frame["label"] == "zeta"])  # the single zeta row is never moved to eval


def test_without_caps_every_row_is_used_and_rare_classes_keep_one_train_row():
    frame = long_tail_frame()
    splits = draw(frame, seed=0, min_eval_per_class=2)
    assert (splits != "").all()
    epsilon = pd.Series(splits[frame["label"] == "epsilon"]).value_counts()
    assert epsilon["test"] == 2 and epsilon["val"] == 2 and epsilon["train"] == 1


def test_split_too_small_for_stratification_is_a_clear_error(tmp_path):
    path = write_table(long_tail_frame(), tmp_path / "tail.csv")
    with pytest.raises(StudyError, match="too small to stratify"):
        build_data(config_for(path, "split.val_size=5", "split.min_eval_per_class=2"))
    with pytest.raises(StudyError, match="val split would be empty"):
        build_data(config_for(path, "split.val_fraction=0.0001"))


def test_prepared_data_reports_missing_classes_and_unseen_labels(tmp_path):
    frame = long_tail_frame()
    frame["part"] = "train"
    frame.loc[frame.index[:100], "part"] = "val"
    frame.loc[frame.index[100:300], "part"] = "test"
    frame.loc[len(frame)] = ["only in test", "omega", "test"]
    frame.loc[len(frame)] = ["alpha example number 1", "alpha", "test"]  # the same text as a val row
    path = write_table(frame, tmp_path / "given.jsonl")
    prepared = build_data(config_for(path, "data.split_column=part", "split.min_eval_per_class=0"))
    assert "omega" in prepared.missing["train"] and "omega" not in prepared.missing["test"]
    assert "zeta" in prepared.missing["val"] and "zeta" in prepared.missing["test"]
    text = " ".join(prepared.warnings)
    assert "never occur in train: omega" in text and "more than one split" in text
    assert prepared.tier_of[prepared.labels.index("omega")] == "rare"


# --- tiers -----------------------------------------------------------------


def test_bottom_quartile_rule_against_a_hand_computed_example():
    counts = [100, 3, 50, 0, 7, 20, 5, 9]  # sorted: 0 3 5 7 9 20 50 100; len 8 -> index 2 -> 5
    names, tier_of, thresholds, rule = assign_tiers(counts, TierConfig())
    assert names == ["rare", "common"] and thresholds == [5.0]
    assert tier_of == ["common", "rare", "common", "rare", "common", "common", "rare", "common"]
    assert "<= 5" in rule


def test_quantile_tiers():
    counts = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # q0.25 = 3, q0.75 = 7
    tiers = TierConfig(scheme="quantiles", quantiles=[0.25, 0.75], names=["tail", "torso", "head"])
    names, tier_of, thresholds, _ = assign_tiers(counts, tiers)
    assert names == ["tail", "torso", "head"] and thresholds == [3.0, 7.0]
    assert tier_of == ["tail"] * 3 + ["torso"] * 4 + ["head"] * 2


# --- bad input -------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_examples(config_for(tmp_path / "nope.csv").data)


def test_unknown_source_kind(tmp_path):
    with pytest.raises(StudyError, match="not a known source"):
        load_examples(config_for(tmp_path / "data.xlsx").data)


def test_unknown_column_lists_the_available_ones(tmp_path):
    path = write_table(pd.DataFrame({"body": ["a", "b"], "issue": ["x", "y"]}), tmp_path / "d.csv")
    with pytest.raises(StudyError, match="'text'.*available columns: body, issue"):
        load_examples(config_for(path).data)


def test_empty_and_nan_texts_are_dropped_and_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nhello,a\n,a\n"   ",b\nworld,b\nagain,a\nmore,b\nnolabel,\n', encoding="utf-8")
    prepared = build_data(config_for(path, "split.min_eval_per_class=0", "split.val_fraction=0.25",
                                     "split.test_fraction=0.25"))
    assert prepared.cleaning["dropped_empty_text"] == 2 and prepared.cleaning["dropped_missing_label"] == 1
    assert len(prepared.frame) == 4
    assert any("2 rows with an empty" in w for w in prepared.warnings)


def test_single_class_is_an_error(tmp_path):
    path = write_table(pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "x", "x"]}), tmp_path / "d.parquet")
    with pytest.raises(StudyError, match="fewer than two classes.*'x'"):
        build_data(config_for(path))


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,a\ncaf\xe9,b\n".encode("latin-1"))
    with pytest.raises(StudyError, match=r"latin.csv is not valid UTF-8 \(byte 0xe9 on line 3\)"):
        load_examples(config_for(path).data)


def test_numeric_and_string_labels_are_one_label_space(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [{"text": f"t{i}", "label": value} for i, value in enumerate([1, "1", 2.0, "2", " 2 ", 1, 2, "1"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    prepared = build_data(config_for(path, "split.min_eval_per_class=0", "split.val_fraction=0.25",
                                     "split.test_fraction=0.25"))
    assert prepared.labels == ["1", "2"] and sum(prepared.train_counts + prepared.val_counts + prepared.test_counts) == 8
    assert any("mix numbers and strings" in w for w in prepared.warnings)


def test_unknown_split_values_are_an_error(tmp_path):
    path = write_table(pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"], "part": ["train", "holdout"]}),
                       tmp_path / "d.csv")
    with pytest.raises(StudyError, match="unknown values: holdout"):
        load_examples(config_for(path, "data.split_column=part").data)


def test_hub_source_offline_fails_fast():
    cfg = config_for("hf:lorastudy-tests/does-not-exist")
    start = time.monotonic()
    with pytest.raises(StudyError, match="Hugging Face Hub"):
        load_examples(cfg.data)
    assert time.monotonic() - start < 20


def test_hub_source_applies_merge_map_label_list_and_indices(tmp_path, monkeypatch):
    import datasets

    train = datasets.Dataset.from_dict({"complaint": [f"c{i}" for i in range(8)],
                                        "issue": ["old a", "b", "a", "dropped", "b", "a", "b", "a"]})
    test = datasets.Dataset.from_dict({"complaint": ["t0", "t1", "t2"], "issue": ["a", "old a", "dropped"]})
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: {"train": train, "test": test}[split])
    monkeypatch.setattr(sources, "_check_hub_dataset_reachable", lambda source: None)  # the mock is the hub
    files = {"merge.json": {"_comment": "ignored", "old a": "a"}, "labels.json": ["b", "a", "never seen"],
             "train.json": [0, 1, 2, 3, 4, 5], "val.json": [6, 7]}
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content), encoding="utf-8")
    cfg = config_for("hf:some/dataset", "data.text_column=complaint", "data.label_column=issue",
                     f"data.label_merge_map={tmp_path / 'merge.json'}", f"data.label_list={tmp_path / 'labels.json'}",
                     f"data.train_indices={tmp_path / 'train.json'}", f"data.val_indices={tmp_path / 'val.json'}",
                     "split.min_eval_per_class=0")
    prepared = build_data(cfg)
    assert prepared.labels == ["b", "a", "never seen"]
    assert prepared.texts("train") == ["c0", "c1", "c2", "c4", "c5"]  # c3's label is not in the list
    assert prepared.texts("val") == ["c6", "c7"] and prepared.texts("test") == ["t0", "t1"]
    assert prepared.label_ids("train").tolist() == [1, 0, 1, 0, 1]
    assert prepared.missing["train"] == ["never seen"]


def test_course_profile_files_are_vendored():
    cfg = load_config("course")
    assert sources._read_json_ref(cfg.data.label_list, list)[0] == "APR or interest rate"
    assert len(sources._read_json_ref(cfg.data.train_indices, list)) == 57_846


# --- run directory and description -----------------------------------------


def test_prepare_data_writes_run_dir_and_reuses_it(tmp_path, monkeypatch):
    path = write_table(long_tail_frame(), tmp_path / "tail.csv")
    cfg = config_for(path, "split.train_size=300", "split.val_size=60", "split.test_size=90", tmp_path=tmp_path)
    run_dir = tmp_path / "run"
    prepared = prepare_data(cfg, run_dir)
    for name in ("dataset.parquet", "labels.json", "summary.json"):
        assert (run_dir / "data" / name).is_file()
    labels_json = json.loads((run_dir / "data" / "labels.json").read_text())
    assert labels_json["labels"] == prepared.labels and labels_json["fingerprint"] == prepared.fingerprint

    monkeypatch.setattr(data_module, "build_data", lambda config: pytest.fail("recomputed instead of reused"))
    again = prepare_data(cfg, run_dir)
    assert again.fingerprint == prepared.fingerprint and again.tier_of == prepared.tier_of
    pd.testing.assert_frame_equal(again.frame, prepared.frame)
    assert describe_data(cfg)["fingerprint"] == prepared.fingerprint  # `lorastudy data` reuses it too


def test_load_prepared_refuses_an_edited_dataset(tmp_path):
    path = write_table(long_tail_frame(), tmp_path / "tail.csv")
    cfg = config_for(path, tmp_path=tmp_path)
    prepare_data(cfg, tmp_path / "run")
    parquet = tmp_path / "run" / "data" / "dataset.parquet"
    frame = pd.read_parquet(parquet)
    frame.loc[0, "text"] = "edited"
    frame.to_parquet(parquet, index=False)
    with pytest.raises(StudyError, match="fingerprint"):
        load_prepared(tmp_path / "run")


def test_describe_data_is_json_and_renders(tmp_path, capsys):
    path = write_table(long_tail_frame(), tmp_path / "tail.csv")
    summary = describe_data(config_for(path, "data.max_length=3", tmp_path=tmp_path))
    json.dumps(summary)
    assert summary["num_classes"] == 6 and sum(summary["rows"].values()) == 996
    assert [row["label"] for row in summary["classes"]][:2] == ["alpha", "beta"]
    assert summary["text_length"]["words"]["max"] == 4
    assert summary["text_length"]["truncation_rate"] == 1.0  # every text has 4 words > 3
    assert "whitespace words" in summary["text_length"]["tokens"]["counted_with"]  # tiny:bert has no tokenizer
    assert summary["tiers"]["sizes"] == {"rare": 2, "common": 4}
    render_summary(summary)
    out = capsys.readouterr().out
    assert "alpha" in out and "rare" in out and "sorted(counts)[len(counts)//4]" in out


def test_cli_data_json_and_one_line_errors(tmp_path):
    path = write_table(long_tail_frame(), tmp_path / "tail.csv")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "--config", "smoke", "--set", f"data.source={path}",
                                 "--set", f"output_dir={tmp_path / 'run'}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_classes"] == 6
    result = runner.invoke(app, ["data", "--config", "smoke", "--set", f"data.source={tmp_path / 'nope.csv'}"])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


# --- data shapes (issue 12) ------------------------------------------------


def test_a_class_with_one_row_keeps_it_for_training_even_when_its_share_rounds_up():
    """Ten singleton classes beside a long tail: a capped test split used to draw some singletons' only row."""
    counts = {"a": 100, "b": 50, "c": 20, "d": 10} | {f"single{i}": 1 for i in range(10)}
    frame = pd.DataFrame([(f"{label} {i}", label) for label, n in counts.items() for i in range(n)],
                         columns=["text", "label"])
    for seed in range(5):  # a singleton's share of the test cap is 60/190 = 0.32: a larger remainder than c's 0.3
        splits = draw(frame, seed=seed, val_size=20, test_size=60, min_eval_per_class=1)
        singles = splits[frame["label"].str.startswith("single").to_numpy()]
        assert (singles == "train").all(), (seed, singles)
        assert [(splits == s).sum() for s in ("val", "test")] == [20, 60]  # caps still exact


def duplicated_frame() -> pd.DataFrame:
    frame = long_tail_frame()
    return pd.concat([frame, frame.iloc[:200], frame.iloc[:50]], ignore_index=True)  # repeats land in every split


def test_duplicates_are_counted_and_kept_by_default(tmp_path):
    path = write_table(duplicated_frame(), tmp_path / "dups.csv")
    prepared = build_data(config_for(path))
    found = prepared.duplicates
    frame = prepared.frame
    train_texts = set(frame.loc[frame["split"] == "train", "text"])
    seen = int(frame.loc[frame["split"] == "test", "text"].isin(train_texts).sum())
    assert found["test_rows_seen_in_train"] == seen > 0
    assert found["texts_in_several_splits"] > 0 and found["texts_shared"]["train_test"] > 0
    assert found["duplicate_rows_within_splits"] > 0 and found["deduplicated"] is False
    assert any(f"{seen} test rows repeat a training text" in w for w in prepared.warnings)


def test_deduplicate_drops_val_and_test_rows_seen_in_an_earlier_split(tmp_path):
    path = write_table(duplicated_frame(), tmp_path / "dups.csv")
    kept = build_data(config_for(path))
    deduplicated = build_data(config_for(path, "data.deduplicate=true"))
    frame = deduplicated.frame
    texts = {s: set(frame.loc[frame["split"] == s, "text"]) for s in ("train", "val", "test")}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    dropped = deduplicated.duplicates["dropped_rows"]
    assert deduplicated.duplicates["deduplicated"] is True and dropped["test"] > 0
    assert len(kept.frame) - len(frame) == dropped["val"] + dropped["test"] == deduplicated.cleaning[
        "dropped_cross_split_duplicates"]
    assert (kept.frame["split"] == "train").sum() == (frame["split"] == "train").sum()  # training keeps its copy
    assert any("data.deduplicate dropped" in w for w in deduplicated.warnings)


def test_truncation_is_reported_per_model_in_summary_and_labels(tmp_path):
    frame = long_tail_frame()
    frame.loc[frame.index[:100], "text"] = "word " * 50  # longer than smoke's max_length 32
    path = write_table(frame, tmp_path / "long.csv")
    config = config_for(path, tmp_path=tmp_path)
    data_module.prepare_data(config, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "data" / "summary.json").read_text())
    labels = json.loads((tmp_path / "run" / "data" / "labels.json").read_text())
    assert summary["truncation"] == labels["truncation"]
    assert summary["truncation"]["max_length"] == 32
    for model in ("encoder", "decoder"):
        cut = summary["truncation"][model]
        assert cut["texts"] == 100 and cut["share"] == pytest.approx(100 / len(frame), abs=1e-4)
        assert "whitespace words" in cut["counted_with"]  # tiny models: the documented proxy
    assert labels["duplicates"] == summary["duplicates"]
