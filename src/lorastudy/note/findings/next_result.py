"""The note's closing section when `lorastudy next` has run: the proposal as frozen before the run, what ran, the
result with its interval and the verdict, as typed data the template (`next_result.md.j2`) only words.

It reads `evaluation/next.json` alone, never findings.json: the proposal is the copy `next` froze when it started,
so a note re-written later by another lorastudy states what was predicted before the run. The verdict is decided
again here from the stored result and threshold with the one rule (`measure.next_result.prediction_verdict`), so
the note follows the numbers it prints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from lorastudy.measure.next_result import Verdict, prediction_verdict, training_seconds


class NextRun(BaseModel):
    """What the section says, each field read from next.json or decided by the verdict rule."""

    candidate: str
    """The bottleneck the proposal tested: the prediction finding's verdict (e.g. "training_budget"); with no
    supported candidate ("none") the note proposed the training budget."""
    change: str
    value: Any
    describe: str
    arms: list[str]
    seeds: list[int]
    """The arms and seeds that ran: the design's, or the subset asked for or fitted to `max_minutes`."""
    proposed_arms: list[str]
    proposed_seeds: list[int]
    dropped_arms: list[str]
    """The proposed arms that did not run (a subset asked for, or cut to fit the time)."""
    fewer_seeds: bool
    """Fewer seeds ran than proposed: the interval is wider, so "inconclusive" is likelier and "held" no easier."""
    max_minutes: float | None
    """The time the runs were cut to fit (`lorastudy next --max-minutes`); None when no limit dropped a run."""
    over_target: bool
    """`next`'s default time was a target that not even the smallest honest subset (2 seeds) met."""
    substituted_for: str | None
    """The change the note proposed when `next` ran another in its place (a learning curve for a top-up)."""
    substitution_reason: str | None
    proposed_threshold: float
    proposed_now: float | None
    proposed_allowance: float
    proposed_direction: Literal["above", "below"]
    arm: str
    metric: str
    threshold: float
    direction: Literal["above", "below"]
    steps: int | None
    train_rows: int
    rows_changed: int
    training_s: float
    wall_s: float | None
    """Wall-clock seconds of the invocation that trained the runs (they train side by side, so less than
    `training_s`, the runs' own wall times summed); None in a record written before it was kept."""
    collapsed: list[str]
    mean: float
    ci: list[float]
    baseline: float | None
    change_diff: float | None
    change_ci: list[float] | None
    verdict: Verdict
    also: list[dict] = []
    """The same runs on the other metrics (level, interval, paired change), as `measure.next_result` scored them."""
    zero_f1: dict | None = None
    """Zero-F1 classes, mean over the new runs' seeds, and over the study's runs of the same seeds."""
    change_clear: bool = False
    """The paired change on the predicted metric excludes zero in the predicted direction: whatever the verdict
    against the threshold, the change moved the arm, so the note's earlier comparisons with it hold for its study
    budget only, which the section says."""
    proposed_half_gap: float | None = None
    """Half the arm's deficit to the other LoRA arm, when the frozen threshold was the level plus that (it was
    larger than the noise allowance), so the section states the threshold as it was derived."""
    gap_arm: str | None = None
    gap_level: float | None = None


def next_run(record: dict) -> NextRun:
    """The section's content from next.json (`lorastudy next`'s record)."""
    proposal = record["proposal"]["finding"]
    frozen = proposal["facts"]["design"]
    design, first, plan = record["design"], record["arms"][0], record["plan"]
    result, change = first["result"], first["change"]
    substituted = record.get("substituted") or {}
    return NextRun(
        candidate=proposal["verdict"] if proposal["verdict"] != "none" else "training_budget",
        change=design["change"], value=design["value"],
        describe=design.get("describe", ""), arms=plan.get("arms", design["arms"]),
        seeds=plan.get("seeds", design["seeds"]), proposed_arms=design["arms"], proposed_seeds=design["seeds"],
        dropped_arms=[arm for arm in design["arms"] if arm not in plan.get("arms", design["arms"])],
        fewer_seeds=len(plan.get("seeds", design["seeds"])) < len(design["seeds"]),
        max_minutes=plan.get("max_minutes") if plan.get("cut_to_fit") else None,
        over_target=bool(plan.get("max_minutes_is_default")) and plan["estimated_s"] > 60 * plan["max_minutes"],
        substituted_for=substituted.get("from"), substitution_reason=substituted.get("reason"),
        proposed_threshold=frozen["threshold"],
        proposed_now=proposal["facts"].get("now") if proposal["facts"].get("metric") == frozen["metric"] else None,
        proposed_allowance=frozen["noise_allowance"], proposed_direction=frozen.get("direction", "above"),
        arm=first["arm"], metric=design["metric"], threshold=design["threshold"],
        direction=design.get("direction", "above"),
        steps=plan["steps_per_run"], train_rows=plan["train_rows"], rows_changed=sum(plan["rows_changed"].values()),
        training_s=record.get("training_s", training_seconds(record["arms"])), wall_s=record.get("wall_s"),
        collapsed=[f"{row['arm']}__seed{run['seed']}" for row in record["arms"] for run in row["runs"]
                   if run["collapsed"]],
        mean=result["mean"], ci=result["ci"],
        baseline=(first["baseline"] or {}).get("mean"),
        change_diff=change["diff"] if change else None, change_ci=change["ci"] if change else None,
        verdict=prediction_verdict(result["ci"], design["threshold"], design.get("direction", "above")),
        also=first.get("also") or [], zero_f1=first.get("zero_f1"),
        change_clear=bool(change) and (change["ci"][0] > 0 if design.get("direction", "above") == "above"
                                       else change["ci"][1] < 0),
        proposed_half_gap=proposal["facts"].get("half_gap"), gap_arm=proposal["facts"].get("gap_arm"),
        gap_level=proposal["facts"].get("gap_level"))
