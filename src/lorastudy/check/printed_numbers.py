"""The numbers printed in a note's text: which are metric-like (not code, years, section or figure numbers,
confidence levels), and their units."""

from __future__ import annotations

import re

from lorastudy.check.metric_kinds import _kind_matches

NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−+±]?)(?P<dollar>\$?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?(?![.,]?\d)"
    r"(?:\s?(?P<unit>%|pp\b|ms\b|s\b|min\b|h\b|MB\b|GB\b|M\b|k\b|B\b|examples/s|x\b))?(?![A-Za-z])")
METRIC_WORDS = r"zero|f1|class|classes|examples?|param|count|train|steps?|instances?|requests?|support|epochs?|tier|predicted"


def _numbers(text: str) -> list[re.Match]:
    return list(NUMBER.finditer(re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), text)))


def _metric_like(match: re.Match, line: str, in_table: bool) -> bool:
    line = re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)
    after = line[match.end():match.end() + 30].lower()
    if match.group("unit") == "%" and re.match(r"\s*(?:ci|confidence|interval|bootstrap|credible)", after):
        return False  # a confidence level, not a result
    if match.group("unit") or match.group("dec") or match.group("dollar"):
        return True
    value = int(match.group("int").replace(",", ""))
    before = line[:match.start()].lower()
    if re.search(r"(section|seed|weeks?|figure|table|fig\.|tier|§)\s*$|\d\s*[-–]\s*$", before) or \
            re.match(r"\s*[-–]\s*\d", after):
        return False
    if 1900 <= value <= 2100 and not in_table:
        return False
    if in_table:
        return True
    window = line[max(0, match.start() - 40):match.end() + 45].lower()
    return re.search(METRIC_WORDS, window) is not None or any(k != "seed" for _, _, k in _kind_matches(window))


def _unit(match: re.Match, text: str) -> str | None:
    """The number's unit: printed after it, spelled as a word ("60-minute", "3 seconds"), or shared with a range's end."""
    if match.group("unit"):
        return match.group("unit")
    after = text[match.end():]
    word = re.match(r"[-\s](minutes?|mins?|hours?|seconds?|milliseconds?)\b", after)
    if word:
        return {"mi": "min", "ho": "h", "se": "s"}.get(word.group(1)[:2], "ms")
    shared = re.match(r"\s*(?:to|–|-|and)\s*[-−+]?\$?\d[\d,]*(?:\.\d+)?\s?(%|pp|ms|s|min|h|MB|GB|M|k|B)(?![A-Za-z])", after)
    return shared.group(1) if shared else None
