"""Training of every arm type on tiny models and an easy synthetic task: artifacts, resume, weighting, reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score

from lorastudy.core import artifacts
from lorastudy.study import training
from lorastudy.study.arms import arm_spec
from lorastudy.study.config_loading import load_config
from lorastudy.study.prepared_data import PreparedData

# Four classes with their own words and a long tail of training counts.
CLASS_WORDS = [["cat", "purr", "whisker", "meow"], ["ship", "sail", "harbor", "anchor"],
               ["piano", "melody", "chord", "tune"], ["rain", "cloud", "storm", "thunder"]]
TRAIN_COUNTS = [48, 24, 12, 8]
NOISE = ["the", "a", "of", "and", "with", "some"]


def synthetic_data(eval_per_class: int = 6, seed: int = 0) -> PreparedData:
    rng = np.random.default_rng(seed)
    rows = []
    for split, counts in (("train", TRAIN_COUNTS), ("val", [eval_per_class] * 4), ("test", [eval_per_class] * 4)):
        for label_id, count in enumerate(counts):
            for _ in range(count):
                words = list(rng.choice(CLASS_WORDS[label_id], 3)) + list(rng.choice(NOISE, 2))
                rng.shuffle(words)
                rows.append({"text": " ".join(words), "label": f"c{label_id}", "label_id": label_id, "split": split})
    frame = pd.DataFrame(rows)
    return PreparedData(frame=frame, labels=[f"c{i}" for i in range(4)], train_counts=TRAIN_COUNTS,
                        val_counts=[eval_per_class] * 4, test_counts=[eval_per_class] * 4,
                        tier_names=["rare", "common"], tier_of=["common", "common", "rare", "rare"],
                        tier_rule="test", tier_thresholds=[12.0], missing={"train": [], "val": [], "test": []},
                        fingerprint=f"synthetic-{seed}", warnings=[])


@pytest.fixture(scope="module")
def data() -> PreparedData:
    return synthetic_data()


@pytest.fixture(autouse=True)
def model_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LORASTUDY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))


def study(*overrides: str):
    return load_config("smoke", ["train.epochs=3", "train.batch_size=16", "data.max_length=24",
                                 "models.encoder.lora_train.learning_rate=0.01",
                                 "models.encoder.full_train.learning_rate=0.003",
                                 "models.decoder.lora_train.learning_rate=0.01", "threads=2", *overrides])


def train(arm: str, data: PreparedData, run_dir: Path, *overrides: str) -> Path:
    config = study(*overrides)
    return training.train_run(arm_spec(config, arm, 42, data.fingerprint), data, run_dir, config)


def majority_accuracy(data: PreparedData, split: str) -> float:
    return float(np.mean(data.label_ids(split) == int(np.argmax(data.train_counts))))


def test_tfidf_beats_majority_and_saves_without_pickle(data, tmp_path):
    run = train("tfidf_logreg", data, tmp_path)
    test = artifacts.read_arrays(run / "predictions_test.safetensors")
    assert test["logits"].dtype == np.float32 and test["logits"].shape == (24, 4)
    assert test["labels"].dtype == np.int64
    accuracy = accuracy_score(test["labels"], test["logits"].argmax(1))
    assert accuracy > majority_accuracy(data, "test") + 0.3
    assert not list((run / "model").glob("*.pkl")) and not list((run / "model").glob("*.joblib"))
    reloaded = training.load_tfidf(run / "model")
    assert (reloaded.predict(data.texts("test")) == test["logits"].argmax(1)).all()
    record = artifacts.read_json(run / "run.json")
    assert record["method"] == "tfidf" and record["collapse"]["collapsed"] is False


@pytest.mark.parametrize("arm,share", [("encoder_full", (0.999, 1.0)), ("encoder_lora_cw", (0.01, 0.6)),
                                       ("decoder_lora", (0.01, 0.6))])
def test_neural_arm_trains_and_writes_every_artifact(arm, share, data, tmp_path):
    run = train(arm, data, tmp_path)
    assert run == tmp_path / "runs" / f"{arm}__seed42"
    for split, n in (("val", 24), ("test", 24)):
        saved = artifacts.read_arrays(run / f"predictions_{split}.safetensors")
        assert saved["logits"].dtype == np.float32 and saved["logits"].shape == (n, 4)
        assert saved["labels"].dtype == np.int64 and (saved["labels"] == data.label_ids(split)).all()
    record = artifacts.read_json(run / "run.json")
    assert share[0] <= record["parameters"]["trainable_share"] <= share[1]
    assert record["newly_initialized"] and record["steps"] == 3 * 6
    assert record["attention"] == "eager"  # auto on CPU
    assert 0 < record["memory_at_start_mb"] <= record["peak_memory_mb"] + 16
    assert record["config_hash"] == json.loads((run / "spec.json").read_text())["config_hash"]
    assert (run / "model" / "base_model.json").is_file() and not (run / "trainer").exists()
    if arm.startswith(("encoder_lora", "decoder")):
        assert record["lora_target_modules"] and (run / "model" / "adapter_model.safetensors").is_file()
    # The saved logits come from the best epoch, and agree with what the Trainer's evaluation reported there.
    log = artifacts.read_jsonl(run / "train_log.jsonl")
    evals = [line for line in log if "val_macro_f1" in line]
    assert len(evals) == 3 and any("loss" in line for line in log)
    assert log[0]["newly_initialized"] == record["newly_initialized"]
    best = max(evals, key=lambda line: line["val_macro_f1"])
    assert record["best_val_macro_f1"] == pytest.approx(best["val_macro_f1"])
    val = artifacts.read_arrays(run / "predictions_val.safetensors")
    assert accuracy_score(val["labels"], val["logits"].argmax(1)) == pytest.approx(best["val_accuracy"])
    assert record["wall_time_s"] > 0 and record["seconds_per_step"] > 0 and record["peak_memory_mb"] > 100


@pytest.mark.slow  # in `pytest -m slow`: CI's time budget keeps the training tests on the smoke data
def test_easy_task_is_learned_and_not_flagged(data, tmp_path):
    run = train("decoder_lora", data, tmp_path, "train.epochs=8")
    record = artifacts.read_json(run / "run.json")
    assert record["collapse"]["collapsed"] is False
    assert record["collapse"]["val_accuracy"] > majority_accuracy(data, "val") + 0.2


def test_resume_skips_a_finished_run_and_redoes_an_unfinished_one(data, tmp_path, capsys):
    run = train("tfidf_logreg", data, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert train("tfidf_logreg", data, tmp_path) == run
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert "skipped" in capsys.readouterr().out

    (run / "run.json").unlink()  # as if killed before the last write
    (run / "leftover.tmp").write_text("half")
    train("tfidf_logreg", data, tmp_path)
    assert (run / "run.json").is_file() and not (run / "leftover.tmp").exists()

    old_hash = artifacts.read_json(run / "run.json")["config_hash"]
    train("tfidf_logreg", data, tmp_path, "tfidf.C=3.0")  # another recipe: the old run is stale, so retrained
    assert artifacts.read_json(run / "run.json")["config_hash"] not in (old_hash, None)


def test_training_prints_no_library_noise_but_a_users_warnings_still_show(data, tmp_path, capsys, monkeypatch):
    """transformers' FutureWarning (PEFT asks for the deprecated `is_gradient_checkpointing`) and its load/save bars
    are silenced inside lorastudy's calls only: the same message from the user's code still shows, as does the
    run's own progress bar. train_run prints no result line (the execution backend reports each run once)."""
    import warnings

    import peft

    original = peft.get_peft_model

    def users_wrapper(*args, **kwargs):  # the user's code, running inside the silenced call
        warnings.warn("`is_gradient_checkpointing` is deprecated, says the user's code", FutureWarning)
        return original(*args, **kwargs)

    monkeypatch.setattr(peft, "get_peft_model", users_wrapper)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning every time: none hides behind the once-per-place rule
        train("decoder_lora", data, tmp_path, "train.epochs=1")
        warnings.warn("the user's own warning, after training", UserWarning)
    from_transformers = [w for w in caught if issubclass(w.category, FutureWarning) and "transformers" in w.filename]
    assert not from_transformers, [str(w.message) for w in from_transformers]
    messages = [str(w.message) for w in caught]
    assert "`is_gradient_checkpointing` is deprecated, says the user's code" in messages
    assert "the user's own warning, after training" in messages
    printed = capsys.readouterr()
    assert "decoder_lora__seed42" in printed.err  # the run's progress bar
    assert "Writing model shards" not in printed.err and "Loading weights" not in printed.err, printed.err
    assert "val macro F1" not in printed.out + printed.err
    assert "newly initialised" not in printed.out  # only the new head (score.weight): run.json lists it


def test_class_weights_change_training(data, tmp_path):
    """Same seed and data: two vanilla runs agree exactly, the weighted run does not, so weights reach the loss."""
    steps = ["train.max_steps=4"]
    first = artifacts.read_arrays(train("encoder_lora", data, tmp_path / "a", *steps) / "predictions_val.safetensors")
    again = artifacts.read_arrays(train("encoder_lora", data, tmp_path / "b", *steps) / "predictions_val.safetensors")
    weighted = artifacts.read_arrays(train("encoder_lora_cw", data, tmp_path / "c", *steps)
                                     / "predictions_val.safetensors")
    np.testing.assert_array_equal(first["logits"], again["logits"])
    assert np.abs(first["logits"] - weighted["logits"]).max() > 1e-4


def test_weighted_loss_matches_hand_computation(data):
    config = study()
    spec = arm_spec(config, "encoder_lora_cw", 42, data.fingerprint)
    loss = training.build_loss(spec, data.train_counts)
    logits = torch.tensor([[2.0, 0.5, 0.1, -1.0], [0.3, 0.2, 1.5, 0.0]])
    labels = torch.tensor([0, 3])
    balanced = sum(TRAIN_COUNTS) / (4 * np.array(TRAIN_COUNTS))
    weights = np.sqrt(balanced) / np.sqrt(balanced).mean()
    nll = -torch.log_softmax(logits, dim=1)[torch.arange(2), labels].numpy()
    expected = (weights[[0, 3]] * nll).sum() / weights[[0, 3]].sum()
    assert float(loss(logits, labels)) == pytest.approx(expected, rel=1e-5)
    vanilla = training.build_loss(arm_spec(config, "encoder_lora", 42, data.fingerprint), data.train_counts)
    assert float(vanilla(logits, labels)) == pytest.approx(nll.mean(), rel=1e-5)


def test_head_gets_its_own_learning_rate(data, tmp_path):
    from lorastudy.study import classifiers, lora, model_sources

    config = study("models.encoder.lora_train.head_learning_rate=0.5")
    spec = arm_spec(config, "encoder_lora", 42, data.fingerprint)
    source = model_sources.resolve_source(spec.model.source, cache_dir=model_sources.default_cache_dir())
    model, _, _ = classifiers.load_classifier(source, 4)
    model = lora.apply_lora(model, spec.model.lora, "encoder")
    args = training.training_arguments(spec, config, tmp_path, "fp32", "cpu")
    trainer = training.StudyTrainer(model=model, args=args, eval_dataset=[{}],
                                    head_learning_rate=spec.train.head_learning_rate)
    optimizer = trainer.create_optimizer()
    head = {id(p) for n, p in model.named_parameters() if n in lora.head_parameter_names(model)}
    assert head
    for group in optimizer.param_groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1
        assert group["lr"] == (0.5 if in_head.pop() else spec.train.learning_rate)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(p.requires_grad for p in model.parameters())


RELOAD = """
import json, sys
import numpy as np
from transformers import DataCollatorWithPadding
from lorastudy.core import artifacts
from lorastudy.study import trained, training
run, texts_file, max_length = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, tokenizer = trained.load_trained(run)
spec = trained.read_spec(run)
texts = json.loads(open(texts_file).read())
encoded = tokenizer(texts, truncation=True, max_length=max_length)
rows = [{k: v[i] for k, v in encoded.items()} for i in range(len(texts))]
collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=spec.train.pad_to_multiple_of)
precision = artifacts.read_json(f"{run}/run.json")["precision"]
logits = training.predict_logits(model, rows, collator, spec.train.eval_batch_size, "cpu", precision)
saved = artifacts.read_arrays(f"{run}/predictions_test.safetensors")["logits"]
print(json.dumps({"max_abs_diff": float(np.abs(logits - saved).max()), "max_abs_logit": float(np.abs(saved).max()),
                  "precision": precision}))
"""


@pytest.mark.parametrize("arm,precision", [("encoder_lora", "fp32"), ("decoder_lora", "auto")])
def test_saved_run_reloads_with_identical_logits_in_a_fresh_process(arm, precision, data, tmp_path):
    """The classic PEFT failure: a decoder's score head that comes back random.

    fp32 runs reproduce their saved logits to 1e-4. bf16 runs reproduce them to the resolution of bf16 (a
    fresh model instance can round one matmul output differently: one ulp, 2^-8 relative); a head that
    came back random would be off by the size of the logits themselves.
    """
    run = train(arm, data, tmp_path, f"train.precision={precision}")
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(data.texts("test")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-c", RELOAD, str(run), str(texts), "24"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    reloaded = json.loads(done.stdout.strip().splitlines()[-1])
    tolerance = 1e-4 if reloaded["precision"] == "fp32" else 2 * 2**-8 * reloaded["max_abs_logit"]
    assert reloaded["max_abs_diff"] <= tolerance, reloaded


def test_collapse_is_flagged():
    labels = np.repeat(np.arange(10), 5)
    one_class = np.zeros((50, 10), dtype=np.float32)
    one_class[:, 0] = 1.0
    flagged = training.collapse_check(one_class, labels, train_counts=[30] + [5] * 9)
    assert flagged["collapsed"] and flagged["n_predicted_classes"] == 1
    assert "majority-class baseline" in flagged["reason"] and "only 1 of the 10" in flagged["reason"]

    good = np.eye(10, dtype=np.float32)[labels]
    assert not training.collapse_check(good, labels, train_counts=[30] + [5] * 9)["collapsed"]
    three = np.eye(3, dtype=np.float32)[labels[:15] % 3]
    assert not training.collapse_check(three, labels[:15] % 3, train_counts=[4, 3, 2])["collapsed"]
