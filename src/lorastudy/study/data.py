"""The data layer: load a source, clean it, split it, assign frequency tiers, describe it.

Every later stage reads the result from the run directory (`data/dataset.parquet`,
`data/labels.json`, `data/summary.json`), never from the source, so all arms of a
study see exactly the same rows, label ids and tiers.

Each step is a module of its own (`sources`, `cleaning`, `splits`, `tiers`, `duplicates`,
`summary`); this one runs them in order and writes, reuses and reads back `data/`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lorastudy.core import artifacts, integrity
from lorastudy.core.errors import StudyError
from lorastudy.study.cleaning import clean_examples
from lorastudy.study.config import StudyConfig, stable_hash
from lorastudy.study.duplicates import drop_cross_split_duplicates, duplicate_record
from lorastudy.study.prepared_data import PreparedData, fingerprint
from lorastudy.study.sources import label_space, load_examples
from lorastudy.study.splits import SPLITS, assign_splits
from lorastudy.study.summary import summarize
from lorastudy.study.tiers import assign_tiers

DATA_FILES = ("dataset.parquet", "summary.json", "labels.json")  # labels.json last: it marks data/ complete


def split_source(config: StudyConfig) -> tuple[pd.DataFrame, list[str], dict[str, int], list[str]]:
    """The cleaned source rows with their split ("" = a row the splits left unused), the label space, the
    cleaning counts and warnings: what `build_data` keeps, and where `lorastudy next` finds unused rows."""
    raw = load_examples(config.data)
    frame, cleaning, warnings = clean_examples(raw)
    labels = label_space(config.data, frame["label"])
    given = frame["split"].fillna("").to_numpy(object) if "split" in frame else np.full(len(frame), "", object)
    frame["split"] = assign_splits(frame["label"].to_numpy(object), given, config.split)
    cleaning["unused_rows"] = int((frame["split"] == "").sum())
    return frame, labels, cleaning, warnings


def build_data(config: StudyConfig, source: tuple | None = None) -> PreparedData:
    """Load, clean, split and tier the configured data in memory (no files written); `source`: what
    `split_source(config)` returned, when the caller has it already."""
    frame, labels, cleaning, warnings = source or split_source(config)
    frame = frame[frame["split"] != ""]
    frame = frame.sort_values("split", key=lambda s: s.map(SPLITS.index), kind="stable").reset_index(drop=True)
    frame["label_id"] = frame["label"].map({label: i for i, label in enumerate(labels)}).astype(np.int64)
    frame = frame[["text", "label", "label_id", "split"]].astype({"text": str, "label": str, "split": str})
    duplicates = duplicate_record(frame)
    if config.data.deduplicate:
        frame, dropped = drop_cross_split_duplicates(frame)
        duplicates |= {"deduplicated": True, "dropped_rows": dropped}
        cleaning["dropped_cross_split_duplicates"] = sum(dropped.values())

    counts = {s: np.bincount(frame.loc[frame["split"] == s, "label_id"], minlength=len(labels)).tolist()
              for s in SPLITS}
    tier_names, tier_of, thresholds, rule = assign_tiers(counts["train"], config.tiers)
    missing = {s: [label for label, c in zip(labels, counts[s]) if c == 0] for s in SPLITS}
    return PreparedData(frame=frame, labels=labels, train_counts=counts["train"], val_counts=counts["val"],
                        test_counts=counts["test"], tier_names=tier_names, tier_of=tier_of, tier_rule=rule,
                        tier_thresholds=thresholds, missing=missing, fingerprint=fingerprint(frame, labels),
                        warnings=warnings + _split_warnings(frame, labels, counts, missing, duplicates),
                        cleaning=cleaning, duplicates=duplicates)


def _split_warnings(frame: pd.DataFrame, labels: list[str], counts: dict[str, list[int]],
                    missing: dict[str, list[str]], duplicates: dict) -> list[str]:
    warnings = []
    unseen = [label for i, label in enumerate(labels) if counts["train"][i] == 0 and counts["val"][i] + counts["test"][i]]
    if unseen:
        warnings.append(f"{len(unseen)} labels in val/test never occur in train: {_short_list(unseen)}.")
    for name in ("val", "test"):
        if missing[name]:
            warnings.append(f"{len(missing[name])} classes have no {name} examples: {_short_list(missing[name])}.")
    shared, seen = duplicates["texts_in_several_splits"], duplicates["test_rows_seen_in_train"]
    if duplicates["deduplicated"]:
        dropped = duplicates["dropped_rows"]
        warnings.append(f"{shared} texts occurred in more than one split; data.deduplicate dropped {dropped['val']} "
                        f"val and {dropped['test']} test rows whose text is also in an earlier split.")
    elif shared:
        warnings.append(f"{shared} texts occur in more than one split (e.g. in train and test); {seen} test rows "
                        "repeat a training text, which flatters test scores (set data.deduplicate: true to drop them).")
    if duplicates["texts_with_conflicting_labels"]:
        warnings.append(f"{duplicates['texts_with_conflicting_labels']} texts occur with more than one label.")
    return warnings


def _short_list(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _settings_hash(config: StudyConfig) -> str:
    """What `data/` depends on: data, split and tier settings, and the tokenizers the summary uses."""
    return stable_hash({"data": config.data.model_dump(mode="json"), "split": config.split.model_dump(mode="json"),
                        "tiers": config.tiers.model_dump(mode="json"), "tokenizer": config.models.encoder.source,
                        "decoder_tokenizer": config.models.decoder.source})


def prepare_data(config: StudyConfig, run_dir: Path) -> PreparedData:
    """Write `data/` for the study (dataset.parquet, labels.json, summary.json), or reuse it if current."""
    folder = Path(run_dir) / "data"
    settings = _settings_hash(config)
    if _is_current(folder, settings):
        return load_prepared(run_dir)
    data = build_data(config)
    with artifacts.atomic_path(folder / "dataset.parquet") as tmp:
        data.frame.to_parquet(tmp, index=False)
    summary = summarize(data, config)
    artifacts.write_json(folder / "summary.json", summary)
    labels_json = {key: getattr(data, key) for key in (
        "labels", "train_counts", "val_counts", "test_counts", "tier_names", "tier_of", "tier_rule",
        "tier_thresholds", "missing", "fingerprint", "warnings", "cleaning", "duplicates")}
    labels_json |= {"truncation": summary["truncation"], "settings_hash": settings}
    artifacts.write_json(folder / "labels.json", labels_json)  # written last
    integrity.record_study_files(run_dir, [folder / name for name in DATA_FILES])
    return data


def data_is_current(config: StudyConfig, run_dir: Path) -> bool:
    """`data/` in the run directory is intact and made with these settings (so the source is not read again);
    says nothing when it is not."""
    folder = Path(run_dir) / "data"
    if not all(state.ok for state in integrity.check_study_files(run_dir, [folder / name for name in DATA_FILES])):
        return False
    return artifacts.read_json(folder / "labels.json").get("settings_hash") == _settings_hash(config)


def _is_current(folder: Path, settings: str) -> bool:
    """data/ is complete, every file matches its record in the manifest, and it was made with these settings."""
    if not all(integrity.reusable(folder.parent, folder / name, "preparing the data again") for name in DATA_FILES):
        return False
    return artifacts.read_json(folder / "labels.json").get("settings_hash") == settings


def load_prepared(run_dir: Path) -> PreparedData:
    """Read `data/` back; a dataset that no longer matches its fingerprint is an error, not a silent change."""
    folder = Path(run_dir) / "data"
    meta = artifacts.read_json(folder / "labels.json")
    if not (folder / "dataset.parquet").is_file():
        raise StudyError(f"Missing artifact {folder / 'dataset.parquet'}.", "run `lorastudy run --stage data`.")
    frame = pd.read_parquet(folder / "dataset.parquet")
    if fingerprint(frame, meta["labels"]) != meta["fingerprint"]:
        raise StudyError(f"{folder / 'dataset.parquet'} does not match the fingerprint in labels.json.",
                         f"delete {folder} and run `lorastudy run --stage data` again.")
    return PreparedData(frame=frame, **{k: meta[k] for k in (
        "labels", "train_counts", "val_counts", "test_counts", "tier_names", "tier_of", "tier_rule",
        "tier_thresholds", "missing", "fingerprint", "warnings")}, cleaning=meta.get("cleaning", {}),
        duplicates=meta.get("duplicates", {}))


def describe_data(config: StudyConfig) -> dict:
    """What `lorastudy data` shows: reuses the run directory's summary when it is current."""
    folder = Path(config.output_dir) / "data"
    if _is_current(folder, _settings_hash(config)):
        return artifacts.read_json(folder / "summary.json")
    return summarize(build_data(config), config)
