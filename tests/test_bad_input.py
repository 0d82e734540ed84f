"""The bad-input battery: every case gets one line naming the problem and the fix (exit code 2),
or a documented handling (exit 0 with a warning), never a traceback, and nothing earlier is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorastudy.core import artifacts
from lorastudy.cli import app
from lorastudy.core.errors import StudyError

runner = CliRunner()


def write_csv(path: Path, rows: list[tuple], header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def balanced_rows(n_per_class: int = 30, classes=("a", "b", "c")) -> list[tuple]:
    return [(f"example {i} about {c} things", c) for c in classes for i in range(n_per_class)]


def invoke(args: list[str]):
    return runner.invoke(app, args, catch_exceptions=True)


def assert_clean_error(result, *fragments: str):
    """Exit 2, a single 'error:' line that names the problem, and no traceback."""
    output = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {output}\n{result.exception!r}"
    assert "Traceback" not in output
    error_lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, output
    for fragment in fragments:
        assert fragment.lower() in error_lines[0].lower(), error_lines[0]
    assert "Fix:" in error_lines[0]


def data_cmd(source: Path | str, *extra: str) -> list[str]:
    """`lorastudy data` on a user file, split by fractions (the smoke profile's size caps are for WordNet)."""
    no_caps = [arg for size in ("train", "val", "test") for arg in ("--set", f"split.{size}_size=null")]
    return ["data", "--config", "smoke", "--set", f"data.source={source}", *no_caps, *extra]


# --- data ------------------------------------------------------------------


def test_missing_data_file(tmp_path):
    assert_clean_error(invoke(data_cmd(tmp_path / "nope.csv")), "does not exist")


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert_clean_error(invoke(data_cmd(folder)), str(folder.name))


def test_unknown_text_column_lists_available(tmp_path):
    path = write_csv(tmp_path / "d.csv", balanced_rows())
    assert_clean_error(invoke(data_cmd(path, "--set", "data.text_column=body")), "body", "available columns", "text, label")


def test_unknown_label_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", balanced_rows())
    assert_clean_error(invoke(data_cmd(path, "--set", "data.label_column=category")), "category")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("hello\n")
    assert_clean_error(invoke(data_cmd(path)), "not a known source")


def test_single_class(tmp_path):
    path = write_csv(tmp_path / "d.csv", balanced_rows(classes=("only",)))
    assert_clean_error(invoke(data_cmd(path)), "fewer than two classes")


def test_only_empty_texts(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("  ", "a"), ("", "b"), ("\t", "c")])
    assert_clean_error(invoke(data_cmd(path)))


def test_empty_nan_and_whitespace_texts_are_dropped_and_counted(tmp_path):
    rows = balanced_rows() + [("", "a"), ("   ", "b"), ("\n\t", "c")]
    path = write_csv(tmp_path / "d.csv", rows)
    result = invoke(data_cmd(path, "--json"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert "3" in json.dumps(summary.get("warnings", [])) or summary.get("cleaning", {}).get("dropped_empty_text") == 3


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\n" + "caf\u00e9 menu,a\n".encode("latin-1") * 40)
    assert_clean_error(invoke(data_cmd(path)), "UTF-8")


def test_malformed_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": broken\n')
    assert_clean_error(invoke(data_cmd(path)), "d.jsonl")


def test_header_only_csv(tmp_path):
    path = write_csv(tmp_path / "d.csv", [])
    assert_clean_error(invoke(data_cmd(path)))


def test_split_too_small(tmp_path):
    path = write_csv(tmp_path / "d.csv", balanced_rows(n_per_class=3, classes=tuple("abcdefghij")))
    assert_clean_error(invoke(data_cmd(path, "--set", "split.test_size=2", "--set", "split.min_eval_per_class=1")), "split")


def test_numeric_and_string_labels_are_one_label_space(tmp_path):
    rows = [(f"text number {i}", 1 if i % 2 else "1") for i in range(40)] + [(f"other text {i}", "b") for i in range(40)]
    path = write_csv(tmp_path / "d.csv", rows)
    result = invoke(data_cmd(path, "--json"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["num_classes"] == 2


def test_classes_only_in_test_are_reported(tmp_path):
    rows = [(f"train text {i} {c}", c, "train") for c in "ab" for i in range(20)]
    rows += [(f"val text {i} {c}", c, "val") for c in "ab" for i in range(5)]
    rows += [(f"test text {i} {c}", c, "test") for c in "abz" for i in range(5)]
    path = write_csv(tmp_path / "d.csv", rows, header=("text", "label", "split"))
    result = invoke(data_cmd(path, "--set", "data.split_column=split", "--json"))
    assert result.exit_code == 0, result.output
    assert "z" in json.dumps(json.loads(result.output)["warnings"])


def test_huge_text_is_handled(tmp_path):
    rows = balanced_rows() + [("word " * 200_000, "a")]
    path = write_csv(tmp_path / "d.csv", rows)
    result = invoke(data_cmd(path, "--json"))
    assert result.exit_code == 0, result.output


def test_hub_dataset_while_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_error(invoke(data_cmd("hf:nobody/no-such-dataset")), "hf:nobody/no-such-dataset")


def test_hub_dataset_without_network_says_so_in_one_line(tmp_path):
    """No offline flag, hub unreachable (a closed local port stands in for no network): one line, no retries."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env |= {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-m", "lorastudy.cli", *data_cmd("hf:nobody/nothing")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "hf:nobody/nothing" in done.stderr and "cannot be reached" in done.stderr


# --- config -----------------------------------------------------------------


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    assert_clean_error(invoke(["data", "--config", str(path)]), "not valid YAML")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    assert_clean_error(invoke(["data", "--config", str(path)]), "mapping")


def test_unknown_config_key_names_valid_keys():
    assert_clean_error(invoke(["data", "--set", "split.train_sise=10"]), "split.train_sise", "train_size")


def test_unknown_profile_or_missing_config():
    assert_clean_error(invoke(["data", "--config", "no_such_profile"]), "does not exist")


@pytest.mark.parametrize("override", ["train.batch_size=0", "train.learning_rate=-0.1", "split.train_size=-5",
                                      "latency.single_requests=0", "models.encoder.lora.r=0"])
def test_zero_or_negative_where_positive_needed(override):
    assert_clean_error(invoke(["data", "--set", override]), override.split("=")[0])


def test_set_without_equals():
    assert_clean_error(invoke(["data", "--set", "train.epochs"]), "key=value")


def test_unknown_arm():
    assert_clean_error(invoke(["data", "--set", "arms=[encoder_lora, encoder_qlora]"]), "arms")


def test_tier_names_must_match_quantiles():
    assert_clean_error(invoke(["data", "--set", "tiers.scheme=quantiles", "--set", "tiers.names=[a, b]"]), "tiers")


# --- run, models, output -------------------------------------------------------


def test_unknown_stage(tmp_path):
    assert_clean_error(invoke(["run", "--config", "smoke", "-o", str(tmp_path / "r"), "--stage", "trian"]), "trian")


def test_model_source_that_does_not_exist(tmp_path):
    result = invoke(["run", "--config", "smoke", "-o", str(tmp_path / "r"), "--stage", "train",
                     "--set", f"models.encoder.source={tmp_path / 'no_model'}", "--set", "arms=[encoder_lora]"])
    assert_clean_error(result, "no_model")


def test_missing_pypi_model_package(tmp_path):
    result = invoke(["run", "--config", "smoke", "-o", str(tmp_path / "r"), "--stage", "train",
                     "--set", "models.encoder.source=pypi:no_such_model_pkg", "--set", "arms=[encoder_lora]"])
    assert_clean_error(result, "no_such_model_pkg")


def test_hub_model_while_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke(["run", "--config", "smoke", "-o", str(tmp_path / "r"), "--stage", "train",
                     "--set", "models.encoder.source=hf:nobody/no-such-model", "--set", "arms=[encoder_lora]"])
    assert_clean_error(result, "nobody/no-such-model")


def test_run_directory_not_writable(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert_clean_error(invoke(["run", "--config", "smoke", "-o", str(blocker / "run"), "--stage", "data"]), "run directory")


def test_other_data_settings_in_existing_run_dir_are_refused(tmp_path):
    run_dir = tmp_path / "r"
    first = invoke(["run", "--config", "smoke", "-o", str(run_dir), "--stage", "data"])
    assert first.exit_code == 0, first.output
    before = (run_dir / "data" / "labels.json").read_bytes()
    second = invoke(["run", "--config", "smoke", "-o", str(run_dir), "--stage", "data", "--set", "split.seed=7"])
    assert_clean_error(second, "different data")
    assert (run_dir / "data" / "labels.json").read_bytes() == before


def test_report_without_results(tmp_path):
    assert_clean_error(invoke(["report", str(tmp_path)]))


def test_check_missing_note(tmp_path):
    assert_clean_error(invoke(["check", str(tmp_path / "note.md")]), "note.md")


def test_bench_missing_target(tmp_path):
    assert_clean_error(invoke(["bench", str(tmp_path / "nothing")]), "nothing")


def test_disk_full_keeps_previous_artifact(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    artifacts.write_json(target, {"version": 1})

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(artifacts.os, "replace", full)
    with pytest.raises(StudyError, match="No space left"):
        artifacts.write_json(target, {"version": 2})
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_safe_name_cannot_escape_folder():
    for hostile in ("../../etc/passwd", "/abs/path", "..", "a/b\\c", "<script>"):
        name = artifacts.safe_name(hostile)
        assert "/" not in name and "\\" not in name and name not in ("", ".", "..")


# --- model files that do not parse ---------------------------------------------


def tiny_model_folder(tmp_path: Path, family: str = "bert") -> Path:
    """A private copy of a tiny model folder (config.json, model.safetensors, tokenizer files) to break."""
    from lorastudy.study import model_sources

    source = model_sources.resolve_source(f"tiny:{family}", cache_dir=model_sources.default_cache_dir())
    return Path(shutil.copytree(source.path, tmp_path / f"tiny-{family}"))


def train_with(tmp_path: Path, family: str, source: Path) -> list[str]:
    return ["run", "--config", "smoke", "-o", str(tmp_path / "r"), "--stage", "train",
            "--set", f"models.{family}.source={source}", "--set", f"arms=[{family}_lora]"]


def test_model_folder_with_corrupted_safetensors(tmp_path):
    folder = tiny_model_folder(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])  # the header length, overwritten
    assert_clean_error(invoke(train_with(tmp_path, "encoder", folder)), str(weights))


def test_gguf_path_that_is_not_a_gguf_file(tmp_path):
    fake = tmp_path / "decoder.gguf"
    fake.write_bytes(b"GGUF" + (4098083612).to_bytes(4, "little") + bytes(64))  # a version no reader knows
    assert_clean_error(invoke(train_with(tmp_path, "decoder", fake)), str(fake), "GGUF")


@pytest.mark.parametrize("name, content, named", [
    ("config.json", b"\x00\x01 not json", "config.json"),
    ("tokenizer.json", b'{"version": "1.0", "added_tokens": [], "model": {"type": "Nope"}}', "tokenizer"),
    ("tokenizer.json", b"\xfe\xff" * 50, "tokenizer"),
])
def test_model_file_that_does_not_parse_is_named(tmp_path, name, content, named):
    from lorastudy.study import classifiers, model_sources

    folder = tiny_model_folder(tmp_path)
    (folder / name).write_bytes(content)
    resolved = model_sources.resolve_source(str(folder), cache_dir=tmp_path / "cache")
    with pytest.raises(StudyError, match=named) as caught:
        classifiers.load_classifier(resolved, num_labels=3)
    assert str(folder) in str(caught.value) and "\n" not in caught.value.one_line()


def test_parse_guard_keeps_bugs_as_tracebacks(tmp_path):
    with pytest.raises(StudyError, match="broken.bin"):
        with artifacts.reading(tmp_path / "broken.bin", "replace it."):
            raise ValueError("bad header")
    with pytest.raises(ZeroDivisionError):
        with artifacts.reading(tmp_path / "broken.bin", "replace it."):
            1 / 0


def test_artifact_with_undecodable_bytes(tmp_path):
    path = tmp_path / "labels.json"
    path.write_bytes(b"\xfe\xff\x00garbage")
    with pytest.raises(StudyError, match="labels.json"):
        artifacts.read_json(path)
    arrays = tmp_path / "predictions.safetensors"
    arrays.write_bytes(b"xx")
    with pytest.raises(StudyError, match="predictions.safetensors"):
        artifacts.read_arrays(arrays)
