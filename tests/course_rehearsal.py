"""The course rehearsal's stand-in for the hub: `determined-ai/consumer_complaints_medium`, generated locally.

The dataset has the hub dataset's schema and split sizes (its dataset card: features `Issue` and
`Consumer Complaint`, both strings; 64,292 train and 21,439 test rows) and is built so that the
course's own cleaning and split, applied by the `course` profile unchanged, give the course's numbers
(COURSE_FACTS.md): the vendored `train_indices.json` (57,846 rows) and `val_indices.json` (6,430 rows)
index into the train split; the 16 train rows neither file names, and 7 test rows, carry raw issue names
that the label list drops, so the filtered test split has 21,432 rows; about a third of the rows of every
class that the merge map folds into carry one of its pre-2017 raw names. Training counts have a long tail:
29 classes with 4-27 examples form the bottom quartile, as the course reports.

Texts are short, made of a few words of their label among filler words (some redacted `XXXX`, dollar
amounts, a few long enough to be truncated at 128 tokens), so a study on tiny models stays quick.

The data is written as the hub's files would be cached: a snapshot folder in a Hugging Face cache
(`<hf_home>/hub/datasets--determined-ai--consumer_complaints_medium/snapshots/<commit>/`) with the
dataset card's `configs` and `data/train-*.parquet`, `data/test-*.parquet`. With `HF_HOME` pointing
there, lorastudy's own reachability check finds it offline; `datasets` keeps offline loads to what it
prepared before, so `offline_hub` points its `load_dataset` for this one id at the snapshot folder,
which `datasets` then reads with its ordinary parquet builder.

Run as a script, this file is the `lorastudy` command with that hub:
`HF_HOME=... python tests/course_rehearsal.py run --config course --set ...`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

DATASET_ID = "determined-ai/consumer_complaints_medium"
COMMIT = "4c40945ddad6825dba1112096ae35ad055897763"  # the hub repository's commit (any 40 hex digits would do)
TRAIN_ROWS = 64_292  # the dataset card's train split
TEST_ROWS = 21_439   # the dataset card's test split
# COURSE_FACTS.md: the canonical split and the test set after filtering; the rare tier's reported shape.
COURSE_TRAIN, COURSE_VAL, COURSE_TEST = 57_846, 6_430, 21_432
COURSE_RARE_CLASSES, COURSE_RARE_RANGE = 29, (4, 27)
MAJORITY = "Incorrect information on your report"  # the course's majority class (23.05% of validation)
MAJORITY_SHARE = 0.2305
# Raw issue names that neither the merge map nor the label list knows: the filter drops their rows.
DROPPED_NAMES = ("Incorrect exchange rate", "Shopping for a credit card", "Payment to account not credited (legacy)",
                 "Problem with an overdraft", "Other (legacy)")
FILLER = ("my", "the", "account", "bank", "company", "they", "called", "again", "since", "month", "letter",
          "received", "told", "never", "still", "please", "help", "asked", "sent", "times", "about", "after",
          "would", "not", "their", "representative", "payment", "request", "week", "last", "year", "phone")


def course_file(name: str):
    return json.loads(resources.files("lorastudy.study.course_data").joinpath(name).read_text(encoding="utf-8"))


def train_counts_by_class(labels: list[str], rng: np.random.Generator) -> dict[str, int]:
    """A long tail over the 113 labels summing to the 57,846 canonical training rows.

    29 rare classes with 4-27 examples each (the bottom quartile), the majority class at the course's share,
    and 83 classes in between, log-uniform from about 40 to about 2,100.
    """
    order = [labels[i] for i in rng.permutation(len(labels))]
    order.remove(MAJORITY)
    rare = np.round(np.linspace(COURSE_RARE_RANGE[0], COURSE_RARE_RANGE[1], COURSE_RARE_CLASSES)).astype(int)
    majority = round(MAJORITY_SHARE * COURSE_TRAIN)
    middle_n = len(labels) - COURSE_RARE_CLASSES - 1
    shape = np.exp(np.linspace(np.log(50), np.log(2500), middle_n))
    budget = COURSE_TRAIN - rare.sum() - majority
    middle = np.floor(shape * budget / shape.sum()).astype(int)
    middle[-1] += budget - middle.sum()
    assert middle.min() > COURSE_RARE_RANGE[1]
    counts = dict(zip(order[:COURSE_RARE_CLASSES], rare.tolist())) | dict(zip(order[COURSE_RARE_CLASSES:],
                                                                              middle.tolist()))
    counts[MAJORITY] = majority
    assert sum(counts.values()) == COURSE_TRAIN
    return counts


def proportional(train: dict[str, int], total: int) -> dict[str, int]:
    """Per-class counts in the training proportions, summing to `total` (largest remainder)."""
    names = list(train)
    exact = np.array([train[n] for n in names], float) * total / COURSE_TRAIN
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: total - counts.sum()]] += 1
    return dict(zip(names, counts.tolist()))


def shuffled_labels(counts: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    labels = np.array([name for name, n in counts.items() for _ in range(n)], dtype=object)
    return labels[rng.permutation(len(labels))]


def raw_names(labels: np.ndarray, merge: dict[str, str], rng: np.random.Generator) -> np.ndarray:
    """About a third of the rows of a class the merge map folds into get one of its raw (pre-2017) names."""
    raw_of: dict[str, list[str]] = {}
    for raw, merged in merge.items():
        if raw != merged:
            raw_of.setdefault(merged, []).append(raw)
    out = labels.copy()
    for merged, raws in raw_of.items():
        rows = np.flatnonzero((labels == merged) & (rng.random(len(labels)) < 1 / 3))
        out[rows] = np.array(raws, dtype=object)[rng.integers(len(raws), size=len(rows))]
    return out


def complaint_texts(labels: np.ndarray, rng: np.random.Generator) -> list[str]:
    """A few words of the label among filler words; some redactions, amounts and long texts, as complaints have."""
    words_of = {label: [w.strip(",./()'").lower() for w in label.split() if w.strip(",./()'")]
                for label in set(labels)}
    texts = []
    for label in labels:
        own = words_of[label]
        n_filler = int(rng.integers(0, 3)) if rng.random() > 0.02 else int(rng.integers(30, 45))
        words = [own[j] for j in rng.integers(len(own), size=min(2, len(own)))]
        words += [FILLER[j] for j in rng.integers(len(FILLER), size=n_filler)]
        if rng.random() < 0.15:
            words.append("XXXX")
        if rng.random() < 0.1:
            words.append(f"${int(rng.integers(10, 5000)):,}.00")
        words = [words[j] for j in rng.permutation(len(words))]
        texts.append(" ".join(words))
    return texts


@lru_cache(maxsize=2)
def complaints_splits(seed: int = 0) -> dict[str, pd.DataFrame]:
    """The hub dataset's two splits as DataFrames with its columns (`Issue`, `Consumer Complaint`), deterministic."""
    rng = np.random.default_rng(seed)
    labels = course_file("label_list.json")
    merge = {k: v for k, v in course_file("label_merge_mapping.json").items() if not k.startswith("_")}
    assert not set(DROPPED_NAMES) & (set(labels) | set(merge))
    train_indices, val_indices = course_file("train_indices.json"), course_file("val_indices.json")
    train = train_counts_by_class(labels, rng)

    issue = np.empty(TRAIN_ROWS, dtype=object)
    issue[train_indices] = shuffled_labels(train, rng)
    issue[val_indices] = shuffled_labels(proportional(train, COURSE_VAL), rng)
    unindexed = np.setdiff1d(np.arange(TRAIN_ROWS), np.concatenate([train_indices, val_indices]))
    issue[unindexed] = np.array(DROPPED_NAMES, dtype=object)[rng.integers(len(DROPPED_NAMES), size=len(unindexed))]

    test_issue = shuffled_labels(proportional(train, COURSE_TEST), rng).tolist()
    for position in sorted(rng.choice(TEST_ROWS, size=TEST_ROWS - COURSE_TEST, replace=False).tolist()):
        test_issue.insert(position, DROPPED_NAMES[position % len(DROPPED_NAMES)])
    test_issue = np.array(test_issue, dtype=object)

    out = {}
    for name, column in (("train", issue), ("test", test_issue)):
        raw = raw_names(column, merge, rng)
        out[name] = pd.DataFrame({"Issue": raw, "Consumer Complaint": complaint_texts(raw, rng)})
    return out


DATASET_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
dataset_info:
  features:
  - name: Issue
    dtype: string
  - name: Consumer Complaint
    dtype: string
---
# consumer_complaints_medium (generated locally for lorastudy's course rehearsal)
"""


def write_hub_snapshot(hf_home: Path, seed: int = 0) -> Path:
    """The generated dataset as the hub's files cached under `hf_home` (the HF_HOME of the study); its snapshot folder."""
    repo = Path(hf_home) / "hub" / f"datasets--{DATASET_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (snapshot / "data").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    splits = complaints_splits(seed)
    for name, frame in splits.items():
        frame.to_parquet(snapshot / "data" / f"{name}-00000-of-00001.parquet", index=False)
    (snapshot / "README.md").write_text(DATASET_CARD, encoding="utf-8")
    return snapshot


@contextmanager
def offline_hub() -> Iterator[None]:
    """`datasets.load_dataset(DATASET_ID, ...)` reads the cached snapshot, as it would after a download."""
    import datasets
    from huggingface_hub import snapshot_download

    real = datasets.load_dataset

    def load_dataset(path, *args, **kwargs):
        if path == DATASET_ID:
            path = snapshot_download(DATASET_ID, repo_type="dataset", local_files_only=True)
        return real(path, *args, **kwargs)

    datasets.load_dataset = load_dataset
    try:
        yield
    finally:
        datasets.load_dataset = real


def expected_split_counts(seed: int = 0) -> dict[str, Counter]:
    """Per-class counts of the canonical train / val rows and the filtered test rows, computed the course's way
    (merge, then keep listed labels) from the generated files, independently of lorastudy's loader."""
    splits = complaints_splits(seed)
    labels = set(course_file("label_list.json"))
    merge = {k: v for k, v in course_file("label_merge_mapping.json").items() if not k.startswith("_")}

    def cleaned(issues: pd.Series) -> pd.Series:
        merged = issues.map(lambda raw: merge.get(raw, raw))
        return merged[merged.isin(labels)]

    train_issue = splits["train"]["Issue"]
    return {"train": Counter(cleaned(train_issue.iloc[course_file("train_indices.json")])),
            "val": Counter(cleaned(train_issue.iloc[course_file("val_indices.json")])),
            "test": Counter(cleaned(splits["test"]["Issue"]))}


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lorastudy.cli import app

    with offline_hub():
        app(prog_name="lorastudy")
