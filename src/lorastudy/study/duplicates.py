"""Repeated texts: within a split, across splits (a test text seen in training is leakage), and `data.deduplicate`."""

from __future__ import annotations

import pandas as pd

from lorastudy.study.splits import SPLITS


def duplicate_record(frame: pd.DataFrame) -> dict:
    """How texts repeat: rows repeated inside a split, and texts shared between splits, where a test text
    that also occurs in training is leakage that flatters every arm's test score."""
    texts = {s: set(frame.loc[frame["split"] == s, "text"]) for s in SPLITS}
    test_texts = frame.loc[frame["split"] == "test", "text"]
    return {
        "duplicate_rows_within_splits": int(frame.duplicated(["split", "text"]).sum()),
        "texts_in_several_splits": int((frame.groupby("text")["split"].nunique() > 1).sum()),
        "texts_shared": {f"{a}_{b}": len(texts[a] & texts[b]) for a, b in (("train", "val"), ("train", "test"),
                                                                            ("val", "test"))},
        "test_rows_seen_in_train": int(test_texts.isin(texts["train"]).sum()),
        "texts_with_conflicting_labels": int((frame.groupby("text")["label"].nunique() > 1).sum()),
        "deduplicated": False,
        "dropped_rows": {"val": 0, "test": 0},
    }


def drop_cross_split_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """`data.deduplicate`: drop val rows whose text is in train, and test rows whose text is in train or val.
    Training keeps its copy; repeats inside one split stay (they are not leakage)."""
    earlier: set[str] = set(frame.loc[frame["split"] == "train", "text"])
    drop = pd.Series(False, index=frame.index)
    dropped = {}
    for name in ("val", "test"):
        rows = frame["split"] == name
        drop |= rows & frame["text"].isin(earlier)
        dropped[name] = int((drop & rows).sum())
        earlier |= set(frame.loc[rows, "text"])
    return frame[~drop].reset_index(drop=True), dropped
