"""The numbers printed in a note's text: which are metric-like (not code, years, section or figure numbers,
confidence levels), and their units."""

from __future__ import annotations

import re

from lorastudy.check.metric_kinds import _kind_matches

NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>±\s?|[-−+]?)(?P<dollar>\$?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?(?P<exp>[eE][-−+]?\d+)?(?![.,]?\d)"
    r"(?:\s?(?P<unit>%|\s?percent\b|pp\b|pts?\b|ms\b|s\b|min\b|h\b|MB\b|GB\b|MiB\b|GiB\b|M\b|[kK]\b|B\b|examples/s|ex/s|req/s|rps\b|x\b|×))?"
    r"(?![A-Za-z])")
APPROX = r"(?:about|around|roughly|approximately|approx\.?|nearly|almost|some|circa|ca\.|~|≈|∼)\s*$"
UPPER = r"(?:\bunder|\bbelow|less than|fewer than|at most|up to|no more than|<|≤|<=)\s*$"
LOWER = r"(?:\bover|\babove|more than|at least|greater than|exceeds?|exceeding|beyond|upwards of|>|≥|>=)\s*$"
RATE = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
        "day": 86400.0, "night": 86400.0, "week": 604800.0, "month": 730 * 3600.0, "year": 8760 * 3600.0}
METRIC_WORDS = r"zero|f1|class|classes|examples?|param|count|train|steps?|instances?|requests?|support|epochs?|tier|predicted"


def _numbers(text: str) -> list[re.Match]:
    return list(NUMBER.finditer(re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), text)))


def _metric_like(match: re.Match, line: str, in_table: bool) -> bool:
    line = re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)
    after = line[match.end():match.end() + 30].lower()
    if re.search(r"[A-Za-z]\w*-$", line[:match.start()]) and re.match(r"[A-Za-z]", line[match.end() - 1:match.end()]):
        return False  # part of a model's name ("SmolLM2-135M-Instruct")
    if match.group("unit") == "%" and re.match(r"\s*(?:ci|confidence|interval|bootstrap|credible)", after):
        return False  # a confidence level, not a result
    if re.search(r"\b(?:p|α|alpha)\s*(?:<|≤|<=|=)\s*$", line[:match.start()], re.I) and \
            match.group(0).strip() in ("0.05", "0.01", "0.001", "0.1", ".05", ".01"):
        return False  # a significance level, not a result
    if match.group("unit") or match.group("dec") or match.group("dollar") or match.group("exp"):
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
    """The number's unit: printed after it, spelled as a word ("60-minute", "3 seconds", "4.9 accuracy points"),
    shared with a range's end, or, for "± 0.4" and a "CI a to b" after a percentage, points of that percentage."""
    unit = match.group("unit")
    if unit:
        unit = unit.strip()
        return {"pt": "pp", "pts": "pp", "×": "x", "K": "k", "MiB": "MB", "GiB": "GB", "percent": "%", "ex/s": "examples/s",
                "req/s": "examples/s", "rps": "examples/s"}.get(unit, unit)
    after = text[match.end():]
    if re.match(r"[-\s](?:v?CPU|GPU|core|machine|instance|compute|node|box)[- ]hours?\b", after, re.I):
        return "h"  # "847 CPU-hours": time on a machine
    word = re.match(r"[-\s](minutes?|mins?|hours?|seconds?|milliseconds?|times|fold|points?|pts?)\b", after)
    if word and word.group(1) == "times" and not match.group("dec") and not re.match(
            r"\s*(?:more|less|fewer|larger|smaller|bigger|faster|slower|quicker|higher|lower|greater|cheaper|as|the|that|"
            r"what|over)\b", after[word.end():], re.I):
        return None  # "labelled adj.all 9 times": how often, not a ratio ("9 times faster", "9 times the cost",
        # "0.22 times encoder LoRA's": a fraction of a time is always a ratio)
    if word:
        return {"mi": "min", "ho": "h", "se": "s", "ti": "x", "fo": "x", "po": "pp", "pt": "pp"}.get(word.group(1)[:2], "ms")
    if re.match(r"-fold\b", after):
        return "x"
    hyphened = re.match(r"-(h|hr|min)\b", after)
    if hyphened:  # "a 24-h window", "a 60-min window": time, not a count of what the sentence also names
        return "min" if hyphened.group(1) == "min" else "h"
    if re.match(r"\s+(?:[a-z][\w-]*\s+){0,2}?(?:percentage[- ])?(?:points?|pts?)\b", after, re.I):
        return "pp"
    shared = re.match(r"(?:\s*(?:to|–|-|and|,|, and|or|vs\.?|versus|→|->|/)\s*[-−+]?\$?\d[\d,]*(?:\.\d+)?){1,4}\s?(%|pp|pts?|points|ms|s|min|h|MB|GB|M|k|B)"
                      r"(?![A-Za-z])", after)
    if shared:
        return {"pt": "pp", "pts": "pp", "points": "pp"}.get(shared.group(1), shared.group(1))
    if re.match(r"(?:\s*(?:,\s*and|,|and|or|/)\s*[-−+]?\d+(?:\.\d+)?){1,4}\s+(?:[a-z][\w-]*\s+){1,2}?(?:percentage[- ])?"
                r"(?:points?|pts?)\b", after, re.I):
        return "pp"  # "adds 0.28, 1.26 and -0.29 test macro-F1 points": the list's unit
    before = text[max(0, match.start() - 60):match.start()]
    if match.group("sign").startswith("±") or re.search(r"\bCI\s*\[?\s*[-−+]?\d*\.?\d*\s*(?:to|–|,)?\s*$", before):
        earlier = list(re.finditer(r"\d(?:\s?(%|pp|pts?|points|ms|s|min|h|MB|GB|M|k)(?![A-Za-z]))?", before))
        point = next((m.group(1) for m in reversed(earlier) if m.group(1) and not
                      re.match(r"\s*(?:CI|confidence)", before[m.end():], re.I)), None)
        if point:
            return "pp" if point in ("%", "pp", "pt", "pts", "points") else point
    return None


def _approx(match: re.Match, text: str) -> bool:
    return bool(re.search(APPROX, text[max(0, match.start() - 16):match.start()], re.I))


def _bound(match: re.Match, text: str) -> str | None:
    """"under 4%": an upper bound ("<"); "over 90%": a lower one (">"); else None."""
    before = text[max(0, match.start() - 24):match.start()]
    if re.search(UPPER, before, re.I):
        return "<"
    if re.search(LOWER, before, re.I):
        return ">"
    return None


def _rate(match: re.Match, text: str) -> float | None:
    """The time a rate is per, in seconds ("21 requests/s", "71.5M per hour", "$72 per month", "/h"), else None."""
    after = text[match.end():match.end() + 40].lower()
    m = re.match(r"\s*(?:[a-z][\w-]*\s*?){0,2}?\s*(?:/\s*|per\s+|an?\s+|each\s+|every\s+)(s|sec|seconds?|min|minutes?|h|hr|hours?|"
                 r"days?|nights?|weeks?|months?|years?)\b", after)
    if not m:
        m = re.match(r"\s*(?:[a-z][\w-]*\s+){0,2}?(hourly|daily|nightly|weekly|monthly|yearly|annual)\b", after)
        if not m:
            return None
        word = {"hourly": "hour", "daily": "day", "nightly": "night", "weekly": "week", "monthly": "month",
                "yearly": "year", "annual": "year"}[m.group(1)]
        return RATE[word]
    word = m.group(1)
    return RATE.get(word) or RATE.get(word[:-1]) or RATE.get(word[:3])


def _rate_shared(match: re.Match, text: str) -> float | None:
    """The rate of a number, or of the number it is set against ("$72 vs $144 per month", "12 to 15 per second")."""
    own = _rate(match, text)
    if own is not None:
        return own
    pair = re.match(r"\s*(?:vs\.?|versus|and|to|or|–|-|/)\s*[-−+]?\$?\d[\d,]*(?:\.\d+)?\s?(?:%|[kKM]\b)?", text[match.end():])
    if pair:
        end = match.end() + pair.end()
        return _rate(_At(end), text)
    return None


class _At:
    """A stand-in match ending at a position (to read what follows it)."""

    def __init__(self, end: int) -> None:
        self._end = end

    def end(self) -> int:
        return self._end
