"""Small CSV files of the data shapes a user brings (issue 12), for the end-to-end shape matrix.

Each shape is a list of (text, label) rows built deterministically. Texts carry a word tied to their
label so that every model can learn something in a couple of epochs, plus shared filler words.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

FILLER = "the a of report customer account issue payment service request note".split()
SCRIPTS = {  # one short phrase per writing system
    "latin": "le client signale un problème", "cyrillic": "клиент сообщает о проблеме",
    "greek": "ο πελάτης αναφέρει πρόβλημα", "arabic": "العميل يبلغ عن مشكلة",
    "hebrew": "הלקוח מדווח על בעיה", "devanagari": "ग्राहक समस्या की रिपोर्ट करता है",
    "cjk": "客户报告了一个问题", "japanese": "お客様が問題を報告しました", "korean": "고객이 문제를 보고했습니다",
    "thai": "ลูกค้ารายงานปัญหา", "emoji": "🙂 📦 🚚 ❗",
}


def _text(rng: random.Random, label: str, words: int = 8) -> str:
    return " ".join([f"w{abs(hash(label)) % 9973}", label.replace(" ", "_")] + rng.choices(FILLER, k=words))


def _rows(counts: dict[str, int], seed: int = 0, words: int = 8) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = [(f"{_text(rng, label, words)} {i}", label) for label, n in counts.items() for i in range(n)]
    rng.shuffle(rows)
    return rows


def long_tail(n_classes: int = 10, head: int = 120) -> dict[str, int]:
    return {f"class{c:02d}": max(3, int(head / (c + 1) ** 1.2)) for c in range(n_classes)}


def balanced() -> list[tuple[str, str]]:
    return _rows({f"class{c}": 100 for c in range(6)})


def numeric_labels() -> list[tuple[str, str]]:
    return _rows({str(c): 100 for c in range(6)})


def two_classes() -> list[tuple[str, str]]:
    return _rows({"spam": 400, "ham": 100})


def three_classes() -> list[tuple[str, str]]:
    return _rows({"low": 300, "medium": 150, "high": 50})


def many_small_classes() -> list[tuple[str, str]]:
    rng = random.Random(1)
    return _rows({f"topic{c:03d}": rng.randint(2, 5) for c in range(160)})


def singleton_classes() -> list[tuple[str, str]]:
    """A long tail plus ten classes with a single row: one training row each, no val or test rows."""
    return _rows(long_tail() | {f"single{c}": 1 for c in range(10)})


def classes_missing_from_eval() -> list[tuple[str, str]]:
    """Pre-split: some classes never appear in val, others never in test."""
    counts = long_tail(8)
    rows = _rows(counts)
    out, seen = [], {}
    for text, label in rows:
        k = seen[label] = seen.get(label, 0) + 1
        split = "train" if k % 5 in (1, 2, 3) else ("val" if k % 5 == 4 else "test")
        if label in ("class01", "class03") and split == "val" or label in ("class02", "class04") and split == "test":
            split = "train"
        out.append((text, label, split))
    return out


def long_texts() -> list[tuple[str, str]]:
    """Most texts far beyond max_length tokens."""
    return _rows(long_tail(6), words=400)


def html_and_path_labels() -> list[tuple[str, str]]:
    labels = ["<b>billing</b>", "../../etc/passwd", "a/b\\c", "R&D; \"quoted\"", "con", "ünïcødé label", ".hidden"]
    return _rows({label: n for label, n in zip(labels, (150, 90, 60, 40, 25, 15, 8))})


def duplicates() -> list[tuple[str, str]]:
    """Duplicate rows, and exact texts that will be shared between train and test."""
    rows = _rows(long_tail(6))
    return rows + rows[:120] + rows[:40]


def many_scripts() -> list[tuple[str, str]]:
    rng = random.Random(2)
    rows = [(f"{phrase} {rng.choice(FILLER)} {i}", script) for script, phrase in SCRIPTS.items() for i in range(40)]
    rng.shuffle(rows)
    return rows


def too_few_rows() -> list[tuple[str, str]]:
    return _rows({"a": 2, "b": 2, "c": 1})


SHAPES = {
    "balanced": balanced, "numeric_labels": numeric_labels, "two_classes": two_classes,
    "three_classes": three_classes, "many_small_classes": many_small_classes,
    "singleton_classes": singleton_classes, "classes_missing_from_eval": classes_missing_from_eval,
    "long_texts": long_texts, "html_and_path_labels": html_and_path_labels, "duplicates": duplicates,
    "many_scripts": many_scripts, "too_few_rows": too_few_rows,
}


def write_shape(name: str, folder: Path) -> Path:
    rows = SHAPES[name]()
    path = Path(folder) / f"{name}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"][: len(rows[0])])
        writer.writerows(rows)
    return path
