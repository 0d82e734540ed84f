"""The technical note: five rubric sections, limitations and the experiment log, from the run's artifacts.

The prose is produced by explicit rules over `results.json`, `latency.json` and
the run records, never by a language model. Three rules keep it honest:

* a difference is "within run-to-run variation" when its interval contains 0
  (or, with several seeds, when |mean difference| < the std of the seed
  differences), and then no winner is named;
* every number is printed by one of the formatters below (percent with 1
  decimal, F1 with 3, ms with 1, ...) straight from an artifact value, so
  `lorastudy check --results` can trace it back;
* every dataset- or config-derived string goes through `esc` (HTML and Markdown
  escaping), because Markdown passes raw HTML through to note.html.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import markdown
import numpy as np
from jinja2 import Environment, PackageLoader

from lorastudy import artifacts
from lorastudy.check import count_prose_words
from lorastudy.config import ARMS, StudyConfig, load_config
from lorastudy.errors import StudyError
from lorastudy.figures import FigureSpec, render

ARM_NAMES = {
    "tfidf_logreg": "TF-IDF + logistic regression", "encoder_full": "Encoder full fine-tune",
    "encoder_full_cw": "Encoder full fine-tune + weighting", "encoder_lora": "Encoder LoRA",
    "encoder_lora_cw": "Encoder LoRA + weighting", "decoder_lora": "Decoder LoRA",
    "decoder_lora_cw": "Decoder LoRA + weighting",
}
ENC, DEC = "encoder_lora", "decoder_lora"


@dataclass
class Note:
    """A built note: Markdown that links `figures/<name>.png`, and the figures to draw."""

    title: str
    markdown: str
    figures: list[FigureSpec] = field(default_factory=list)

    @property
    def prose_words(self) -> int:
        return count_prose_words(self.markdown)


# --- formatting: the only way numbers enter the note ------------------------


def esc(text: object) -> str:
    """Escape a data-derived string for Markdown that becomes HTML: entities first, then Markdown syntax."""
    return re.sub(r"([\\`*_\[\]|#{}])", r"\\\1", html.escape(str(text), quote=True))


def code(text: object) -> str:
    """Inline code (Markdown escapes its content itself); backticks inside are dropped."""
    return f"`{str(text).replace('`', '')}`"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def f1(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def sf1(x: float) -> str:
    return f"{x:+.3f}"


def pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def ci_f1(ci: list[float] | None) -> str:
    return "" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def ci_pp(ci: list[float] | None) -> str:
    return "" if not ci else f"[{pp(ci[0])}, {pp(ci[1])}]"


def ci_pct(ci: list[float] | None) -> str:
    return "" if not ci else f"[{pct(ci[0])}, {pct(ci[1])}]"


def ms(x: float) -> str:
    return f"{x:.1f} ms"


def money(x: float | None) -> str:
    return "–" if x is None else f"${x:,.2f}"


def count(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:.1f}"


def mb(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def params(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def mean_std(stat: dict, fmt) -> str:
    """One seed: the value; several: mean ± std."""
    return fmt(stat["mean"]) if stat.get("std") is None else f"{fmt(stat['mean'])} ± {fmt(stat['std'])}"


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def name(arm: str) -> str:
    return ARM_NAMES.get(arm, esc(arm))


def inline(arm: str) -> str:
    """The arm's name inside a sentence ("encoder LoRA")."""
    text = name(arm)
    return text if text.startswith("TF") else text[0].lower() + text[1:]


# --- reading results -------------------------------------------------------


def within_noise(diff: float, ci: list[float] | None, seed_diffs: list[float] | None = None) -> bool:
    """The study's rule for "no winner": the interval contains 0, or seeds disagree more than the mean differs."""
    if ci and ci[0] <= 0 <= ci[1]:
        return True
    if seed_diffs and len(seed_diffs) > 1:
        return abs(float(np.mean(seed_diffs))) < float(np.std(seed_diffs, ddof=1))
    return False


@dataclass
class Study:
    """Lookups over the artifacts that the section writers share."""

    results: dict
    latency: dict | None
    runs: list[dict]
    config: StudyConfig | None

    def has(self, arm: str) -> bool:
        return arm in self.results.get("arms", {})

    def first_run(self, arm: str) -> dict:
        seed = self.results["arms"][arm]["seeds"][0]
        return self.results["runs"][f"{arm}__seed{seed}"]

    def run_record(self, arm: str) -> dict | None:
        """The first seed's run.json (training budget, timings) for the experiment log and limitations."""
        seed = self.results["arms"][arm]["seeds"][0]
        return next((r for r in self.runs if r.get("arm") == arm and r.get("seed") == seed), None)

    def test(self, arm: str) -> dict:
        return self.first_run(arm)["test"]

    def stat(self, arm: str, metric: str) -> dict:
        return self.results["arms"][arm]["test"][metric]

    def tier(self, arm: str, tier: str) -> dict:
        return self.test(arm)["per_tier"][tier]

    def comparison(self, a: str, b: str, metric: str) -> dict | None:
        """b minus a, with its interval and noise verdict, whichever way round evaluation stored it."""
        for c in self.results.get("comparisons", []):
            if c["metric"] == metric and {c["a"], c["b"]} == {a, b}:
                sign = 1 if c["b"] == b else -1
                ci = sorted(sign * x for x in c["ci"]) if c.get("ci") else None
                seed_diffs = [sign * x for x in c.get("seed_diffs") or []]
                return {"diff": sign * c["diff"], "ci": ci, "noise": within_noise(sign * c["diff"], ci, seed_diffs)}
        return None

    @property
    def tiers(self) -> list[str]:
        return self.results["data"]["tier_names"]

    @property
    def rare(self) -> str:
        return self.tiers[0]

    @property
    def n_seeds(self) -> int:
        return max(a.get("n_seeds", 1) for a in self.results["arms"].values())


def _verdict(comp: dict, ahead: str, behind: str) -> str:
    if comp["noise"]:
        return "within run-to-run variation"
    return ahead if comp["diff"] > 0 else behind


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _figure(spec: FigureSpec, number: int) -> list[str]:
    return [f"![{spec.caption}](figures/{spec.name}.png)", "", f"*Figure {number}: {spec.caption}*", ""]


# --- sections ----------------------------------------------------------------


def _section_systems(s: Study) -> list[str]:
    data = s.results["data"]
    out = ["## 1. Systems-level comparison: encoder vs decoder", ""]
    for key, run in s.results["runs"].items():
        if (run.get("collapse") or {}).get("collapsed"):
            out += [f"**Warning: {esc(key)} collapsed ({esc(run['collapse'].get('reason') or 'few classes predicted')}): "
                    f"it predicts {count(run['collapse']['n_predicted_classes'])} classes; its row is not a trained model's quality.**", ""]
    header = ["Arm", "Accuracy", "95% CI", "Macro F1", "95% CI", f"Zero-F1 (of {data['num_classes']})",
              "Trainable params", "Trainable share"]
    rows = [["Majority class (" + esc(data["majority_class"]["label"]) + ")", pct(data["majority_class"]["test_accuracy"]),
             "", "", "", "", "", ""]]
    for arm in [a for a in ARMS if s.has(a)]:
        t, p = s.test(arm), s.first_run(arm)["parameters"]
        collapsed = " **(collapsed)**" if (s.first_run(arm).get("collapse") or {}).get("collapsed") else ""
        rows.append([name(arm) + collapsed, mean_std(s.stat(arm, "accuracy"), pct), ci_pct(t["ci"]["accuracy"]),
                     mean_std(s.stat(arm, "macro_f1"), f1), ci_f1(t["ci"]["macro_f1"]),
                     mean_std(s.stat(arm, "zero_f1_count"), count), params(p["trainable"]), pct(p["trainable_share"])])
    rows += _external_rows(s.results.get("external_reference"))
    out += _table(header, rows)
    seeds = ", ".join(str(x) for x in s.results["arms"][next(iter(s.results["arms"]))]["seeds"])
    out += [f"*Test set; intervals are bootstrap 95% CIs over test examples (seed `{seeds}`).*", ""]
    prose = []
    if s.has(ENC) and s.has(DEC):
        pe, pd = s.first_run(ENC)["parameters"], s.first_run(DEC)["parameters"]
        arch = s.comparison(ENC, DEC, "macro_f1")
        prose.append(f"LoRA trains {pct(pe['trainable_share'])} of the encoder's {params(pe['total'])} parameters and "
                     f"{pct(pd['trainable_share'])} of the decoder's {params(pd['total'])}.")
        if arch:
            acc = s.comparison(ENC, DEC, "accuracy")
            prose.append(f"Decoder minus encoder LoRA: macro F1 {sf1(arch['diff'])} {ci_f1(arch['ci'])}"
                         + (f", accuracy {pp(acc['diff'])} {ci_pp(acc['ci'])}" if acc else "")
                         + f"; on macro F1 the decoder is {_verdict(arch, 'ahead', 'behind')}.")
    if s.has(ENC) and s.has("encoder_full"):
        full = s.comparison("encoder_full", ENC, "macro_f1")
        acc = s.comparison("encoder_full", ENC, "accuracy")
        if full:
            share = pct(s.first_run(ENC)["parameters"]["trainable_share"])
            prose.append(f"Against the encoder full fine-tune (the Weeks 1-2 recipe), training {share} of the parameters "
                         f"changed macro F1 by {sf1(full['diff'])} {ci_f1(full['ci'])}"
                         + (f" and accuracy by {pp(acc['diff'])} {ci_pp(acc['ci'])}" if acc else "")
                         + f": {_verdict(full, 'a real gain', 'a real loss')}.")
    if s.has(ENC) and s.has("tfidf_logreg"):
        tf = s.comparison("tfidf_logreg", ENC, "macro_f1")
        if tf:
            prose.append(f"Over TF-IDF, encoder LoRA's macro F1 differs by {sf1(tf['diff'])} {ci_f1(tf['ci'])} "
                         f"({_verdict(tf, 'better', 'worse')}).")
    out += [" ".join(prose), ""] if prose else []
    if s.has(ENC) and s.has(DEC):
        rare, common = s.rare, s.tiers[-1]
        re_, rd = s.tier(ENC, rare), s.tier(DEC, rare)
        out += [f"The aggregates hide the tail. Accuracy is dominated by the {esc(common)} tier "
                f"({pct(s.tier(ENC, common)['true_share'])} of test examples), and macro F1 averages every class equally, "
                f"so neither shows that encoder LoRA has zero F1 on {count(re_['zero_f1_count'])} of the "
                f"{count(re_['n_classes'])} {esc(rare)} classes and the decoder on {count(rd['zero_f1_count'])} (Section 3).", ""]
    return out


def _external_rows(external: object) -> list[list[str]]:
    """The course's published numbers, labelled external: they come from another setup and split."""
    rows = external.get("rows", []) if isinstance(external, dict) else (external or [])
    out = []
    for row in rows:
        zero = row.get("zero_f1_count", row.get("zero_f1_classes"))
        out.append([f"*External: {esc(row.get('name') or row.get('model', 'course'))} ({esc(row.get('split', 'course'))})*",
                    pct(row.get("accuracy")), "", f1(row.get("macro_f1")), "", "–" if zero is None else count(zero), "", ""])
    return out


def _section_weighting(s: Study) -> tuple[list[str], list[FigureSpec]]:
    out = ["## 2. Class weighting on the decoder", ""]
    effects = s.results.get("weighting_effect", {})
    order = [a for a in (DEC, ENC, "encoder_full") if a in effects]
    if not order:
        return out + ["No weighted arm was trained, so there is no weighting effect to report; add the `_cw` arms "
                      "to `arms` and re-run.", ""], []
    rows = []
    for arm in order:
        e = effects[arm]
        before, after = s.test(e["vanilla"]), s.test(e["weighted"])
        tier = e["per_tier"][s.rare]
        rows.append([name(arm), f"{pct(before['accuracy'])} → {pct(after['accuracy'])}",
                     f"{f1(before['macro_f1'])} → {f1(after['macro_f1'])}",
                     f"{sf1(e['delta']['macro_f1'])} {ci_f1(e['ci'].get('macro_f1'))}", pct(e["relative_macro_f1"]),
                     f"{count(before['zero_f1_count'])} → {count(after['zero_f1_count'])}",
                     f"{pct(tier['predicted_share_before'])} → {pct(tier['predicted_share_after'])} ({pct(tier['true_share'])})",
                     pp(tier["delta_recall"])])
    out += _table(["Architecture", "Accuracy", "Macro F1", "Δ macro F1 [95% CI]", "Relative Δ", "Zero-F1",
                   f"{esc(s.rare).capitalize()}-tier predicted share (true)", f"{esc(s.rare).capitalize()} recall Δ"], rows)
    prose = []
    for arm in order:
        e = effects[arm]
        comp = {"diff": e["delta"]["macro_f1"], "ci": e["ci"].get("macro_f1"),
                "noise": within_noise(e["delta"]["macro_f1"], e["ci"].get("macro_f1"))}
        lead = "On the decoder" if arm == DEC else f"On {inline(arm)}"
        prose.append(f"{lead}, weighting moved macro F1 by {sf1(comp['diff'])} {ci_f1(comp['ci'])} "
                     f"({pct(e['relative_macro_f1'])} relative), accuracy by {pp(e['delta']['accuracy'])} and the zero-F1 count "
                     + (f"by {e['delta']['zero_f1_count']:+g}" if e["delta"]["zero_f1_count"] else "not at all")
                     + f": {_verdict(comp, 'a real gain', 'a real loss')}.")
    if DEC in effects and ENC in effects:
        dec, enc = abs(effects[DEC]["delta"]["macro_f1"]), abs(effects[ENC]["delta"]["macro_f1"])
        prose.append(f"The decoder's macro F1 change is {'smaller' if dec < enc else 'larger'} in magnitude than encoder LoRA's "
                     f"({sf1(effects[DEC]['delta']['macro_f1'])} vs {sf1(effects[ENC]['delta']['macro_f1'])}).")
    out += [" ".join(prose), ""]
    out += _mechanism(s, effects)
    spec = FigureSpec("weighting_by_tier", "weighting_tiers",
                      "Change in mean per-class F1 per tier when class weighting is added (weighted minus unweighted).",
                      {"tiers": s.tiers, "series": {name(a): [effects[a]["per_tier"][t]["delta_mean_f1"] for t in s.tiers]
                                                    for a in order}})
    return out + _figure(spec, 1), [spec]


def _mechanism(s: Study, effects: dict) -> list[str]:
    """What each model already did on the rare tier before weighting, and what weighting changed."""
    mech = s.results.get("mechanism", {})
    if DEC not in mech or ENC not in mech:
        return []
    d, e = mech[DEC], mech[ENC]
    gap_d = d["rare_predicted_share"] / d["rare_true_share"] if d["rare_true_share"] else 0.0
    gap_e = e["rare_predicted_share"] / e["rare_true_share"] if e["rare_true_share"] else 0.0
    rare = esc(s.rare)
    text = (f"Mechanism. Before weighting, the decoder assigned {pct(d['rare_predicted_share'])} of test predictions to the "
            f"{rare} tier against a true share of {pct(d['rare_true_share'])} ({rare} recall {pct(d['rare_recall'])}); encoder "
            f"LoRA assigned {pct(e['rare_predicted_share'])} ({rare} recall {pct(e['rare_recall'])}). ")
    if gap_d > gap_e:
        text += ("The decoder already predicted the tail closer to its true frequency, so re-weighting the loss had less "
                 "under-prediction to correct")
    else:
        text += ("The decoder under-predicted the tail at least as much as the encoder, so its weaker response is not "
                 "explained by calibration alone; the weights moved its predictions less")
    if DEC in effects:
        tier = effects[DEC]["per_tier"][s.rare]
        text += (f": weighting moved the decoder's {rare} share to {pct(tier['predicted_share_after'])} and its {rare} recall "
                 f"by {pp(tier['delta_recall'])}.")
    return [text, ""]


def _section_classes(s: Study) -> tuple[list[str], list[FigureSpec]]:
    out = ["## 3. Per-class analysis: rare vs common", ""]
    data = s.results["data"]
    rule = data.get("tier_rule", "")
    out += [f"Tiers by training count: {code(rule)}; " + ", ".join(
        f"{count(data['tier_sizes'][t])} {esc(t)} classes" for t in s.tiers) + ".", ""]
    arms = [a for a in ARMS if s.has(a)]
    header = ["Arm"] + [h for t in s.tiers for h in (f"{esc(t)} mean F1", f"{esc(t)} zero-F1 (of {data['tier_sizes'][t]})")] \
        + ["Spearman rho (F1 vs train count)"]
    rows = [[name(a)] + [v for t in s.tiers for v in (f1(s.tier(a, t)["mean_f1"]), count(s.tier(a, t)["zero_f1_count"]))]
            + [f1(s.test(a)["spearman_f1_vs_train_count"]["rho"])] for a in arms]
    out += _table(header, rows)
    figures: list[FigureSpec] = []
    if not (s.has(ENC) and s.has(DEC)):
        return out, figures
    prose = []
    wiped = [(a, t) for a in (ENC, DEC) for t in s.tiers if s.tier(a, t)["zero_f1_count"] == s.tier(a, t)["n_classes"]]
    if wiped:
        prose.append("**" + "; ".join(f"{name(a)} scores zero F1 on every {esc(t)} class" for a, t in wiped) + ".**")
    else:
        zero = {a: s.tier(a, s.rare)["zero_f1_count"] for a in (ENC, DEC)}
        of_rare = f"of {count(s.tier(ENC, s.rare)['n_classes'])} {esc(s.rare)} classes at zero F1"
        if zero[ENC] == zero[DEC]:
            prose.append(f"No tier goes entirely to zero on either model; both leave {count(zero[ENC])} {of_rare}.")
        else:
            worst, other = (ENC, DEC) if zero[ENC] > zero[DEC] else (DEC, ENC)
            prose.append(f"No tier goes entirely to zero on either model; the worst is {inline(worst)} with "
                         f"{count(zero[worst])} {of_rare} ({inline(other)}: {count(zero[other])}).")
    re_, rd = s.tier(ENC, s.rare), s.tier(DEC, s.rare)
    ce, cd = s.tier(ENC, s.tiers[-1]), s.tier(DEC, s.tiers[-1])
    prose.append(f"The {esc(s.rare)}-tier mean F1 is {f1(rd['mean_f1'])} for the decoder vs {f1(re_['mean_f1'])} for the encoder, "
                 f"the {esc(s.tiers[-1])}-tier {f1(cd['mean_f1'])} vs {f1(ce['mean_f1'])}: the architectures differ "
                 + ("more in the tail than in the head." if abs(rd["mean_f1"] - re_["mean_f1"]) > abs(cd["mean_f1"] - ce["mean_f1"])
                    else "at least as much in the head as in the tail."))
    rho_e, rho_d = s.test(ENC)["spearman_f1_vs_train_count"]["rho"], s.test(DEC)["spearman_f1_vs_train_count"]["rho"]
    prose.append(f"Per-class F1 tracks training count (Spearman rho {f1(rho_e)} encoder, {f1(rho_d)} decoder; Figure 3).")
    classes = s.results.get("class_differences", {}).get("classes", [])
    top = classes[:6]
    if top:
        rare_top = sum(c["tier"] == s.rare for c in top)
        prose.append("The classes where the models differ most (table below) are "
                     + ("mostly" if rare_top * 2 > len(top) else "mostly not") + f" in the {esc(s.rare)} tier.")
    out += [" ".join(prose), ""]
    if top:
        out += _table(["Class", "Tier", "Train count", "Encoder LoRA F1", "Decoder LoRA F1", "Decoder − encoder"],
                      [[esc(c["label"]), esc(c["tier"]), count(c["train_count"]), f1(c["f1_a"]), f1(c["f1_b"]), sf1(c["diff"])]
                       for c in top])
    out += _lifted_and_dropped(s)
    scatter = FigureSpec("f1_encoder_vs_decoder", "f1_scatter",
                         "Per-class test F1, encoder LoRA (x) vs decoder LoRA (y), coloured by tier; the dashed line is equal F1.",
                         {"x": [c["f1_a"] for c in classes], "y": [c["f1_b"] for c in classes],
                          "tiers": [c["tier"] for c in classes], "tier_names": s.tiers,
                          "x_label": "Encoder LoRA", "y_label": "Decoder LoRA"})
    by_count = FigureSpec("f1_vs_train_count", "f1_vs_count",
                          "Per-class test F1 against training examples (log scale) for both models.",
                          {"counts": [c["train_count"] for c in classes],
                           "series": {"Encoder LoRA": [c["f1_a"] for c in classes],
                                      "Decoder LoRA": [c["f1_b"] for c in classes]}})
    figures = [scatter, by_count]
    return out + _figure(scatter, 2) + _figure(by_count, 3), figures


def _lifted_and_dropped(s: Study) -> list[str]:
    lines = []
    for arm in (DEC, ENC):
        e = s.results.get("weighting_effect", {}).get(arm)
        if not e:
            continue
        parts = []
        for key, verb in (("lifted_off_zero", "lifted off zero"), ("fell_to_zero", "dropped to zero")):
            items = e.get(key, [])
            listed = ", ".join(f"{esc(c['label'])} ({count(c['train_count'])} train)" for c in items[:6])
            parts.append(f"{verb}: {listed if items else 'none'}" + (" and others" if len(items) > 6 else ""))
        lines.append(f"Weighting on {inline(arm)} " + "; ".join(parts) + ".")
    return [" ".join(lines), ""] if lines else []


def _section_latency(s: Study) -> tuple[list[str], list[FigureSpec]]:
    out = ["## 4. Latency and deployment", ""]
    if not s.latency or not s.latency.get("models"):
        return out + ["**Latency has not been measured for this run** (`latency/latency.json` is missing), so no deployment "
                      "recommendation can be made. Run `lorastudy bench RUN_DIR`, then `lorastudy report RUN_DIR`.", ""], []
    models = s.latency["models"]
    rows, fig = [], {"models": [], "p50": [], "p95": [], "ms_per_example": [], "throughput": []}
    for arm, m in models.items():
        v = m["variants"]["merged"]
        best = min(v["batched"], key=lambda b: b["ms_per_example"])
        rows.append([name(arm), ms(v["single"]["p50_ms"]), ms(v["single"]["p95_ms"]),
                     f"{ms(best['ms_per_example'])} (batch {best['batch_size']})", f"{best['examples_per_s']:.1f}",
                     seconds(v["time_for_64000_s"]), f"{v.get('memory_added_mb', v['peak_memory_mb']):.1f} MB",
                     f"{mb(m['size_on_disk_mb'].get('adapter'))} / {mb(m['size_on_disk_mb'].get('merged'))} MB"])
        for key, value in (("models", name(arm)), ("p50", v["single"]["p50_ms"]), ("p95", v["single"]["p95_ms"]),
                           ("ms_per_example", best["ms_per_example"]), ("throughput", best["examples_per_s"])):
            fig[key].append(value)
    env = s.latency.get("environment", {})
    out += _table(["Model (LoRA merged)", "Single p50", "Single p95", "Batched per example", "Examples/s",
                   "Time for 64,000", "Memory added", "Adapter / merged size"], rows)
    out += [f"*Measured on {esc(env.get('device', 'cpu'))}, {code(env.get('cpu', 'unknown CPU'))}. Memory added: the "
            "process's peak resident memory while serving minus its memory before the model was loaded.*", ""]
    costs = s.latency.get("costs", [])
    out += _table(["Context", "Model", "Measured vs target", "Instances", "Headroom", "Cost per million", "Monthly cost", "Meets target"],
                  [[esc(c["context"]), name(c["model"]), _against_target(c), count(c["instances"]),
                    pct(c["headroom"]), money(c["cost_per_million"]), money(c["monthly_cost"]),
                    "yes" if c["meets_sla"] else "**no**"] for c in costs])
    out += [f"*Costs at {money(costs[0]['price_per_hour'])} per instance-hour ({esc(costs[0]['device'])}).*", ""] if costs else []
    out += _recommendations(s, costs)
    spec = FigureSpec("latency", "latency", "Single-request latency and batched throughput of the merged models.", fig)
    return out + _figure(spec, 4), [spec]


def _against_target(row: dict) -> str:
    """Real-time rows compare p95 latency with the SLA; batch and audit rows compare job time with the window."""
    if row["kind"] == "realtime":
        return f"p95 {ms(row['p95_ms'])} / SLA {ms(row['sla_ms'])}"
    return f"{seconds(row['time_s'])} / window {seconds(row['window_s'])}"


def _recommendations(s: Study, costs: list[dict]) -> list[str]:
    """One recommendation per named context: the target first, then quality, then cost."""
    contexts = {c.name: c for c in (s.config.deployment.contexts if s.config else [])}
    arch = s.comparison(ENC, DEC, "macro_f1") if s.has(ENC) and s.has(DEC) else None
    lines = []
    for context in dict.fromkeys(c["context"] for c in costs):
        rows = {c["model"]: c for c in costs if c["context"] == context and c["model"] in (ENC, DEC)}
        if len(rows) < 2:
            continue
        described = contexts.get(context)
        head = f"**{esc(context)}**" + (f" ({esc(described.description)})" if described and described.description else "")
        meeting = [m for m, c in rows.items() if c["meets_sla"]]
        enc, dec = rows[ENC], rows[DEC]
        cost_text = f"{money(enc['monthly_cost'])} vs {money(dec['monthly_cost'])} per month (encoder vs decoder)"
        kind = enc["kind"]
        if not meeting:
            lines.append(f"{head}: recommend neither as measured; both miss the target (p95 {ms(enc['p95_ms'])} and "
                         f"{ms(dec['p95_ms'])}). More instances or a GPU would change this.")
            continue
        cheaper = min(meeting, key=lambda m: rows[m]["monthly_cost"])
        if len(meeting) == 1:
            choice, other = meeting[0], ({ENC, DEC} - {meeting[0]}).pop()
            why = f"only it meets the target (p95 {ms(rows[choice]['p95_ms'])} vs {ms(rows[other]['p95_ms'])})"
            change = f"the answer would change if the target were relaxed to {inline(other)}'s p95 of {ms(rows[other]['p95_ms'])}"
        elif kind == "audit":
            rec_e, rec_d = s.tier(ENC, s.rare)["recall"], s.tier(DEC, s.rare)["recall"]
            recall = s.comparison(ENC, DEC, "rare_recall")
            recalls = f"{pct(rec_d)} decoder vs {pct(rec_e)} encoder"
            if recall and recall["noise"]:
                choice = cheaper
                why = (f"both fit the window and their {esc(s.rare)}-tier recall ({recalls}; decoder minus encoder "
                       f"{pp(recall['diff'])} {ci_pp(recall['ci'])}) differs within run-to-run variation, so cost "
                       f"decides: {cost_text}")
                change = (f"a {esc(s.rare)}-tier recall gap beyond run-to-run variation in favour of the dearer model "
                          "would change the answer")
            else:
                choice = DEC if rec_d >= rec_e else ENC
                interval = (f"decoder minus encoder {pp(recall['diff'])} {ci_pp(recall['ci'])}" if recall else
                            "no interval in this run's results")
                why = f"both fit the window, {esc(s.rare)}-tier recall decides: {recalls} ({interval}), at {cost_text}"
                change = "a recall difference inside run-to-run variation in a re-run would make the cheaper model the choice"
        elif arch and not arch["noise"]:
            choice = DEC if arch["diff"] > 0 else ENC
            advantage = arch["ci"] if choice == DEC else [-arch["ci"][1], -arch["ci"][0]]
            why = (f"both meet the target and its macro F1 is higher by {f1(abs(arch['diff']))} {ci_f1(advantage)}, "
                   f"at {cost_text}")
            change = (f"a quality gap inside run-to-run variation would make {inline(({ENC, DEC} - {choice}).pop())} "
                      "the choice")
        else:
            choice = cheaper
            why = f"both meet the target and the quality difference is within run-to-run variation, so cost decides: {cost_text}"
            change = "a quality gap beyond run-to-run variation in favour of the dearer model would change the answer"
        if kind == "realtime" and len(meeting) == 2:
            slow = max(rows, key=lambda m: rows[m]["p95_ms"])
            change += f"; the break-even SLA is {inline(slow)}'s p95 of {ms(rows[slow]['p95_ms'])}"
        elif kind != "realtime":
            change += (f"; {inline(choice)} leaves {pct(rows[choice]['headroom'])} of the window free, so only a much larger "
                       "volume or shorter window would rule it out")
        lines.append(f"{head}: recommend **{inline(choice)}**, because {why}. What would change it: {change}.")
    if not lines:
        return ["No context has cost rows for both encoder and decoder LoRA; re-run `lorastudy bench` for both.", ""]
    return [item for line in lines for item in ("- " + line,)] + [""]


def _section_next(s: Study) -> list[str]:
    out = ["## 5. What to do next", ""]
    if not (s.has(ENC) and s.has(DEC)):
        return out + ["Both encoder and decoder LoRA are needed to reason about the bottleneck; train both arms first.", ""]
    rare = esc(s.rare)
    rd, rc = s.tier(DEC, s.rare), s.tier(DEC, s.tiers[-1])
    rho = s.test(DEC)["spearman_f1_vs_train_count"]["rho"]
    probe = s.results.get("logit_adjustment", {}).get(f"{DEC}__seed{s.results['arms'][DEC]['seeds'][0]}")
    effect = s.results.get("weighting_effect", {}).get(DEC)
    evidence = (f"the decoder's {rare}-tier mean F1 is {f1(rd['mean_f1'])} against {f1(rc['mean_f1'])} for the "
                f"{esc(s.tiers[-1])} tier, with {count(rd['zero_f1_count'])} {rare} classes at zero F1, and per-class F1 "
                f"follows training count (Spearman rho {f1(rho)})")
    weighting = (f"; class weighting moved its macro F1 by only {sf1(effect['delta']['macro_f1'])} {ci_f1(effect['ci'].get('macro_f1'))}"
                 if effect else "")
    if probe and probe["rare_mean_f1_after"] > probe["rare_mean_f1_before"] + 0.01:
        out += [f"**Bottleneck: the decision rule on the tail, not the representation.** Evidence: {evidence}{weighting}. "
                f"The post-hoc logit-adjustment probe (tau {probe['tau']}) raised {rare} recall from "
                f"{pct(probe['rare_recall_before'])} to {pct(probe['rare_recall_after'])} and test macro F1 from "
                f"{f1(probe['test_macro_f1_before'])} to {f1(probe['test_macro_f1_after'])} without retraining, so the features "
                "separate rare classes better than the learned prior lets them show.", "",
                "**Experiment: train decoder LoRA with a logit-adjusted loss** (`weighting.loss=logit_adjusted`). "
                "Hypothesis: the skewed class prior, not capacity, suppresses the tail, and a prior margin in the loss corrects it "
                "during training where loss weights did not. "
                f"Prediction: test macro F1 above the probe's {f1(probe['test_macro_f1_after'])} and fewer than "
                f"{count(rd['zero_f1_count'])} {rare} classes at zero F1; no gain would point to data volume instead.", ""]
    else:
        probe_text = (f"; the logit-adjustment probe left {rare} mean F1 at {f1(probe['rare_mean_f1_after'])} "
                      f"(from {f1(probe['rare_mean_f1_before'])})" if probe else "")
        out += [f"**Bottleneck: too few examples in the tail.** Evidence: {evidence}{weighting}{probe_text}. Re-balancing "
                "the decision does not recover classes the model never learned.", "",
                "**Experiment: add training examples to the rare tier** (collect or augment up to the tier threshold) and "
                "retrain decoder LoRA. Hypothesis: rare-class F1 is limited by data volume, as the F1–count correlation suggests. "
                f"Prediction: {rare}-tier mean F1 rises above {f1(rd['mean_f1'])} while the "
                f"{esc(s.tiers[-1])} tier stays within run-to-run variation.", ""]
    out += ["Why this rather than the alternatives: a larger decoder would again confound size with everything else and "
            "costs more at inference (Section 4), and stronger class weights target the same tail with a tool that "
            "moved the decoder little. This experiment is one extra run per architecture and directly tests the "
            "diagnosed bottleneck.", ""]
    return out


def _limitations(s: Study) -> list[str]:
    parts = ["## Limitations", ""]
    text = "This is an applied comparison: the two models differ in size"
    if s.has(ENC) and s.has(DEC):
        text += (f" ({params(s.first_run(ENC)['parameters']['total'])} vs "
                 f"{params(s.first_run(DEC)['parameters']['total'])} parameters)")
    text += ", pretraining data and architecture at once, so no difference can be attributed to architecture alone."
    source = s.config.models.decoder.source if s.config else ""
    quant = re.search(r"(Q\d_[0-9A-Z_]+|IQ\d\w*)", source)
    if source.lower().endswith(".gguf"):
        text += (f" The decoder's weights were quantised (GGUF {code(quant.group(1)) if quant else 'quantised'}), "
                 "then dequantised for training, which may cost it some quality.")
    if s.has(ENC) and s.has(DEC):
        enc, dec = s.run_record(ENC), s.run_record(DEC)
        if enc and dec and enc.get("epochs") != dec.get("epochs"):
            text += (f" The training budgets differ: encoder LoRA trained {enc['epochs']:g} epochs ({count(enc['steps'])} steps), "
                     f"decoder LoRA {dec['epochs']:g} ({count(dec['steps'])} steps), so the gap between them is measured "
                     "at these budgets, not at convergence.")
    if s.n_seeds == 1:
        text += " Each arm ran with one seed: the intervals cover test-set sampling, not training variance."
    device = (s.latency or {}).get("environment", {}).get("device")
    if device == "cpu":
        text += " Latency was measured on a shared CPU, not a GPU; absolute times and costs will differ on other hardware."
    return parts + [text, ""]


def _experiment_log(runs: list[dict]) -> list[str]:
    order = {arm: i for i, arm in enumerate(ARMS)}
    rows = []
    for r in sorted(runs, key=lambda r: (order.get(r.get("arm"), 99), r.get("seed", 0))):
        model = r.get("model") or {}
        env = r.get("environment") or {}
        libs = env.get("libraries") or env
        versions = ", ".join(f"{k} {libs[k]}" for k in ("torch", "transformers", "peft") if libs.get(k))
        identity = model.get("revision") or (model.get("sha256") or "")[:16]
        hardware = f"{r.get('device', '')}, {r.get('threads', '')} threads, {r.get('precision', '')}; {env.get('cpu', '')}"
        rows.append([name(r["arm"]), code(r["seed"]), code(r.get("config_hash", "")),
                     code(model.get("source", "none")), code(identity or "–"), count(r.get("epochs", 0)),
                     count(r.get("steps", 0)), f"{r.get('wall_time_s', 0):.1f} s", _run_memory(r),
                     code(hardware), code(versions), code((env.get("git_commit") or "")[:12])])
    return ["## Experiment log", ""] + _table(
        ["Arm", "Seed", "Config hash", "Model source", "sha256 / revision", "Epochs", "Steps", "Wall time",
         "Peak memory", "Hardware", "Libraries", "Git commit"], rows) + [
        "*Peak memory: the process's peak resident memory during the run (GPU: peak allocated), including Python, "
        "the libraries and what earlier runs in the same process freed but the allocator kept; in brackets, the "
        "process's memory when the run started.*", ""]


def _run_memory(run: dict) -> str:
    at_start = run.get("memory_at_start_mb")
    return f"{run.get('peak_memory_mb', 0):.1f} MB" + ("" if at_start is None else f" ({at_start:.1f} MB)")


# --- assembly ------------------------------------------------------------------


def build_note(results: dict, latency: dict | None, runs: list[dict], config: StudyConfig | None) -> Note:
    """The note as Markdown plus the figures it links; pure, so tests need no files."""
    s = Study(results, latency, runs, config)
    title = config.report.title if config else "LoRA on an encoder and a decoder for long-tail classification"
    data = results["data"]
    intro = (f"Study {code(results['study']['name'])}: {count(data['num_classes'])} classes"
             + (f", encoder {code(config.models.encoder.source)}, decoder {code(config.models.decoder.source)}" if config else "")
             + ". Every number below is read from this run's `evaluation/results.json`, `latency/latency.json` or "
               "`runs/*/run.json`.")
    lines = [f"# {esc(title)}", "", intro, ""]
    lines += _section_systems(s)
    weighting, f_weighting = _section_weighting(s)
    classes, f_classes = _section_classes(s)
    latency_lines, f_latency = _section_latency(s)
    lines += weighting + classes + latency_lines + _section_next(s) + _limitations(s) + _experiment_log(runs)
    return Note(title=title, markdown="\n".join(lines), figures=f_weighting + f_classes + f_latency)


def write_note(run_dir: Path) -> Path:
    """Write note/note.md, a self-contained note/note.html and note/figures/*.png; return the HTML path."""
    run_dir = Path(run_dir)
    results_path = run_dir / "evaluation" / "results.json"
    if not results_path.exists():
        raise StudyError(f"{results_path} does not exist, so there is nothing to report.",
                         "run `lorastudy run --stage evaluate` (or the whole study) first.")
    results = artifacts.read_json(results_path)
    latency_path = run_dir / "latency" / "latency.json"
    latency = artifacts.read_json(latency_path) if latency_path.exists() else None
    runs = [artifacts.read_json(p) for p in sorted((run_dir / "runs").glob("*/run.json"))]
    config_path = run_dir / "config.resolved.yaml"
    config = load_config(config_path) if config_path.exists() else None
    note = build_note(results, latency, runs, config)

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
    template = Environment(loader=PackageLoader("lorastudy", "templates"), autoescape=True).get_template("note.html.j2")
    return artifacts.write_text(out / "note.html", template.render(title=note.title, body=body))
