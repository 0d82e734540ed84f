"""Do the note's intervals cover what they claim? The coverage simulation (tests/interval_simulation.py).

Synthetic studies with a known truth, on the demo's class structure (45 classes, 2,000 test rows) and on one with
129 classes and 1-2 test examples for the rarest (1,147 rows), with one and three seeds, go through the study's own
scoring and `uncertainty` code. Every nominal-95% interval kind (a level, a paired difference, the weighting
difference of differences; accuracy, macro F1, rare-tier recall; widened by the seeds' t-interval with three)
must cover its truth at least 93% of the time, and no interval may leave out its own estimate. 400 replications a
design put the Monte Carlo error of a coverage near 95% at about 0.5% (pooled over arms or pairs) to 1.2% (one
difference of differences a replication). docs/intervals.md has the table.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from interval_simulation import ARMS, KINDS, STRUCTURES, Design, designs_under_test, run, table

REPLICATIONS = 400
NOMINAL_FLOOR = 0.93


@pytest.fixture(scope="module")
def coverage():
    """The four designs, simulated in a child process (`run` sets the child's allocator, not this one's)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run, (designs_under_test(REPLICATIONS),))


def test_every_interval_kind_holds_its_coverage_on_both_structures_with_one_and_three_seeds(coverage):
    shown = table(coverage)
    for design, tallies, _ in coverage:
        for (kind, metric), tally in tallies.items():
            assert kind in KINDS and len(tally.fractions) == REPLICATIONS
            assert tally.mc_error <= 0.0125, (design.structure, design.n_seeds, kind, metric, shown)
            assert tally.coverage >= NOMINAL_FLOOR, (design.structure, design.n_seeds, kind, metric, shown)


def test_no_interval_excludes_its_own_estimate(coverage):
    for design, tallies, _ in coverage:
        assert sum(t.intervals for t in tallies.values()) >= REPLICATIONS * (4 * 3 + 6 * 3 + 3)
        assert all(t.excludes_estimate == 0 for t in tallies.values()), (design.structure, design.n_seeds)


def test_the_exact_macro_f1_truth_agrees_with_monte_carlo():
    """The one-seed truth is computed exactly (binomial right answers, false positives by FFT); fresh test sets
    drawn the way the replications draw them average to it."""
    design = Design(list(STRUCTURES)[0], 1)
    exact = {arm: design.expected_macro_f1(arm) for arm in ARMS}
    drawn = design.monte_carlo_macro_f1(300)
    assert all(abs(exact[arm] - drawn[arm]) < 0.004 for arm in ARMS), (exact, drawn)  # ~3.5 Monte Carlo errors
    assert np.isclose(design.wrong_label_chance("encoder_lora").sum(axis=1), 1).all()
