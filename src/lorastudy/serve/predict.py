"""Label new texts with a trained arm, as the study served it (`lorastudy predict`).

The model is the one the latency stage timed and the evaluation scored: loaded by
`trained.load_trained` (LoRA merged into the weights), run in the run's precision
(`runtime.serving`) with the attention kernel the latency stage chose for its
architecture (`latency/latency.json`, transformers' default when absent), through
`training.predict_logits`, the function that wrote the run's saved logits. So
predicting the test split reproduces `predictions_test.safetensors`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import softmax

from lorastudy.core import artifacts, runtime
from lorastudy.study.config import StudyConfig
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError

TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")
RANKS = ("predicted", "second", "third")  # the top-3 columns: predicted_label, second_label, third_label


@dataclass(frozen=True)
class TrainedRun:
    """One finished arm x seed of a study, located and checked."""

    run_dir: Path
    path: Path
    arm: str
    seed: int
    config: StudyConfig
    labels: list[str]
    record: dict  # run.json

    @property
    def method(self) -> str:
        return self.record["method"]


def locate_run(run_dir: Path, arm: str, seed: int | None = None) -> TrainedRun:
    """The finished run of `arm` (first seed by default) in a run directory; bad names are one-line errors."""
    from lorastudy.study.trained import read_spec
    from lorastudy.study.training import is_finished

    run_dir = Path(run_dir)
    resolved = run_dir / "config.resolved.yaml"
    if not resolved.is_file():
        raise StudyError(f"{run_dir} is not a lorastudy run directory (it has no config.resolved.yaml).",
                         "give the folder `lorastudy run` wrote, e.g. runs/demo.")
    config = load_config(resolved)
    if arm not in config.arms:
        raise StudyError(f"Arm '{arm}' is not in the study in {run_dir}; its arms: {', '.join(config.arms)}.",
                         "choose one of them with --arm.")
    seeds = config.seeds_of(arm)
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise StudyError(f"Seed {seed} is not in the study in {run_dir} for {arm}; its seeds: "
                         f"{', '.join(map(str, seeds))}.", "choose one of them with --seed.")
    path = run_dir / "runs" / f"{arm}__seed{seed}"
    if not (path / "spec.json").is_file() or not is_finished(path, read_spec(path)):
        raise StudyError(f"Run {path.name} in {run_dir} has not finished training.",
                         f"finish the study first: lorastudy run --output-dir {run_dir} (it resumes).")
    labels = artifacts.read_json(run_dir / "data" / "labels.json")["labels"]
    return TrainedRun(run_dir, path, arm, seed, config, labels, artifacts.read_json(path / "run.json"))


def served_attention(run: TrainedRun) -> str | None:
    """The attention kernel the latency stage served this architecture's batches with; None = transformers' default.

    The latency stage times one arm per architecture (`latency.inference_arms`): a weighted arm shares its
    unweighted twin's entry, and the other way round.
    """
    path = run.run_dir / "latency" / "latency.json"
    if not path.is_file():
        return None
    measured = artifacts.read_json(path).get("models", {})
    twin = run.arm.removesuffix("_cw")
    for name in (run.arm, twin, f"{twin}_cw"):
        if name in measured:
            attention = measured[name]["variants"]["merged"].get("attention")
            return attention.get("batched") if isinstance(attention, dict) else attention  # schema 2: one kernel
    return None


class Predictor:
    """A trained arm loaded once, as served in the study; `logits` and `predict` label any list of texts."""

    def __init__(self, run: TrainedRun, *, batch_size: int | None = None):
        self.run = run
        self.device = runtime.device()
        if self.run.method == "tfidf":
            from lorastudy.study.training import load_tfidf

            self.pipeline = load_tfidf(self.run.path / "model")
            return
        from transformers import DataCollatorWithPadding

        from lorastudy.study.trained import load_trained, read_spec

        train = read_spec(self.run.path).train
        self.model, self.tokenizer = load_trained(self.run.path, merged=True, allow_pickle=self.run.config.allow_pickle)
        self.model.to(self.device)
        self.attention = served_attention(self.run)
        if self.attention:
            self.model.set_attn_implementation(self.attention)
        self.precision = self.run.record.get("precision", "fp32")
        self.batch_size = batch_size or train.eval_batch_size
        self.collator = DataCollatorWithPadding(self.tokenizer, pad_to_multiple_of=train.pad_to_multiple_of)

    def logits(self, texts: Sequence[str], desc: str | None = None) -> np.ndarray:
        """Float32 logits [len(texts), classes] in input order (length-sorted batches inside)."""
        from lorastudy.study.training import predict_logits, tfidf_logits

        texts = list(texts)
        if self.run.method == "tfidf":
            return tfidf_logits(self.pipeline, texts, len(self.run.labels))
        encoded = self.tokenizer(texts, truncation=True, max_length=self.run.config.data.max_length)
        rows = [{key: values[i] for key, values in encoded.items()} for i in range(len(texts))]
        return predict_logits(self.model, rows, self.collator, self.batch_size, self.device, self.precision, desc=desc)

    def predict(self, texts: Sequence[str], desc: str | None = None) -> pd.DataFrame:
        """The predicted label, its probability and the next two labels with theirs, one row per text."""
        return prediction_table(self.logits(texts, desc), self.run.labels)


def load_predictor(run_dir: Path, arm: str, seed: int | None = None, *,
                   batch_size: int | None = None) -> Predictor:
    """The Python API of `lorastudy predict` (notebooks): `load_predictor("runs/demo", "encoder_lora").predict(texts)`."""
    return Predictor(locate_run(run_dir, arm, seed), batch_size=batch_size)


def prediction_table(logits: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Softmax probabilities of the top 3 classes (fewer with fewer classes), best first."""
    probabilities = softmax(np.asarray(logits, dtype=np.float64), axis=1)
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :len(RANKS)]
    names = np.asarray(labels, dtype=object)
    columns: dict[str, np.ndarray] = {}
    for rank, name in enumerate(RANKS[:top.shape[1]]):
        columns[f"{name}_label"] = names[top[:, rank]]
        columns["probability" if rank == 0 else f"{name}_probability"] = np.take_along_axis(
            probabilities, top[:, rank:rank + 1], axis=1)[:, 0]
    return pd.DataFrame(columns)


# --- files ------------------------------------------------------------------


def read_inputs(path: Path, text_column: str) -> pd.DataFrame:
    """A .csv/.jsonl/.parquet table with `text_column` (its other columns are kept), or one text per line."""
    from lorastudy.study.sources import read_table
    from lorastudy.study.text_files import read_utf8

    path = Path(path)
    if not path.is_file():
        raise StudyError(f"Input file {path} does not exist.", "give a .csv, .jsonl or .parquet file, or a text file "
                                                                "with one text per line.")
    if path.suffix.lower() in TABLE_SUFFIXES:
        frame = read_table(path)
        if text_column not in frame.columns:
            raise StudyError(f"Column '{text_column}' (the study's text column) is not in {path}; available "
                             f"columns: {', '.join(map(str, frame.columns))}.",
                             f"name the column of texts '{text_column}', or give one text per line in a .txt file.")
        blank = frame[text_column].isna() | frame[text_column].astype(str).str.strip().eq("")
        if blank.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(blank)[:5])
            raise StudyError(f"{path} has {int(blank.sum())} row(s) without text (data row {rows}...).",
                             "fill in or remove those rows.")
        frame[text_column] = frame[text_column].astype(str)
    else:
        lines = [line.strip() for line in read_utf8(path).splitlines()]
        frame = pd.DataFrame({text_column: [line for line in lines if line]})
    if frame.empty:
        raise StudyError(f"Input file {path} has no texts.", "give at least one text (blank lines are skipped).")
    return frame.reset_index(drop=True)


def check_output(path: Path) -> Path:
    """Refuse an output that cannot be written before any model runs, so no work is lost at the end."""
    path = Path(path)
    if path.is_dir():
        raise StudyError(f"Output {path} is a folder.", "give a file name, e.g. predictions.csv.")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise StudyError(f"Output {path} has no known table format.", "end --output in .csv, .jsonl or .parquet.")
    artifacts.make_folder(path.parent, "choose a writable --output path.")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StudyError(f"Output {path} is not writable.", "choose a writable --output path.")
    return path


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    suffix = Path(path).suffix.lower()
    with artifacts.atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        elif suffix == ".jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(tmp, index=False)
    return Path(path)


def predict_file(run_dir: Path, arm: str, input_path: Path, output_path: Path, *, seed: int | None = None,
                 batch_size: int | None = None) -> pd.DataFrame:
    """`lorastudy predict`: the input's rows in their order, with the prediction columns appended (or replaced)."""
    output_path = check_output(output_path)
    run = locate_run(run_dir, arm, seed)
    frame = read_inputs(input_path, run.config.data.text_column)
    predictor = Predictor(run, batch_size=batch_size)
    predicted = predictor.predict(frame[run.config.data.text_column].tolist(), desc=f"predict {run.path.name}")
    result = frame.drop(columns=[c for c in predicted.columns if c in frame.columns]).join(predicted)
    write_table(result, output_path)
    return result
