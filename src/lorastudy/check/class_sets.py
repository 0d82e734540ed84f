"""Quantities over sets of classes that a sentence describes rather than lists, recomputed from the per-class files.

* Class-by-class comparisons of two arms: on how many classes one beats the other, loses, ties; how many are at zero
  F1 for both, or for one only ("better on 52 of 88 common classes", "17 rare classes are zero for both", "rescues 14
  classes the encoder zeroes").
* The k largest (or smallest) classes by training count, and a metric's mean over them ("on the ten largest classes
  the mean F1 is 0.833").

Bounded like every derivation: the arms are those the sentence names (a single family is set against its counterpart,
the other family's arm with the same method and weighting), the tier is the one its clause names, if any.
"""

from __future__ import annotations

import re

from lorastudy.check.entity_names import DECODER_WORDS, ENCODER_WORDS, weighting_twin
from lorastudy.check.facts import ARMS, Fact

CLASS_WISE = r"\b(?:better|worse|wins?|won|loses?|lost|beats?|ties?|tied|(?:for|on|in|by) both|neither(?= (?:model|arm|family|of (?:them|the)|the (?:encoder|decoder|model)|encoder|decoder))|only (?:on|for)|" \
             r"rescues?|zeroe?s|the other way|the reverse)\b"
LARGEST = re.compile(r"\b(\d+|two|three|four|five|six|seven|eight|nine|ten|twenty)\s+(largest|biggest|most frequent|"
                     r"smallest|least frequent)\b", re.I)
FAMILY_WORDS = r"\b(?:" + "|".join(ENCODER_WORDS + DECODER_WORDS) + r")\w*"
WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twenty": 20}


GROUP = re.compile(r"\b(?:over|on|across|for|among|in|of) (?:the |all |its |these |those )?(?:\d+|two|three|four|five|six|"
                   r"seven|eight|nine|ten|eleven|twelve|twenty) ((?:[\w-]+ ){1,2})(?:classes|domains|supersenses|labels|"
                   r"categories)\b", re.I)


def unnamed_group(reading, known: list[str]) -> bool:
    """"Over the 12 sports domains, mean F1 is ...": a group of classes picked by a theme the artifacts do not record
    (not a part of speech, a tier or the largest classes), so nothing in the run says which classes it holds. It
    holds for the group's own count, and for the sentence's numbers when the group is the sentence's topic (leads it)."""
    text = re.sub(r"^[\W_]*(?:\*\*[^*]*\*\*\s*)?", "", reading.where)
    return any(not any(re.search(p, m.group(1), re.I) for p in known) and not LARGEST.search(m.group(0))
               and (m.start() == 0 or re.search(r"(?<![\w.])" + re.escape(reading.printed) + r" ", m.group(0)))
               for m in GROUP.finditer(text))


def per_class(index, kind: str = "f1", first_seed: bool = False) -> dict[str, dict[str, tuple[float, frozenset[str]]]]:
    """Each arm's value of a per-class metric (its mean over seeds where it has several, or its first seed's: the
    reference run), with each class's tier."""
    key = ("per_class", kind, first_seed)
    if key not in index._pools:
        table: dict[str, dict[str, tuple[float, frozenset[str]]]] = {}
        for fact in index.by_kind.get(kind, ()):
            labels, arms = fact.entities.get("label", frozenset()), fact.entities.get("arm", frozenset())
            if fact.slot.startswith("evaluation/per_class/") and "(seed std" not in fact.slot and \
                    (fact.mean_reported is False and fact.source.startswith("evaluation/per_class/") if first_seed
                     else not fact.per_seed) and len(labels) == 1 and len(arms) == 1:
                table.setdefault(next(iter(arms)), {})[next(iter(labels))] = (fact.value, fact.entities.get("tier", frozenset()))
        index._pools[key] = table
    return index._pools[key]


def counterpart(arm: str) -> str | None:
    """The other neural family's arm with the same method and weighting (decoder_lora <-> encoder_lora)."""
    family, _, rest = arm.partition("_")
    other = {"encoder": "decoder", "decoder": "encoder"}.get(family)
    return f"{other}_{rest}" if other and f"{other}_{rest}" in ARMS else None


def _pairs(arms: set[str], table: dict) -> list[tuple[str, str]]:
    """The arm pairs a class-wise comparison is about: counterparts the sentence names (decoder_lora and encoder_lora),
    else any two of its arms from different families, else each arm and its counterpart."""
    pairs = [(a, counterpart(a)) for a in arms if counterpart(a) in arms] or \
        [(a, b) for a in arms for b in arms if a != b and a.split("_")[0] != b.split("_")[0]]
    if not pairs:
        pairs = [(a, counterpart(a)) for a in arms if counterpart(a)]
        pairs += [(b, a) for a, b in pairs]
    return [(a, b) for a, b in pairs if a in table and b in table]


def class_wise(reading) -> bool:
    """An integer counting classes by how two arms compare on them ("worse on 32", "22 of 41 rare classes tied"), not
    the total it is taken of ("of the 45 classes"): only such counts can support it."""
    text = reading.context if reading.where.startswith("|") else reading.where
    at = text.find(reading.printed)
    elliptical = re.fullmatch(r"\W*(?:and |but |while )?(?:the )?" + FAMILY_WORDS + r"(?:\s+[\w-]+){0,2}\s+" +
                              re.escape(reading.printed) + r"\W*",
                              reading.context)  # "the decoder wins 63 classes, the encoder 37": the verb is the statement's
    return reading.decimals == 0 and not reading.unit and reading.kind in ("count", "zero_f1") and at >= 0 and \
        bool(re.search(CLASS_WISE, reading.context if not elliptical else reading.where, re.I)) and \
        bool(re.search(r"\bclass|\blabel|\bdomain|\bsupersense|\bcategor", reading.where, re.I)) and \
        not re.search(r"\b(?:of|out of)\s+(?:the\s+|all\s+)?$", text[:at], re.I)


ABOVE = r"\b(?:better|wins?|won|beats?)\b"
BELOW = r"\b(?:worse|loses?|lost|the other way|the reverse)\b"
TIES = r"\b(?:ties?|tied)\b"


def _subject(text: str, verb: int) -> str | None:
    """The family the sentence's first class-wise verb is about: the last one named before it in its clause ("..., and
    the decoder wins 52 ... and loses 29"), else, after a pronoun ("it beats the encoder"), the other one than the
    family named after it."""
    mentions = [(m.start(), "encoder" if m.group(0).lower().startswith(tuple(ENCODER_WORDS)) else "decoder")
                for m in re.finditer(FAMILY_WORDS, text, re.I)]
    clause = max((m.end() for m in re.finditer(r"[.,;:!?]\s|\*\*", text[:verb])), default=0)
    before = [f for at, f in mentions if clause <= at < verb]
    if before:
        return before[-1]
    after = [f for at, f in mentions if at > verb]
    return {"encoder": "decoder", "decoder": "encoder"}.get(after[0]) if after else None


def class_counts(reading, index, named: dict[str, set[str]]) -> list[Fact]:
    """Counts of classes by how two arms compare on them (see the module docstring). A count after "beats", "better",
    "wins" is the subject's wins, after "worse", "loses" its losses; ties and zero counts are symmetric."""
    if reading.decimals != 0 or reading.unit or not re.search(CLASS_WISE, reading.where, re.I):
        return []
    out: list[Fact] = []
    for table in (per_class(index), per_class(index, first_seed=True)):  # over the seeds' means, or the reference run's
        seen = {(f.value, f.source) for f in out}
        out += [f for f in _class_counts(reading, table, named) if (f.value, f.source) not in seen]
    return out


def _class_counts(reading, table: dict, named: dict[str, set[str]]) -> list[Fact]:
    tiers = _own_tiers(reading)
    text = reading.where
    at = text.find(reading.printed)
    start = max((m.end() for m in re.finditer(r"[.;:!?]\s|\*\*", text[:max(at, 0)])), default=0)  # its statement
    verbs = [(m.start(), m.group(0)) for m in re.finditer(CLASS_WISE, text, re.I) if m.start() >= start] or \
        [(m.start(), m.group(0)) for m in re.finditer(CLASS_WISE, text, re.I)]
    before = [v for v in verbs if v[0] < at]  # "worse on 32, and tied on 7": the verb before the number, else after
    verb = (before[-1] if before else verbs[0]) if verbs and at >= 0 else None
    if verb and not before and re.search(r"[,;]\s", text[at:verb[0]]):
        verb = None  # "encoder LoRA on 6, 0 tied": a verb of a later clause says nothing of this count
    subject = _subject(text, verbs[0][0]) if verb else None  # "... and 29 go the other way": the same subject
    if verb and at >= 0:
        own = max((m.end() for m in re.finditer(r"[,;]\s", text[:at])), default=0)
        mentions = [m.group(0).lower() for m in re.finditer(FAMILY_WORDS, text[max(own, verb[0]):at], re.I)]
        if own > verb[0] and mentions:  # "the decoder wins 63 classes, the encoder 37": the clause's own subject
            subject = "encoder" if mentions[-1].startswith(tuple(ENCODER_WORDS)) else "decoder"
    out = []
    arms = set(named.get("arm", ()))
    if re.search(r"\bweighted\b", text[start:], re.I) and not re.search(r"\bunweighted\b", text[start:], re.I):
        arms = {t for a in arms if (t := weighting_twin(a, True))}  # "both weighted arms"
    for a, b in _pairs(arms, table):
        rows = [(table[a][label][0], table[b][label][0]) for label in table[a] if label in table[b] and
                (not tiers or table[a][label][1] & tiers)]
        entities = {"arm": frozenset({a, b}), **({"tier": frozenset(tiers)} if tiers else {})}
        where = f"classes{' of the ' + '/'.join(sorted(tiers)) + ' tier' if tiers else ''}"
        counts = [("count", f"{a} tied with {b}", sum(abs(x - y) <= 1e-9 for x, y in rows)),
                  ("zero_f1", f"zero F1 for both {a} and {b}", sum(x == 0 and y == 0 for x, y in rows))]
        only = re.match(r"\s+(?:[\w-]+\s+){0,3}?only (?:on|for|in) (?:the )?(\w+)", text[at + len(reading.printed):])
        if not only or a.startswith(only.group(1).lower()):  # "5 only on the encoder": zero for the encoder only
            counts.append(("zero_f1", f"zero F1 for {a} only, not {b}", sum(x == 0 and y > 0 for x, y in rows)))
        if verb is None or subject is None or a.startswith(subject):
            counts += [("count", f"{a} above {b}", sum(x > y + 1e-9 for x, y in rows))] * \
                (verb is None or not re.match(BELOW + "|" + TIES, verb[1], re.I))
            counts += [("count", f"{a} below {b}", sum(x < y - 1e-9 for x, y in rows))] * \
                (verb is None or not re.match(ABOVE + "|" + TIES, verb[1], re.I))
        for kind, how, count in counts:
            out.append(Fact(float(count), kind, entities, f"{where} with {how} (per-class F1)", "derived"))
    if re.search(r"\b(?:all|every|each)\b(?:\s+\w+){0,2}\s+(?:arms?|models?|runs?)\b", text, re.I) and table:
        labels = set.intersection(*(set(rows) for rows in table.values()))
        for tier_set in ([None] + [{t} for t in {t for rows in table.values() for _, ts in rows.values() for t in ts}]):
            chosen = [x for x in labels if tier_set is None or next(iter(table.values()))[x][1] & tier_set]
            count = sum(all(rows[x][0] == 0 for rows in table.values()) for x in chosen)
            out.append(Fact(float(count), "zero_f1", {"arm": frozenset(table), **({"tier": frozenset(tier_set)} if tier_set
                                                                                  else {})},
                            f"classes at zero F1 under all {len(table)} arms{' (' + next(iter(tier_set)) + ')' if tier_set else ''}",
                            "derived"))
    return out


def _own_tiers(reading) -> set[str]:
    """The tiers a count's own clause names ("17 rare classes"), else those its statement names before it ("17 rare
    classes are at zero on both; 5 only on the encoder"), not those named after it in a later statement."""
    text = reading.where
    at = max(text.find(reading.printed), 0)
    start = max((m.end() for m in re.finditer(r"[.!?]\s|\*\*", text[:at])), default=0)
    for scope in (reading.context, text[start:at]):
        tiers = {t for t in reading.entities.get("tier", ()) if re.search(rf"\b{re.escape(t)}\b", scope, re.I)}
        if tiers:
            return tiers
    return set()


def class_count_agrees(reading, fact: Fact) -> bool:
    """A class-wise count is about a pair of arms of which the sentence names one or both, and about its tier."""
    arms = set(reading.entities.get("arm", ())) | set((reading.named or {}).get("arm", ()))
    tiers = _own_tiers(reading)
    return bool(fact.entities["arm"] & arms) and (not tiers or bool(fact.entities.get("tier", frozenset()) & tiers)) and \
        fact.kind in (reading.accepts or {fact.kind})


def largest_classes(reading, index, named: dict[str, set[str]]) -> list[Fact]:
    """A metric's mean over the k largest (smallest) classes by training count, per arm the sentence names."""
    found = LARGEST.search(reading.where)
    if not found:
        return []
    k = int(WORDS.get(found.group(1).lower(), found.group(1)) if not found.group(1).isdigit() else found.group(1))
    largest = not re.match(r"smallest|least", found.group(2), re.I)
    out = []
    for size in ("train_count", "test_support"):  # largest in training or in the test set
        sizes = {next(iter(f.entities["label"])): f.value for f in index.by_kind.get("count", ())
                 if f.source.startswith("evaluation/per_class/") and f.source.endswith("." + size)
                 and len(f.entities.get("label", ())) == 1}
        chosen = set(sorted(sizes, key=lambda x: -sizes[x] if largest else sizes[x])[:k])
        if reading.unit == "%" and size == "test_support" and sum(sizes.values()):  # "31.3% of the test set"
            out.append(Fact(sum(sizes[x] for x in chosen) / sum(sizes.values()), "share", {},
                            f"the {k} {found.group(2)} classes' share of the test set", "derived"))
        for kind in (reading.accepts or frozenset()) & {"f1", "recall", "precision"}:
            table = per_class(index, kind)
            arms = set(named.get("arm", ()))
            for arm in arms | {counterpart(a) for a in arms if counterpart(a)}:
                values = [v for label, (v, _) in table.get(arm, {}).items() if label in chosen]
                if len(values) == k:
                    out.append(Fact(sum(values) / k, kind, {"arm": frozenset({arm})},
                                    f"mean over the {k} {found.group(2)} classes by {size} of {arm}'s per-class {kind}",
                                    "derived"))
    return out


def _per_seed_rows(index) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """arm -> per-class file (one per seed) -> class -> column -> value, from the per-class files' facts."""
    if "per_seed_rows" not in index._pools:
        rows: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        for fact in index.facts:
            found = re.match(r"(evaluation/per_class/([a-z_]+)__seed\d+\.csv): (.+)\.(\w+)$", fact.source)
            if found and len(fact.entities.get("label", ())) == 1:
                label = next(iter(fact.entities["label"]))
                rows.setdefault(found.group(2), {}).setdefault(found.group(1), {}).setdefault(label, {})[found.group(4)] = \
                    fact.value
        index._pools["per_seed_rows"] = rows
    return index._pools["per_seed_rows"]


def pooled(reading, index, named: dict[str, set[str]], groups: list[str | None]) -> list[Fact]:
    """Precision and recall pooled over the classes of a group (a tier, a part of speech) and the seeds, as
    Σ true positives / Σ predictions (Σ support), and a group's predictions per seed ("pooled verb recall 0.362",
    "rare-tier predictions per seed went 9.7 → 43.7")."""
    wanted = (reading.accepts or frozenset()) & {"precision", "recall", "count"}
    tiers = set(reading.entities.get("tier", ()))
    if not wanted or not (tiers or any(groups)):
        return []
    out = []
    for arm in named.get("arm", ()):
        files = _per_seed_rows(index).get(arm, {})
        tp = support = predicted = 0.0
        per_seed: list[tuple[float, float, float]] = []  # each seed's own pooled (tp, support, predictions)
        for classes in files.values():
            per_seed.append((tp, support, predicted))
            for label, row in classes.items():
                if (tiers and not {row.get("tier"), label} & tiers and not _tier_of(index, arm, label) & tiers) or \
                        (any(groups) and label.split(".")[0] not in groups):
                    continue
                tp += row.get("recall", 0.0) * row.get("test_support", 0.0)
                support += row.get("test_support", 0.0)
                predicted += row.get("predicted_count", 0.0)
        ends = per_seed[1:] + [(tp, support, predicted)]
        seeds = [(b[0] - a[0], b[1] - a[1], b[2] - a[2]) for a, b in zip(per_seed, ends)]
        what = "/".join(sorted(tiers | {g for g in groups if g}))
        if len(seeds) > 1 and all(s[1] and s[2] for s in seeds):  # or each seed pooled, then averaged over the seeds
            if "recall" in wanted:
                out.append(Fact(sum(s[0] / s[1] for s in seeds) / len(seeds), "recall", entities_of(arm, tiers),
                                f"mean over seeds of the recall pooled over the {what} classes of {arm}", "derived"))
            if "precision" in wanted:
                out.append(Fact(sum(s[0] / s[2] for s in seeds) / len(seeds), "precision", entities_of(arm, tiers),
                                f"mean over seeds of the precision pooled over the {what} classes of {arm}", "derived"))
        entities = entities_of(arm, tiers)
        if support and "recall" in wanted:
            out.append(Fact(tp / support, "recall", entities, f"recall pooled over the {what} classes of {arm}", "derived"))
        if predicted and "precision" in wanted:
            out.append(Fact(tp / predicted, "precision", entities, f"precision pooled over the {what} classes of {arm}",
                            "derived"))
        if files and "count" in wanted and re.search(r"\bpredict", reading.where, re.I):
            out.append(Fact(predicted / len(files), "count", entities, f"{what} predictions per seed of {arm}", "derived"))
    return out


def entities_of(arm: str, tiers: set[str]) -> dict[str, frozenset[str]]:
    return {"arm": frozenset({arm}), **({"tier": frozenset(tiers)} if tiers else {})}


def _tier_of(index, arm: str, label: str) -> frozenset[str]:
    return per_class(index).get(arm, {}).get(label, (0.0, frozenset()))[1]
