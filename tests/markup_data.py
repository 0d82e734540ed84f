"""A small labelled dataset whose one label is a <script> element, and the CLI as a subprocess, for tests."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

HOSTILE_LABEL = "<script>window.__injected = 1</script>"
SMOKE_CLASSES = {  # label: (rows, words that mark it); a long tail, so the note has tiers
    "billing": (260, ["invoice", "charge", "fee", "statement", "payment"]),
    "fraud": (160, ["stolen", "unauthorized", "scam", "identity", "phishing"]),
    HOSTILE_LABEL: (90, ["script", "markup", "tag", "browser", "page"]),
    "credit report": (50, ["bureau", "score", "dispute", "report", "inquiry"]),
    "loan": (40, ["mortgage", "interest", "servicer", "principal", "lender"]),
}


def write_markup_label_dataset(path: Path) -> Path:
    """A seeded CSV of short texts over five classes, one of them labelled with a <script> element."""
    rng = random.Random(0)
    filler = ["the", "my", "account", "bank", "again", "please", "help", "about", "since", "last", "month"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for label, (rows, words) in SMOKE_CLASSES.items():
            for _ in range(rows):
                tokens = rng.sample(words, 2) + rng.sample(filler, rng.randint(2, 8))
                rng.shuffle(tokens)
                writer.writerow([" ".join(tokens), label])
    return path


def smoke_cli(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "lorastudy.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
