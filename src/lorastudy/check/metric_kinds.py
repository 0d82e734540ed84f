"""Metric kinds in a note's words ("macro F1", "p95", a unit such as ms or $), and the fact kinds each one accepts."""

from __future__ import annotations

import re

# How a note words a metric kind; more specific kinds first (a span claimed by one is not read again).
NOTE_KINDS = [
    ("p_value", r"\bp\s*(?:=|<|>|≤|≈)|\bp[- ]values?\b"),
    ("zero_f1", r"zero[- ]?f1(?:[- ](?:classes|count))?|(?:classes\s+)?(?:at|to|with)\s+(?:an?\s+)?(?:zero|0)(?:[- ]f1)?(?![.\d])|"
                r"(?:classes\s+)?with\s+f1\s*(?:=|of)\s*(?:0|zero)(?![.\d])|f1\s*(?:=|of)\s*(?:0|zero)(?![.\d])|never predicted|"
                r"no correct predictions?|never (?:gets?|got) right|without a (?:single )?(?:hit|correct)"),
    ("loss", r"\b(?:validation|val|eval)[- ]loss(?:es)?\b"),  # logged at each evaluation; not "accuracy loss"
    # (a training loss is logged only at the end: one quoted mid-run is not checkable, not wrong)
    ("macro_f1", r"macro[- ]?(?:averaged[- ])?(?:f1|f-score|f\b)?"),
    ("f1", r"\bf1\b|f-score"),
    ("accuracy", r"accura\w*|\bacc\b|\bcorrectly\b"),
    ("recall", r"recall"),
    ("precision", r"precision"),
    ("rho", r"\brho\b|spearman|ρ|rank correlation"),
    ("tau", r"\btau\b|τ"),
    ("headroom", r"headroom|of (?:the |its )?\w+ free|\bspare\b"),
    # (the verb is no share: "19 labels that share a word")
    ("share", r"\bshare\b(?!\s+(?:a|an|the|one|no|their|its|this|that|these|those|some|any)\b)|\bbusy\b|utili[sz]\w*|"
              r"occupancy|proportion|fraction|of (?:the |all )?(?:test |its )?(?:[\w'’]+ )?"
              r"(?:predictions|outputs|examples|items|weights|parameters|param)"),
    ("throughput", r"(?:requests?|examples?|predictions?|items?|queries|complaints|texts?|docs?|documents?)\s*"
                   r"(?:/\s*s(?:ec)?\b|per sec\w*|a second|each second|/\s*h(?:ou)?r?\b|per hour|an hour)|throughput|examples?/s\b|per second|requests?/s\b|req/s|\brps\b"),
    ("cost", r"\bcosts?\b|price|per month|monthly|(?<!training )(?<!step )(?<!time )(?<!matched )(?<!matched-)(?<!parameter )"
             r"(?<!parameters )(?<!param )budget|per million"),  # a parameter budget is no money
    ("latency", r"latenc\w*|\bp50\b|\bp95\b|\bp99\b|median|\bsla\b|response time"),
    ("instances", r"\binstances?\b|\breplicas?\b|\b(?:boxes|machines|servers|nodes)\b"),
    ("learning_rate", r"\blr\b|learning[- ]rates?"),
    ("parameters", r"param\w*|\btrainable (?:count|share)\b|(?:trainable|total|more|fewer|frozen|base|model's|its|all|of the|million|[\dMB])\s+weights\b"),
    ("time", r"seconds? per step|s/step|per[- ]step time"),
    ("steps", r"\bsteps?\b"),
    ("epochs", r"\bepochs?\b"),
    ("batch_size", r"\bbatch(?:es)?\b(?= (?:of )?\d)|batch size|\bbs\b\s*=?\s*(?=\d)|\b(?:best|optimal|chosen) batch\b|^batch$"),
    ("memory", r"memory|\bram\b|\bdisk\b|\bsize\b"),
    ("ratio", r"\bfactor of\b|\b\d+-fold\b"),
    # ("took the predictions from 57 to 154" moves a quantity: no duration)
    ("time", r"seconds? per step|s/step|per step|wall[- ]?time|\bminutes?\b|\bhours?\b|\bseconds\b|\bwindow\b|"
             r"\b(?:takes?|took)\b(?!\s+away)(?![^.;:]{0,60}?\bfrom\b)|(?<!of the )\btime\b"),
    ("count", r"support|train(?:ing)? (?:count|examples|rows|items)|\btrain\b|\bexamples\b|\bglosses\b|\bdefinitions\b|\brows\b|\bitems\b|\bcounts?\b|"
              r"\bclasses\b|complaints|requests|predictions?\s*(?:a\s+|per\s+|/\s*)month|texts within"),  # a context's volume
    ("seed", r"\bseeds\b"),
    ("hardware", r"(?<=\d)[- ]?(?:v?cpus?|cores?|threads?)\b"),  # "a 2-vCPU box", "2 threads"
]
KIND_ORDER = [kind for kind, _ in NOTE_KINDS]
UNIT_KIND = {"ms": "latency", "$": "cost", "MB": "memory", "GB": "memory", "min": "time", "h": "time", "s": "time",
             "examples/s": "throughput", "x": "ratio", "M": "magnitude", "k": "magnitude", "B": "magnitude"}
COMPATIBLE = {"f1": {"f1", "macro_f1"}, "share": {"share", "parameters"},
              "magnitude": {"parameters", "count", "throughput", "time"},
              "parameters": {"parameters", "share"}, "time": {"time", "latency"},
              "count": {"count", "zero_f1", "instances", "steps", "batch_size", "epochs", "seed"}}
COUNTS = {"count", "zero_f1", "instances", "steps", "epochs", "seed", "batch_size"}
NOT_PERCENT = COUNTS | {"cost", "latency", "time", "memory", "throughput", "learning_rate", "tau", "rho", "loss"}


def _kind_matches(text: str) -> list[tuple[int, int, str]]:
    """Metric-kind words in text with their spans; a span claimed by a more specific kind is not read again."""
    claimed: list[tuple[int, int, str]] = []
    lowered = text.lower()
    for kind, pattern in NOTE_KINDS:
        for m in re.finditer(pattern, lowered):
            if m.end() > m.start() and not any(s < m.end() and m.start() < e for s, e, _ in claimed):
                claimed.append((m.start(), m.end(), kind))
    return sorted(claimed)


def _read_kind(sentence: str, clause: tuple[int, int], start: int, end: int, unit: str | None) -> str | None:
    """The kind of the number at [start, end) of a sentence: its unit, a metric word right after it, else the nearest
    before it in its clause, else after it in its clause; None when the clause names none."""
    if unit in UNIT_KIND:
        return UNIT_KIND[unit]
    opening = sentence.rfind("(", 0, start)
    closing = sentence.find(")", end)
    if opening >= 0 and not _kind_matches(sentence[opening + 1:closing if closing >= 0 else len(sentence)]) and re.fullmatch(r"(?:\s*[A-Za-z][\w.'’-]*){0,2}[\s\d.,%+−-]*(?:(?:vs\.?|versus|and|to|→|->)[\s\d.,%+−-]*)?", sentence[opening + 1:start]):
        named = [k for k in _kind_matches(sentence) if k[1] <= opening and re.fullmatch(r"[\s*_]*", sentence[k[1]:opening])
                 and not (unit in ("%", "pp") and k[2] in NOT_PERCENT)]
        if named:  # "on validation macro-F1 (42.1% vs 38.6%)": the metric named right before the brackets
            return named[-1][2]  # (also "fell 0.708 → 0.597 F1 (encoder 0.847 → 0.830)": another model, same metric)
    scored = any(k[2] in ("f1", "macro_f1", "accuracy", "recall", "precision") for k in _kind_matches(sentence[clause[0]:start]))
    if unit == "%" and re.match(r"[%\s]*of\s+(?:the\s+|its\s+|all\s+|their\s+)?(?:[\w'’-]+\s+){0,2}?(?:encoder|decoder|model|"
                                r"network|weights|parameters|params|backbone" + ("" if scored else
                                r"|classes|labels|categories|examples|glosses|predictions|errors") + r")\b", sentence[end - 1:], re.I):
        return "share"  # "2.67% of the encoder", "1.36% of its parameters", "33% of the classes": a share, not a score
    if re.search(r"(?:(?<![\w.])\d+\s+(?:out\s+)?|\(\s*)of\s+(?:the\s+|all\s+)?$", sentence[:start]):
        return "count"  # the M of "N of M classes" or "zero F1 (of 88)": a total
    item = r"\s*[-−+]?\$?\d+(?:,\d{3})*(?:\.\d+)?\s*(?:%|pp)?"
    paired = re.match(r"(?:\s*(?:,\s*and|,|vs\.?|versus|and|to|→|->|or)" + item + r"){1,5}\s*", sentence[end:])
    connectors = re.findall(r"(,\s*and|,|vs\.?|versus|and|to|→|->|or)" + item, paired.group(0)) if paired else []
    if paired and connectors[-1] == "," and (len(connectors) < 2 or len({len(x) for x in re.findall(
            r"\.\d+", sentence[start:end] + paired.group(0))}) > 1):
        paired = None  # "LoRA r 16, 2 epochs": a comma list is one only with an "and" or three numbers of one shape
    if paired:  # "10.3 vs 11 zero-F1 classes", "0.28, 1.26 and -0.29 test macro-F1 points": the metric named after the list
        at = end + paired.end()
        follow = [k for k in _kind_matches(sentence) if k[0] >= at and
                  re.fullmatch(r"(?:test|validation|val)?\s*", sentence[at:k[0]], re.I)]
        if follow and not (unit in ("%", "pp") and follow[0][2] in NOT_PERCENT):
            return follow[0][2]
    kinds = [k for k in _kind_matches(sentence) if clause[0] <= k[0] and k[1] <= clause[1]
             and not (unit in ("%", "pp") and k[2] in NOT_PERCENT)]  # a percentage is never a count, cost or time
    after = [k for k in kinds if k[0] >= end]
    if after and re.fullmatch(r"\s*(?:±\s?[\d.]+\s*%?\s*)?(?:[\w'’-]+\s+){0,2}", sentence[end:after[0][0]]) and \
            not re.search(r"\b(?:and|or|vs|to|from|but|while)\b", sentence[end:after[0][0]]):
        return after[0][2]
    if re.fullmatch(r"\d+", sentence[start:end].strip(" +-−")) and unit not in ("%", "pp") and \
            re.match(r"\s+(?:\w+\s+)?\w{3,}s\b", sentence[end:]):
        return "count"  # "12 rare supersenses": an integer counting things
    if any(k[2] == "rho" for k in kinds) and re.search(r"correlat|spearman|\brho\b|ρ", sentence[clause[0]:start], re.I):
        return "rho"  # "the Spearman correlation between per-class F1 and training count is 0.82"
    before = [k for k in kinds if k[1] <= start]
    if len(re.sub(r"^[^.]*\.?", "", sentence[start:end].split()[0] if sentence[start:end].split() else "")) > 2:
        before = [k for k in before if k[2] not in COUNTS] or before  # "macro F1 at step 125 was 0.425": not a step
    if before:
        return before[-1][2]
    if after and after[0][2] not in COUNTS and re.search(r"\b(?:for|at|with)\s+[-−+]?\$?\d", sentence[end:after[0][0]]):
        return None  # "lifts it to 0.333 for 2.7 accuracy points": the score word is the later number's (counts set
        # against a count are counts too: "predictions 256 → 182 for 241 true rows")
    return after[0][2] if after else None


def _accepted(kinds: list[str]) -> frozenset[str] | None:
    return frozenset(k for kind in kinds for k in COMPATIBLE.get(kind, {kind})) if kinds else None
