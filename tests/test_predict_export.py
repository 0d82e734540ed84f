"""Using the result: `predict` and `export` on a trained smoke study reproduce the study's saved test logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from typer.testing import CliRunner

from markup_data import HOSTILE_LABEL, smoke_cli, write_markup_label_dataset
from lorastudy.core import artifacts
from lorastudy.cli import app

TOLERANCE = 1e-4
runner = CliRunner()


def saved_test(run_dir: Path, arm: str) -> tuple[list[str], np.ndarray]:
    """The test split's texts (in the order the study scored them) and the run's saved test logits."""
    frame = pd.read_parquet(run_dir / "data" / "dataset.parquet")
    texts = frame.loc[frame["split"] == "test", "text"].tolist()
    return texts, artifacts.read_arrays(run_dir / "runs" / f"{arm}__seed42" / "predictions_test.safetensors")["logits"]


def labels_of(run_dir: Path) -> list[str]:
    return json.loads((run_dir / "data" / "labels.json").read_text())["labels"]


def assert_clean_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Fix:" in lines[0] and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]


# --- predict --------------------------------------------------------------------


@pytest.mark.parametrize("arm", ["encoder_lora", "decoder_lora", "encoder_full", "tfidf_logreg"])
def test_predict_reproduces_the_saved_test_logits(markup_smoke_run, arm):
    from lorastudy.serve.predict import load_predictor

    texts, saved = saved_test(markup_smoke_run, arm)
    logits = load_predictor(markup_smoke_run, arm).logits(texts)
    assert np.abs(logits - saved).max() <= TOLERANCE


def test_predict_cli_round_trip_keeps_input_order_and_columns(markup_smoke_run, tmp_path):
    texts, saved = saved_test(markup_smoke_run, "encoder_lora")
    ids = [f"row-{i}" for i in range(len(texts))][::-1]
    pd.DataFrame({"id": ids, "text": texts}).to_csv(tmp_path / "in.csv", index=False)
    result = runner.invoke(app, ["predict", str(markup_smoke_run), "--arm", "encoder_lora",
                                 "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 0, result.output
    out = pd.read_json(tmp_path / "out.jsonl", lines=True)
    labels = np.asarray(labels_of(markup_smoke_run), dtype=object)
    probabilities = softmax(saved.astype(np.float64), axis=1)
    top = np.argsort(-probabilities, axis=1, kind="stable")
    assert out["id"].tolist() == ids and out["text"].tolist() == texts
    assert out["predicted_label"].tolist() == labels[top[:, 0]].tolist()
    for rank, name in ((1, "second"), (2, "third")):
        assert out[f"{name}_label"].tolist() == labels[top[:, rank]].tolist()
        assert np.allclose(out[f"{name}_probability"], np.take_along_axis(probabilities, top[:, rank:rank + 1], 1)[:, 0],
                           atol=TOLERANCE)
    assert np.allclose(out["probability"], probabilities.max(axis=1), atol=TOLERANCE)


def test_predict_one_text_per_line_and_markup_stays_data(markup_smoke_run, tmp_path):
    (tmp_path / "texts.txt").write_text("stolen card scam\n\n  invoice fee again  \n<b>markup</b> | tag\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", str(markup_smoke_run), "--arm", "decoder_lora", "--input",
                                 str(tmp_path / "texts.txt"), "--output", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["text"].tolist() == ["stolen card scam", "invoice fee again", "<b>markup</b> | tag"]
    assert set(out["predicted_label"]) <= set(labels_of(markup_smoke_run))
    assert ((out["probability"] >= out["second_probability"]) & (out["second_probability"] >= out["third_probability"])).all()


@pytest.fixture(scope="module")
def unfinished_run(markup_smoke_run, tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("unfinished") / "run"
    shutil.copytree(markup_smoke_run, copy)
    (copy / "runs" / "encoder_lora__seed42" / "run.json").unlink()
    return copy


def bad_predict_cases(run: Path, unfinished: Path, tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    good_in = tmp / "good.txt"
    good_in.write_text("stolen card\n", encoding="utf-8")
    (tmp / "latin1.csv").write_bytes("text\ncaf\xe9 fee\n".encode("latin-1"))
    (tmp / "body.csv").write_text("body\ninvoice\n", encoding="utf-8")
    (tmp / "header_only.csv").write_text("text\n", encoding="utf-8")
    (tmp / "blank.txt").write_text("\n  \n", encoding="utf-8")
    (tmp / "blank_cell.csv").write_text("text,id\ninvoice,1\n,2\n", encoding="utf-8")
    (tmp / "broken.parquet").write_bytes(b"not a parquet file")
    (tmp / "a_file").write_text("x", encoding="utf-8")
    (tmp / "folder.csv").mkdir()
    out = str(tmp / "out.csv")

    def cmd(run_dir=run, arm="encoder_lora", source=good_in, output=out, *extra):
        return ["predict", str(run_dir), "--arm", arm, "--input", str(source), "--output", str(output), *extra]

    return {
        "missing run dir": (cmd(run_dir=tmp / "nope"), ["not a lorastudy run directory"]),
        "unknown arm": (cmd(arm="encoder_huge"), ["encoder_huge", "its arms"]),
        "unknown seed": (cmd(run, "encoder_lora", good_in, out, "--seed", "7"), ["seed 7", "its seeds: 42"]),
        "unfinished run": (cmd(run_dir=unfinished), ["has not finished"]),
        "missing input": (cmd(source=tmp / "absent.csv"), ["does not exist"]),
        "undecodable input": (cmd(source=tmp / "latin1.csv"), ["not valid utf-8"]),
        "unparsable input": (cmd(source=tmp / "broken.parquet"), ["cannot parse"]),
        "missing text column": (cmd(source=tmp / "body.csv"), ["column 'text'", "available columns: body"]),
        "empty table": (cmd(source=tmp / "header_only.csv"), ["no texts"]),
        "empty text file": (cmd(source=tmp / "blank.txt"), ["no texts"]),
        "row without text": (cmd(source=tmp / "blank_cell.csv"), ["without text", "data row 2"]),
        "output in a file": (cmd(output=tmp / "a_file" / "out.csv"), ["cannot create the folder"]),
        "output format": (cmd(output=tmp / "out.xlsx"), ["no known table format"]),
        "output is a folder": (cmd(output=tmp / "folder.csv"), ["is a folder"]),
    }


@pytest.mark.parametrize("case", [
    "missing run dir", "unknown arm", "unknown seed", "unfinished run", "missing input", "undecodable input",
    "unparsable input", "missing text column", "empty table", "empty text file", "row without text",
    "output in a file", "output format", "output is a folder"])
def test_predict_bad_input_is_one_line(markup_smoke_run, unfinished_run, tmp_path, case):
    args, fragments = bad_predict_cases(markup_smoke_run, unfinished_run, tmp_path)[case]
    assert_clean_error(runner.invoke(app, args), *fragments)
    assert not (tmp_path / "out.csv").exists()


# --- export ---------------------------------------------------------------------


def onnx_logits(folder: Path, texts: list[str]) -> np.ndarray:
    import onnxruntime
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    encoded = tokenizer(texts, truncation=True, padding=True, return_tensors="np")
    return session.run(["logits"], {k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]


def torch_logits(model, folder: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        return model(**tokenizer(texts, truncation=True, padding=True, return_tensors="pt")).logits.numpy()


@pytest.mark.parametrize("arm", ["encoder_lora", "decoder_lora"])
def test_export_loads_with_transformers_and_reproduces_the_saved_logits(markup_smoke_run, tmp_path, arm):
    from transformers import AutoModelForSequenceClassification, pipeline

    out = tmp_path / "model"
    result = runner.invoke(app, ["export", str(markup_smoke_run), str(out), "--arm", arm])
    assert result.exit_code == 0, result.output
    assert not list(out.glob("*.bin")) and [p.name for p in out.glob("*.safetensors")] == ["model.safetensors"]
    labels = labels_of(markup_smoke_run)
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert config["label2id"] == {label: i for i, label in enumerate(labels)}
    texts, saved = saved_test(markup_smoke_run, arm)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert np.abs(torch_logits(model, out, texts) - saved).max() <= TOLERANCE
    classify = pipeline("text-classification", model=str(out))
    assert classify(texts[0])[0]["label"] == labels[int(saved[0].argmax())]


def test_export_model_card_reports_the_run(markup_smoke_run, tmp_path):
    from lorastudy.serve.export import export_model

    results = json.loads((markup_smoke_run / "evaluation" / "results.json").read_text())
    test = results["runs"]["decoder_lora__seed42"]["test"]
    card = (export_model(markup_smoke_run, "decoder_lora", tmp_path / "m") / "README.md").read_text()
    assert f"| Macro F1 | {test['macro_f1']:.3f} | {test['ci']['macro_f1'][0]:.3f} – {test['ci']['macro_f1'][1]:.3f} |" in card
    assert f"| Accuracy | {test['accuracy']:.1%} |" in card
    assert "AutoModelForSequenceClassification.from_pretrained" in card and "tiny:llama" in card
    assert "lora_alpha" not in card and "alpha 32" in card  # the recipe from spec.json
    assert "300 train" in card  # the data from summary.json
    assert "&lt;script&gt;" in card and HOSTILE_LABEL not in card
    bare = tmp_path / "bare"
    shutil.copytree(markup_smoke_run, bare)
    (bare / "evaluation" / "findings.json").unlink()
    card = (export_model(bare, "decoder_lora", tmp_path / "m2") / "README.md").read_text()
    assert "no `evaluation/findings.json`" in card and "note.md" in card


def test_export_model_card_shows_the_findings(markup_smoke_run, tmp_path):
    from lorastudy.serve.export import export_model
    from lorastudy.note.findings import Findings

    findings = Findings.model_validate(artifacts.read_json(markup_smoke_run / "evaluation" / "findings.json"))
    decisions = findings.of_kind("decision")
    assert decisions  # the report stage wrote them
    card = (export_model(markup_smoke_run, "encoder_lora", tmp_path / "m") / "README.md").read_text()
    for decision in decisions:
        choice = decision.facts["decision"]["choice"] or "none"
        assert f"| {decision.facts['context']['name']} | {choice}" in card


@pytest.mark.parametrize("arm", ["encoder_lora", "decoder_lora"])
def test_onnx_export_reproduces_the_saved_logits(markup_smoke_run, tmp_path, arm):
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", str(markup_smoke_run), str(out), "--arm", arm, "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").is_file() and not list(out.glob("*.safetensors"))
    texts, saved = saved_test(markup_smoke_run, arm)
    assert np.abs(onnx_logits(out, texts) - saved).max() <= TOLERANCE
    assert np.abs(onnx_logits(out, texts[:1]) - saved[:1]).max() <= TOLERANCE  # a batch of one: no padding


@pytest.fixture(scope="module")
def mean_pooling_run(tmp_path_factory) -> Path:
    """The encoder LoRA arm with the mean-pooling head (the demo's), which is no standard transformers head."""
    root = tmp_path_factory.mktemp("mean-pooling")
    data = write_markup_label_dataset(root / "complaints.csv")
    done = smoke_cli(["run", "--config", "smoke", "--set", f"data.source={data}", "--set", "models.encoder.pooling=mean",
                      "--set", "arms=[encoder_lora]", "--output-dir", str(root / "run"),
                      "--stage", "data", "--stage", "train", "--stage", "evaluate"])
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run"


def test_mean_pooling_export_loads_as_the_card_says_and_onnx_reproduces_it(mean_pooling_run, tmp_path):
    from transformers import AutoConfig

    from lorastudy.serve.export import export_model
    from lorastudy.study.classifiers import MeanPoolingClassifier

    texts, saved = saved_test(mean_pooling_run, "encoder_lora")
    out = export_model(mean_pooling_run, "encoder_lora", tmp_path / "st")
    card = (out / "README.md").read_text()
    assert "MeanPoolingClassifier.from_pretrained('OUT', config=AutoConfig.from_pretrained('OUT'))" in card
    assert "--format onnx" in card and "pipeline(" not in card
    model = MeanPoolingClassifier.from_pretrained(out, config=AutoConfig.from_pretrained(out)).eval()
    assert np.abs(torch_logits(model, out, texts) - saved).max() <= TOLERANCE
    onnx = export_model(mean_pooling_run, "encoder_lora", tmp_path / "onnx", fmt="onnx")
    assert np.abs(onnx_logits(onnx, texts) - saved).max() <= TOLERANCE
    assert "onnxruntime.InferenceSession" in (onnx / "README.md").read_text()


@pytest.mark.parametrize("head", ["mean_pooling", "tfidf"])
def test_model_card_imports_from_lorastudy_exist(head):
    """The card's `from lorastudy... import ...` lines name modules and objects that exist (no trained run needed)."""
    import importlib
    from types import SimpleNamespace

    from lorastudy.serve.export import _loading

    run = SimpleNamespace(config=SimpleNamespace(data=SimpleNamespace(max_length=64)), labels=["a", "b"])
    imports = [line.split() for line in _loading(run, "safetensors", head) if line.startswith("from lorastudy")]
    assert imports
    for _from, module, _import, *names in imports:
        for name in names:
            assert hasattr(importlib.import_module(module), name.rstrip(",")), (module, name)


def test_tfidf_export_is_the_saved_model_with_a_card(markup_smoke_run, tmp_path):
    from lorastudy.serve.export import export_model
    from lorastudy.study.training import load_tfidf, tfidf_logits

    out = export_model(markup_smoke_run, "tfidf_logreg", tmp_path / "tfidf")
    texts, saved = saved_test(markup_smoke_run, "tfidf_logreg")
    assert np.abs(tfidf_logits(load_tfidf(out), texts, len(labels_of(markup_smoke_run))) - saved).max() <= TOLERANCE
    assert "load_tfidf" in (out / "README.md").read_text()


@pytest.mark.parametrize("case", ["not empty", "format", "tfidf onnx", "not evaluated", "inside a file"])
def test_export_bad_input_is_one_line(markup_smoke_run, tmp_path, case):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine", encoding="utf-8")
    unevaluated = tmp_path / "unevaluated"
    shutil.copytree(markup_smoke_run, unevaluated, ignore=shutil.ignore_patterns("evaluation", "note"))
    args, fragment = {
        "not empty": ([str(markup_smoke_run), str(occupied), "--arm", "encoder_lora"], "not an empty folder"),
        "format": ([str(markup_smoke_run), str(tmp_path / "m"), "--arm", "encoder_lora", "--format", "gguf"], "gguf"),
        "tfidf onnx": ([str(markup_smoke_run), str(tmp_path / "m"), "--arm", "tfidf_logreg", "--format", "onnx"], "tf-idf"),
        "not evaluated": ([str(unevaluated), str(tmp_path / "m"), "--arm", "encoder_lora"], "has not been evaluated"),
        "inside a file": ([str(markup_smoke_run), str(occupied / "keep.txt" / "m"), "--arm", "encoder_lora"],
                          "cannot create the folder"),
    }[case]
    assert_clean_error(runner.invoke(app, ["export", *args]), fragment)
    assert (occupied / "keep.txt").read_text() == "mine" and not (tmp_path / "m").exists()


def test_predict_serves_the_attention_kernel_the_latency_stage_chose(markup_smoke_run, tmp_path):
    """Each arm gets its own entry's kernel, a weighted arm its unweighted twin's; no latency.json: the default."""
    from lorastudy.serve.predict import locate_run, served_attention

    run = tmp_path / "run"
    shutil.copytree(markup_smoke_run, run, ignore=shutil.ignore_patterns("note", "latency"))
    assert served_attention(locate_run(run, "decoder_lora")) is None
    artifacts.write_json(run / "latency" / "latency.json", {"models": {
        "encoder_lora": {"variants": {"merged": {"attention": "sdpa"}}},
        "decoder_lora": {"variants": {"merged": {"attention": {"single": "sdpa", "batched": "eager"}}}}}})
    assert served_attention(locate_run(run, "encoder_lora")) == "sdpa"
    assert served_attention(locate_run(run, "encoder_lora_cw")) == "sdpa"
    assert served_attention(locate_run(run, "decoder_lora_cw")) == "eager"
    assert served_attention(locate_run(run, "encoder_full")) is None

    from lorastudy.serve.predict import load_predictor

    predictor = load_predictor(run, "encoder_lora_cw")
    assert predictor.model.config._attn_implementation == "sdpa"
    assert predictor.precision == json.loads((run / "runs" / "encoder_lora_cw__seed42" / "run.json").read_text())["precision"]


def test_onnx_export_that_disagrees_with_torch_is_refused(markup_smoke_run, tmp_path, monkeypatch):
    from lorastudy.serve import export
    from lorastudy.core.errors import StudyError

    monkeypatch.setattr(export, "ONNX_TOLERANCE", -1.0)  # any difference, even 0, now counts as a disagreement
    with pytest.raises(StudyError, match="ONNX graph's logits differ"):
        export.export_model(markup_smoke_run, "encoder_lora", tmp_path / "onnx", fmt="onnx")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a half-written temporary one
