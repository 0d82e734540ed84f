"""One change to a finished study, as Section 5 of its note proposes it: the design, and the study's config, run
specs and training data with that one change applied.

The design is typed by the note (`evaluation/findings.json`, finding "prediction", `facts.design`); its field
names are the contract between the note and `lorastudy next`. What a change does:

- `models.<family>.lora_train.max_steps`, `models.<family>.lora.include_mlp`, `data.max_length`: the config
  value, set as `--set` would set it (the same validation);
- `weighting.loss` (`logit_adjusted` with `tau`): the loss of exactly the design's arms (an unweighted arm's
  recipe ignores the study's weighting section, so the change is made on its spec);
- `data.top_up_rare_to`: every class of the rare tier topped up to `value` training examples from the rows the
  study's split left unused (never a text that is in the study's data), drawn with the split's seed;
- `data.subsample_rare_fraction` (added by `lorastudy next`, not by the note): the within-class learning curve,
  each rare-tier class keeping `value` of its training examples (at least one), for a top-up the source has no
  rows for. Its prediction points the other way (`direction: below`).

Validation, test and tiers are never changed: the new runs are scored on the study's own test set.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from lorastudy.core.errors import StudyError
from lorastudy.study.arms import ArmSpec, arm_spec
from lorastudy.study.config import LORA_ARMS, StudyConfig, TrainConfig
from lorastudy.study.config_loading import load_config
from lorastudy.study.prepared_data import PreparedData, fingerprint

CONFIG_CHANGES = (r"models\.(encoder|decoder)\.lora_train\.max_steps", r"models\.(encoder|decoder)\.lora\.include_mlp",
                  r"data\.max_length")
TOP_UP, SUBSAMPLE, LOSS = "data.top_up_rare_to", "data.subsample_rare_fraction", "weighting.loss"
SUPPORTED = ("models.<family>.lora_train.max_steps", "models.<family>.lora.include_mlp", "data.max_length", TOP_UP,
             SUBSAMPLE, f"{LOSS} (logit_adjusted)")
SUBSAMPLE_FRACTION = 0.5
"""The learning curve's point: half of each rare-tier class's examples (a doubling seen from the other side)."""


class Design(BaseModel):
    """The experiment as the note typed it. Fields the note may add later are kept (extra="allow")."""

    model_config = ConfigDict(extra="allow")

    change: str
    value: Any
    describe: str = ""
    arms: list[str]
    seeds: list[int]
    metric: str
    threshold: float
    noise_allowance: float
    tau: float | None = None
    direction: Literal["above", "below"] = "above"
    """Which side of the threshold the prediction expects the first arm's metric on."""

    @property
    def family(self) -> str | None:
        found = re.match(r"models\.(encoder|decoder)\.", self.change)
        return found.group(1) if found else None


def read_design(raw: object, where: str) -> Design:
    """The design as typed data; anything else is one line naming the file."""
    try:
        return Design.model_validate(raw)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'design'}: {e['msg']}" for e in exc.errors())
        raise StudyError(f"The proposal in {where} is not a design lorastudy next can read ({problem}).",
                         "re-write the note with this lorastudy (`lorastudy report RUN_DIR`).") from None


def check_design(design: Design, config: StudyConfig) -> None:
    """The change is one this tool can make, on LoRA arms the study trained, with a value of the right type."""
    change, value = design.change, design.value
    if not (any(re.fullmatch(pattern, change) for pattern in CONFIG_CHANGES) or change in (TOP_UP, SUBSAMPLE, LOSS)):
        raise StudyError(f"The proposal changes `{change}`, which lorastudy next cannot run.",
                         f"it runs a change of: {', '.join(SUPPORTED)}.")
    unknown = [arm for arm in design.arms if arm not in LORA_ARMS or arm not in config.arms]
    if not design.arms or unknown:
        raise StudyError(f"The proposal trains {', '.join(unknown) or 'no arm'}, not a LoRA arm of this study.",
                         f"name arms among: {', '.join(a for a in config.arms if a in LORA_ARMS)}.")
    if design.family and any(not arm.startswith(design.family) for arm in design.arms):
        raise StudyError(f"The proposal changes the {design.family}'s recipe but trains {', '.join(design.arms)}.",
                         "a recipe change applies to the arms of its own model family.")
    if not design.seeds:
        raise StudyError("The proposal names no seeds.", "name the seeds to train (the study's own, for a paired test).")
    kind_ok = {LOSS: value == "logit_adjusted" and (design.tau or 0) >= 0,
               TOP_UP: _is_int(value) and value > 0, SUBSAMPLE: isinstance(value, (int, float)) and 0 < value < 1,
               "data.max_length": _is_int(value) and value > 0}.get(change)
    if change.endswith("max_steps"):
        kind_ok = _is_int(value) and value > 0
    elif change.endswith("include_mlp"):
        kind_ok = value is True
    if not kind_ok:
        raise StudyError(f"The proposal sets `{change}` to {json.dumps(value)}, which is not a value it can run.",
                         "max_steps and max_length: a positive integer; include_mlp: true; weighting.loss: "
                         "logit_adjusted with tau >= 0; top-up: a positive count; subsample: a fraction in (0, 1).")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def varied_config(config: StudyConfig, design: Design) -> StudyConfig:
    """The study's config with the design's arms and seeds, and its one config-level change."""
    overrides = [f"arms={json.dumps(design.arms)}", f"seeds={json.dumps(design.seeds)}"]
    if any(re.fullmatch(pattern, design.change) for pattern in CONFIG_CHANGES):
        overrides.append(f"{design.change}={json.dumps(design.value)}")
    return load_config(config.model_dump(mode="json"), overrides)


def varied_specs(config: StudyConfig, design: Design, data_fingerprint: str) -> list[ArmSpec]:
    """One spec per arm x seed of the design, from the varied config (`varied_config`), the loss changed on the
    spec itself when that is the change."""
    specs = [arm_spec(config, arm, seed, data_fingerprint) for seed in design.seeds for arm in design.arms]
    if design.change != LOSS:
        return specs
    return [spec.model_copy(update={"weighting": spec.weighting.model_copy(
        update={"loss": design.value, "tau": design.tau if design.tau is not None else 1.0})}) for spec in specs]


def planned_steps(train: TrainConfig, train_rows: int) -> int:
    """The optimizer steps a recipe takes on `train_rows` examples, as the HF Trainer counts them."""
    if train.max_steps > 0:
        return train.max_steps
    return math.ceil(train.epochs * math.ceil(train_rows / train.batch_size))


# --- the training data ---------------------------------------------------------------


def rare_classes(data: PreparedData) -> np.ndarray:
    """The label ids of the study's rare tier (tiers are listed rarest first)."""
    return np.flatnonzero(np.asarray(data.tier_of) == data.tier_names[0])


def available_rows(data: PreparedData, unused: pd.DataFrame) -> pd.DataFrame:
    """The unused source rows a top-up may draw: a label of the study, a text found nowhere in its data."""
    ids = {label: i for i, label in enumerate(data.labels)}
    seen = set(data.frame["text"])
    rows = unused[unused["label"].isin(ids.keys()) & ~unused["text"].isin(seen)]
    rows = rows.drop_duplicates("text")
    return rows.assign(label_id=rows["label"].map(ids).astype(np.int64))[["text", "label", "label_id"]]


def topped_up(data: PreparedData, rows: pd.DataFrame, target: int, seed: int) -> tuple[PreparedData, dict[str, int]]:
    """Every rare-tier class topped up to `target` training examples from `rows` (`available_rows`), as far as they
    go; also how many rows each class got."""
    rng = np.random.default_rng(seed)
    picked, added = [], {}
    for label_id in rare_classes(data):
        need = target - data.train_counts[label_id]
        pool = np.flatnonzero(rows["label_id"].to_numpy() == label_id)
        if need > 0 and len(pool):
            chosen = np.sort(rng.choice(pool, size=min(need, len(pool)), replace=False))
            picked.append(rows.iloc[chosen])
            added[data.labels[label_id]] = len(chosen)
    extra = pd.concat(picked).assign(split="train") if picked else rows.iloc[:0].assign(split="train")
    return _with_train(data, pd.concat([data.frame[data.frame["split"] == "train"], extra])), added


def subsampled(data: PreparedData, fraction: float, seed: int) -> tuple[PreparedData, dict[str, int]]:
    """Every rare-tier class keeping `fraction` of its training examples (at least one); also how many each lost."""
    rng = np.random.default_rng(seed)
    train = data.frame[data.frame["split"] == "train"]
    drop, removed = [], {}
    for label_id in rare_classes(data):
        members = np.flatnonzero(train["label_id"].to_numpy() == label_id)
        keep = max(1, math.floor(len(members) * fraction))
        if len(members) > keep:
            drop.extend(rng.choice(members, size=len(members) - keep, replace=False).tolist())
            removed[data.labels[label_id]] = len(members) - keep
    kept = np.setdiff1d(np.arange(len(train)), np.asarray(drop, dtype=int))
    return _with_train(data, train.iloc[kept]), removed


def _with_train(data: PreparedData, train: pd.DataFrame) -> PreparedData:
    """The study's data with another training set; validation, test, tiers and label space unchanged."""
    frame = pd.concat([train, data.frame[data.frame["split"] != "train"]], ignore_index=True)
    frame = frame[["text", "label", "label_id", "split"]].astype({"text": str, "label": str, "split": str})
    counts = np.bincount(frame.loc[frame["split"] == "train", "label_id"], minlength=len(data.labels)).tolist()
    return PreparedData(**{**data.__dict__, "frame": frame, "train_counts": counts,
                           "fingerprint": fingerprint(frame, data.labels)})
