"""Cleaning the loaded rows: empty texts and missing labels dropped, labels made strings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lorastudy.core.errors import StudyError


def clean_examples(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Drop rows with empty texts or no label and make labels strings; return the counts and warnings."""
    text = frame["text"].where(frame["text"].notna(), "").astype(str)
    empty = text.str.strip() == ""
    labels, mixed = normalise_labels(frame["label"])
    unlabelled = labels.isna()
    keep = ~empty & ~unlabelled
    out = frame.assign(text=text, label=labels)[keep].reset_index(drop=True)
    counts = {"rows_read": len(frame), "dropped_empty_text": int(empty.sum()),
              "dropped_missing_label": int((unlabelled & ~empty).sum())}
    warnings = []
    if counts["dropped_empty_text"]:
        warnings.append(f"{counts['dropped_empty_text']} rows with an empty or missing text were dropped.")
    if counts["dropped_missing_label"]:
        warnings.append(f"{counts['dropped_missing_label']} rows with a missing label were dropped.")
    if mixed:
        warnings.append("Labels mix numbers and strings; all are treated as strings (1 and \"1\" are one class).")
    if out["label"].nunique() < 2:
        found = ", ".join(f"'{v}'" for v in out["label"].unique()) or "none"
        raise StudyError(f"The data has fewer than two classes after cleaning (found: {found}).",
                         "a classifier needs at least two labels; check data.label_column and the data.")
    return out, counts, warnings


def normalise_labels(labels: pd.Series) -> tuple[pd.Series, bool]:
    """Labels as stripped strings (2.0 -> "2"); missing stays missing. Also: did numbers and strings mix?"""
    def as_text(value: Any) -> Any:
        if pd.isna(value):
            return None
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        text = str(value).strip()
        return text or None

    kinds = {isinstance(v, str) for v in labels if not pd.isna(v)}
    return labels.map(as_text).astype(object), len(kinds) > 1
