"""The course's published numbers (validation split), for results.json as rows labelled external to the study."""

from __future__ import annotations

import json
from importlib import resources

# The course's published validation numbers (COURSE_FACTS.md, "Reference numbers");
# the TF-IDF row is read from the vendored baseline_results.json instead.
COURSE_SOURCE = ("ECBS5200 (Central European University, 2026) Weeks 1-2, course repository "
                 "earino/applied-deep-learning; see COURSE_FACTS.md and course_data/baseline_results.json")
COURSE_ROWS = (
    {"model": "ModernBERT full fine-tune, 3 epochs (Week 1)", "arm": "encoder_full",
     "accuracy": 0.566, "macro_f1": 0.209, "zero_f1_count": 46, "approximate": False},
    {"model": "ModernBERT full fine-tune + sqrt-inverse class weighting (Week 2)", "arm": "encoder_full_cw",
     "accuracy": 0.52, "macro_f1": 0.24, "zero_f1_count": 37, "approximate": True},
)
COURSE_WEEK2_WEIGHTING = {"relative_macro_f1": 0.15, "lifted_off_zero": 9, "delta_accuracy": [-0.05, -0.04],
                          "approximate": True}


def external_reference() -> dict:
    """The course's published numbers (validation split, 113 classes), labelled as external to this run."""
    baseline = json.loads(resources.files("lorastudy.study.course_data").joinpath("baseline_results.json")
                          .read_text(encoding="utf-8"))
    val = baseline["val"]
    rows = [
        {"model": "majority class", "arm": None, "accuracy": baseline["majority_class"]["val_accuracy"],
         "macro_f1": None, "zero_f1_count": None, "approximate": False},
        {"model": baseline["model"], "arm": "tfidf_logreg", "accuracy": val["accuracy"], "macro_f1": val["macro_f1"],
         "zero_f1_count": val["zero_f1_classes"], "approximate": False},
        *COURSE_ROWS,
    ]
    return {"label": "external: the course's published numbers, not produced by this study",
            "source": COURSE_SOURCE, "split": "validation", "num_classes": baseline["num_classes"],
            "rows": [{**row, "split": "validation"} for row in rows], "week2_weighting": dict(COURSE_WEEK2_WEIGHTING),
            "tfidf_test": {"accuracy": baseline["test"]["accuracy"], "macro_f1": baseline["test"]["macro_f1"],
                           "weighted_f1": baseline["test"]["weighted_f1"],
                           "zero_f1_count": baseline["test"]["zero_f1_classes"]}}
