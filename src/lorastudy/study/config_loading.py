"""Reading a study config: shipped profiles, YAML files and their `extends:` chain, `--set` overrides.

Validation problems become one readable line each (unknown keys list the valid ones);
`dump_config` writes the resolved config back as YAML.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from lorastudy.core.errors import StudyError
from lorastudy.study.config import StudyConfig

PROFILES = ("demo", "smoke", "course")


def profile_text(name: str) -> str:
    if name not in PROFILES:
        raise StudyError(f"Unknown profile '{name}'.", f"use one of: {', '.join(PROFILES)}, or --config FILE.")
    return resources.files("lorastudy.study.profiles").joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def load_config(config: str | Path | dict | None = None, overrides: list[str] | None = None,
                profile: str = "demo") -> StudyConfig:
    """Build a validated config from a profile name, a YAML path or a dict, then apply `key=value` overrides."""
    if isinstance(config, dict):
        raw = _resolve_extends(dict(config), Path.cwd(), ())
    elif config is None or (isinstance(config, str) and config in PROFILES):
        raw = yaml.safe_load(profile_text(config or profile))
    else:
        raw = read_study_file(Path(config))
    for item in overrides or []:
        _apply_override(raw, item)
    return validate_config(raw)


def read_study_file(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A YAML study file as a settings mapping, its `extends:` chain merged in (the base first)."""
    if not path.is_file():
        raise StudyError(f"Config file {path} does not exist.",
                         f"pass a YAML file, or a profile name ({', '.join(PROFILES)}).")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StudyError(f"Config file {path} is not valid YAML ({str(exc).splitlines()[0]}).",
                         "fix the YAML syntax.") from exc
    if not isinstance(raw, dict):
        raise StudyError(f"Config file {path} must be a YAML mapping of settings.", "see the shipped profiles in `lorastudy data --help`.")
    return _resolve_extends(raw, path.parent, (*chain, path.resolve()))


def _resolve_extends(raw: dict, folder: Path, chain: tuple[Path, ...]) -> dict:
    """`extends: <profile or YAML path>` (a path is relative to the extending file): the base's settings with
    this file's merged over them, so a study file states only what differs."""
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise StudyError(f"extends: {base!r} is not a profile name or a file path.",
                         f"write e.g. `extends: demo` (profiles: {', '.join(PROFILES)}) or `extends: base.yaml`.")
    if base in PROFILES:
        return deep_merge(yaml.safe_load(profile_text(base)), raw)
    path = (folder / Path(base).expanduser()).resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain[chain.index(path):], path))
        raise StudyError(f"The study files extend each other in a cycle: {cycle}.",
                         "let one of them extend a profile (e.g. `extends: demo`) instead.")
    if not path.is_file():
        raise StudyError(f"extends: '{base}' is neither a profile ({', '.join(PROFILES)}) nor a file ({path} does not exist).",
                         "name a profile, or a YAML path relative to the file that extends it.")
    return deep_merge(read_study_file(path, chain), raw)


def deep_merge(base: dict, override: dict) -> dict:
    """`override` over `base`: mappings merge key by key; anything else, lists included, replaces."""
    merged = dict(base)
    for key, value in override.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both_mappings else value
    return merged


def validate_config(raw: dict) -> StudyConfig:
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise StudyError(_explain(exc), "correct the config or --set value.") from None


def _apply_override(raw: dict, item: str) -> None:
    if "=" not in item:
        raise StudyError(f"--set '{item}' is not of the form key=value.", "write e.g. --set train.epochs=1.")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        if part.isdigit() and isinstance(node, list):
            node = node[int(part)]
            continue
        node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise StudyError(f"--set {key}: '{part}' is not a section.", "check the key path.")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    last = parts[-1]
    if isinstance(node, list) and last.isdigit():
        node[int(last)] = parsed
    else:
        node[last] = parsed


def _explain(exc: ValidationError) -> str:
    """One readable line per problem; unknown keys list the valid ones."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(err["loc"][:-1])
            hint = f" Valid keys here: {', '.join(valid)}." if valid else ""
            lines.append(f"Unknown config key '{loc}'.{hint}")
        elif err["type"] == "missing":
            lines.append(f"Config key '{loc}' is required.")
        else:
            lines.append(f"Config key '{loc}': {err['msg']} (got {err.get('input')!r}).")
    return " ".join(lines)


def _valid_keys(loc: tuple) -> list[str]:
    model: Any = StudyConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", {}))


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def dump_config(config: StudyConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
