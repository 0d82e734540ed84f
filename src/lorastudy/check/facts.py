"""A run's artifacts as facts: which entities a number is about, what kind of metric it is, its signed value.

`lorastudy check` matches a note's numbers against these facts, so a number only
counts as traceable when an artifact value of the same kind, about the same arm
(or class, tier, deployment context), with the same sign, reads as it.

Everything is flattened generically: a number's entities come from its path
components (`runs/decoder_lora__seed42/...`, `per_tier.rare`), from the string
fields of the dicts that hold it (a comparison row's `a`/`b`, a cost row's
`model`/`context`, a class row's `label`/`tier`) and from CSV row keys; its kind
comes from its key, or, for generic keys (`value`, `diff`, `mean`, `ci`), from a
sibling `metric`/`name` field or the parent key. New artifacts (e.g.
`evaluation/findings.json`) need no code as long as they follow these habits.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lorastudy.core.errors import StudyError

ARMS = ("tfidf_logreg", "encoder_full", "encoder_full_cw", "encoder_lora", "encoder_lora_cw", "decoder_lora",
        "decoder_lora_cw")
# Metric kinds, most specific first: the first pattern that matches a key (or a note's wording) decides.
KIND_OF_KEY = [
    ("p_value", r"^p$|p_?value|_p$"),
    ("learning_rate", r"learning_rate|^lr$"),
    ("hardware", r"cpu_count|threads$|^n?_?cores$|gpu_count"),
    ("share", r"warmup_ratio|(?:train|val|validation|test)_ratio"),  # fractions of the steps or the data, no multiple
    ("ratio", r"(?:^|_)ratio$|factor"),
    ("zero_f1", r"zero_f1|delta_zero"),
    ("macro_f1", r"macro"),
    ("f1", r"f1"),
    ("accuracy", r"accura"),
    ("recall", r"recall"),
    ("precision", r"precision"),
    ("rho", r"rho|spearman"),
    ("tau", r"^tau$"),
    ("headroom", r"headroom"),
    ("share", r"share|fraction"),
    ("throughput", r"per_s$|rps|capacity"),
    ("cost", r"cost|price"),
    ("count", r"^warmup$|repeats?$|requests$|tokens$"),  # requests a timing warms up on; p95_tokens is a length
    ("latency", r"_ms$|ms_per|^p\d\d|latency|sla"),
    ("instances", r"instances$"),
    ("seed", r"^seeds?$|^n_seeds$"),
    ("parameters", r"^parameters$|^total$|^trainable$"),
    ("loss", r"loss"),
    ("time", r"per_step$"),
    ("steps", r"steps?$"),
    ("epochs", r"epoch"),
    ("batch_size", r"batch_size"),

    ("memory", r"_mb$|memory|size_on_disk|^adapter$|^merged$"),
    ("time", r"_s$|time|seconds|window|hours"),
    ("count", r"count|support|^n_|num_|examples|classes|sizes|^rare$|^common$|predictions|per_month|max_length|"
              r"train_size|val_size|test_size|thresholds?$|_rows(?:_|$)|^rows_"),  # _rows: duplicates (test_rows_seen_in_train)
]
GENERIC_KEYS = {"value", "values", "diff", "diffs", "delta", "mean", "std", "ci", "lo", "hi", "low", "high", "estimate", "point",
                "median", "seed_diffs", "seed_values"}
NAME_FIELDS = ("metric", "name", "quantity", "kind")


@dataclass(frozen=True)
class Fact:
    value: float
    kind: str | None
    entities: dict[str, frozenset[str]]
    source: str  # artifact path and key path, e.g. "evaluation/results.json: runs.decoder_lora__seed42.test.accuracy"
    slot: str = ""  # the source with its entity names and list indexes blanked: the same quantity of other entities
    per_seed: bool = False  # one seed's value of an arm that has several seeds (derivations use their mean)
    mean_reported: bool = False  # ... of a quantity whose mean over seeds the run reports (a note quotes that mean)


@dataclass
class Vocabulary:
    """The names a run's entities go by: arms, class labels, tier names, deployment contexts, model names."""

    arms: tuple[str, ...] = ARMS
    labels: list[str] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    contexts: list[str] = field(default_factory=list)
    model_names: dict[str, list[str]] = field(default_factory=dict)  # family -> distinctive tokens of its source
    _compiled: dict[str, re.Pattern] = field(default_factory=dict, repr=False)
    _seen: dict[str, dict[str, set[str]]] = field(default_factory=dict, repr=False)

    def entities_in(self, text: str) -> dict[str, set[str]]:
        """Canonical entity names written verbatim in an artifact string (an arm, a run name, a label ...)."""
        if text not in self._seen:
            found: dict[str, set[str]] = {}
            for kind, pattern in self._patterns().items():
                names = {m.group(0) for m in pattern.finditer(text)}
                if names:
                    found[kind] = names
            for kind, names in (("label", self.labels), ("tier", self.tiers), ("context", self.contexts)):
                if text in names and not _distinctive(text):  # "0", "a": only a whole string names them
                    found.setdefault(kind, set()).add(text)
            self._seen[text] = found
        return self._seen[text]

    def _patterns(self) -> dict[str, re.Pattern]:
        if not self._compiled:
            self._compiled["arm"] = re.compile(rf"(?<![a-z_])(?:{'|'.join(sorted(self.arms, key=len, reverse=True))})(?![a-z_])")
            for kind, names in (("label", self.labels), ("tier", self.tiers), ("context", self.contexts)):
                names = sorted((n for n in names if _distinctive(n)), key=len, reverse=True)
                if names:
                    self._compiled[kind] = re.compile(r"(?<![\w.])(?:" + "|".join(map(re.escape, names)) + r")(?![\w])")
        return self._compiled


def _distinctive(name: str) -> bool:
    """Long enough to be found inside a longer string without false hits."""
    return len(name) > 3 and not name.isdigit()


def kind_of_key(key: str) -> str | None:
    key = key.lower()
    for kind, pattern in KIND_OF_KEY:
        if re.search(pattern, key):
            return kind
    return None


def vocabulary(run_dir: Path) -> Vocabulary:
    """Entity names from labels.json, results.json and the resolved config."""
    run_dir = Path(run_dir)
    vocab = Vocabulary()
    for path in (run_dir / "data" / "labels.json", run_dir / "evaluation" / "results.json"):
        data = _read_json(path)
        data = data.get("data", data) if isinstance(data, dict) else {}
        vocab.labels = vocab.labels or [str(x) for x in data.get("labels") or []]
        vocab.tiers += [t for t in data.get("tier_names") or [] if t not in vocab.tiers]
    config = _read_yaml(run_dir / "config.resolved.yaml")
    contexts = ((config.get("deployment") or {}).get("contexts") or []) if isinstance(config, dict) else []
    vocab.contexts = [str(c["name"]) for c in contexts if isinstance(c, dict) and c.get("name")]
    models = (config.get("models") or {}) if isinstance(config, dict) else {}
    for family, spec in models.items():
        source = str((spec or {}).get("source") or "").rstrip("/").rsplit("/", 1)[-1]  # the model's own name, not its folder
        tokens = {t.lower() for t in re.split(r"[^A-Za-z0-9]+", source) if re.search(r"[a-z]{3}", t.lower())}
        tokens -= {"pypi", "gguf", "instruct", "tiny", "base", "small", "large", "model", "models", "all", "llm", "hf",
                   "chat", "uncased", "cased", "local", "file", "bert"}
        vocab.model_names[family] = sorted(tokens | {re.sub(r"\d+$", "", t) for t in tokens if re.sub(r"\d+$", "", t)})
    return vocab


def run_facts(run_dir: Path, vocab: Vocabulary | None = None) -> list[Fact]:
    """Every number of a run's artifacts, with its entities and kind."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise StudyError(f"Run directory {run_dir} does not exist.", "pass --results the folder that `lorastudy run` wrote.")
    vocab = vocab or vocabulary(run_dir)
    facts: list[Fact] = []
    json_paths = [run_dir / "evaluation" / "results.json", run_dir / "evaluation" / "findings.json",
                  run_dir / "latency" / "latency.json", run_dir / "data" / "labels.json",
                  *sorted((run_dir / "runs").glob("*/run.json"))]
    for path in json_paths:
        if path.exists():
            relative = path.relative_to(run_dir).as_posix()
            data = _read_json(path)
            if relative.endswith("findings.json") and isinstance(data, dict):
                data = _pointed_quantities(data, relative, facts)
            _flatten(data, relative, [], [relative], vocab, facts)
    config = run_dir / "config.resolved.yaml"
    if config.exists():
        _flatten(_read_yaml(config), "config.resolved.yaml", [], [], vocab, facts)
    for table in sorted((run_dir / "evaluation" / "per_class").glob("*.csv")):
        relative = table.relative_to(run_dir).as_posix()
        with open(table, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                context = [relative] + [str(v) for k, v in row.items() if k in ("label", "tier")]
                for key, text in row.items():
                    value = _to_float(text)
                    if value is not None and key not in ("label_id",):
                        _add(facts, value, kind_of_key(key), context, vocab, f"{relative}: {row.get('label')}.{key}",
                             re.sub(r"[a-z_]+__seed\d+", "{}", relative) + ": {}." + key)
    _csv_totals(facts, vocab)
    for log in sorted((run_dir / "runs").glob("*/train_log.jsonl")):
        _train_log(log, run_dir, vocab, facts)
    _seed_means(facts)
    if not facts:
        raise StudyError(f"No artifacts with numbers found in {run_dir}.", "run `lorastudy run` (or its evaluate stage) first.")
    return facts


def _train_log(log: Path, run_dir: Path, vocab: Vocabulary, facts: list[Fact]) -> None:
    """A run's training log: each evaluation line's validation scores and loss, at its step and epoch (the note may
    quote "validation macro F1 at step 125"); training-loss lines only at the end (the final loss)."""
    relative = log.relative_to(run_dir).as_posix()
    last_loss = None
    try:
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    for i, entry in enumerate(lines):
        if not isinstance(entry, dict):
            continue
        if any(str(k).startswith(("val_", "eval_")) for k in entry) or _is_number(entry.get("loss")):
            for key, value in entry.items():
                if _is_number(value):
                    where = f"step {entry['step']}" if _is_number(entry.get("step")) else f"line {i + 1}"
                    _add(facts, float(value), kind_of_key(str(key)), [relative], vocab, f"{relative}: {where}.{key}")
        if _is_number(entry.get("loss")):
            last_loss = (i, entry)
    if last_loss:
        i, entry = last_loss
        _add(facts, float(entry["loss"]), "loss", [relative], vocab, f"{relative}: final.loss")


def _csv_totals(facts: list[Fact], vocab: Vocabulary) -> None:
    """Per-class files' count columns summed over the classes (test support: the test set's size)."""
    totals: dict[tuple[str, str], list[Fact]] = {}
    for fact in facts:
        if fact.source.startswith("evaluation/per_class/") and fact.kind == "count":
            file, key = fact.source.split(": ", 1)[0], fact.source.rsplit(".", 1)[-1]
            totals.setdefault((file, key), []).append(fact)
    for (file, key), members in totals.items():
        entities = {k: v for k, v in members[0].entities.items() if k == "arm"}
        facts.append(Fact(sum(f.value for f in members), "count", entities, f"{file}: sum of {key}",
                          re.sub(r"[a-z_]+__seed\d+", "{}", file) + f": sum of {key}"))


def _seed_means(facts: list[Fact]) -> None:
    """Over the seeds of an arm, each per-seed value's mean and standard deviation (n and n-1), where an arm has
    several seeds' runs, per-class files or training logs: what "73.6% ± 0.4 over 3 seeds" quotes."""
    import statistics

    groups: dict[tuple, list[Fact]] = {}
    positions: dict[int, int] = {id(f): i for i, f in enumerate(facts)}

    def about(fact: Fact) -> tuple:
        return fact.kind, tuple(sorted((k, tuple(sorted(v))) for k, v in fact.entities.items()))
    reported = {about(f) for f in facts if re.match(r"evaluation/results\.json: arms\.[^.]+\.(?:test|per_tier)\..*\.mean$",
                                                     f.source)}
    for fact in facts:
        if re.search(r"__seed\d+", fact.source):
            key = (fact.slot, tuple(sorted((k, tuple(sorted(v))) for k, v in fact.entities.items())))
            groups.setdefault(key, []).append(fact)
    def seed(fact: Fact) -> int:
        return int(re.search(r"__seed(\d+)", fact.source).group(1))

    def one_per_seed(members: list[Fact]) -> list[list[Fact]]:
        """A slot blanks list positions, so one seed can sit in a group twice (its validation curve's points):
        those split by their source, seed blanked, and only a group with one value per seed is a seed mean."""
        if len({seed(f) for f in members}) == len(members):
            return [members]
        by_source: dict[str, list[Fact]] = {}
        for fact in members:
            by_source.setdefault(re.sub(r"__seed\d+", "__seed*", fact.source), []).append(fact)
        return [group for group in by_source.values() if len({seed(f) for f in group}) == len(group)]

    for (slot, _), grouped in groups.items():
        for members in one_per_seed(grouped):
            if len(members) < 2:
                continue
            first_seed = min(seed(m) for m in members)
            for member in members:
                # a note quotes the seeds' mean, or names the seeds; where the run reports no mean (a correlation, a
                # probe) the first seed's own value also stands, as the reference run's
                reported_mean = member.source.startswith("evaluation/results.json: runs.") and about(member) in reported
                first = seed(member) == first_seed
                facts[positions[id(member)]] = dataclasses.replace(member, per_seed=True,
                                                                   mean_reported=reported_mean or not first)
            first, values = members[0], [f.value for f in members]
            where = re.sub(r"__seed\d+", "__seed*", first.source)
            facts.append(Fact(statistics.fmean(values), first.kind, first.entities,
                              f"mean over {len(members)} seeds of {where}", slot))
            for ddof, stat in ((0, statistics.pstdev(values)), (1, statistics.stdev(values))):
                facts.append(Fact(stat, first.kind, first.entities, f"std (ddof={ddof}) over {len(members)} seeds of {where}",
                                  slot + f" (seed std{ddof})"))


def _pointed_quantities(findings: dict, source: str, facts: list[Fact]) -> dict:
    """A finding's quantity points at the artifact value it comes from (`results.json#/comparisons/3/diff`): it is
    that fact, with the pointed fact's kind and entities (a comparison read the other way round keeps both arms).
    Returns the findings without the quantities it resolved."""
    by_source = {f.source: f for f in facts}
    kept = []
    for finding in findings.get("findings") or []:
        if not isinstance(finding, dict):
            continue
        unresolved = []
        for quantity in finding.get("quantities") or []:
            path, _, pointer = str(quantity.get("path", "")).partition("#/")
            parts = pointer.split("/")
            candidates = [f"{path}: {'.'.join(parts)}"]
            if parts[-1].isdigit():
                candidates.append(f"{path}: {'.'.join(parts[:-1])}[{parts[-1]}]")
            target = next((by_source[c] for c in candidates if c in by_source), None)
            if target is None or not _is_number(quantity.get("value")):
                unresolved.append(quantity)
            elif float(quantity["value"]) != target.value:
                facts.append(Fact(float(quantity["value"]), target.kind, target.entities,
                                  f"{source}: {finding.get('id')}.{quantity.get('name')}"))
        kept.append({**finding, "quantities": unresolved})
    return {**findings, "findings": kept}


def _flatten(node: object, source: str, keys: list[str], context: list[str], vocab: Vocabulary, out: list[Fact]) -> None:
    """Walk JSON/YAML; `context` collects the strings that name entities (path parts and string fields on the way)."""
    if isinstance(node, dict):
        parallel = _parallel_lists(node)
        for key, value in node.items():
            outer = [t for t in context if not _ordered_arms(t, vocab)] if key in ARMS else context
            here, inner = keys + [str(key)], outer + _own(node, key)  # under an arm's key, the number is that arm's
            if isinstance(value, list) and (len(value) > 50 or key == "class_weights") and key not in parallel and \
                    all(_is_number(v) for v in value):
                continue  # raw samples (latency samples_ms), not quantities a note quotes
            if _is_number(value) or (isinstance(value, list) and value and all(_is_number(v) for v in value)):
                kind = _kind(here, node)
                inner = _one_side(str(key), node, inner, vocab) or inner
                for i, item in enumerate(value if isinstance(value, list) else [value]):
                    suffix = f"[{i}]" if isinstance(value, list) else ""
                    about = [parallel[key][i]] if key in parallel else []
                    _add(out, float(item), kind, inner + about, vocab, f"{source}: {'.'.join(here)}{suffix}")
                    if str(key).startswith("seed_") and isinstance(value, list) and len(value) > 1:
                        out[-1] = dataclasses.replace(out[-1], per_seed=True, mean_reported=True)  # quoted with "seed"
                if key in parallel and kind == "count":  # a total over the classes (the test set's size)
                    _add(out, float(sum(value)), kind, inner, vocab, f"{source}: sum of {'.'.join(here)}")
            elif isinstance(value, (dict, list)):
                _flatten(value, source, here, inner, vocab, out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                _flatten(item, source, keys + [str(i)], context, vocab, out)


def _one_side(key: str, node: dict, context: list[str], vocab: Vocabulary) -> list[str] | None:
    """`f1_a`/`f1_b` of a pair ("encoder_lora vs decoder_lora", or fields `a`, `b`) are about one arm of it, not both."""
    side = re.search(r"_([ab])$", key)
    if not side:
        return None
    if isinstance(node.get("a"), str) and isinstance(node.get("b"), str):
        pair = [node["a"], node["b"]]
    else:
        pairs = [found for text in context if len(found := _ordered_arms(text, vocab)) == 2]
        if not pairs:
            return None
        pair = pairs[-1]
    return [t for t in context if not _ordered_arms(t, vocab)] + [pair["ab".index(side.group(1))]]


def _ordered_arms(text: str, vocab: Vocabulary) -> list[str]:
    return [m.group(0) for m in vocab._patterns()["arm"].finditer(re.sub(r"__seed\d+", "", text))]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


DESCRIPTIVE_FIELDS = {"kind", "type", "source", "metric", "primary_metric", "method", "family", "status", "unit", "device"}


def _own(node: dict, key: str) -> list[str]:
    """The strings of a dict that name entities for one of its members: its key and its string fields (not those that
    describe the record, such as a comparison's `kind`: "architecture" is a comparison type even where it is a class)."""
    return [str(key)] + [str(v) for k, v in node.items() if isinstance(v, str) and len(v.split()) <= 4  # names, not prose
                         and str(k).lower() not in DESCRIPTIVE_FIELDS]


def _parallel_lists(node: dict) -> dict[str, list[str]]:
    """Lists aligned with a `labels` list (train_counts, tier_of ...): item i is about label i (and its tier)."""
    labels = node.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        return {}
    tiers = node.get("tier_of") if isinstance(node.get("tier_of"), list) else None
    return {key: [labels[i] + (f" {tiers[i]}" if tiers and len(tiers) == len(labels) else "") for i in range(len(labels))]
            for key, value in node.items()
            if key not in ("labels", "tier_of") and isinstance(value, list) and len(value) == len(labels)}


def _kind(keys: list[str], node: dict) -> str | None:
    """The kind of the innermost key; for a generic key (`value`, `diff`, `ci`, `mean`) a sibling name field or an outer key."""
    if keys[-1].lower() in GENERIC_KEYS:
        for name in NAME_FIELDS:
            if isinstance(node.get(name), str) and kind_of_key(node[name]):
                return kind_of_key(node[name])
        siblings = {kind_of_key(k) for k, v in node.items() if _is_number(v) and k.lower() not in GENERIC_KEYS} - {"count", None}
        if len(siblings) == 1:
            return siblings.pop()
    for key in reversed(keys):
        if key.lower() not in GENERIC_KEYS and not key.isdigit() and kind_of_key(key):
            return kind_of_key(key)
    return None


def _add(out: list[Fact], value: float, kind: str | None, context: list[str], vocab: Vocabulary, source: str,
         slot: str | None = None) -> None:
    entities: dict[str, set[str]] = {}
    for text in context:
        text = re.sub(r"__seed\d+", "", text)  # a run name is its arm
        whole = vocab.entities_in(text)
        for piece in [text] + (text.split() if " " in text else []):
            for entity_type, found in vocab.entities_in(piece).items():
                if piece is text or entity_type not in whole:  # "criminal law" is one class, not also "law"
                    entities.setdefault(entity_type, set()).update(found)
    if re.search(r"(?:^|[._ ])val(?:idation)?(?:[._]|$)", source.split(": ", 1)[-1]):  # "val_macro_f1", "runs.x.val.f1"
        entities["split"] = {"validation"}
    family = re.match(r"config\.resolved\.yaml: models\.(encoder|decoder)\.", source)
    if family and "arm" not in entities:
        entities["family"] = {family.group(1)}  # a setting of one model family's arms (its epochs, its LoRA rank)
    out.append(Fact(value, kind, {k: frozenset(v) for k, v in entities.items()}, source, slot or _slot(source, vocab)))


def _slot(source: str, vocab: Vocabulary) -> str:
    """The source with entity names, seeds and list indexes blanked: facts sharing a slot are one quantity of several
    entities (two arms' test macro F1, two classes' recall), the pairs a note compares."""
    text = re.sub(r"__seed\d+", "", source)
    for pattern in vocab._patterns().values():
        text = pattern.sub("{}", text)
    return re.sub(r"(?<=\.)\d+(?=\.|$)", "{#}", text)


def _to_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _read_json(path: Path) -> object:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path} is not valid JSON ({exc}).", "re-run the stage that writes it.") from None


def _read_yaml(path: Path) -> object:
    if not path.exists():
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise StudyError(f"{path} is not valid YAML ({exc}).", "re-run `lorastudy run` to rewrite it.") from None
