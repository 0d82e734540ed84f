import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lorastudy.cli import app
from lorastudy.study.config import ARMS
from lorastudy.study.arms import arm_spec
from lorastudy.study.config_loading import PROFILES, load_config
from lorastudy.core.errors import StudyError


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

    from lorastudy.study.config import Scheduler

    assert set(get_args(Scheduler)) <= {s.value for s in SchedulerType}


# --- study files that inherit (issue 12, point 8) ----------------------------


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_study_file_states_only_what_differs(tmp_path):
    study = write(tmp_path / "mine.yaml", "extends: smoke\nname: mine\ndata:\n  source: tickets.csv\n"
                                          "train:\n  epochs: 1\n")
    cfg = load_config(str(study))
    smoke = load_config("smoke")
    assert cfg.name == "mine" and cfg.data.source == "tickets.csv" and cfg.train.epochs == 1
    assert cfg.data.max_length == smoke.data.max_length  # merged key by key, not replaced
    assert cfg.train.batch_size == smoke.train.batch_size and cfg.models == smoke.models


def test_extends_a_file_relative_to_the_extending_file_in_a_chain(tmp_path):
    (tmp_path / "shared").mkdir()
    write(tmp_path / "shared" / "base.yaml", "extends: smoke\nseeds: [1, 2]\n")
    write(tmp_path / "shared" / "team.yaml", "extends: base.yaml\ntrain:\n  epochs: 1\n")
    study = write(tmp_path / "mine.yaml", "extends: shared/team.yaml\nseeds: [7]\n")
    cfg = load_config(str(study), ["train.batch_size=4"])
    assert cfg.seeds == [7] and cfg.train.epochs == 1 and cfg.train.batch_size == 4 and cfg.name == "smoke"


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(StudyError, match="cycle: a.yaml -> b.yaml -> a.yaml"):
        load_config(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize("value, words", [("nothing_here", "neither a profile"), ("[demo]", "not a profile name")])
def test_extends_something_unknown_is_an_error(tmp_path, value, words):
    with pytest.raises(StudyError, match=words):
        load_config(str(write(tmp_path / "a.yaml", f"extends: {value}\n")))


@pytest.mark.parametrize("base", ["demo", "smoke", "course"])
def test_init_writes_a_commented_file_that_loads(tmp_path, monkeypatch, base):
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["init", "my_study.yaml", "--from", base])
    assert done.exit_code == 0, done.output
    text = (tmp_path / "my_study.yaml").read_text()
    assert text.startswith("#") and f"extends: {base}" in text
    assert text.index("data:") < text.index("split:")
    cfg = load_config("my_study.yaml")
    assert cfg.name == "my_study" and cfg.output_dir == "runs/my_study" and cfg.data.source == "my_data.csv"
    assert cfg.split.test_size is None and cfg.models == load_config(base).models
    again = CliRunner().invoke(app, ["init", "my_study.yaml"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert (tmp_path / "my_study.yaml").read_text() == text


def test_init_from_a_study_file_extends_it_by_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    write(tmp_path / "base.yaml", "extends: smoke\nseeds: [5]\n")
    done = CliRunner().invoke(app, ["init", "studies/mine.yaml", "--from", "base.yaml"])
    assert done.exit_code == 0, done.output
    assert "extends: ../base.yaml" in (tmp_path / "studies" / "mine.yaml").read_text()
    assert load_config("studies/mine.yaml").seeds == [5]


def test_the_readme_own_data_example_works_on_a_fresh_csv(tmp_path, monkeypatch):
    """The YAML in README's "Your own data" section, on a CSV of its own, through `lorastudy data`."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    study = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert len(study.strip().splitlines()) == 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tickets.yaml").write_text(study, encoding="utf-8")
    with open(tmp_path / "tickets.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "body", "queue"])
        queues = {"billing": 60, "login": 30, "shipping": 12, "refund": 5}
        for queue, n in queues.items():
            for i in range(n):
                writer.writerow([f"{queue}-{i}", f"ticket {i} about {queue} from a customer", queue])
    cfg = load_config("tickets.yaml")
    assert cfg.output_dir == "runs/tickets" and cfg.models == load_config("demo").models
    done = CliRunner().invoke(app, ["data", "--config", "tickets.yaml", "--json",
                                    "--set", "models.encoder.source=tiny:bert", "--set", "models.decoder.source=tiny:llama"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert summary["num_classes"] == 4 and sum(summary["rows"].values()) == 107


def test_reference_arms_train_the_first_seeds():
    cfg = load_config("smoke", ["seeds=[42, 43]", "reference_seeds=1", "arms=[tfidf_logreg, encoder_lora]"])
    assert cfg.arm_seeds() == [("tfidf_logreg", 42), ("encoder_lora", 42), ("encoder_lora", 43)]
    assert load_config("smoke", ["seeds=[42, 43]", "arms=[tfidf_logreg]"]).seeds_of("tfidf_logreg") == [42, 43]
    assert load_config("demo", ["seeds=[1, 2]"]).seeds_of("encoder_full") == [1]  # follows the seeds it is given
    with pytest.raises(StudyError, match="seeds lists a seed twice"):
        load_config("smoke", ["seeds=[42, 42]"])
    with pytest.raises(StudyError, match="reference_seeds"):
        load_config("smoke", ["reference_seeds=0"])
