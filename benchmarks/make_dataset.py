"""Validation datasets of another shape than the demo, built offline from WordNet 3.0.

`wordnet-domains`: each gloss labelled with its synset's topic domain (WordNet's `;c` pointer,
e.g. "medicine", "law"): many classes and a long tail, the shape the interval-coverage and
note-reasoning checks ask for besides the demo's 45 supersenses. A gloss's own "(domain) ..."
prefix is cut, since it often names the label.

    python benchmarks/make_dataset.py wordnet-domains --classes 129 --output /tmp/domains.csv
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter
from pathlib import Path

WORDNET = Path("/usr/share/wordnet")
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
LEADING_PARENTHESIS = re.compile(r"^\s*\([^)]*\)\s*")


def _synsets(path: Path):
    """(offset, pos, first lemma, pointers, gloss) of each synset line of one data file."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition("|")
            fields = head.split()
            n_words = int(fields[3], 16)
            lemma = fields[4]
            at = 4 + 2 * n_words
            n_pointers = int(fields[at])
            pointers = [fields[at + 1 + 4 * i: at + 5 + 4 * i] for i in range(n_pointers)]
            yield fields[0], fields[2], lemma, pointers, gloss.strip()


def wordnet_domains(n_classes: int, wordnet: Path = WORDNET) -> list[tuple[str, str]]:
    """(gloss, topic domain) rows for the n_classes most frequent topic domains."""
    names: dict[tuple[str, str], str] = {}
    labelled: list[tuple[str, tuple[str, str]]] = []
    for name in POS_FILES:
        for offset, pos, lemma, pointers, gloss in _synsets(wordnet / name):
            names[(offset, "n" if pos == "n" else pos)] = lemma
            domain = next(((p[1], p[2]) for p in pointers if p[0] == ";c"), None)
            text = LEADING_PARENTHESIS.sub("", gloss.split(";")[0] if gloss.startswith("(") else gloss)
            if domain and text:
                labelled.append((text, domain))
    rows = [(text, names[domain].replace("_", " ")) for text, domain in labelled]
    kept = {label for label, _ in Counter(label for _, label in rows).most_common(n_classes)}
    return [(text, label) for text, label in rows if label in kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["wordnet-domains"])
    parser.add_argument("--classes", type=int, default=129)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    rows = wordnet_domains(args.classes)
    with args.output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    counts = Counter(label for _, label in rows)
    print(f"{len(rows)} rows, {len(counts)} classes, largest {counts.most_common(1)[0]}, "
          f"smallest {counts.most_common()[-1]}: {args.output}")


if __name__ == "__main__":
    main()
