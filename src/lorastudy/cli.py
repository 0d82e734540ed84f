"""The `lorastudy` command: a thin Typer layer over the Python API.

Heavy libraries (torch, transformers) are imported inside the commands so that
`--help` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lorastudy.core.errors import StudyError

app = typer.Typer(
    help="Run an honest study of LoRA on an encoder and a decoder for long-tail text classification, "
    "and write the technical note that reports it.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[Optional[str], typer.Option(
    "--config", "-c", help="A profile name (demo, smoke, course) or a YAML study file. Default: demo.")]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", "-s", help="Override one config value, e.g. --set train.epochs=1 (repeatable).")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]

_state = {"debug": False}


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, debug: DebugOption = False) -> None:
    _state["debug"] = debug
    # transformers' load reports repeat what each run logs itself (newly initialised weights).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


def _guard(func):
    """Turn a StudyError into one line and exit code 2; keep tracebacks for --debug."""
    try:
        return func()
    except StudyError as exc:
        if _state["debug"]:
            raise
        typer.secho(f"error: {exc.one_line()}", fg="red", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.secho("interrupted: finished runs are kept; run the same command again to resume.", err=True)
        raise typer.Exit(130) from None


@app.command()
def run(
    config: ConfigOption = None,
    set_: SetOption = None,
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Run directory (default: the config's output_dir).")] = None,
    stage: Annotated[Optional[list[str]], typer.Option("--stage", help="Run only these stages: data, train, evaluate, bench, report (repeatable).")] = None,
    report_to: Annotated[Optional[list[str]], typer.Option("--report-to", help="Experiment tracker for the HF Trainer: mlflow, tensorboard, wandb.")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow model code from the hub to run (off by default).")] = False,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Allow pickled .bin weights (refused by default).")] = False,
    debug: DebugOption = False,
) -> None:
    """Run the whole study: data, training of every arm and seed, evaluation, latency, and the note.

    With no arguments it runs the embedded offline `demo` profile. An interrupted
    study resumes where it stopped when you run the same command again.
    """
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.study.config_loading import load_config
        from lorastudy.pipeline import STAGES, run_study

        overrides = list(set_ or [])
        if report_to:
            overrides.append(f"report_to={json.dumps(report_to)}")
        if trust_remote_code:
            overrides.append("trust_remote_code=true")
        if allow_pickle:
            overrides.append("allow_pickle=true")
        cfg = load_config(config, overrides)
        run_dir = run_study(cfg, output_dir=output_dir, stages=stage or STAGES)
        note = run_dir / "note" / "note.html"
        typer.echo(str(note if note.exists() else run_dir))

    _guard(go)


@app.command()
def data(
    config: ConfigOption = None,
    set_: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    debug: DebugOption = False,
) -> None:
    """Describe a study's data: rows per split, classes, frequency table, tiers, text lengths, warnings."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.study.config_loading import load_config
        from lorastudy.study.data import describe_data
        from lorastudy.study.summary import render_summary

        summary = describe_data(load_config(config, list(set_ or [])))
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            render_summary(summary)

    _guard(go)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="The study file to write, e.g. my_study.yaml (never overwritten).")],
    from_: Annotated[str, typer.Option("--from", help="The profile (demo, smoke, course) or YAML study file to extend.")] = "demo",
    debug: DebugOption = False,
) -> None:
    """Write a commented starting study file that extends a profile: your data keys first, the rest inherited."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.core import artifacts
        from lorastudy.study.config_loading import PROFILES
        from lorastudy.study.starter import starter_file

        if path.exists():
            raise StudyError(f"{path} already exists.", "choose another file name, or delete it first.")
        base_ref = from_ if from_ in PROFILES else os.path.relpath(Path(from_).resolve(), path.resolve().parent)
        artifacts.write_text(path, starter_file(path, from_, base_ref))
        typer.echo(f"Wrote {path}: set data.source (and the column names), then `lorastudy data --config {path}`.")

    _guard(go)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory that has evaluation/results.json.")],
    debug: DebugOption = False,
) -> None:
    """Write the technical note (note.md, note.html, figures) from a run directory's artifacts."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.pipeline import write_report

        typer.echo(str(write_report(run_dir)))

    _guard(go)


@app.command("next")
def next_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory whose note has been written (evaluation/findings.json).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and its estimated time; train nothing.")] = False,
    max_minutes: Annotated[float | None, typer.Option(
        "--max-minutes", help="Train at most this long (estimated from the study's own step times): the other arms "
                              "are dropped, then seeds (down to 2); exit 2 if not even that fits. Default, when neither "
                              "--arms nor --seeds is given: fit to 10 minutes, running the smallest honest subset "
                              "(2 seeds of the prediction's arm) where not even that fits.")] = None,
    arms: Annotated[str | None, typer.Option(
        "--arms", help="Comma-separated arms of the design to train; must include the first (the prediction's).")] = None,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", help="Comma-separated seeds of the design to train (2 or more).")] = None,
    debug: DebugOption = False,
) -> None:
    """Run the experiment the note's Section 5 proposes and score its prediction: held, refuted or inconclusive.

    The new runs train inside RUN_DIR (next/<design>/runs/), resumable like a study; the study's own runs and
    results are only read. The result goes to evaluation/next.json and a closing section of the note. A subset
    (--arms, --seeds, --max-minutes) keeps the frozen threshold; fewer seeds widen the interval, so the verdict
    is more often inconclusive, never an easier "held". Asking a larger subset later reuses the finished runs.
    """
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.followup.runner import run_next
        from lorastudy.followup.subset import parse_list

        run_next(run_dir, dry_run=dry_run, max_minutes=max_minutes, arms=parse_list(arms, "--arms"),
                 seeds=parse_list(seeds, "--seeds", int))

    _guard(go)


@app.command()
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (a study's output_dir).")],
    debug: DebugOption = False,
) -> None:
    """List every artifact of a run directory as ok, damaged, missing or unrecorded (exit 1 unless all are ok).

    Sizes and sha256 are compared with those recorded when each file was written (runs/*/run.json,
    manifest.json). Running the study again redoes exactly the parts that are not ok.
    """
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.core.integrity import verify_run_dir

        outcome = verify_run_dir(run_dir)
        for state in outcome.states:
            typer.echo(f"{state.state:<10} {state.path}" + (f"  ({state.detail})" if state.detail else ""))
        problems = outcome.problems
        typer.echo(f"{len(outcome.states)} artifacts, {len(problems)} not ok; checked "
                   f"{outcome.bytes_checked / 2**20:.1f} MB in {outcome.seconds:.2f} s.")
        if problems:
            typer.secho(f"Run the study again to redo them: lorastudy run --config {run_dir / 'config.resolved.yaml'} "
                        f"--output-dir {run_dir}", err=True)
            raise typer.Exit(1)

    _guard(go)


@app.command()
def check(
    note: Annotated[Path, typer.Argument(help="A technical note in Markdown or HTML (yours or a generated one).")],
    results: Annotated[Optional[Path], typer.Option("--results", help="A run directory to cross-check every number against.")] = None,
    debug: DebugOption = False,
) -> None:
    """Check a note against the rubric: evidence per section, prose length, and (with --results) every number."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.check.verdict import check_note, render_check

        outcome = check_note(note, results)
        render_check(outcome)
        if not outcome.complete:
            raise typer.Exit(1)

    _guard(go)


@app.command()
def bench(
    target: Annotated[Path, typer.Argument(help="A run directory (benchmarks every trained arm), one run folder, "
                                                "a saved model folder or a model source (pypi:..., tiny:bert).")],
    config: ConfigOption = None,
    set_: SetOption = None,
    texts: Annotated[Optional[Path], typer.Option("--texts", help="Requests to time a single model on, one per line "
                                                  "(default: a few built-in complaints).")] = None,
    debug: DebugOption = False,
) -> None:
    """Measure latency, throughput, memory and size, and translate them into cost per operational context."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.measure.latency import bench_command

        bench_command(target, config, list(set_ or []), texts_file=texts)

    _guard(go)


ArmOption = Annotated[str, typer.Option("--arm", help="The trained arm, e.g. encoder_lora.")]
SeedOption = Annotated[Optional[int], typer.Option("--seed", help="The seed of the run (default: the study's first).")]


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with the arm trained.")],
    arm: ArmOption,
    input_: Annotated[Path, typer.Option("--input", help="Texts to label: .csv/.jsonl/.parquet with the study's "
                                                         "text column, or any other file with one text per line.")],
    output: Annotated[Path, typer.Option("--output", help="Where to write the predictions: .csv, .jsonl or .parquet.")],
    seed: SeedOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Texts per batch (default: the "
                                                      "run's eval_batch_size).")] = None,
    debug: DebugOption = False,
) -> None:
    """Label new texts with a trained arm as the study served it: predicted label, its probability, the top 3."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.serve.predict import predict_file

        result = predict_file(run_dir, arm, input_, output, seed=seed, batch_size=batch_size)
        typer.echo(f"{len(result)} texts labelled by {arm}: {output}")

    _guard(go)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with the arm trained and evaluated.")],
    out: Annotated[Path, typer.Argument(help="The model folder to create (must not exist, or be empty).")],
    arm: ArmOption,
    seed: SeedOption = None,
    format_: Annotated[str, typer.Option("--format", help="safetensors (transformers) or onnx (onnxruntime).")]
    = "safetensors",
    debug: DebugOption = False,
) -> None:
    """Write a self-contained model folder (LoRA merged, label names, tokenizer, model card) to deploy an arm."""
    _state["debug"] = _state["debug"] or debug

    def go():
        from lorastudy.serve.export import export_model

        typer.echo(str(export_model(run_dir, arm, out, seed=seed, fmt=format_)))

    _guard(go)


if __name__ == "__main__":
    sys.exit(app())
