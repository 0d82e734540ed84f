"""Preflight: every input a study needs is opened before the data is prepared or any arm trains.

The Done-when cases run the whole smoke study through the real command line (a fresh process, timed):
a damaged or truncated decoder GGUF, an encoder folder that does not parse, a data file without its label
column. Each must stop in under 30 s with one line and exit code 2, before any run folder exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lorastudy.core.errors import StudyError
from lorastudy.study import model_files, model_sources
from lorastudy.study.config_loading import load_config
from lorastudy.study.data import prepare_data
from lorastudy.study.preflight import check_gguf_architecture, check_gguf_file, check_model_source, preflight
from markup_data import smoke_cli, write_markup_label_dataset

STAGES = ("data", "train", "evaluate", "bench", "report")


def write_gguf(path: Path, architecture: str = "llama", tokenizer: bool = True) -> Path:
    """A small but well-formed GGUF v3 file (a tokenizer in its metadata, two tensors); not a loadable model."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    if tokenizer:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(["a", "b", "<|endoftext|>"])
    writer.add_tensor("token_embd.weight", np.zeros((3, 4), np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((4, 4), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_folder(tmp_path: Path, family: str = "bert") -> Path:
    source = model_sources.resolve_source(f"tiny:{family}", cache_dir=model_sources.default_cache_dir())
    return Path(shutil.copytree(source.path, tmp_path / f"tiny-{family}"))


def run_whole_study(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, float]:
    """`lorastudy run --config smoke` (every stage) in a fresh process on a small CSV; its result and seconds."""
    data = write_markup_label_dataset(tmp_path / "complaints.csv")
    args = ["run", "--config", "smoke", "--output-dir", str(tmp_path / "run"), "--set", f"data.source={data}"]
    for override in overrides:
        args += ["--set", override]
    start = time.monotonic()
    done = smoke_cli(args, timeout=120)
    return done, time.monotonic() - start


def assert_stopped_before_training(done: subprocess.CompletedProcess, seconds: float, run_dir: Path,
                                   *fragments: str) -> None:
    """Exit 2, one `error:` line naming the problem and a fix, no traceback, under 30 s, no arm started."""
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Fix:" in lines[0], done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert seconds < 30, f"stopped after {seconds:.1f} s"
    assert not (run_dir / "runs").exists(), "an arm started before the problem was found"
    assert not (run_dir / "data").exists(), "the data was prepared before the problem was found"


# --- the Done-when cases: the whole study, stopped in preflight -------------------------------------------


@pytest.mark.parametrize("case", ["damaged", "truncated_15_bytes", "truncated_tensors"])
def test_a_bad_decoder_gguf_stops_the_study_before_any_arm_trains(tmp_path, case):
    bad = tmp_path / "decoder.gguf"
    if case == "damaged":  # a GGUF magic, then a version no reader knows
        bad.write_bytes(b"GGUF" + (4098083612).to_bytes(4, "little") + bytes(64))
    elif case == "truncated_15_bytes":  # measured: used to train five arms, then die with a struct.error traceback
        bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(7))
    else:  # a whole header whose tensor data is cut short
        whole = write_gguf(tmp_path / "whole.gguf").read_bytes()
        bad.write_bytes(whole[:-10])
    done, seconds = run_whole_study(tmp_path, f"models.decoder.source={bad}")
    assert_stopped_before_training(done, seconds, tmp_path / "run", str(bad))


def test_an_encoder_folder_that_does_not_parse_stops_the_study_before_any_arm_trains(tmp_path):
    folder = tiny_folder(tmp_path)
    (folder / "config.json").write_bytes(b"\x00\x01 not json")
    done, seconds = run_whole_study(tmp_path, f"models.encoder.source={folder}")
    assert_stopped_before_training(done, seconds, tmp_path / "run", str(folder / "config.json"))


def test_a_data_file_without_its_label_column_stops_the_study_before_any_arm_trains(tmp_path):
    done, seconds = run_whole_study(tmp_path, "data.label_column=category")
    assert_stopped_before_training(done, seconds, tmp_path / "run", "'category'", "available columns: text, label")


# --- what preflight opens, one input at a time -----------------------------------------------------------


def smoke(tmp_path: Path, *overrides: str):
    data = write_markup_label_dataset(tmp_path / "complaints.csv")
    return load_config("smoke", [f"data.source={data}", f"output_dir={tmp_path / 'run'}", *overrides])


def test_the_smoke_study_passes_preflight(tmp_path):
    config = smoke(tmp_path)
    preflight(config, tmp_path / "run", STAGES)
    assert [p.name for p in (tmp_path / "run").iterdir()] == []  # the probe file is gone


def test_a_truncated_safetensors_file_is_named(tmp_path):
    folder = tiny_folder(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(StudyError, match="model.safetensors") as caught:
        check_model_source(smoke(tmp_path, f"models.encoder.source={folder}"), "encoder")
    assert "\n" not in caught.value.one_line()


def test_a_broken_tokenizer_is_found_before_training(tmp_path):
    folder = tiny_folder(tmp_path)
    (folder / "tokenizer.json").write_bytes(b"\xfe\xff" * 50)
    with pytest.raises(StudyError, match="tokenizer"):
        check_model_source(smoke(tmp_path, f"models.encoder.source={folder}"), "encoder")


def test_a_missing_weight_shard_is_named(tmp_path):
    folder = tiny_folder(tmp_path)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(StudyError, match="model-00002-of-00002.safetensors"):
        check_model_source(smoke(tmp_path, f"models.encoder.source={folder}"), "encoder")


def test_a_model_of_the_wrong_family_is_refused(tmp_path):
    with pytest.raises(StudyError, match="models.decoder.source 'tiny:bert' holds an encoder"):
        check_model_source(smoke(tmp_path, "models.decoder.source=tiny:bert"), "decoder")


def test_pooling_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(StudyError, match="pooling 'last' does not fit the encoder"):
        check_model_source(smoke(tmp_path, "models.encoder.pooling=last"), "encoder")


def test_lora_targets_are_found_in_a_weightless_skeleton(tmp_path):
    for family, source in (("encoder", "tiny:modernbert"), ("decoder", "tiny:qwen2")):  # the course's layouts
        check_model_source(smoke(tmp_path, f"models.{family}.source={source}"), family)
    config = smoke(tmp_path, "models.decoder.lora.target_modules=[q_proj, qkv_fused]")
    with pytest.raises(StudyError, match="target_modules names qkv_fused"):
        check_model_source(config, "decoder")


def test_gguf_header_is_read_without_its_tensors(tmp_path):
    path = write_gguf(tmp_path / "model.gguf")
    header = model_files.read_gguf_header(path)
    assert header.version == 3 and header.architecture == "llama" and header.tensor_count == 2
    assert header.has_tokenizer and header.data_end == header.file_size == path.stat().st_size
    for cut in (15, 40, path.stat().st_size - 1):
        (tmp_path / "cut.gguf").write_bytes(path.read_bytes()[:cut])
        with pytest.raises(ValueError, match="truncated|shorter than a GGUF header"):
            model_files.read_gguf_header(tmp_path / "cut.gguf")


def test_a_gguf_without_a_tokenizer_or_of_an_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(StudyError, match="no tokenizer"):
        check_gguf_file(write_gguf(tmp_path / "a.gguf", tokenizer=False))
    path = write_gguf(tmp_path / "b.gguf", architecture="nosuchlm")
    with pytest.raises(StudyError, match="'nosuchlm' model, which transformers cannot load"):
        check_gguf_architecture(path, check_gguf_file(path), "decoder")


def test_prepared_data_is_not_read_again(tmp_path):
    """A study resumed after its source moved: data/ is current, so the source is not needed."""
    config = smoke(tmp_path)
    prepare_data(config, tmp_path / "run")
    Path(config.data.source).unlink()
    preflight(config, tmp_path / "run", STAGES)
    with pytest.raises(StudyError, match="does not exist"):
        preflight(config.model_copy(update={"split": config.split.model_copy(update={"seed": 7})}),
                  tmp_path / "other", STAGES)


def test_a_file_where_the_study_writes_a_folder_is_refused(tmp_path):
    config = smoke(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "runs").write_text("not a folder")
    with pytest.raises(StudyError, match="is a file, where the study writes a folder"):
        preflight(config, tmp_path / "run", STAGES)


def test_columns_come_from_the_header_without_reading_the_rows(tmp_path, monkeypatch):
    from lorastudy.study import sources

    frame = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]})
    for suffix in (".csv", ".parquet", ".jsonl"):
        path = tmp_path / f"d{suffix}"
        {".csv": lambda p: frame.to_csv(p, index=False), ".parquet": lambda p: frame.to_parquet(p, index=False),
         ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True)}[suffix](path)
        monkeypatch.setattr(sources, "read_table", lambda p: pytest.fail("read the whole file"))
        sources.check_source(smoke(tmp_path, f"data.source={path}").data)
        monkeypatch.undo()
        with pytest.raises(StudyError, match="'issue'.*available columns: text, label"):
            sources.check_source(smoke(tmp_path, f"data.source={path}", "data.label_column=issue").data)
