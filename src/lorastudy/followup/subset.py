"""Which of the frozen design's runs `lorastudy next` trains: the arms and seeds asked for (`--arms`, `--seeds`,
subsets of the design's; none = all), cut down to the time given (`--max-minutes`; none = no limit, the design
as proposed).

The focus arm (the design's first, whose metric the prediction is about) is always kept, first. To fit the time,
the other arms go first (last first), then seeds (last first), down to `MIN_SEEDS`: the largest subset whose
estimated time fits is trained. The prediction's threshold never changes; the verdict reads the result's own
interval, whose run-to-run term is a Student-t over the seeds that ran, so fewer seeds give a wider interval and an
"inconclusive" verdict more often, with a "held" or "refuted" at the same 95% standard. One seed would not: its
interval has no run-to-run term at all (`uncertainty`: source "test_resampling"), and could show a "held" a second
seed would undo, so a design of several seeds never runs on fewer than two.

The time is that of the runs this call trains: runs that finished earlier cost nothing, so asking again resumes
(the same `--arms`/`--seeds`, or a `--max-minutes` that can now only keep as many runs or more) and a larger subset
trains only what it adds.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable

from lorastudy.core.errors import StudyError

MIN_SEEDS = 2
"""The fewest seeds whose interval counts run-to-run variance (a t-interval needs two)."""

DEFAULT_MAX_MINUTES = 10.0
"""The time `lorastudy next` fits the design to when no subset is asked for (no --max-minutes, --arms or
--seeds). Unlike an explicit --max-minutes it is a target, not a cap: where not even the smallest honest subset
fits (a slow machine), that subset runs and the plan says how far over the target it is."""


@dataclass(frozen=True)
class Subset:
    """Arms (the focus arm first) and seeds of the design, trained as their full grid."""

    arms: tuple[str, ...]
    seeds: tuple[int, ...]

    @property
    def run_names(self) -> list[str]:
        """In the order the runs train (seed by seed, as the study's)."""
        return [f"{arm}__seed{seed}" for seed in self.seeds for arm in self.arms]


def parse_list(text: str | None, option: str, kind: type = str) -> list | None:
    """A comma-separated option value (`--seeds 42,43`); None when not given."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [kind(item) for item in items] or _empty(option)
    except ValueError:
        raise StudyError(f"{option} {text!r} is not a comma-separated list of {kind.__name__}s.",
                         f"e.g. {option} 42,43") from None


def _empty(option: str) -> list:
    raise StudyError(f"{option} names nothing.", f"leave {option} out to run all of the design's.")


def asked(design_arms: list[str], design_seeds: list[int], arms: list[str] | None,
          seeds: list[int] | None) -> Subset:
    """The subset the options ask for, in the design's order; one line for anything the design does not hold."""
    focus = design_arms[0]
    for option, given, allowed in (("--arms", arms, design_arms), ("--seeds", seeds, design_seeds)):
        unknown = [str(item) for item in given or [] if item not in allowed]
        if unknown:
            raise StudyError(f"{option} names {', '.join(unknown)}, not in the proposed design "
                             f"({', '.join(map(str, allowed))}).", f"choose {option} among the design's.")
    if arms is not None and focus not in arms:
        raise StudyError(f"--arms leaves out {focus}, the arm whose metric the prediction is about.",
                         f"include {focus} in --arms.")
    floor = min_seeds(design_seeds)
    if seeds is not None and len(set(seeds)) < floor:
        raise StudyError(f"--seeds names {len(set(seeds))} seed, but a verdict needs {floor}: one seed's interval "
                         "leaves out run-to-run variance.", f"name {floor} seeds or more.")
    return Subset(tuple(a for a in design_arms if arms is None or a in arms),
                  tuple(s for s in design_seeds if seeds is None or s in seeds))


def min_seeds(design_seeds: list[int]) -> int:
    return min(MIN_SEEDS, len(design_seeds))


def candidates(start: Subset, floor: int) -> list[Subset]:
    """From `start` down: the other arms dropped one by one (last first), then seeds down to `floor`."""
    found = [start]
    arms, seeds = start.arms, start.seeds
    while len(arms) > 1:
        arms = arms[:-1]
        found.append(Subset(arms, seeds))
    while len(seeds) > floor:
        seeds = seeds[:-1]
        found.append(Subset(arms, seeds))
    return found


def fit(start: Subset, floor: int, seconds: Callable[[Subset], float], max_minutes: float | None,
        strict: bool = True) -> Subset:
    """The largest candidate whose estimated seconds fit `max_minutes`; `start` itself with no limit. When not
    even the smallest fits: one line (exit 2, nothing trained) if `strict`, else that smallest subset."""
    if max_minutes is None:
        return start
    if not max_minutes > 0:
        raise StudyError(f"--max-minutes {max_minutes:g} is not a positive number of minutes.",
                         "give the minutes the experiment may train, e.g. --max-minutes 10.")
    options = candidates(start, floor)
    chosen = next((subset for subset in options if seconds(subset) <= max_minutes * 60), None)
    if chosen is None and not strict:
        return options[-1]
    if chosen is None:
        smallest = options[-1]
        need = seconds(smallest)
        raise StudyError(f"Not even the smallest experiment fits {max_minutes:g} min: {len(smallest.seeds)} "
                         f"seed{'s' if len(smallest.seeds) != 1 else ''} of {smallest.arms[0]} take about "
                         f"{need / 60:.1f} min of training here (the study's own step times), and fewer seeds "
                         "would leave run-to-run variance out of the verdict.",
                         f"give --max-minutes {math.ceil(need / 60)} or more.")
    return chosen


def makespan(seconds: list[float], parallel: int) -> float:
    """Wall seconds of runs started in order on `parallel` slots, each as soon as a slot is free."""
    slots = [0.0] * max(1, parallel)
    for run in seconds:
        heapq.heappush(slots, heapq.heappop(slots) + run)
    return max(slots)
