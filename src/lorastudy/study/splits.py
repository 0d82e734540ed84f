"""Train / val / test: the source's own splits, or splits drawn stratified, deterministic for `split.seed`.

Sampled splits keep natural class proportions; then every class gets at least
`split.min_eval_per_class` validation and test rows where the data allows
(never taking a class's last remaining row from training). Given splits (a split
column or index files) are never re-balanced; caps subsample them, stratified.
"""

from __future__ import annotations

import numpy as np

from lorastudy.core.errors import StudyError
from lorastudy.study.config import SplitConfig

SPLITS = ("train", "val", "test")


def assign_splits(labels: np.ndarray, given: np.ndarray, split: SplitConfig) -> np.ndarray:
    """The split of every row ("train", "val", "test", or "" = not used), deterministic for `split.seed`.

    `given` holds the source's own split per row ("" = none). A split the source gives is used as
    is (subsampled, stratified, when a size cap is set). A split it does not give is drawn, stratified,
    from the pool (rows given as train or not at all): test first, then val (`*_size` rows, or
    `*_fraction` of the pool when no size is set), then train (the rest, capped at `train_size`).
    """
    rng = np.random.default_rng(split.seed)
    given_names = {name for name in SPLITS if (given == name).any()}
    pool = np.isin(given, ["", "train"]) if given_names != set(SPLITS) else np.zeros(len(labels), bool)
    pool_size = int(pool.sum())
    out = np.full(len(labels), "", dtype=object)
    plan = (("test", split.test_size, split.test_fraction), ("val", split.val_size, split.val_fraction),
            ("train", split.train_size, None))
    for name, cap, fraction in plan:
        # train comes from the pool whenever another split was drawn from it
        from_pool = name not in given_names or (name == "train" and given_names != set(SPLITS))
        candidates = pool if from_pool else given == name
        available = int(candidates.sum())
        if fraction is not None and from_pool:
            n = min(cap or round(fraction * pool_size), available)
        else:
            n = min(cap or available, available)
        floor = 0 if name == "train" else split.min_eval_per_class
        chosen = _stratified_draw(labels, candidates, n, floor, keep=1 if from_pool else 0, rng=rng, name=name)
        out[chosen] = name
        pool[chosen] = False
    return out


def _stratified_draw(labels: np.ndarray, candidates: np.ndarray, n: int, floor: int, keep: int,
                     rng: np.random.Generator, name: str) -> np.ndarray:
    """Indices of `n` candidate rows in natural class proportions, at least `floor` per class.

    Neither the floor nor the proportional share takes a class's last `keep` candidate rows (those stay
    for training), unless `n` cannot be met otherwise.
    Hand-rolled rather than sklearn's StratifiedShuffleSplit, which refuses classes with a
    single row and samples smaller than the class count: both are normal in a long tail.
    """
    if n <= 0:
        raise StudyError(f"The {name} split would be empty.",
                         f"raise split.{name}_size / split.{name}_fraction, or use a larger dataset.")
    rows = np.flatnonzero(candidates)
    classes, inverse, available = np.unique(labels[rows], return_inverse=True, return_counts=True)
    minimum = np.clip(np.minimum(floor, available - keep), 0, None)
    if minimum.sum() > n:
        raise StudyError(f"The {name} split ({n} of {len(rows)} rows) is too small to stratify {len(classes)} classes "
                         f"with {floor} examples each (split.min_eval_per_class).",
                         f"raise split.{name}_size / split.{name}_fraction, lower split.min_eval_per_class "
                         f"(0 lets classes go without {name} examples), or add rows.")
    exact = available * n / available.sum()
    quota = np.floor(exact).astype(int)
    by_remainder = np.lexsort((rng.random(len(classes)), quota - exact))  # largest remainder first, ties at random
    quota[by_remainder[: n - quota.sum()]] += 1
    quota = np.maximum(quota, minimum)
    while quota.sum() > n:  # give back what the floor added, from the classes with most to spare
        quota[np.argmax(quota - minimum)] -= 1
    capacity = np.maximum(available - keep, minimum)  # a class's last `keep` rows stay for training
    while n <= capacity.sum() and (quota > capacity).any():  # e.g. a singleton class's one row drawn for test
        quota[np.argmax(quota - capacity)] -= 1
        room = np.flatnonzero(quota < capacity)
        quota[room[np.argmax((exact - quota)[room])]] += 1
    picked = [rng.choice(rows[inverse == c], size=q, replace=False) for c, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picked))
