"""A note's tables read cell by cell: each number's kind from its own text, its row label or its column header,
its unit from the cell, the row label or the header, its entities from its row and its column header."""

from __future__ import annotations

import dataclasses
import re

from lorastudy.check.class_bands import table_band
from lorastudy.check.entity_names import WEIGHTED, _Names, _with_weighted, weighting_twin
from lorastudy.check.metric_kinds import COUNTS, KIND_ORDER, UNIT_KIND, _kind_matches
from lorastudy.check.printed_numbers import _metric_like, _numbers, _unit
from lorastudy.check.readings import Reading, _reading


def _read_table(header: list[str], rows: list[list[str]], names: _Names, section: object, caption: str = "") -> list[Reading]:
    found = []
    in_points = re.search(r"\bin (?:percentage |accuracy |f1 )?(?:points|pts|pp)\b", caption, re.I)
    column_units = [_label_unit(cell) for cell in header]
    column_kinds: list[str | None] = []
    # "| Class group (seed-mean F1) | Classes | Encoder LoRA | Gap (pts) |": a metric in brackets in the first header
    # is the table's, for the columns whose headers name none
    table_kinds = [k for inner in re.findall(r"\(([^)]*)\)", header[0] if header else "") for _, _, k in _kind_matches(inner)
                   if k not in COUNTS]
    table_kind = min(table_kinds, key=KIND_ORDER.index) if table_kinds else None
    for i, cell in enumerate(header):
        kinds = _kind_matches(re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", cell))
        if all(k == "count" for _, _, k in kinds):
            kinds = _kind_matches(cell) or kinds
        specific = min((k for _, _, k in kinds), key=KIND_ORDER.index, default=None)
        if re.match(r"\s*(?:share|fraction|proportion|percent(?:age)?)\s+of\b", cell, re.I):
            specific = "share"  # "Share of macro-F1 gap": a share, whatever it is a share of
        column_kinds.append(specific or (table_kind if i else None) or (column_kinds[-1] if column_kinds else None))
    own_kind = [bool(i and _kind_matches(re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", cell))) for i, cell in enumerate(header)]
    column_entities = [names.find(cell, strict_weighting=True) for cell in header]
    header_arms = set().union(*(e.get("arm", set()) for e in column_entities)) if column_entities else set()
    compared = header_arms if len({a.removesuffix("_cw") for a in header_arms}) == 2 else set()  # "Encoder F1 | Decoder F1"
    weighting_table = any(re.search(WEIGHTED, cell, re.I) for cell in header)  # its rows are arms before and after
    sides = [_before_or_after(cell) for cell in header]
    # "| Encoder LoRA before | Encoder LoRA after |" in a table about weighting: columns of arms before and after it
    paired_columns = {"before", "after"} <= set(sides) and (
        section == 2 or bool(re.search(WEIGHTED, caption + " " + " ".join(header), re.I)))
    seed_column = next((i for i, cell in enumerate(header) if re.fullmatch(r"\s*(?:training\s+)?seed\s*", cell, re.I)), None)
    above_entities: dict[str, set[str]] = {}
    for row in rows:
        seed_cell = re.fullmatch(r"\s*`?(\d+)`?\s*", row[seed_column]) if seed_column is not None and \
            seed_column < len(row) else None
        row_entities: dict[str, set[str]] = {}
        for cell in row:
            if not _numbers(cell) or re.search(r"[A-Za-z]{3}", re.sub(r"`[^`]*`", "", cell)):
                for key, value in names.find(cell, strict_weighting=True).items():
                    row_entities.setdefault(key, value)
        if row and re.search(r"\b(?:those|these|them|they)\b", row[0], re.I):
            # "| Extra correct rare rows | 10.0 |" then "| Precision of those extra predictions | 30% |": a label
            # pointing back is about the classes (tier) of the row above, where it names none itself
            for key in ("tier", "label"):
                if key in above_entities and key not in row_entities:
                    row_entities[key] = set(above_entities[key])
        above_entities = row_entities
        where = "| " + " | ".join(row) + " |"
        row_kinds = [k for cell in row[1:] if not _numbers(cell) and not re.search(r"\s[–—-]\s*$", cell)  # "p95 –": no value
                     for _, _, k in _kind_matches(re.sub(r"`[^`]*`", " ", cell))]
        row_kind = min(row_kinds, key=KIND_ORDER.index) if row_kinds else None  # "| Rare | mean F1 | 33.4% |"
        label = re.sub(r"\([^)]*\)|`[^`]*`|\b\w+-\w+\b", " ", row[0]) if row else ""  # "real-time triage" names no time
        label_kinds = [k for _, _, k in _kind_matches(label)] if row and not _numbers(
            re.sub(r"\b(?:at\s+)?(?:step|epoch)s?\s+\d+", " ", label, flags=re.I)) else []  # "at step 125": where
        # "| Single request p95 (ms) | 13.5 | 87.2 |": a row label naming a metric (and its unit) gives the kind of the
        # row's cells under headers that name none (the arms)
        label_kind = min(label_kinds, key=KIND_ORDER.index) if label_kinds else None
        label_unit = _label_unit(row[0]) if label_kind else None
        band = table_band(row[0], header[0]) if row and header else None  # "| 9 to 20 |" under "Train-count band"
        for index, cell in enumerate(row):
            cell_estimate = None
            for match in _numbers(cell):
                if not _metric_like(match, cell, in_table=True):
                    continue
                entities = {**row_entities, **(column_entities[index] if index < len(header) else {})}
                entities.update(_slash_entities(cell, match.start(), [header[index] if index < len(header) else "",
                                                                     row[0]], names))
                column_side = _before_or_after(header[index]) if index < len(header) and paired_columns else None
                side = column_side or (_before_or_after(row[0]) if section == 2 and row else None)
                if "arm" in entities and side and (section == 2 or column_side):
                    # "| Rare-tier share of predictions after | 2.17% | 2.50% |", "| Encoder LoRA after |": weighting's
                    # after is the weighted twin, its before the unweighted arm
                    entities["arm"] = {t for a in entities["arm"] if (t := weighting_twin(a, side == "after"))}
                elif "arm" in entities and (re.search(r"→|->|\bto\b", cell[:match.start()]) or weighting_table):
                    entities["arm"] = _with_weighted(entities["arm"])
                if "arm" in entities and re.search(r"^\s*(?:→|->)", cell[match.end():]):
                    entities["arm"] = entities["arm"] | {a.removesuffix("_cw") for a in entities["arm"]}  # the "before"
                percent = _unit(match, cell) in ("%", "pp")
                start = cell.rfind(";", 0, match.start()) + 1  # "accuracy 0.7585; 1 box at 23% peak utilisation"
                own = [k for k in _kind_matches(cell) if start <= k[0] and k[1] <= match.start() and
                       not (percent and k[2] in COUNTS)]
                right_after = [k for k in _kind_matches(cell) if k[0] >= match.end() and
                               re.fullmatch(r"\s*(?:[a-z][\w-]*\s+)?", cell[match.end():k[0]]) and
                               not (percent and k[2] in COUNTS)]
                if index == 0 and not match.group("dec") and re.match(r"\s+(?:[A-Z]?\w+\s+)?\w{3,}s\b", cell[match.end():]):
                    right_after = [(0, 0, "count")]  # "| Time for all 117,659 WordNet glosses |": a count in the label
                if index == 0 and re.search(r"\(\s*$", cell[:match.start()]) and not match.group("dec"):
                    right_after = right_after or [(0, 0, "count")]  # "verb (15)": the row's class count
                column_unit = column_units[index] if index < len(column_units) else None
                by_label = index > 0 and label_kind and not (index < len(own_kind) and own_kind[index])
                if by_label:
                    column_unit = label_unit
                kind = UNIT_KIND.get(_unit(match, cell) or column_unit or "") or (right_after[0][2] if right_after else None) or \
                    (own[-1][2] if own else None) or (row_kind if index > 0 else None) or \
                    (label_kind if by_label else None) or (column_kinds[index] if index < len(column_kinds) else None)
                kind = UNIT_KIND.get(_unit(match, cell) or "") or \
                    _slash_kind(cell, match.start(), [header[index] if index < len(header) else "", row[0]]) or kind
                bracketed = _bracketed_kind(cell, match, header[index] if index < len(header) else "")
                if bracketed:  # "7,752 (64)" under "throughput, ex/s (batch)": the bracketed number is the batch size
                    kind, column_unit = bracketed, None
                context = (header[index] if index < len(header) else "") + " " + cell
                apart = _slashed_apart(cell, [header[index] if index < len(header) else "", row[0]])
                if apart:
                    cell_unit = match.group("unit") and _unit(match, cell)  # "1 / 23.4%": each part its own unit
                    column_unit = _label_unit(_slash_part(cell, match.start(), header[index] if index < len(header)
                                                          else "") or "") or (column_unit if not by_label else None)
                else:
                    cell_unit = _unit(match, cell)
                unit = cell_unit or column_unit or \
                    ("pp" if in_points and (match.group("sign") or match.group("dec")) and
                     not re.search(r"→|->", cell) and kind not in COUNTS else None)
                named = {k: set(v) for k, v in row_entities.items()}
                for cells in (header, row):
                    for key, value in names.find(" ".join(cells), strict_weighting=False).items():
                        named.setdefault(key, set()).update(value)
                if section == 2 and named.get("arm"):
                    named["arm"] = _with_weighted(named["arm"])  # the weighting section's rows set arms against their weighted twins
                reading = _reading(match, cell, kind, entities, where, section, context, named=named,
                                   unit=unit or ("" if apart else None))
                reading.band = band
                if compared and not entities.get("arm") and reading.difference and index > 0:
                    # "| verb.* | 21.7 | 12.1 | 9.7 |" under "Encoder F1 | Decoder F1 | Gap": the gap between those two
                    reading.entities = {**reading.entities, "arm": set(compared)}
                    reading.between = True
                if cell_estimate is not None and (reading.plusminus or re.search(r"(?:\bCI\b|\[)[^\]);]*$", cell[:match.start()])):
                    reading.estimates = [cell_estimate]  # "73.6 ± 0.5", "+4.4 [-2.5, 11.2]": the cell's estimate
                elif cell_estimate is None:
                    cell_estimate = reading
                found.append(dataclasses.replace(reading, seed=int(seed_cell.group(1))) if seed_cell else reading)
    return found


def _before_or_after(label: str) -> str | None:
    """"before" or "after" when a header or row label names one of them only (not "before → after")."""
    words = {w.lower() for w in re.findall(r"\b(?:after|before)\b", label, re.I)}
    return words.pop() if len(words) == 1 and len(re.findall(r"\b(?:after|before)\b", label, re.I)) == 1 else None


def _label_unit(cell: str) -> str | None:
    """The unit a column header or row label states: "(ms)", "(M)", "in points", "Accuracy %", "p95 ms"."""
    found = re.search(r"\((pts?|pp|points|%|ms|s|min|h|MB|GB|ex/s|examples/s|req/s|\$)[,;)]|\bin (pts?|pp|points|ms|MB|GB)\b|"
                      r"(?:^|\s)(%|ms|MB|GB|pp|ex/s|examples/s|req/s)(?=\s|$|,)", cell, re.I)
    word = next((g for g in found.groups() if g), None) if found else None
    if word is None:
        magnitude = re.search(r"\(([MkB])\)", cell)  # "params (M)": millions
        return magnitude.group(1) if magnitude else None
    return {"pt": "pp", "pts": "pp", "points": "pp", "ex/s": "examples/s", "req/s": "examples/s", "mb": "MB",
            "gb": "GB"}.get(word.lower(), word)


def _bracketed_kind(cell: str, match: re.Match, header: str) -> str | None:
    """A number in brackets after a cell's value takes the kind its header's bracketed word names ("(batch)")."""
    if not (re.search(r"\d[^()]*\(\s*$", cell[:match.start()]) and re.match(r"\s*\)", cell[match.end():])):
        return None
    words = re.findall(r"\(([^)]*)\)", header)
    if not words:
        return None
    kinds = _kind_matches(words[-1])
    if kinds:
        return min((k for _, _, k in kinds), key=KIND_ORDER.index)
    return "batch_size" if re.search(r"\bbatch", words[-1], re.I) else None


def _slash_kind(cell: str, at: int, labels: list[str]) -> str | None:
    """"0.334 / 22" under "mean F1 / zero-F1": each number of a slashed cell takes the kind of the same part of its
    column header or row label."""
    parts = re.split(r"\s/\s", cell)
    if len(parts) < 2:
        return None
    position = len(re.split(r"\s/\s", cell[:at])) - 1
    for label in labels:
        label_parts = re.split(r"\s/\s", label)
        if len(label_parts) == len(parts):
            if re.fullmatch(r"\s*(?:#\s*)?zeros?(?:\s+classes)?\s*", label_parts[position], re.I):
                return "zero_f1"  # "mean F1 / zero": the zero-F1 classes
            kinds = _kind_matches(label_parts[position])
            if kinds:
                return min((k for _, _, k in kinds), key=KIND_ORDER.index)
    return None


def _slash_entities(cell: str, at: int, labels: list[str], names: _Names) -> dict[str, set[str]]:
    """"9 / 5" under "Zero-F1 enc / dec", "27 / 794" beside "Correct: rare / common": each number of a slashed cell is
    about the entities the same part of its column header or row label names (where the parts name any)."""
    parts = re.split(r"\s/\s", cell)
    if len(parts) < 2:
        return {}
    position = len(re.split(r"\s/\s", cell[:at])) - 1
    for label in labels:
        label_parts = re.split(r"\s/\s", label)
        if len(label_parts) == len(parts):
            found = [names.find(part, strict_weighting=True) for part in label_parts]
            types = {t for f in found for t in f if t != "split"}
            if types and all(found[position].get(t) for t in types):
                return {t: set(found[position][t]) for t in types}
    return {}


def _slashed_apart(cell: str, labels: list[str]) -> bool:
    """A slashed cell under a header or beside a label slashed into as many parts: different quantities."""
    parts = len(re.split(r"\s/\s", cell))
    return parts > 1 and any(len(re.split(r"\s/\s", label)) == parts for label in labels)


def _slash_part(cell: str, at: int, label: str) -> str | None:
    """The part of a slashed header that the number at `at` of a slashed cell sits under."""
    parts = re.split(r"\s/\s", label)
    if len(parts) != len(re.split(r"\s/\s", cell)):
        return None
    return parts[len(re.split(r"\s/\s", cell[:at])) - 1]
