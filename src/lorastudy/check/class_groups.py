"""Quantities over a group of classes a sentence or a table row names by its part of speech ("verbs", "noun
classes", "noun.*") or its tier ("rare classes"): the mean of a per-class metric over the group's classes, their
number, and the share of a macro-F1 gap between two arms that the group's classes make up."""

from __future__ import annotations

import re
from itertools import permutations

from lorastudy.check.class_sets import _per_seed_rows
from lorastudy.check.facts import Fact

GROUP_WORDS = {pos: rf"\b{word}\b(?![.\w])|\b{pos}\.\*" for pos, word in
               (("noun", "nouns?"), ("verb", "verbs?"), ("adj", "adj(?:ective)?s?"), ("adv", "adv(?:erb)?s?"))}
# "verbs", "noun classes", "adj.*": a part of speech's classes (a class is named "noun.act", "verb.motion" ...)
JOINED = r"\s*(?:/|\+|&)\s*"


def named_groups(text: str) -> list[str]:
    """The parts of speech a text names; two joined by a slash or plus ("adjective/adverb", "adj+adv") are one group,
    "adj/adv": its classes are both's (three classes, not the two adjectives)."""
    found = [(m.start(), m.end(), pos) for pos, pattern in GROUP_WORDS.items() for m in re.finditer(pattern, text, re.I)]
    found.sort()
    groups: list[str] = []
    for i, (start, end, pos) in enumerate(found):
        if i and re.fullmatch(JOINED, text[found[i - 1][1]:start]) and groups:
            groups[-1] = groups[-1] + "/" + pos if pos not in groups[-1].split("/") else groups[-1]
        elif pos not in groups:
            groups.append(pos)
    return groups


def _in_group(label: str, group: str) -> bool:
    return label.split(".")[0] in group.split("/")


def group_means(reading, index, named: dict[str, set[str]]) -> list[Fact]:
    """The mean of a per-class metric over the classes of a group the sentence names ("verbs", "noun classes")."""
    where = reading.where + (" " + reading.before if re.match(r"(?:their|these|those|they|its|it)\b", reading.where, re.I)
                             else "")
    groups = named_groups(where)
    tiers = set(reading.entities.get("tier", ())) if not reading.entities.get("label") else set()
    if (not groups and not tiers) or reading.accepts is None:
        return []
    groups = groups or [None]
    accepts = reading.accepts | ({"f1"} if "macro_f1" in reading.accepts else set())
    out = []
    arms = named.get("arm", set())
    tier_of = {next(iter(f.entities["label"])): f.entities.get("tier", frozenset())
               for f in index.by_kind.get("f1", ()) if f.source.startswith("evaluation/per_class/") and
               len(f.entities.get("label", ())) == 1}
    for prefix in groups:
        members = {x for x in index.labels if prefix is None or _in_group(x, prefix)}
        if tiers:
            members = {x for x in members if tier_of.get(x, frozenset()) & tiers}
        if not members:
            continue
        values: dict[tuple, list[float]] = {}
        for fact in index.candidates(frozenset(accepts)):
            labels = fact.entities.get("label", frozenset())
            if len(labels) == 1 and next(iter(labels)) in members and fact.slot.startswith("evaluation/per_class/") \
                    and not fact.per_seed and "(seed std" not in fact.slot and fact.entities.get("arm", frozenset()) <= arms:
                values.setdefault((fact.kind, fact.entities.get("arm"), fact.slot), []).append(fact.value)
        arms_entities = {k[1] for k in values}
        for (kind, arm, slot), vals in list(values.items()):
            for other in arms_entities:
                if other != arm and (kind, other, slot) in values and reading.difference:
                    mine, theirs = sum(vals) / len(vals), sum(values[(kind, other, slot)]) / len(values[(kind, other, slot)])
                    out.append(Fact(mine - theirs, kind, {"arm": (arm or frozenset()) | other},
                                    f"difference of the means over {prefix or '/'.join(sorted(tiers))} classes of {slot}",
                                    "derived"))
        for (kind, arm, slot), vals in values.items():
            kind = "macro_f1" if kind == "f1" and "macro_f1" in reading.accepts and "f1" not in reading.accepts else kind
            out.append(Fact(sum(vals) / len(vals), kind, {"arm": arm} if arm else {},
                            f"mean over the {len(vals)} {prefix or '/'.join(sorted(tiers))} classes of {slot}", "derived"))
        if "count" in reading.accepts:
            out.append(Fact(float(len(members)), "count", {}, f"the number of {prefix} classes", "derived"))
    if "count" in reading.accepts and tiers:
        for tier in tiers:  # each tier the sentence names ("12 rare classes (1 to 19) and 33 common (22 to 491)")
            out += _tier_train_counts(index, {tier}, {x for x, t in tier_of.items() if tier in t})
    if "count" in reading.accepts and reading.entities.get("tier") and reading.entities.get("label"):
        # "all 6 rare verb classes ... (verb.body 0.188, ...)": a count of a group within a tier, classes named beside it
        in_tier = reading.entities["tier"]
        for prefix in [p for p in groups if p]:
            members = {x for x in index.labels if _in_group(x, prefix) and tier_of.get(x, frozenset()) & in_tier}
            if members:
                out.append(Fact(float(len(members)), "count", {}, f"the number of {'/'.join(sorted(in_tier))} {prefix} "
                                                                   "classes", "derived"))
    return out


def _tier_train_counts(index, tiers: set[str], members: set[str]) -> list[Fact]:
    """"33 common classes (22 to 491)": the smallest and largest training count of a tier's classes, and their sum."""
    train = {label: row["train_count"] for files in _per_seed_rows(index).values() for classes in files.values()
             for label, row in classes.items() if label in members and "train_count" in row}
    if not train:
        return []
    name = "/".join(sorted(tiers))
    return [Fact(min(train.values()), "count", {}, f"the smallest training count of the {name} classes", "derived"),
            Fact(max(train.values()), "count", {}, f"the largest training count of the {name} classes", "derived"),
            Fact(float(sum(train.values())), "count", {}, f"the training examples of the {name} classes", "derived")]


def group_share_of_gap(index, named: dict[str, set[str]], tiers: set[str], groups: list[str],
                       labels: set[str] = frozenset()) -> list[Fact]:
    """How much of a macro-F1 gap between two arms a group's classes (a tier, a part of speech) make up:
    n_group x Δ(group mean) / (N x Δ macro) = Σ_group ΔF1 / Σ_all ΔF1, and the group's part n_group x Δ / N."""
    out = []
    arms = sorted(named.get("arm", set()))
    by_arm: dict[str, dict[str, tuple[float, frozenset[str]]]] = {}
    for fact in index.by_kind.get("f1", ()):
        if fact.slot.startswith("evaluation/per_class/") and not fact.per_seed and "(seed std" not in fact.slot and \
                len(fact.entities.get("label", ())) == 1:
            for arm in fact.entities.get("arm", ()):
                by_arm.setdefault(arm, {})[next(iter(fact.entities["label"]))] = (fact.value, fact.entities.get("tier", frozenset()))
    pairs = list(permutations([x for x in arms if x in by_arm], 2)) or \
        [(a, b) for a in arms if a in by_arm for b in by_arm if b != a]
    selections = [(t, {"tier": frozenset({t})}, lambda label, tiers_, t=t: t in tiers_) for t in tiers] + \
                 [(g, {}, lambda label, tiers_, g=g: _in_group(label, g)) for g in groups] + \
                 [(x, {"label": frozenset({x})}, lambda label, tiers_, x=x: label == x) for x in labels]
    for a, b in pairs:
        labels = [x for x in by_arm[a] if x in by_arm[b]]
        total = sum(by_arm[a][x][0] - by_arm[b][x][0] for x in labels)
        if abs(total) < 1e-9:
            continue
        for name, entities, chosen in selections:
            part = sum(by_arm[a][x][0] - by_arm[b][x][0] for x in labels if chosen(x, by_arm[a][x][1]))
            entities = {"arm": frozenset({a, b}), **entities}
            out.append(Fact(part / len(labels), "macro_f1", entities,
                            f"the {name} classes' part of the {a} vs {b} macro-F1 gap", "derived"))
            out.append(Fact(part / total, "share", entities, f"share of the {a} vs {b} macro-F1 gap from the {name} classes",
                            "derived"))
    return out
