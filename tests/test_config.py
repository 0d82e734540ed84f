import pytest

from lorastudy.config import ARMS, PROFILES, arm_spec, load_config
from lorastudy.errors import StudyError


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_validate(profile):
    cfg = load_config(profile)
    assert cfg.name == profile
    assert set(cfg.arms) <= set(ARMS)


def test_override_sets_nested_value():
    cfg = load_config("demo", ["train.epochs=1", "seeds=[1,2]"])
    assert cfg.train.epochs == 1
    assert cfg.seeds == [1, 2]


def test_unknown_key_names_key_and_valid_ones():
    with pytest.raises(StudyError) as err:
        load_config("demo", ["train.epoch=1"])
    assert "train.epoch" in str(err.value) and "epochs" in str(err.value)


@pytest.mark.parametrize("override", ["train.batch_size=0", "train.learning_rate=-1", "lora=3", "seeds=[]", "arms=[]"])
def test_bad_values_are_errors(override):
    with pytest.raises(StudyError):
        load_config("demo", [override])


def test_arm_spec_merges_model_overrides_and_hash_changes():
    cfg = load_config("demo")
    lora = arm_spec(cfg, "encoder_lora", 42, "fp")
    full = arm_spec(cfg, "encoder_full", 42, "fp")
    assert lora.train.learning_rate == cfg.models.encoder.lora_train.learning_rate
    assert full.train.learning_rate == cfg.models.encoder.full_train.learning_rate
    assert arm_spec(cfg, "encoder_lora_cw", 42, "fp").weighting.scheme == "sqrt_inverse"
    assert lora.weighting.scheme == "none"
    assert lora.config_hash() != arm_spec(cfg, "encoder_lora", 43, "fp").config_hash()
    assert lora.config_hash() == arm_spec(load_config("demo"), "encoder_lora", 42, "fp").config_hash()


def test_missing_config_file_is_clear(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))


# --- config gaps (issue 12, point 7) ----------------------------------------


@pytest.mark.parametrize("overrides, words", [
    (["train.warmup_steps=10", "train.warmup_ratio=0.1"], "warmup_steps"),
    (["train.warmup_ratio=0.1", "models.encoder.lora_train.warmup_steps=10"], "models.encoder.lora_train"),
    (["train.lr_scheduler=cosine_annealing"], "lr_scheduler"),
    (["tiers.scheme=quantiles", "tiers.quantiles=[0.75, 0.25]"], "must increase"),
    (["tiers.scheme=quantiles", "tiers.quantiles=[0.5, 0.5]"], "must increase"),
    (["tiers.scheme=quantiles", "tiers.quantiles=[0, 0.5]"], "between 0 and 1"),
    (["tiers.scheme=quantiles", "tiers.quantiles=[0.5, 1.5]"], "between 0 and 1"),
])
def test_config_gaps_are_errors(overrides, words):
    with pytest.raises(StudyError, match=words):
        load_config("smoke", overrides)


def test_one_warmup_setting_per_recipe_is_fine():
    cfg = load_config("smoke", ["train.warmup_ratio=0.1", "models.encoder.lora_train.warmup_ratio=0.2"])
    assert arm_spec(cfg, "encoder_lora", 42, "fp").train.warmup_ratio == 0.2


def test_every_allowed_scheduler_is_one_transformers_knows():
    from typing import get_args

    from transformers import SchedulerType

    from lorastudy.config import Scheduler

    assert set(get_args(Scheduler)) <= {s.value for s in SchedulerType}
