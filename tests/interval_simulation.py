"""Do the study's intervals hold their coverage? Synthetic studies with a known truth, run through the study's code.

A synthetic study fixes, for every arm, each class's chance of a right answer (a probit in the log of the class's
training count) and where its wrong answers go (towards the large classes, less so for weighted arms). A test set
of the study's design (every class with its test count, as the stratified split gives) is drawn afresh in each
replication: each example has a difficulty shared by every arm and run (so the arms' answers are correlated,
as real arms' are), and each run answers it right with its class's chance. With several seeds, each run shifts
the chances (probit scale) by a run effect and a class-by-run effect of known standard deviation.

The truth is what the intervals claim to cover: the expected value of the metric over test sets of the design
(and over training runs, where the interval has seeds), for each arm, each difference of arms and the weighting
difference of differences: exact for accuracy and rare-tier recall (linear in each class's chance of a right
answer) and for macro F1 with one seed (`expected_macro_f1`); for macro F1 over runs, by Monte Carlo over
`truth_draws` fresh test sets and runs, apart from the replications. With one seed the arms have no run effect:
a one-seed interval is about the trained model it comes from (the note words one-seed differences as holding for
one training run; `one_seed_run_variance` measures what it would miss of a truth over runs).

Each replication builds `RunEval`s with `metrics.score_run`, then `uncertainty.Uncertainty`, `compare_all` and
`weighting_did`: the code `evaluate_study` runs, with `bootstrap_samples` resamples (docs/intervals.md shows
that fewer resamples than the study's 1,000 measure the same coverage).

`python tests/interval_simulation.py` prints the coverage table of docs/intervals.md.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom, norm

from lorastudy.core import runtime
from lorastudy.measure.metrics import COMPARED, RARE_RECALL, LabelSpace, score_run
from lorastudy.measure.uncertainty import Uncertainty, compare_all, weighting_did
from lorastudy.study.config import EvaluationConfig

# The demo's split (WordNet supersenses, stratified 4,000 / 1,000 / 2,000): train and test counts per class.
DEMO_TRAIN = [491, 394, 377, 273, 255, 226, 191, 124, 123, 120, 109, 103, 101, 101, 89, 87, 81, 75, 68, 53, 52, 48,
              43, 38, 36, 36, 35, 29, 26, 26, 24, 24, 22, 19, 16, 16, 15, 14, 12, 12, 8, 3, 2, 2, 1]
DEMO_TEST = [241, 197, 188, 137, 128, 113, 95, 62, 62, 60, 55, 52, 50, 51, 45, 44, 41, 37, 34, 26, 26, 24, 22, 19, 18,
             18, 17, 14, 13, 13, 12, 12, 11, 9, 8, 8, 7, 7, 6, 6, 4, 2, 2, 2, 2]
# 129 WordNet topic domains (benchmarks/make_dataset.py wordnet-domains --classes 129, 70/10/20 split): 1,147 test
# rows; the split gives the rarest classes 2 test examples, the last 12 here keep 1 (min_eval_per_class: 1).
DOMAINS_TRAIN = [448, 273, 145, 143, 141, 133, 122, 110, 107, 107, 99, 87, 80, 80, 71, 66, 46, 46, 45, 44, 43, 42, 41,
                 40, 40, 39, 34, 34, 34, 34, 33, 32, 31, 31, 30, 30, 29, 28, 25, 24, 24, 24, 24, 22, 22, 21, 21, 20, 20,
                 20, 20, 19, 19, 18, 18, 18, 18, 17, 17, 17, 17, 16, 16, 16, 15, 15, 14, 14, 14, 13, 12, 12, 12, 12, 11,
                 11, 11, 11, 11, 11, 10, 10, 10, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7, 7, 7, 7, 7, 7, 7, 6,
                 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4]
DOMAINS_TEST = [117, 74, 41, 41, 40, 38, 35, 32, 30, 30, 28, 25, 23, 23, 20, 19, 13, 13, 13, 12, 12, 12, 12, 12, 12,
                11, 10, 9, 10, 10, 9, 9, 9, 9, 9, 9, 8, 8, 7, 6, 7, 6, 7, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5,
                5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 4, 3, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2,
                2, 2, 3, 2, 2, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2] + [1] * 12
STRUCTURES = {"demo (45 classes, 2,000 test rows)": (DEMO_TRAIN, DEMO_TEST),
              "129 classes (1,147 test rows, 1-2 for the rarest)": (DOMAINS_TRAIN, DOMAINS_TEST)}


@dataclass(frozen=True)
class ArmTruth:
    """An arm: probit of each class's chance of a right answer = base + slope * centred log train count; wrong
    answers go to class k with probability proportional to (train count + 1) ** absorb."""

    base: float
    slope: float
    absorb: float


ARMS = {"encoder_lora": ArmTruth(0.35, 0.45, 1.0), "encoder_lora_cw": ArmTruth(0.40, 0.20, 0.3),
        "decoder_lora": ArmTruth(0.55, 0.40, 1.0), "decoder_lora_cw": ArmTruth(0.55, 0.30, 0.3)}
SEEDS = {1: [42], 3: [42, 43, 44]}
KINDS = ("level", "difference", "difference of differences")


@dataclass
class Design:
    structure: str
    n_seeds: int
    replications: int = 400
    bootstrap_samples: int = 200
    truth_draws: int = 600       # Monte Carlo draws of the macro-F1 truth where runs vary
    run_sd: float = 0.08          # probit sd of a run's shift of every class (several seeds only)
    class_run_sd: float = 0.15    # probit sd of a run's shift of one class (several seeds only)
    difficulty: float = 0.6       # weight of an example's shared difficulty in a run's latent (runs correlate 0.36)
    seed: int = 0
    one_seed_run_variance: bool = False  # one seed drawn from runs that vary: coverage of the truth over runs

    def __post_init__(self):
        train, test = STRUCTURES[self.structure]
        self.train, self.test = np.asarray(train), np.asarray(test)
        self.y = np.repeat(np.arange(len(train)), test)
        rare_tier = self.train <= np.sort(self.train)[len(train) // 4]  # the study's bottom-quartile rule
        self.space = LabelSpace(labels=[f"c{i}" for i in range(len(train))], train_counts=self.train,
                                val_counts=self.test, test_counts=self.test, tier_names=["rare", "common"],
                                tier_of=["rare" if r else "common" for r in rare_tier])
        self.rare = rare_tier
        log_train = np.log(self.train)
        self.probit = {arm: a.base + a.slope * (log_train - log_train.mean()) for arm, a in ARMS.items()}
        # where wrong answers go: an inverse-CDF lookup table of 4,096 cells (the truth is drawn the same way)
        self.absorb = {}
        for arm, a in ARMS.items():
            w = (self.train + 1.0) ** a.absorb
            cells = np.searchsorted(np.cumsum(w / w.sum()), (np.arange(4096) + 0.5) / 4096)
            self.absorb[arm] = np.minimum(cells, len(w) - 1)

    @property
    def varies(self) -> bool:
        return self.n_seeds > 1 or self.one_seed_run_variance

    def predictions(self, rng: np.random.Generator, draws: int, seeds: int) -> dict[str, np.ndarray]:
        """[draws, seeds, examples] predicted labels per arm, on `draws` fresh test sets (one difficulty each)."""
        n, classes = len(self.y), len(self.train)
        difficulty = rng.standard_normal((draws, 1, n))
        out = {}
        for arm in ARMS:
            probit = np.broadcast_to(self.probit[arm], (draws, seeds, classes))
            if self.varies:
                probit = (probit + self.run_sd * rng.standard_normal((draws, seeds, 1))
                          + self.class_run_sd * rng.standard_normal((draws, seeds, classes)))
            latent = (self.difficulty * difficulty
                      + math.sqrt(1 - self.difficulty ** 2) * rng.standard_normal((draws, seeds, n)))
            right = latent < np.take_along_axis(probit, np.broadcast_to(self.y, (draws, seeds, n)), axis=2)
            first, second = self.absorb[arm][rng.integers(0, 4096, size=(2, draws, seeds, n))]
            wrong = np.where(first != self.y, first, np.where(second != self.y, second, (self.y + 1) % classes))
            out[arm] = np.where(right, self.y, wrong)
        return out

    def metric_values(self, predicted: np.ndarray) -> dict[str, np.ndarray]:
        """The compared metrics of many predictions [..., examples] at once (the simulation's own arithmetic)."""
        flat = predicted.reshape(-1, len(self.y))
        rows, classes = len(flat), len(self.train)
        offset = np.arange(rows)[:, None] * classes
        right = flat == self.y
        tp = np.bincount((offset + self.y)[right], minlength=rows * classes).reshape(rows, classes)
        predicted_count = np.bincount((offset + flat).ravel(), minlength=rows * classes).reshape(rows, classes)
        f1 = 2 * tp / (self.test + predicted_count)
        values = {"accuracy": right.mean(axis=1), "macro_f1": f1.mean(axis=1),
                  RARE_RECALL: tp[:, self.rare].sum(axis=1) / self.test[self.rare].sum()}
        return {m: v.reshape(predicted.shape[:-1]) for m, v in values.items()}

    def chance_right(self, arm: str) -> np.ndarray:
        """Each class's chance of a right answer over examples (and runs): P(latent < probit + run effects)."""
        spread = math.sqrt(1 + (self.run_sd ** 2 + self.class_run_sd ** 2 if self.varies else 0.0))
        return norm.cdf(self.probit[arm] / spread)

    def wrong_label_chance(self, arm: str) -> np.ndarray:
        """[true class, predicted class]: where a wrong answer goes, exactly as `predictions` draws it (a first
        draw from the lookup table; if it is the true class, a second; if that is too, the next class)."""
        classes = len(self.train)
        w = np.bincount(self.absorb[arm], minlength=classes) / len(self.absorb[arm])
        chance = np.outer(1 + w, w)
        np.fill_diagonal(chance, 0.0)
        chance[np.arange(classes), (np.arange(classes) + 1) % classes] += w ** 2
        return chance

    def expected_macro_f1(self, arm: str) -> float:
        """Exact expected macro F1 over test sets when the runs do not vary: a class's right answers are
        binomial, its false positives a sum of independent binomials from the other classes (their distribution
        by FFT), the two independent; macro F1 is the mean of the classes' expected F1."""
        right = norm.cdf(self.probit[arm])
        to = (1 - right)[:, None] * self.wrong_label_chance(arm)  # [from, to]: chance an example lands there wrongly
        mean = self.test @ to
        spread = np.sqrt(self.test @ (to * (1 - to)))
        size = 1 << int(np.max(mean + 12 * spread) + 16).bit_length()  # past any false-positive count with mass
        circle = np.exp(-2j * np.pi * np.arange(size) / size)
        total = 0.0
        for c in range(len(self.train)):
            others = np.arange(len(self.train)) != c
            log_cf = (self.test[others, None] * np.log(1 - to[others, c, None] + to[others, c, None] * circle)).sum(0)
            false_pos = np.clip(np.fft.ifft(np.exp(log_cf)).real, 0, None)  # pmf of the false positives
            hits = np.arange(self.test[c] + 1)
            p_hits = binom.pmf(hits, self.test[c], right[c])
            f1 = 2 * hits[:, None] / (self.test[c] + hits[:, None] + np.arange(size)[None, :])
            total += float(p_hits @ f1 @ false_pos)
        return total / len(self.train)

    def truth(self) -> dict[str, dict[str, float]]:
        """Expected metric of one run of each arm over test sets (and runs): accuracy and rare-tier recall exactly;
        macro F1 exactly when runs do not vary, else by Monte Carlo over `truth_draws` fresh test sets and runs."""
        truth = {}
        for arm in ARMS:
            right = self.test * self.chance_right(arm)
            truth[arm] = {"accuracy": right.sum() / self.test.sum(),
                          RARE_RECALL: right[self.rare].sum() / self.test[self.rare].sum()}
            if not self.varies:
                truth[arm]["macro_f1"] = self.expected_macro_f1(arm)
        if self.varies:
            for arm, value in self.monte_carlo_macro_f1(self.truth_draws).items():
                truth[arm]["macro_f1"] = value
        return truth

    def monte_carlo_macro_f1(self, draws: int) -> dict[str, float]:
        rng = np.random.default_rng(10_000 + self.seed)
        total = {arm: 0.0 for arm in ARMS}
        for start in range(0, draws, 100):
            for arm, predicted in self.predictions(rng, min(100, draws - start), 1).items():
                total[arm] += float(self.metric_values(predicted[:, 0])["macro_f1"].sum())
        return {arm: value / draws for arm, value in total.items()}


@dataclass
class Tally:
    """Per interval kind and metric: per-replication fraction of intervals that cover the truth."""

    fractions: list[float] = field(default_factory=list)
    intervals: int = 0
    excludes_estimate: int = 0

    def add(self, hits: list[bool], excluded: int):
        self.fractions.append(float(np.mean(hits)))
        self.intervals += len(hits)
        self.excludes_estimate += excluded

    @property
    def coverage(self) -> float:
        return float(np.mean(self.fractions))

    @property
    def mc_error(self) -> float:
        """Standard error over replications (intervals of one replication share its test set, so they cluster)."""
        return float(np.std(self.fractions, ddof=1) / math.sqrt(len(self.fractions)))


def contrast_truth(truth: dict, weights: dict[str, float], metric: str) -> float:
    return sum(w * truth[arm][metric] for arm, w in weights.items())


def simulate(design: Design) -> dict[tuple[str, str], Tally]:
    """Replicate the design; count, per interval kind and metric, the intervals covering the truth."""
    truth = design.truth()
    rng = np.random.default_rng(design.seed)
    settings = EvaluationConfig(bootstrap_samples=design.bootstrap_samples, confidence=0.95)
    tallies = {(kind, m): Tally() for kind in KINDS for m in COMPARED}
    sources = set()
    for replication in range(design.replications):
        predicted = design.predictions(rng, 1, design.n_seeds)
        runs = {arm: {seed: score_run(f"{arm}__seed{seed}", arm, seed, design.y, predicted[arm][0, i], design.space)
                      for i, seed in enumerate(SEEDS[design.n_seeds])} for arm in ARMS}
        uncertainty = Uncertainty(runs, design.space, settings, seed=replication)
        found: dict[tuple[str, str], list[tuple[float, list[float], float]]] = {key: [] for key in tallies}
        for arm in ARMS:
            for m in COMPARED:
                level = uncertainty.level(arm, m)
                sources.add(level["source"])
                found["level", m].append((level["mean"], level["ci"], truth[arm][m]))
        for row in compare_all(uncertainty, list(ARMS)):
            sources.add(row["source"])
            found["difference", row["metric"]].append(
                (row["diff"], row["ci"], contrast_truth(truth, {row["b"]: 1.0, row["a"]: -1.0}, row["metric"])))
        for row in weighting_did(uncertainty):
            weights = {"decoder_lora_cw": 1.0, "decoder_lora": -1.0, "encoder_lora_cw": -1.0, "encoder_lora": 1.0}
            found["difference of differences", row["metric"]].append(
                (row["diff"], row["ci"], contrast_truth(truth, weights, row["metric"])))
        for key, rows in found.items():
            tallies[key].add([lo <= true <= hi for _, (lo, hi), true in rows],
                             sum(not lo <= estimate <= hi for estimate, (lo, hi), _ in rows))
    expected = {"test_and_seeds"} if design.n_seeds > 1 else {"test_resampling"}
    assert sources == expected, sources
    return tallies


def table(results: list[tuple[Design, dict[tuple[str, str], Tally], float]]) -> str:
    """Markdown: coverage (Monte Carlo standard error) per interval kind x metric, one column per design."""
    head = ["interval", "metric"] + [f"{d.structure.split(' (')[0]}, {d.n_seeds} seed{'s' * (d.n_seeds > 1)}"
                                     + (" (truth over runs)" if d.one_seed_run_variance else "")
                                     for d, _, _ in results]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in KINDS:
        for m in COMPARED:
            cells = [f"{t[kind, m].coverage:.1%} ± {t[kind, m].mc_error:.1%}" for _, t, _ in results]
            lines.append(f"| {kind} | {m} | " + " | ".join(cells) + " |")
    lines.append("| intervals excluding their estimate | | "
                 + " | ".join(str(sum(t.excludes_estimate for t in tallies.values())) for _, tallies, _ in results)
                 + " |")
    lines.append("| replications (CPU seconds) | | "
                 + " | ".join(f"{d.replications} ({s:.0f} s)" for d, _, s in results) + " |")
    return "\n".join(lines)


def designs_under_test(replications: int = 400) -> list[Design]:
    """What tests/test_interval_coverage.py asserts on: both structures, one and three seeds. With three seeds the
    bootstrap half-width is one of two added in quadrature, and 100 resamples measure the same coverage as 1,000
    (docs/intervals.md), at half the time of 200."""
    return [Design(structure, n_seeds, replications=replications, bootstrap_samples=200 if n_seeds == 1 else 100)
            for structure in STRUCTURES for n_seeds in (1, 3)]


def run(designs: list[Design]) -> list[tuple[Design, dict[tuple[str, str], Tally], float]]:
    """Simulate each design in turn: (design, tallies, seconds). Meant for a process of its own: it lets glibc keep
    freed memory (`runtime.keep_freed_memory`, as training does), which spares the kernel a fault for every page of
    the bootstrap's large temporaries (a third of the time otherwise)."""
    runtime.keep_freed_memory()
    results = []
    for design in designs:
        start = time.process_time()
        tallies = simulate(design)
        results.append((design, tallies, time.process_time() - start))
        print(f"done: {design.structure}, {design.n_seeds} seeds, {results[-1][2]:.0f} s", file=sys.stderr)
    return results


def main(argv: list[str]) -> None:
    replications = int(argv[0]) if argv else 400
    designs = designs_under_test(replications)
    designs += [Design(structure, 1, replications=replications, one_seed_run_variance=True)
                for structure in STRUCTURES]
    if len(argv) > 1:  # resamples per interval, for every design
        for design in designs:
            design.bootstrap_samples = int(argv[1])
    print(table(run(designs)))


if __name__ == "__main__":
    main(sys.argv[1:])
