"""Loading the configured source as rows of `text`, `label`, and `split` where the source gives one.

A source is a .csv, .jsonl or .parquet file, a Hugging Face Hub dataset (with the
course's vendored label merge map, label list and index files), or WordNet (`wordnet`).
"""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from lorastudy.core.errors import StudyError
from lorastudy.study.cleaning import normalise_labels
from lorastudy.study.config import DataConfig
from lorastudy.study.splits import SPLITS
from lorastudy.study.text_files import read_utf8
from lorastudy.study.wordnet import LEXNAMES, WORDNET_SOURCE, find_wordnet_dir, parse_wordnet

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}


def load_examples(data: DataConfig) -> pd.DataFrame:
    """Rows of the configured source (`text`, `label`, and `split` when the source gives one), labels merged and filtered."""
    if data.source == WORDNET_SOURCE:
        return parse_wordnet(find_wordnet_dir(data.wordnet_dir))
    frame = _load_hub(data) if data.source.startswith("hf:") else _load_file(Path(data.source).expanduser(), data)
    return _merge_and_filter_labels(frame, data)


def check_source(data: DataConfig) -> None:
    """What a study can know about its data source without loading it, checked before any other work: the file
    exists, parses as its format and has the configured columns (read from its header where the format has
    one); a hub dataset is cached or the hub reachable; WordNet is found; the label and index files parse."""
    if data.source == WORDNET_SOURCE:
        find_wordnet_dir(data.wordnet_dir)
    elif data.source.startswith("hf:"):
        _check_hub_dataset_reachable(data.source)
    else:
        path = Path(data.source).expanduser()
        wanted = [c for c in (data.text_column, data.label_column, data.split_column) if c]
        columns = _header_columns(path)
        if columns is None or not set(wanted) <= set(columns):  # no header to go by, or a column not in it
            columns = list(read_table(path).columns)  # as loading reads them: the error is loading's own
        _select_columns(pd.DataFrame(columns=columns), data, str(path))
    for ref, kind in ((data.label_merge_map, dict), (data.label_list, list), (data.train_indices, list),
                      (data.val_indices, list)):
        if ref:
            _read_json_ref(ref, kind)


def _header_columns(path: Path) -> list[str] | None:
    """A data file's columns from its head alone: a parquet file's schema, a CSV file's header line, a JSON-lines
    file's first record; None when the head does not tell (the caller then reads the whole file)."""
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in (".csv", ".jsonl", ".parquet"):
        return None
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, "rb") as handle:
            first = handle.readline(1 << 20).decode("utf-8-sig").strip()
        if suffix == ".csv":
            return list(pd.read_csv(io.StringIO(first), dtype=str, nrows=0).columns)
        record = json.loads(first)
        return list(record) if isinstance(record, dict) else None
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None  # the whole read names the problem (pyarrow's ArrowInvalid is a ValueError)


def _load_file(path: Path, data: DataConfig) -> pd.DataFrame:
    return _select_columns(read_table(path), data, str(path))


def read_table(path: Path) -> pd.DataFrame:
    """A .csv (cells as written, as strings), .jsonl or .parquet file as a DataFrame."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".parquet"):
        raise StudyError(f"data.source '{path}' is not a known source.",
                         f"use {WORDNET_SOURCE}, a .csv, .jsonl or .parquet file, or hf:<dataset id>.")
    if not path.is_file():
        raise StudyError(f"Data file {path} does not exist.",
                         "check data.source (relative paths start at the current folder).")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(io.StringIO(read_utf8(path)), dtype=str)  # texts and labels exactly as written
        else:
            frame = pd.read_json(io.StringIO(read_utf8(path)), lines=True, dtype=False)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise StudyError(f"Cannot parse {path} as {suffix[1:].upper()} ({str(exc).splitlines()[0]}).",
                         "check the file format.") from None
    return frame


def _select_columns(frame: pd.DataFrame, data: DataConfig, where: str) -> pd.DataFrame:
    wanted = {"text": data.text_column, "label": data.label_column}
    if data.split_column:
        wanted["split"] = data.split_column
    for role, column in wanted.items():
        if column not in frame.columns:
            raise StudyError(f"Column '{column}' (data.{role}_column) is not in {where}; available columns: "
                             f"{', '.join(map(str, frame.columns))}.", f"set data.{role}_column to one of them.")
    out = frame[list(wanted.values())].copy()
    out.columns = list(wanted)
    if "split" in out:
        out["split"] = _normalise_splits(out["split"], where)
    return out.reset_index(drop=True)


def _normalise_splits(values: pd.Series, where: str) -> pd.Series:
    names = values.astype(str).str.strip().str.lower()
    unknown = sorted(set(names) - set(SPLIT_ALIASES))
    if unknown:
        raise StudyError(f"The split column of {where} has unknown values: {', '.join(unknown[:5])}.",
                         f"use train / val / test (or {', '.join(a for a in SPLIT_ALIASES if a not in SPLITS)}).")
    return names.map(SPLIT_ALIASES)


def _load_hub(data: DataConfig) -> pd.DataFrame:
    """A hub dataset: train split (+ test split), label merge map and filter, canonical indices."""
    import datasets

    dataset_id = data.source.removeprefix("hf:")
    _check_hub_dataset_reachable(data.source)
    parts = [(data.hf_train_split, None)] + ([(data.hf_test_split, "test")] if data.hf_test_split else [])
    frames = []
    for split_name, role in parts:
        try:
            dataset = datasets.load_dataset(dataset_id, split=split_name)
        except (OSError, ValueError) as exc:
            raise StudyError(f"Could not load {data.source} (split '{split_name}') from the Hugging Face Hub: "
                             f"{str(exc).splitlines()[0]}",
                             "go online and unset HF_HUB_OFFLINE (or pre-download it), or use a local "
                             f".csv/.jsonl/.parquet file or {WORDNET_SOURCE}.") from None
        table = dataset.to_pandas()
        feature = dataset.features.get(data.label_column)
        if isinstance(feature, datasets.ClassLabel):  # integer ids on the hub; the study works with names
            table[data.label_column] = feature.int2str(table[data.label_column].tolist())
        frame = _select_columns(table, data.model_copy(update={"split_column": None}), data.source)
        frame["split"] = role if role else _given_by_indices(len(frame), data)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    return frame[frame["split"].notna()].reset_index(drop=True)


def _check_hub_dataset_reachable(source: str) -> None:
    """A hub dataset neither cached nor downloadable fails at once, in one line (as a hub model does),
    instead of after `datasets`' five printed retries."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from lorastudy.core.runtime import hub_unavailable

    try:
        snapshot_download(source.removeprefix("hf:"), repo_type="dataset", local_files_only=True)
        return
    except LocalEntryNotFoundError:
        pass
    if unavailable := hub_unavailable():
        raise StudyError(f"{source} is not in the local Hugging Face cache and the Hugging Face Hub is offline: "
                         f"{unavailable}.",
                         "go online (and unset HF_HUB_OFFLINE) once to cache it, or use a local "
                         f".csv/.jsonl/.parquet file or {WORDNET_SOURCE}.")


def _merge_and_filter_labels(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """Apply the label merge map (keys starting with `_` are comments), then keep only listed labels."""
    if not (data.label_merge_map or data.label_list):
        return frame
    frame = frame.assign(label=normalise_labels(frame["label"])[0])
    if data.label_merge_map:
        merge = {k: v for k, v in _read_json_ref(data.label_merge_map, dict).items() if not k.startswith("_")}
        frame["label"] = frame["label"].replace(merge)
    if data.label_list:
        frame = frame[frame["label"].isin([str(v) for v in _read_json_ref(data.label_list, list)])]
    return frame.reset_index(drop=True)


def _given_by_indices(n_rows: int, data: DataConfig) -> pd.Series:
    """Split marks for the hub's train split from the index files: "" = sample from it, None = not used."""
    indexed = bool(data.train_indices or data.val_indices)
    marks = pd.Series([None if indexed else ""] * n_rows, dtype=object)
    for ref, name in ((data.train_indices, "train"), (data.val_indices, "val")):
        if not ref:
            continue
        indices = _read_json_ref(ref, list)
        if indices and (min(indices) < 0 or max(indices) >= n_rows):
            raise StudyError(f"{ref} has indices outside the {n_rows} rows of the train split.",
                             "use index files made for this dataset.")
        marks.iloc[indices] = name
    return marks


def _read_json_ref(ref: str, kind: type) -> Any:
    """A JSON file by path, or `course:<name>` for the course files vendored in the package."""
    if ref.startswith("course:"):
        target = resources.files("lorastudy.study.course_data").joinpath(ref.removeprefix("course:"))
        if not target.is_file():
            raise StudyError(f"{ref} is not one of the vendored course files.",
                             "use course:label_merge_mapping.json, course:label_list.json, "
                             "course:train_indices.json or course:val_indices.json.")
        text = target.read_text(encoding="utf-8")
    else:
        text = read_utf8(Path(ref).expanduser())
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StudyError(f"{ref} is not valid JSON ({exc.msg}).", "fix the file.") from None
    if not isinstance(value, kind):
        raise StudyError(f"{ref} must hold a JSON {'object' if kind is dict else 'list'}.", "fix the file.")
    return value


def label_space(data: DataConfig, labels: pd.Series) -> list[str]:
    """The full label list (id = index): WordNet's 45 lexnames, the configured list, or the sorted labels seen."""
    if data.source == WORDNET_SOURCE:
        return list(LEXNAMES)
    if data.label_list:
        return [str(label) for label in _read_json_ref(data.label_list, list)]
    return sorted(labels.unique())
