"""The stated ground that breaks a tie the deployment rule's metric, cost, speed and memory leave (issue #30): a
point estimate inside the noise is no decision, so a clear lead on another reported metric decides first, then what
the shipped model is (an adapter a tenth the size or less of the other's trained weights: one file to version, a base
shared across tasks), then the arm whose run-to-run variance was measured (more training seeds), neither for an arm another tied arm is
clearly ahead of on a reported metric; without any the rule falls back to the point estimate and the note calls it a
call inside the noise."""

from __future__ import annotations

import dataclasses

from typing import TYPE_CHECKING

FOOTPRINT_RATIO = 10
"""Trained weights this many times fewer than every other tied arm's: a difference in what is shipped and versioned
(an adapter file against a full copy of the model), not in a rounding."""

if TYPE_CHECKING:
    from lorastudy.measure.deployment import Evidence


def tie_ground(arms: list[str], evidence: Evidence) -> dict | None:
    """The stated ground that decides candidates the deciding metric, cost, speed and memory leave tied: first an
    arm clearly ahead of every other on another quality metric and clearly behind none ("secondary"), where every
    arm trained several seeds (else the interval lacks run-to-run variance); else the one arm whose trained weights
    are FOOTPRINT_RATIO times fewer than every other's ("footprint": the smaller artifact to ship); else the one
    arm with the most training seeds ("seeds": its run-to-run variance is measured, the others' is not). None: no
    ground, and the point estimate (or a printed tie) decides, which the note words as such."""
    def several_seeds(arm: str) -> bool:
        return evidence.seeds is None or evidence.seeds(arm) > 1

    if evidence.secondary is not None:
        for arm in arms:
            leads, behind = [], False
            for other in arms:
                if other == arm:
                    continue
                if not (several_seeds(arm) and several_seeds(other)):
                    break  # a one-seed arm's interval holds the test set's noise only: its lead is no ground
                diffs = evidence.secondary(other, arm)  # arm - other
                ahead = [d for d in diffs if d[2] > 0]
                behind = behind or any(d[3] < 0 for d in diffs)
                if not ahead:
                    break
                leads.append({"against": other, "metric": ahead[0][0], "diff": ahead[0][1], "lo": ahead[0][2],
                              "hi": ahead[0][3]})
            else:
                if not behind:
                    return {"by": "secondary", "arm": arm, "leads": leads}
    behind = _clearly_behind(arms, evidence)  # a ground never picks an arm clearly behind on a reported metric
    if evidence.trainable is not None:
        sizes = {arm: evidence.trainable(arm) for arm in arms}
        if all(sizes.values()):
            smallest = min(arms, key=lambda arm: sizes[arm])
            if smallest not in behind and all(sizes[other] >= FOOTPRINT_RATIO * sizes[smallest]
                                               for other in arms if other != smallest):
                larger = {arm: n for arm, n in sizes.items() if arm != smallest}
                nearest = min(larger, key=larger.get)
                return {"by": "footprint", "arm": smallest, "trainable": sizes[smallest], "larger": larger,
                        "nearest": nearest, "nearest_trainable": larger[nearest]}
    if evidence.seeds is not None:
        counts = {arm: evidence.seeds(arm) for arm in arms}
        most = max(counts.values())
        top = [arm for arm, n in counts.items() if n == most]
        if len(top) == 1 and most > 1 and top[0] not in behind:
            return {"by": "seeds", "arm": top[0], "seeds": most,
                    "fewer": {arm: n for arm, n in counts.items() if arm != top[0]}}
    return None


def blocked_grounds(arms: list[str], evidence: Evidence) -> list[dict]:
    """The grounds that would have picked an arm some other tied arm clearly leads on a reported metric, with that
    arm and its clear deficits: the note says why the footprint or the seed count did not decide."""
    behind = _clearly_behind(arms, evidence)
    if not behind or evidence.secondary is None:
        return []
    found = tie_ground(arms, dataclasses.replace(evidence, secondary=None))
    if found is None or found["arm"] not in behind:
        return []
    deficits = [{"against": other, "metric": d[0], "diff": d[1], "lo": d[2], "hi": d[3]}
                for other in arms if other != found["arm"] for d in evidence.secondary(other, found["arm"]) if d[3] < 0]
    return [{"by": found["by"], "arm": found["arm"], "deficits": deficits}]


def _clearly_behind(arms: list[str], evidence: Evidence) -> set[str]:
    """The tied arms some other tied arm is clearly ahead of on another reported metric, whatever the seed counts: a
    one-seed lead is no ground to pick, yet enough to stop a ground (a smaller artifact, more seeds) from picking
    the arm it is over."""
    if evidence.secondary is None:
        return set()
    return {arm for arm in arms for other in arms
            if other != arm and any(d[3] < 0 for d in evidence.secondary(other, arm))}
