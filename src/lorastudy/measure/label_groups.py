"""Label groups from the labels' own structure, and a per-class difference split exactly by group.

Labels often carry a shared prefix ("noun.artifact", "verb.motion"; "Credit card/Billing") or a hierarchy. The
groups are the labels' first segment before a separator (".", "/", ":", ">" or "|"), used only when the structure
is real: at least two groups, every label in one, and fewer groups than half the labels (so the segments group,
not name, the classes). Absent such structure there are no groups and nothing is split.
"""

from __future__ import annotations

import re
from collections import defaultdict

SEPARATORS = (".", "/", ":", ">", "|")


def label_groups(labels: list[str]) -> dict[str, str] | None:
    """label -> its group, or None when the labels have no shared-prefix structure."""
    for separator in SEPARATORS:
        if not all(separator in label.strip(separator) for label in labels):
            continue
        groups = {label: re.split(re.escape(separator), label.strip(separator), maxsplit=1)[0].strip()
                  for label in labels}
        distinct = set(groups.values())
        if 2 <= len(distinct) <= len(labels) / 2:
            return groups
    return None


def group_split(classes: list[dict], groups: dict[str, str], key_a: str = "f1_a", key_b: str = "f1_b") -> dict:
    """b - a macro F1 split exactly by group: each group's class share x its mean per-class difference.

    `classes` are the evaluable classes (results.json `class_differences.classes`); the parts sum to the
    difference of the two macro F1s over these classes."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for row in classes:
        if row["label"] in groups:
            by_group[groups[row["label"]]].append(row)
    total = len(classes)
    parts = {group: sum(r[key_b] - r[key_a] for r in rows) / total for group, rows in by_group.items()}
    return {"parts": parts, "sizes": {g: len(rows) for g, rows in by_group.items()},
            "zero_b": {g: sum(1 for r in rows if r[key_b] == 0) for g, rows in by_group.items()},
            "zero_a": {g: sum(1 for r in rows if r[key_a] == 0) for g, rows in by_group.items()},
            "gap": sum(parts.values())}
