"""Frequency tiers: every class's tier from its train count (bottom quartile, or configured quantiles)."""

from __future__ import annotations

import numpy as np

from lorastudy.study.config import TierConfig


def assign_tiers(train_counts: list[int], tiers: TierConfig) -> tuple[list[str], list[str], list[float], str]:
    """Frequency tiers from train counts: (tier names rarest first, tier per class, thresholds, rule text).

    A class belongs to the first tier whose threshold its count does not exceed, so a class
    missing from train (count 0) is always in the rarest tier.
    """
    counts = np.asarray(train_counts)
    if tiers.scheme == "bottom_quartile":
        names = ["rare", "common"]
        thresholds = [float(sorted(train_counts)[len(train_counts) // 4])]
        rule = (f"train count <= {thresholds[0]:g} (bottom quartile: sorted(counts)[len(counts)//4]); "
                "every other class is common")
    else:
        names = list(tiers.names)
        thresholds = [float(t) for t in np.quantile(counts, tiers.quantiles)]
        parts = [f"{tier}: train count <= {t:g} (q{q:g})" for tier, t, q in zip(names, thresholds, tiers.quantiles)]
        rule = "; ".join(parts + [f"{names[-1]}: above {thresholds[-1]:g}"])
    tier_of = [names[i] for i in np.searchsorted(thresholds, counts, side="left")]
    return names, tier_of, thresholds, rule
