"""The prepared data: one study's rows, label space, split counts and tiers, and the fingerprint that names them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lorastudy.study.splits import SPLITS


@dataclass
class PreparedData:
    """One study's rows, label space, split counts and tiers: the contract every later stage reads."""

    frame: pd.DataFrame  # text (str), label (str), label_id (int), split ("train"|"val"|"test")
    labels: list[str]  # full label space; label id = index
    train_counts: list[int]
    val_counts: list[int]
    test_counts: list[int]
    tier_names: list[str]  # rarest first
    tier_of: list[str]  # per label id
    tier_rule: str
    tier_thresholds: list[float]
    missing: dict[str, list[str]]  # labels with no rows in train / val / test
    fingerprint: str
    warnings: list[str]
    cleaning: dict[str, int] = field(default_factory=dict)  # rows read, dropped, unused by the splits
    duplicates: dict = field(default_factory=dict)  # repeated texts within and across splits (see duplicate_record)

    def texts(self, split: str) -> list[str]:
        return self.frame.loc[self.frame["split"] == _check_split(split), "text"].tolist()

    def label_ids(self, split: str) -> np.ndarray:
        return self.frame.loc[self.frame["split"] == _check_split(split), "label_id"].to_numpy(np.int64)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def fingerprint(frame: pd.DataFrame, labels: list[str]) -> str:
    """sha256[:16] of the label list and every row (split, label id, text): names the exact dataset."""
    digest = hashlib.sha256(json.dumps(labels).encode())
    for text, label_id, split in zip(frame["text"], frame["label_id"], frame["split"]):
        digest.update(f"{split}\t{label_id}\t{text}\n".encode())
    return digest.hexdigest()[:16]
