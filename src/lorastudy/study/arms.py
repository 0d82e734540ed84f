"""One arm x seed run resolved from the study config: the recipe it trains with and the hash that names it."""

from __future__ import annotations

from typing import Literal

from lorastudy.study.config import (
    Arm,
    ModelConfig,
    Strict,
    StudyConfig,
    TfidfConfig,
    TrainConfig,
    WeightingConfig,
    merged_recipe,
    stable_hash,
)


class ArmSpec(Strict):
    """Everything that determines one trained run; its hash identifies the run on disk."""

    arm: Arm
    seed: int
    family: Literal["encoder", "decoder", "none"]
    method: Literal["lora", "full", "tfidf"]
    class_weighting: bool
    model: ModelConfig | None
    train: TrainConfig | None
    weighting: WeightingConfig | None
    tfidf: TfidfConfig | None
    data_fingerprint: str

    @property
    def run_name(self) -> str:
        return f"{self.arm}__seed{self.seed}"

    def config_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))


def arm_spec(config: StudyConfig, arm: Arm, seed: int, data_fingerprint: str) -> ArmSpec:
    """Resolve the recipe one arm trains with: global train settings, then the model's overrides."""
    weighted = arm.endswith("_cw")
    if arm == "tfidf_logreg":
        return ArmSpec(arm=arm, seed=seed, family="none", method="tfidf", class_weighting=False,
                       model=None, train=None, weighting=None, tfidf=config.tfidf,
                       data_fingerprint=data_fingerprint)
    family = "encoder" if arm.startswith("encoder") else "decoder"
    method = "full" if "_full" in arm else "lora"
    model = getattr(config.models, family)
    train = merged_recipe(config.train, model.full_train if method == "full" else model.lora_train)
    weighting = config.weighting if weighted else WeightingConfig(scheme="none")
    return ArmSpec(arm=arm, seed=seed, family=family, method=method, class_weighting=weighted,
                   model=model, train=train,
                   weighting=weighting, tfidf=None, data_fingerprint=data_fingerprint)
