"""The built-in `wordnet-supersense` source: WordNet 3.0 glosses labelled with their supersense.

WordNet glosses mask the synset's own lemmas (and their regular inflections)
with `___`, so a model cannot solve the task by reading the word itself.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pandas as pd

from lorastudy.core.errors import StudyError
from lorastudy.study.text_files import read_utf8

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
