"""The note's figures: small matplotlib functions from plain data to PNG bytes.

`report.build_note` decides what to plot (a `FigureSpec`: kind + data); this
module only draws. Colours are Okabe-Ito (colour-blind safe), and every mark
also differs by shape or position so the figures survive greyscale printing.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass, field

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

OKABE_ITO = ["#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P"]
DPI = 150


@dataclass(frozen=True)
class FigureSpec:
    """What to draw: `kind` picks the drawing function, `data` holds plain lists and names."""

    name: str
    kind: str
    caption: str
    data: dict = field(default_factory=dict)


def render(spec: FigureSpec) -> bytes:
    """Draw one figure and return it as PNG bytes."""
    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9})
    fig = DRAW[spec.kind](spec.data)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _f1_scatter(data: dict) -> plt.Figure:
    """Classes at the same point (often many at (0, 0)) are drawn once, sized and labelled by their count."""
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    for i, tier in enumerate(data["tier_names"]):
        points = Counter((round(x, 3), round(y, 3)) for x, y, t in zip(data["x"], data["y"], data["tiers"]) if t == tier)
        if not points:
            continue
        xs, ys = zip(*points)
        sizes = [30 * n for n in points.values()]
        ax.scatter(xs, ys, s=sizes, color=OKABE_ITO[i % 8], marker=MARKERS[i % 6], edgecolor="black",
                   linewidth=0.4, alpha=0.75, label=f"{tier} ({sum(points.values())} classes)")
        for (x, y), n in points.items():
            if n > 1:
                ax.annotate(f"{n}", (x, y), textcoords="offset points", xytext=(6, 6 + 8 * i), fontsize=8)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="equal F1")
    ax.set(xlim=(-0.05, 1.0), ylim=(-0.05, 1.0), xlabel=f"{data['x_label']} per-class F1",
           ylabel=f"{data['y_label']} per-class F1", title=f"Above the line: {data['y_label']} higher")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _f1_vs_count(data: dict) -> plt.Figure:
    """Per-class F1 against training count, each model's least-squares line on log2(count) drawn (a description of
    the cross-class trend, not a causal slope), and the tier cut marked where there is one."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    counts = np.asarray(data["counts"], dtype=float)
    for i, (name, f1s) in enumerate(data["series"].items()):
        colour = OKABE_ITO[(i + 1) % 8]
        ax.scatter(counts, f1s, s=30, color=colour, marker=MARKERS[i % 6], edgecolor="black", linewidth=0.4,
                   alpha=0.8, label=name)
        positive = counts > 0
        if positive.sum() >= 3 and np.ptp(np.log2(counts[positive])) > 0:
            slope, intercept = np.polyfit(np.log2(counts[positive]), np.asarray(f1s)[positive], 1)
            xs = np.geomspace(counts[positive].min(), counts[positive].max(), 50)
            ax.plot(xs, np.clip(intercept + slope * np.log2(xs), -0.03, 1.0), color=colour,
                    linestyle=["--", ":", "-."][i % 3], linewidth=1.2, label=f"{name} fit ({slope:+.3f} per doubling)")
    for threshold in data.get("thresholds") or []:
        ax.axvline(threshold + 0.5, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"tier cut ({threshold:g})", (threshold + 0.5, 0.93), textcoords="offset points", xytext=(3, 0),
                    fontsize=8, color="dimgrey")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set(xlabel="training examples per class (log scale)", ylabel="test F1", ylim=(-0.03, 1.0),
           title="Per-class F1 against training count")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, which="both")
    return fig


def _val_curves(data: dict) -> plt.Figure:
    """Each arm's validation macro F1 against training examples seen (seed means), the matched budget marked."""
    fig, ax = plt.subplots(figsize=(5.4, 3.2))
    for i, (name, points) in enumerate(data["series"].items()):
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        spread = [p[2] if len(p) > 2 and p[2] is not None else 0.0 for p in points]  # seed SD; 0 with one seed
        # two evaluations are no curve: a line between them would draw a trajectory nobody measured
        style = ["-", "--", ":", "-."][i % 4] if len(points) >= 3 else "none"
        ax.errorbar(xs, ys, yerr=spread, color=OKABE_ITO[(i + 1) % 8], marker=MARKERS[i % 6], markeredgecolor="black",
                    linewidth=1.5, linestyle=style, capsize=3, label=name)
    ax.axvline(data["matched"], color="grey", linestyle=":", linewidth=1)
    ax.annotate("matched budget", (data["matched"], ax.get_ylim()[0]), textcoords="offset points", xytext=(4, 4),
                fontsize=8, color="dimgrey")
    ax.set(xlabel="training examples seen", ylabel="validation macro F1", title="Validation macro F1 at each evaluation")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _grouped_bars(ax: plt.Axes, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(positions, values, width=width, color=OKABE_ITO[i % 8], edgecolor="black", linewidth=0.5,
               hatch=["", "//", "..", "xx"][i % 4], label=name)
    ax.set_xticks(range(len(groups)), groups)


def _weighting_tiers(data: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5.4, 3.0))
    _grouped_bars(ax, data["tiers"], data["series"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="frequency tier", ylabel="Δ macro F1 from the tier",
           title="Where weighting changed macro F1")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _latency(data: dict) -> plt.Figure:
    """Horizontal bars (names never overlap) on log axes (a fast baseline cannot flatten the LoRA models)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 0.5 + 0.45 * len(data["models"])), sharey=True)
    rows = range(len(data["models"]))
    height = 0.38
    left.barh([r - height / 2 for r in rows], data["p50"], height=height, color=OKABE_ITO[0], edgecolor="black",
              linewidth=0.5, label="p50")
    left.barh([r + height / 2 for r in rows], data["p95"], height=height, color=OKABE_ITO[1], edgecolor="black",
              linewidth=0.5, hatch="//", label="p95")
    left.set(xscale="log", xlabel="single-request latency, ms (log)")
    left.legend(frameon=False, fontsize=8)
    right.barh(list(rows), data["throughput"], height=0.6, color=OKABE_ITO[2], edgecolor="black", linewidth=0.5)
    right.set(xscale="log", xlabel="batched examples/s (log)")
    for value, row in zip(data["throughput"], rows):
        right.annotate(f"{value:,.0f}", (value, row), textcoords="offset points", xytext=(3, -3), fontsize=8)
    left.set_yticks(list(rows), data["models"])
    left.invert_yaxis()
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3, which="both")
        low, high = ax.get_xlim()
        wide = math.log10(high / low) > 1.5  # 2, 5, 10, 20 ... on a narrow axis; powers of ten on a wide one
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        if len(ticks) < 3:  # a narrow span: ticks every 1-2-5 step would leave one label, so place them evenly
            ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(
                [float(f"{v:.2g}") for v in [low * (high / low) ** (k / 4) for k in range(5)]]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    return fig


DRAW = {"val_curves": _val_curves, "f1_scatter": _f1_scatter, "f1_vs_count": _f1_vs_count, "weighting_tiers": _weighting_tiers,
        "latency": _latency}
