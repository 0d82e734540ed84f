"""Limitations (and the experiment log's caveat): what the note must qualify, decided from the run's records."""

from __future__ import annotations

from typing import Literal

from lorastudy.note.findings.base import DEC, ENC, Source, Verdicts
from lorastudy.note.findings.next_experiment import QUANTISED
from lorastudy.study.arms import arm_spec


UNEVEN_STEP_TIME = 1.5
"""Seconds per step of one recipe's runs this far apart: more than run-to-run jitter, a machine shared while training."""
TRUNCATION_WORTH_STATING = 0.01
"""A share of texts cut below this (a handful of outliers) cannot move a result the note reports."""


class LimitationVerdicts(Verdicts):
    sizes_differ: bool = False
    """The two LoRA models have different total parameter counts, so no gap between them is attributable to
    architecture alone."""
    pooling: list[str] | None = None
    """The encoder's and the decoder's LoRA pooling, when they differ (e.g. mean vs last token): one more
    difference between the two besides architecture."""
    passes: list[float] | None = None
    """Passes over the training data of the encoder's and the decoder's LoRA arm, when they differ."""
    quantised: str | None = None
    """The quantisation the decoder's base weights were dequantised from (e.g. Q4_1), when its source is a quantised
    GGUF file: a loss of precision that confounds every encoder-vs-decoder number."""
    budgets_differ: bool = False
    """The two LoRA arms' first-seed runs trained different numbers of steps (their run records), so every gap
    between them is measured at these budgets."""
    truncated: bool = False
    """At least TRUNCATION_WORTH_STATING of the encoder's or the decoder's inputs lost their end to the maximum
    length (data summary)."""
    duplicates: Literal["deduplicated", "leaked"] | None = None
    """Texts shared between splits: dropped before training, or left in so that test rows repeat a training text;
    None when neither is recorded."""
    commits_mixed: int = 0
    """How many commits of this tool the runs were trained at (their records' git commit) when more than one, else
    0: a code change between runs is then not ruled out, which the note discloses."""
    uneven_step_time: dict | None = None
    """The recipe (an arm and its weighted twin: weights cost nothing per step) whose runs' seconds per step differ
    most, with the ratio (slowest / fastest), when it exceeds UNEVEN_STEP_TIME: runs of one recipe took unequal
    time, so the machine was shared while training and the log's wall times measure no speed."""
    peak_memory_per_run: bool = False
    """Every run that records its peak-memory scope trained in its own process, so a peak is that run's alone (the
    log's caption); otherwise a peak may include what earlier runs left allocated."""


def limitation_verdicts(src: Source, runs: list[dict], summary: dict) -> LimitationVerdicts:
    sizes_differ = budgets_differ = False
    pooling = passes = None
    if src.has(ENC) and src.has(DEC):
        pools = [arm_spec(src.config, arm, 0, "").model.pooling for arm in (ENC, DEC)]  # type: ignore[arg-type, union-attr]
        pooling = pools if pools[0] != pools[1] else None
        epochs = [(src.results["runs"][src.first_run(arm)].get("training") or {}).get("epochs") for arm in (ENC, DEC)]
        passes = epochs if all(epochs) and epochs[0] != epochs[1] else None
        totals = [(src.results["runs"][src.first_run(arm)].get("parameters") or {}).get("total") for arm in (ENC, DEC)]
        sizes_differ = totals[0] != totals[1]
        records = {(r.get("arm"), r.get("seed")): r for r in runs}
        first = [records.get((arm, src.results["arms"][arm]["seeds"][0])) for arm in (ENC, DEC)]
        budgets_differ = all(first) and first[0].get("steps") != first[1].get("steps")
    truncation = summary.get("truncation") or {}
    cut = max((truncation.get(model) or {}).get("share") or 0 for model in ("encoder", "decoder"))
    duplicates = summary.get("duplicates") or {}
    scopes = {scope for r in runs if (scope := r.get("peak_memory_scope"))}
    quantised = QUANTISED.search(src.config.models.decoder.source)
    return LimitationVerdicts(
        pooling=pooling, passes=passes, quantised=quantised.group(1).upper() if quantised else None,
        sizes_differ=sizes_differ, budgets_differ=budgets_differ, truncated=cut >= TRUNCATION_WORTH_STATING,
        duplicates="deduplicated" if duplicates.get("deduplicated") else
        "leaked" if duplicates.get("test_rows_seen_in_train") else None,
        peak_memory_per_run=scopes == {"run"},
        commits_mixed=_commits_mixed(runs), uneven_step_time=_uneven_step_time(runs))


def _uneven_step_time(runs: list[dict]) -> dict | None:
    per_step: dict[str, list[float]] = {}
    for r in runs:
        if r.get("arm") and (r.get("steps") or 0) > 0 and (r.get("wall_time_s") or 0) > 0:
            per_step.setdefault(r["arm"].removesuffix("_cw"), []).append(r["wall_time_s"] / r["steps"])
    spreads = {arm: max(v) / min(v) for arm, v in per_step.items() if len(v) > 1}
    if not spreads:
        return None
    arm = max(spreads, key=spreads.get)
    return {"arm": arm, "ratio": spreads[arm]} if spreads[arm] > UNEVEN_STEP_TIME else None


def _commits_mixed(runs: list[dict]) -> int:
    commits = {commit for r in runs if (commit := (r.get("environment") or {}).get("git_commit"))}
    return len(commits) if len(commits) > 1 else 0
