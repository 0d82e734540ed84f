"""The note's figures: small matplotlib functions from plain data to PNG bytes.

`report.build_note` decides what to plot (a `FigureSpec`: kind + data); this
module only draws. Colours are Okabe-Ito (colour-blind safe), and every mark
also differs by shape or position so the figures survive greyscale printing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for i, tier in enumerate(data["tier_names"]):
        points = [(x, y) for x, y, t in zip(data["x"], data["y"], data["tiers"]) if t == tier]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, s=36, color=OKABE_ITO[i % 8], marker=MARKERS[i % 6], edgecolor="black",
                       linewidth=0.4, alpha=0.85, label=f"{tier} ({len(points)} classes)")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="equal F1")
    ax.set(xlim=(-0.03, 1.0), ylim=(-0.03, 1.0), xlabel=f"{data['x_label']} per-class F1",
           ylabel=f"{data['y_label']} per-class F1", title=f"Above the line: {data['y_label']} scores higher")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _f1_vs_count(data: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, f1s) in enumerate(data["series"].items()):
        ax.scatter(data["counts"], f1s, s=30, color=OKABE_ITO[(i + 1) % 8], marker=MARKERS[i % 6],
                   edgecolor="black", linewidth=0.4, alpha=0.8, label=name)
    ax.set_xscale("log")
    ax.set(xlabel="training examples per class (log scale)", ylabel="test F1", ylim=(-0.03, 1.0),
           title="Per-class F1 against training count")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3, which="both")
    return fig


def _grouped_bars(ax: plt.Axes, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        positions = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(positions, values, width=width, color=OKABE_ITO[i % 8], edgecolor="black", linewidth=0.5,
               hatch=["", "//", "..", "xx"][i % 4], label=name)
    ax.set_xticks(range(len(groups)), groups)


def _weighting_tiers(data: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    _grouped_bars(ax, data["tiers"], data["series"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="frequency tier", ylabel="change in mean per-class F1\n(weighted minus unweighted)",
           title="What class weighting changed, per tier")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _latency(data: dict) -> plt.Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.6))
    _grouped_bars(left, data["models"], {"single p50": data["p50"], "single p95": data["p95"],
                                         "batched, per example": data["ms_per_example"]})
    left.set(ylabel="milliseconds", title="Latency (lower is better)")
    left.legend(frameon=False)
    right.bar(range(len(data["models"])), data["throughput"], color=OKABE_ITO[2], edgecolor="black", linewidth=0.5)
    right.set_xticks(range(len(data["models"])), data["models"])
    right.set(ylabel="examples per second", title="Batched throughput (higher is better)")
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelrotation=15)
    fig.tight_layout()
    return fig


DRAW = {"f1_scatter": _f1_scatter, "f1_vs_count": _f1_vs_count, "weighting_tiers": _weighting_tiers,
        "latency": _latency}
