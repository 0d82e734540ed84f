"""The technical note: lays out the tables and figures and words the findings through templates.

What the numbers say is decided in `findings/` (one module per note section); the
tables and figures are laid out by `layout.py` (cells by `tables.py`); this module
hands both with the findings to `templates/note.md.j2`, where every sentence is
selected by a finding's verdict, and writes the note. Two rules keep it traceable
and safe (`formatting.py`):

* every number is printed by one of the formatters (percent with 1 decimal, F1
  with 3, ms with 3 significant digits, ...) straight from an artifact value, so
  `lorastudy check --results` can trace it back;
* every dataset- or config-derived string goes through `esc` (HTML and Markdown
  escaping), because Markdown passes raw HTML through to note.html.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import markdown
from jinja2 import Environment, PackageLoader, StrictUndefined

from lorastudy.core import artifacts
from lorastudy.core.prose import count_prose_words
from lorastudy.study.config import StudyConfig
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError
from lorastudy.measure.evaluation import SCHEMA_VERSION as RESULTS_SCHEMA
from lorastudy.note.figures import FigureSpec, render
from lorastudy.note.findings import DEC, ENC, Findings, derive
from lorastudy.note.findings.next_result import next_run
from lorastudy.note.formatting import FILTERS, count, esc, ms, seconds
from lorastudy.note.layout import Layout
from lorastudy.note.tables import finding_ci

CANDIDATE_PROSE = {"decision_rule": "the decision rule on the tail", "rare_data": "too few rare-tier examples",
                   "training_budget": "the training budget", "truncation": "truncated inputs",
                   "representation": "adapter capacity", "quantised_base": "the quantised base weights"}


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


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("lorastudy.note", "templates"), autoescape=False, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)
    env.filters.update(FILTERS)
    return env



def _data_summary(run_dir: Path | None) -> dict:
    path = run_dir / "data" / "summary.json" if run_dir else None
    return artifacts.read_json(path) if path and path.exists() else {}


def _per_class(run_dir: Path) -> dict[str, list[dict]]:
    """Every run's per-class rows (evaluation/per_class/<run>.csv), F1 as numbers; evaluable classes only."""
    import csv

    out = {}
    for path in sorted((run_dir / "evaluation" / "per_class").glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as handle:
            out[path.stem] = [{"label": row["label"], "f1": float(row["f1"]), "tier": row.get("tier"),
                               "train_count": float(row.get("train_count") or 0)}
                              for row in csv.DictReader(handle) if str(row.get("evaluable", "True")) == "True"
                              and row.get("f1") not in (None, "")]
    return out


# --- assembly ------------------------------------------------------------------


def build_note(results: dict, latency: dict | None, runs: list[dict], config: StudyConfig,
               summary: dict | None = None, per_class: dict[str, list[dict]] | None = None,
               next_record: dict | None = None) -> Note:
    """The note as Markdown plus the figures it links; pure, so tests need no files. `next_record`:
    evaluation/next.json, once `lorastudy next` has run Section 5's experiment (a closing section words it)."""
    found = derive(results, latency, config, runs, summary, per_class)
    layout = Layout(results, latency, runs, config, found)
    figures = layout.figures()
    numbered = {key: None for key in ("budget", "weighting", "scatter", "by_count", "latency")}
    numbered.update({key: index for index, key in enumerate(figures, start=1)})
    by_id = {f.id: f for f in found.findings}
    text = _environment().get_template("note.md.j2").render(
        title=esc(config.report.title), config=config, results=results, latency=latency, runs=runs, f=by_id,
        findings=found, layout=layout, figures=figures, fig=numbered, summary=summary or {}, ENC=ENC, DEC=DEC,
        records={(r.get("arm"), r.get("seed")): r for r in runs}, candidate_prose=CANDIDATE_PROSE,
        ci=finding_ci, flip_text=_flip_text, nx=next_run(next_record) if next_record else None)
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
    """The quantity that flips a decision, at its threshold, against the context's own value; with unfit timings,
    the range the threshold moves over with the measured drift (`low`, `high`, set in the findings)."""
    quantity, new, base = flip["quantity"], flip["value"], flip["base"]
    word = {"peak_rps": lambda v: f"{v:,.1f} requests/s", "p95_sla_ms": ms,
            "examples": lambda v: f"{count(round(v))} texts", "window_minutes": lambda v: seconds(v * 60)}[quantity]
    spread = (f" ({word(flip['low'])} to {word(flip['high'])} under the timing drift)"
              if flip.get("low") else "")
    side = "under" if flip["direction"] == "down" else "over"  # the choice changes past the threshold, not at it
    what = {"peak_rps": f"an arrival rate {side}", "p95_sla_ms": f"a p95 target {side}", "examples": side,
            "window_minutes": f"a window {side}"}[quantity]
    per_job = " per job" if quantity == "examples" else ""
    return f"{what} {word(new)}{per_job}{spread} instead of {word(base)}".strip()


def write_note(run_dir: Path, keep_findings: bool = False) -> Path:
    """Write evaluation/findings.json, note/note.md, a self-contained note/note.html and note/figures/*.png.

    `keep_findings`: leave an existing findings.json as it is (`lorastudy next`: the proposal it ran stays frozen)."""
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
    next_path = run_dir / "evaluation" / "next.json"
    note = build_note(results, latency, runs, load_config(config_path), _data_summary(run_dir), _per_class(run_dir),
                      artifacts.read_json(next_path) if next_path.exists() else None)
    if not (keep_findings and (run_dir / "evaluation" / "findings.json").exists()):
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
