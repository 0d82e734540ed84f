"""The technical note: lays out the tables and figures and words the findings (findings.py) through templates.

What the numbers say is decided in `findings.py`; this module only builds the
tables, picks the figures, and hands both with the findings to
`templates/note.md.j2`, where every sentence is selected by a finding's verdict.
Two rules keep it traceable and safe:

* every number is printed by one of the formatters below (percent with 1
  decimal, F1 with 3, ms with 1, ...) straight from an artifact value, so
  `lorastudy check --results` can trace it back;
* every dataset- or config-derived string goes through `esc` (HTML and Markdown
  escaping), because Markdown passes raw HTML through to note.html.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import markdown
from jinja2 import Environment, PackageLoader, StrictUndefined

from lorastudy.core import artifacts
from lorastudy.core.prose import count_prose_words
from lorastudy.study.config import ARMS, StudyConfig
from lorastudy.study.arms import arm_spec
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError
from lorastudy.measure.evaluation import SCHEMA_VERSION as RESULTS_SCHEMA
from lorastudy.note.figures import FigureSpec, render
from lorastudy.note.findings import DEC, ENC, Findings, derive

ARM_NAMES = {
    "tfidf_logreg": "TF-IDF + logistic regression", "encoder_full": "Encoder full fine-tune",
    "encoder_full_cw": "Encoder full fine-tune + weighting", "encoder_lora": "Encoder LoRA",
    "encoder_lora_cw": "Encoder LoRA + weighting", "decoder_lora": "Decoder LoRA",
    "decoder_lora_cw": "Decoder LoRA + weighting",
}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "rare_recall": "rare-tier recall"}
CLASS_ROWS = 8


@dataclass
class Note:
    """A built note: Markdown that links `figures/<name>.png`, the figures to draw, and the findings it words."""

    title: str
    markdown: str
    figures: list[FigureSpec] = field(default_factory=list)
    findings: Findings | None = None

    @property
    def prose_words(self) -> int:
        return count_prose_words(self.markdown)


# --- formatting: the only way numbers enter the note ------------------------


def esc(text: object) -> str:
    """Escape a data-derived string for Markdown that becomes HTML: entities first, then Markdown syntax."""
    return re.sub(r"([\\`*_\[\]|#{}])", r"\\\1", html.escape(str(text), quote=False))


def code(text: object) -> str:
    """Inline code (Markdown escapes its content itself); backticks inside are dropped."""
    return f"`{str(text).replace('`', '')}`"


def _shown(x: float, decimals: int) -> int:
    """Decimals that keep a non-zero value from printing as zero: an interval end of -0.0004 is not 0."""
    while x != 0 and round(abs(x), decimals) == 0 and decimals < 6:
        decimals += 1
    return decimals


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.{_shown(100 * x, 1)}f}%"


def f1(x: float | None) -> str:
    return "–" if x is None else f"{x:.{_shown(x, 3)}f}"


def sf1(x: float | None) -> str:
    return "–" if x is None else f"{x:+.{_shown(x, 3)}f}"


def pp(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.{_shown(100 * x, 1)}f} pp"


def ci_f1(ci: list[float] | None) -> str:
    return "" if not ci else f"[{f1(ci[0])}, {f1(ci[1])}]"


def ci_pp(ci: list[float] | None) -> str:
    return "" if not ci else f"[{pp(ci[0])}, {pp(ci[1])}]"


def ci_pct(ci: list[float] | None) -> str:
    return "" if not ci else f"[{pct(ci[0])}, {pct(ci[1])}]"


def ms(x: float | None) -> str:
    """Three significant digits (3.84 ms, 29.2 ms): a ratio the note states can be recomputed from them."""
    if x is None:
        return "–"
    return f"{x:.{max(1, 2 - math.floor(math.log10(abs(x))))}f} ms" if x else "0.0 ms"


def money(x: float | None) -> str:
    return "–" if x is None else f"${x:,.{_shown(x, 2)}f}"


def p_value(p: float | None) -> str:
    return "p undefined" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def count(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:.1f}"


def params(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def seconds(s: float | None) -> str:
    if s is None:
        return "–"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 2 else f"{x:.1f}x"  # 1.24x, not 1.2x: a small ratio's second digit is the news


def name(arm: str | None) -> str:
    return "no arm" if arm is None else ARM_NAMES.get(arm, esc(arm))


def inline(arm: str | None) -> str:
    """The arm's name inside a sentence ("encoder LoRA")."""
    text = name(arm)
    return text if text.startswith("TF") else text[0].lower() + text[1:]


def metric_value(value: float | None, metric: str) -> str:
    return pct(value) if metric in ("accuracy", "rare_recall") else f1(value)


def metric_pair(values: list[float], metric: str) -> str:
    """Two values of a metric, with as many decimals as it takes for them not to print alike."""
    a, b = values
    percent = metric in ("accuracy", "rare_recall")
    for decimals in range(1 if percent else 3, 7):
        shown = [f"{100 * v:.{decimals}f}%" if percent else f"{v:.{decimals}f}" for v in (a, b)]
        if shown[0] != shown[1]:
            break
    return f"{shown[0]} against {shown[1]}"


def metric_diff(value: float | None, metric: str) -> str:
    return pp(value) if metric in ("accuracy", "rare_recall") else sf1(value)


def metric_ci(ci: list[float] | None, metric: str) -> str:
    return ci_pp(ci) if metric in ("accuracy", "rare_recall") else ci_f1(ci)


FILTERS = {"esc": esc, "code": code, "pct": pct, "f1": f1, "sf1": sf1, "pp": pp, "ci_f1": ci_f1, "ci_pp": ci_pp,
           "ci_pct": ci_pct, "ms": ms, "money": money, "count": count, "params": params, "seconds": seconds,
           "ratio": ratio, "p_value": p_value, "name": name, "inline": inline, "metric_value": metric_value, "metric_diff": metric_diff,
           "metric_pair": metric_pair,
           "metric_ci": metric_ci, "metric_name": lambda m: METRIC_NAMES.get(m, esc(m)),
           "upfirst": lambda text: text[:1].upper() + text[1:]}


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("lorastudy.note", "templates"), autoescape=False, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)
    env.filters.update(FILTERS)
    return env


# --- tables ------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


@dataclass
class Layout:
    """The note's tables and figures, from the same artifacts the findings read."""

    results: dict
    latency: dict | None
    runs: list[dict]
    config: StudyConfig
    findings: Findings

    @property
    def arms(self) -> list[str]:
        return [arm for arm in ARMS if arm in self.results["arms"]]

    @property
    def tiers(self) -> list[str]:
        return self.results["data"]["tier_names"]

    @property
    def has_tail(self) -> bool:
        sizes = self.results["data"]["tier_sizes"]
        return sum(1 for tier in self.tiers if sizes.get(tier, 0) > 0) >= 2

    def first_run(self, arm: str) -> dict:
        return self.results["runs"][f"{arm}__seed{self.results['arms'][arm]['seeds'][0]}"]

    def level(self, arm: str, metric: str, fmt) -> tuple[str, str]:
        """(point estimate, interval) of one arm from one source (results.arms[arm].ci): seed mean ± std with seeds."""
        entry = self.results["arms"][arm].get("ci", {}).get(metric)
        if entry is None:
            return "–", ""
        stat = self.results["arms"][arm]["test"].get(metric)
        spread = f" ± {fmt(stat['std'])}" if stat and stat.get("std") is not None else ""
        return f"{fmt(entry['mean'])}{spread}", f"[{fmt(entry['ci'][0])}, {fmt(entry['ci'][1])}]"

    def systems(self) -> str:
        data = self.results["data"]
        rows = [[f"Majority class ({esc(data['majority_class']['label'])})", pct(data["majority_class"]["test_accuracy"]),
                 "", "–", "", "–", "–", "–"]]
        for arm in self.arms:
            p = self.first_run(arm)["parameters"] or {}
            zero = self.results["arms"][arm]["test"]["zero_f1_count"]
            collapsed = " **(collapsed)**" if (self.first_run(arm).get("collapse") or {}).get("collapsed") else ""
            rows.append([name(arm) + collapsed, *self.level(arm, "accuracy", pct), *self.level(arm, "macro_f1", f1),
                         count(zero["mean"]) + (f" ± {count(zero['std'])}" if zero.get("std") is not None else ""),
                         params(p["trainable"]) if p.get("trainable") else "–", pct(p.get("trainable_share"))])
        external = self.results.get("external_reference") or {}
        for row in external.get("rows", []):
            zero = row.get("zero_f1_count")
            rows.append([f"*External: {esc(row['model'])} (course, {esc(row.get('split', 'validation'))})*",
                         pct(row.get("accuracy")), "", f1(row.get("macro_f1")), "", count(zero), "", ""])
        return table(["Arm", "Accuracy", "95% CI", "Macro F1", "95% CI", f"Zero-F1 (of {data['num_classes']})",
                      "Trainable params", "Trainable share"], rows)

    def weighting(self) -> str | None:
        effects = [f for f in self.findings.of_kind("effect")]
        if not effects:
            return None
        rows = []
        for f in effects:
            verdicts = f.facts["verdicts"]
            rows.append([name(f.subjects[0]), f"{pct(f.q('acc_before'))} → {pct(f.q('acc_after'))}",
                         f"{pp(f.q('accuracy_delta'))} {ci_pp(_ci(f, 'accuracy_delta'))}",
                         f"{f1(f.q('f1_before'))} → {f1(f.q('f1_after'))}",
                         f"{sf1(f.q('macro_f1_delta'))} {ci_f1(_ci(f, 'macro_f1_delta'))}",
                         f"{count(f.q('zero_before'))} → {count(f.q('zero_after'))}",
                         f"{pp(f.q('rare_recall_delta'))} {ci_pp(_ci(f, 'rare_recall_delta'))}"
                         if "rare_recall" in verdicts else "–"])
        rare = esc(self.tiers[0])
        return table(["Unweighted arm", "Accuracy", "Δ accuracy [95% CI]", "Macro F1", "Δ macro F1 [95% CI]",
                      "Zero-F1", f"Δ {rare}-tier recall [95% CI]"], rows)

    def decomposition(self) -> str | None:
        effects = {f.subjects[0]: f for f in self.findings.of_kind("effect") if f.subjects[0] in (ENC, DEC)}
        if len(effects) < 2 or len(self.tiers) < 2:
            return None
        rows = []
        for tier in self.tiers:
            row = [esc(tier), pct(effects[ENC].q(f"{tier}.class_share"))]
            for arm in (ENC, DEC):
                row += [sf1(effects[arm].q(f"{tier}.delta_mean_f1")), sf1(effects[arm].q(f"{tier}.contribution")),
                        pp(effects[arm].q(f"{tier}.accuracy_change_from_tier"))]
            rows.append(row)
        rows.append(["all (= Δ macro F1, Δ accuracy)", "100.0%", "", sf1(effects[ENC].q("macro_f1_delta")),
                     pp(effects[ENC].q("accuracy_delta")), "", sf1(effects[DEC].q("macro_f1_delta")),
                     pp(effects[DEC].q("accuracy_delta"))])
        per_arm = [f"{name(arm)}: {column}" for arm in (ENC, DEC)
                   for column in ("Δ tier mean F1", "Δ macro F1 from tier", "Δ accuracy from tier")]
        return table(["Tier (weighted − unweighted)", "Class share", *per_arm], rows)

    def tiers_table(self) -> str:
        header = ["Arm"]
        for tier in self.tiers:
            n = self.results["data"]["tier_sizes"][tier]
            header += [f"{esc(tier)} mean F1", f"{esc(tier)} classes above zero (of {n})", f"{esc(tier)} zero-F1 (of {n})",
                       f"{esc(tier)} recall"]
        rows = []
        for arm in self.arms:
            per_tier = self.results["arms"][arm]["per_tier"]  # seed means, as in Sections 1 and 2
            row = [name(arm)]
            for index, tier in enumerate(self.tiers):
                t = {key: stat["mean"] for key, stat in per_tier[tier].items()}
                recall = pct(t["recall"])
                if index == 0 and self.results["arms"][arm].get("ci", {}).get("rare_recall"):
                    recall = " ".join(self.level(arm, "rare_recall", pct))
                row += [f1(t["mean_f1"]), count(t["n_nonzero"]), count(t["zero_f1_count"]), recall]
            rows.append(row)
        return table(header, rows)

    def classes_table(self) -> str | None:
        classes = (self.results.get("class_differences") or {}).get("classes", [])
        if not classes:
            return None
        classes = [c for c in classes if f1(c["f1_a"]) != f1(c["f1_b"])]  # a class both models score alike is no difference
        if not classes:
            return None
        rare = [c for c in classes if c["tier"] == self.tiers[0]][:CLASS_ROWS]
        others = [c for c in classes if c["tier"] != self.tiers[0]][:max(CLASS_ROWS - len(rare), 4)]
        return table(["Class", "Tier", "Train count", "Test support", "Encoder LoRA F1", "Decoder LoRA F1",
                      "Decoder − encoder"],
                     [[esc(c["label"]), esc(c["tier"]), count(c["train_count"]), count(c["test_support"]), f1(c["f1_a"]),
                       f1(c["f1_b"]), sf1(c["diff"])] for c in rare + others])

    def confusions(self) -> str | None:
        finding = self.findings.get("tier.confusions")
        if finding is None:
            return None
        rows = []
        for arm in (ENC, DEC):
            flow = finding.facts["flows"].get(arm)
            if not flow:
                continue
            tops = ", ".join(f"{esc(t['label'])} ({count(t['count'])})" for t in flow["top_absorbers"][:3]) or "–"
            rows.append([name(arm), count(flow["n_examples"]), count(flow["correct"])]
                        + [count(flow["to_tier"][tier]) for tier in self.tiers] + [tops])
        return table(["Model", f"{esc(self.tiers[0])}-tier test examples", "Correct"]
                     + [f"Wrong, into {esc(tier)} classes" for tier in self.tiers] + ["Top absorbers (examples)"], rows)

    def latency_table(self) -> str | None:
        models = (self.latency or {}).get("models", {})
        if not models:
            return None
        rows = []
        for arm, entry in models.items():
            v = entry["variants"]["merged"]
            best = max(v["batched"], key=lambda b: b["examples_per_s"])
            rows.append([name(arm), ms(v["single"]["p50_ms"]), ms(v["single"]["p95_ms"]),
                         f"{ms(best['ms_per_example'])} (batch {best['batch_size']})", f"{best['examples_per_s']:.1f}",
                         f"{v.get('memory_added_mb', v['peak_memory_mb']):.1f} MB"])
        return table(["Model as served", "Single p50", "Single p95", "Batched, per example", "Examples/s",
                      "Memory added"], rows)

    def contexts_table(self, decisions) -> str:
        out = []
        for decision in decisions:
            context, metric = decision.facts["context"], decision.facts["metric"]
            realtime = context["kind"] == "realtime"
            for row in decision.facts["rows"]:
                chosen = "**chosen**" if row["arm"] == decision.facts["decision"]["choice"] else ""
                target = f"p95 {ms(row['p95_at_rate_ms'])}" if realtime else f"job {seconds(row['time_s'])}"
                out.append([esc(context["name"]), name(row["arm"]),
                            f"{METRIC_NAMES[metric]} {metric_value(row['quality'], metric)}",
                            "yes" if row["meets"] else "**no**", target, count(row["instances"]), pct(row["headroom"]),
                            money(row["monthly_cost"]), chosen])
        return table(["Context", "Arm", "Deciding metric", "Meets target", "Against the target", "Instances",
                      "Headroom", "Monthly cost", ""], out)

    def candidates_table(self) -> str | None:
        finding = self.findings.get("bottleneck")
        if finding is None:
            return None
        rows = [[CANDIDATE_NAMES[c["name"]], _evidence(c), {True: "yes", False: "no"}.get(c["supported"], "not testable here"),
                 "not measurable here" if c["macro_f1_size"] is None and c["supported"] else sf1(c["macro_f1_size"])]
                for c in finding.facts["candidates"]]
        return table(["Candidate bottleneck", "Evidence in this run", "Supported", "Macro F1 it accounts for"], rows)

    def experiment_log(self) -> str:
        order = {arm: i for i, arm in enumerate(ARMS)}
        rows = []
        for r in sorted(self.runs, key=lambda r: (order.get(r.get("arm"), 99), r.get("seed", 0))):
            model = r.get("model") or {}
            env = r.get("environment") or {}
            libs = env.get("libraries") or env
            versions = ", ".join(f"{k} {libs[k]}" for k in ("torch", "transformers", "peft") if libs.get(k))
            identity = model.get("revision") or (model.get("sha256") or "")[:16]
            hardware = f"{r.get('device', '')}, {r.get('threads', '')} threads, {r.get('precision', '')}; {env.get('cpu', '')}"
            at_start = r.get("memory_at_start_mb")
            memory = f"{r.get('peak_memory_mb', 0):.1f} MB" + ("" if at_start is None else f" ({at_start:.1f} MB)")
            rows.append([name(r["arm"]), self.recipe(r), code(r["seed"]), code(r.get("config_hash", "")),
                         code(model.get("source", "none")),
                         code(identity or "–"), count(r.get("epochs", 0)), count(r.get("steps", 0)),
                         f"{r.get('wall_time_s', 0):.1f} s", memory, code(hardware), code(versions),
                         code((env.get("git_commit") or "")[:12])])
        return table(["Arm", "Recipe", "Seed", "Config hash", "Model source", "sha256 / revision", "Epochs", "Steps", "Wall time",
                      "Peak memory (at start)", "Hardware", "Libraries", "Git commit"], rows)

    def recipe(self, run: dict) -> str:
        """What a reader needs to reproduce the run: adapter, pooling, rates, batch (resolved as the run trained)."""
        spec = arm_spec(self.config, run["arm"], run.get("seed", 0), "")
        if spec.train is None:
            return "TF-IDF features, logistic regression"
        parts = [f"LoRA r {spec.model.lora.r}, alpha {spec.model.lora.alpha} on "
                 + ", ".join(code(m) for m in run.get("lora_target_modules") or []) if spec.method == "lora"
                 else "all weights"]
        parts += [f"{esc(spec.model.pooling)} pooling", f"lr {spec.train.learning_rate:g}"
                  + (f" (head {spec.train.head_learning_rate:g})" if spec.train.head_learning_rate else ""),
                  f"batch {spec.train.batch_size}"]
        return "; ".join(parts)

    # --- figures ---

    def figures(self) -> dict[str, FigureSpec]:
        out = {}
        effects = {f.subjects[0]: f for f in self.findings.of_kind("effect")}
        if effects and self.has_tail:
            out["weighting"] = FigureSpec(
                "weighting_by_tier", "weighting_tiers",
                "Where class weighting changed macro F1: each tier's contribution (share of classes × change in the "
                "tier's mean F1); the bars of an arm add up to its Δ macro F1.",
                {"tiers": self.tiers, "series": {name(arm): [f.q(f"{t}.contribution") or 0.0 for t in self.tiers]
                                                 for arm, f in effects.items()}})
        classes = (self.results.get("class_differences") or {}).get("classes", [])
        one_run = " (first seed)" if self.results["uncertainty"]["n_seeds"] > 1 else ""
        if classes:
            out["scatter"] = FigureSpec(
                "f1_encoder_vs_decoder", "f1_scatter",
                f"Per-class test F1{one_run}, encoder LoRA (x) vs decoder LoRA (y), by tier; a larger marker is several classes "
                "at the same point (count printed); the dashed line is equal F1.",
                {"x": [c["f1_a"] for c in classes], "y": [c["f1_b"] for c in classes],
                 "tiers": [c["tier"] for c in classes], "tier_names": self.tiers,
                 "x_label": "Encoder LoRA", "y_label": "Decoder LoRA"})
            out["by_count"] = FigureSpec(
                "f1_vs_train_count", "f1_vs_count", f"Per-class test F1{one_run} against training examples (log scale).",
                {"counts": [c["train_count"] for c in classes],
                 "series": {"Encoder LoRA": [c["f1_a"] for c in classes], "Decoder LoRA": [c["f1_b"] for c in classes]}})
        models = (self.latency or {}).get("models", {})
        if models:
            merged = {arm: entry["variants"]["merged"] for arm, entry in models.items()}
            out["latency"] = FigureSpec(
                "latency", "latency", "Served models (LoRA merged): single-request p50 and p95, and batched throughput; "
                                      "both axes are logarithmic.",
                {"models": [name(arm) for arm in merged], "p50": [v["single"]["p50_ms"] for v in merged.values()],
                 "p95": [v["single"]["p95_ms"] for v in merged.values()],
                 "throughput": [max(b["examples_per_s"] for b in v["batched"]) for v in merged.values()]})
        return out


CANDIDATE_PROSE = {"decision_rule": "the decision rule on the tail", "data_volume": "too few rare-tier examples",
                   "training_budget": "the training budget", "representation": "adapter capacity"}
CANDIDATE_NAMES = {"decision_rule": "Decision rule on the tail (logit-adjustment probe)",
                   "data_volume": "Data volume of the rare tier (F1 against train count)",
                   "training_budget": "Training budget (steps, validation curve)",
                   "representation": "Representation / adapter capacity (full fine-tune vs LoRA)"}


def _evidence(candidate: dict) -> str:
    """One table cell per candidate: the numbers its verdict rests on."""
    facts = candidate["facts"]
    if candidate["name"] == "decision_rule":
        return f"probe (tau {facts['tau']:g}, chosen on validation): test macro F1 {sf1(facts['gain'])} {ci_f1(facts['ci'])}"
    if candidate["name"] == "data_volume":
        if facts["f1_slope_per_doubling"] is None:
            return "train counts do not vary"
        return (f"F1 {sf1(facts['f1_slope_per_doubling'])} per doubling of train count ({p_value(facts['slope_p'])}); "
                f"rare-tier share of classes {pct(facts['rare_class_share'])}")
    if candidate["name"] == "training_budget":
        curve = f"best epoch {count(facts['best_epoch'])} of {count(facts['epochs'])}" if "untestable" not in facts \
            else esc(facts["untestable"])
        return f"{count(facts['steps'])} vs {count(facts['other_steps'])} steps; {curve}"
    if "untestable" in facts:
        return esc(facts["untestable"])
    return f"full fine-tune minus LoRA macro F1 {sf1(facts['diff'])} {ci_f1(facts['ci'])}"


def _ci(finding, name_: str) -> list[float] | None:
    lo, hi = finding.q(name_ + "_lo"), finding.q(name_ + "_hi")
    return None if lo is None or hi is None else [lo, hi]


def _data_summary(run_dir: Path | None) -> dict:
    path = run_dir / "data" / "summary.json" if run_dir else None
    return artifacts.read_json(path) if path and path.exists() else {}


# --- assembly ------------------------------------------------------------------


def build_note(results: dict, latency: dict | None, runs: list[dict], config: StudyConfig,
               summary: dict | None = None) -> Note:
    """The note as Markdown plus the figures it links; pure, so tests need no files."""
    found = derive(results, latency, config)
    layout = Layout(results, latency, runs, config, found)
    figures = layout.figures()
    numbered = {key: None for key in ("weighting", "scatter", "by_count", "latency")}
    numbered.update({key: index for index, key in enumerate(figures, start=1)})
    by_id = {f.id: f for f in found.findings}
    text = _environment().get_template("note.md.j2").render(
        title=esc(config.report.title), config=config, results=results, latency=latency, runs=runs, f=by_id,
        findings=found, layout=layout, figures=figures, fig=numbered, summary=summary or {}, ENC=ENC, DEC=DEC,
        records={(r.get("arm"), r.get("seed")): r for r in runs}, candidate_prose=CANDIDATE_PROSE,
        ci=_ci, flip_text=_flip_text)
    text = re.sub(r"(?m)^([^|\n].*)\n(?=\|)", r"\1\n\n", text)  # a table starts a block of its own
    text = re.sub(r"(?m)^(\|.*)\n(?=[^|\n])", r"\1\n\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    differences = {(value, float(lo.replace("−", "-")), float(hi.replace("−", "-")))  # one interval, once
                   for value, lo, hi in DIFFERENCE_INTERVAL.findall(re.sub(r"`[^`]*`", "", text))}
    excluding = sum(1 for _, lo, hi in differences if lo > 0 or hi < 0)
    text = (text.replace("@@INTERVALS@@", count(len(differences))).replace("@@EXCLUDING@@", count(excluding))
            .replace("@@CHANCE@@", f"{len(differences) * 0.05:.0f}"))
    return Note(title=config.report.title, markdown=text, figures=list(figures.values()), findings=found)


# A difference's interval: printed right after a signed value or a margin ("+0.037 [0.014, 0.059]",
# "-2.8 pp [-4.0 pp, -1.6 pp]", "by 0.044 [0.019, 0.067]").
DIFFERENCE_INTERVAL = re.compile(r"((?:[+−-]|\bby )\d[\d.]*)(?: ?pp)? \[([−+-]?[\d.]+)(?: ?pp)?, ([−+-]?[\d.]+)(?: ?pp)?\]")


def _flip_text(flip: dict) -> str:
    """The quantity that flips a decision, at its threshold, against the context's own value."""
    quantity, new, base = flip["quantity"], flip["value"], flip["base"]
    if quantity == "peak_rps":
        return f"an arrival rate of {new:,.1f} requests/s instead of {base:,.1f}"
    if quantity == "p95_sla_ms":
        return f"a p95 target of {ms(new)} instead of {ms(base)}"
    if quantity == "examples":
        return f"{count(round(new))} texts per job instead of {count(base)}"
    return f"a window of {seconds(new * 60)} instead of {seconds(base * 60)}"


def write_note(run_dir: Path) -> Path:
    """Write evaluation/findings.json, note/note.md, a self-contained note/note.html and note/figures/*.png."""
    run_dir = Path(run_dir)
    results_path = run_dir / "evaluation" / "results.json"
    if not results_path.exists():
        raise StudyError(f"{results_path} does not exist, so there is nothing to report.",
                         "run `lorastudy run --stage evaluate` (or the whole study) first.")
    results = artifacts.read_json(results_path)
    if results.get("schema_version") != RESULTS_SCHEMA:
        raise StudyError(f"{results_path} was written by an older lorastudy (schema {results.get('schema_version')}).",
                         "re-run the evaluation: `lorastudy run --stage evaluate --stage report`.")
    latency_path = run_dir / "latency" / "latency.json"
    latency = artifacts.read_json(latency_path) if latency_path.exists() else None
    runs = [artifacts.read_json(p) for p in sorted((run_dir / "runs").glob("*/run.json"))]
    config_path = run_dir / "config.resolved.yaml"
    if not config_path.exists():
        raise StudyError(f"{config_path} does not exist.", "report on a folder that `lorastudy run` wrote.")
    note = build_note(results, latency, runs, load_config(config_path), _data_summary(run_dir))
    artifacts.write_json(run_dir / "evaluation" / "findings.json", note.findings.model_dump(mode="json"))

    out = run_dir / "note"
    embedded = note.markdown
    for spec in note.figures:
        png = render(spec)
        with artifacts.atomic_path(out / "figures" / f"{spec.name}.png") as tmp:
            tmp.write_bytes(png)
        embedded = embedded.replace(f"](figures/{spec.name}.png)",
                                    f"](data:image/png;base64,{base64.b64encode(png).decode('ascii')})")
    artifacts.write_text(out / "note.md", note.markdown)
    body = markdown.markdown(embedded, extensions=["tables"], output_format="html")
    template = Environment(loader=PackageLoader("lorastudy.note", "templates"), autoescape=True).get_template("note.html.j2")
    return artifacts.write_text(out / "note.html", template.render(title=note.title, body=body))
