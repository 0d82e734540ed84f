"""Preflight: every input a study will need, opened before any of it runs.

Without it a model source is opened only when its arm's turn comes, so a damaged decoder file is found
after every encoder arm has trained. Before the data is prepared and before the first training step, the
preflight checks, cheapest first (the file checks need neither torch nor transformers, so a damaged file
is reported within seconds):

* the run directory: a file can be written in it, and the folders the study writes there are folders;
* the data source (unless `data/` is already prepared with these settings): the file exists, parses and
  has the configured columns (from its header where it has one), or the hub dataset is cached or the hub
  reachable, or WordNet is found; the label merge map, label list and index files parse;
* the files of each model source an arm of the study uses: found (a hub model downloaded, a tiny one built),
  the weights' headers whole (safetensors headers; a GGUF's header, metadata and tensor table, and every
  tensor's bytes present), `config.json` a JSON object;
* then, with transformers: a GGUF architecture it loads (the file is then dequantised once into the cache, as
  its first arm would), `config.json` of the right family (an encoder for the encoder), the pooling fitting
  it, the tokenizer loading, and the LoRA target modules present in a skeleton built without weights.

Full weights are never loaded where a header suffices. Any failure is the usual one-line `StudyError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lorastudy.core import artifacts
from lorastudy.core.errors import StudyError
from lorastudy.core.integrity import sha256_file
from lorastudy.core.quiet import quiet_library_calls
from lorastudy.study import model_files, model_sources
from lorastudy.study.config import LoraConfig, ModelConfig, StudyConfig
from lorastudy.study.model_sources import DAMAGED_GGUF_FIX, DAMAGED_MODEL_FIX

# The folders a study writes in its run directory.
RUN_FOLDERS = ("data", "runs", "evaluation", "latency", "note")


@dataclass(frozen=True)
class LocatedModel:
    """A model source whose files passed the file checks: a folder, or a GGUF file not yet dequantised."""

    family: str
    model: ModelConfig
    kind: str  # "gguf" (path: the file) or any other source kind (path: a model folder)
    path: Path
    gguf: model_files.GgufHeader | None = None


def preflight(config: StudyConfig, run_dir: Path, stages: Sequence[str]) -> None:
    """Check every input the given stages will need; raise the first problem as a one-line StudyError."""
    from lorastudy.study.data import data_is_current
    from lorastudy.study.sources import check_source

    check_writable(Path(run_dir), "the run directory", "choose a writable --output-dir.")
    for name in RUN_FOLDERS:
        if (Path(run_dir) / name).exists() and not (Path(run_dir) / name).is_dir():
            raise StudyError(f"{Path(run_dir) / name} is a file, where the study writes a folder.",
                             "move it away, or choose another --output-dir.")
    if ("data" in stages or "train" in stages) and not data_is_current(config, run_dir):
        check_source(config.data)
    if "train" in stages or "bench" in stages:
        located = [locate_model(config, family) for family in families_used(config)]  # files first, all models
        for found in located:
            check_model(config, found)


def families_used(config: StudyConfig) -> list[str]:
    """The model families (encoder, decoder) that the study's arms train."""
    return [family for family in ("encoder", "decoder") if any(arm.startswith(family) for arm in config.arms)]


def check_writable(folder: Path, what: str, fix: str) -> None:
    """Create `folder` if needed and write (and remove) a file in it: permissions alone do not tell
    (a read-only file system, a full disk, or root, whom permissions do not stop)."""
    artifacts.make_folder(folder, fix)
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".preflight-", suffix=".tmp") as probe:
            probe.write(b"lorastudy preflight")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise StudyError(f"Cannot write in {what} {folder}: {exc.strerror or exc}.", fix) from None


def check_model_source(config: StudyConfig, family: str) -> None:
    """One family's model source, opened as its arms will open it, without loading its weights."""
    check_model(config, locate_model(config, family))


def locate_model(config: StudyConfig, family: str) -> LocatedModel:
    """The file checks of one family's source: found, weights' headers whole, config.json a JSON object.
    A GGUF file already dequantised into the cache is checked as the folder its arms will load."""
    model: ModelConfig = getattr(config.models, family)
    cache = model_sources.default_cache_dir()
    kind, path, _ = model_sources.locate_source(model.source, cache_dir=cache, revision=model.revision,
                                                allow_pickle=config.allow_pickle)
    if kind == "gguf":
        entry = model_sources.gguf_cache_entry(sha256_file(path), cache)
        if not (entry / "config.json").is_file():
            return LocatedModel(family, model, kind, path, check_gguf_file(path))
        path = entry
    check_folder_files(model.source, path, config.allow_pickle)
    return LocatedModel(family, model, kind, path)


def check_gguf_file(path: Path) -> model_files.GgufHeader:
    """A GGUF file's header: magic, version, metadata, tensor table, every tensor's bytes present, an
    architecture named and a tokenizer in the metadata."""
    with artifacts.reading(path, DAMAGED_GGUF_FIX):
        header = model_files.read_gguf_header(path)
    if header.architecture is None:
        raise StudyError(f"Could not read {path} (its GGUF metadata has no general.architecture).", DAMAGED_GGUF_FIX)
    if not header.has_tokenizer:
        raise StudyError(f"{path} has no tokenizer in its GGUF metadata (tokenizer.ggml.*).",
                         "use a GGUF file written with its tokenizer, or a model folder with tokenizer files.")
    return header


def check_folder_files(source: str, path: Path, allow_pickle: bool) -> None:
    """A model folder's files: config.json a JSON object, weights present, safetensors headers whole (opened
    without reading a tensor), every shard its index names present."""
    weights = model_sources.weight_files(source, path, allow_pickle)
    with artifacts.reading(path / "config.json", DAMAGED_MODEL_FIX):
        if not isinstance(json.loads((path / "config.json").read_text(encoding="utf-8")), dict):
            raise ValueError("it is not a JSON object")
    for file in weights:
        if file.suffix == ".safetensors":
            with artifacts.reading(file, DAMAGED_MODEL_FIX):
                model_files.check_safetensors(file)
    _check_shard_index(path)


def check_model(config: StudyConfig, found: LocatedModel) -> None:
    """The checks that need transformers: a GGUF architecture it loads (then the file is dequantised into the
    cache), the config's family, the pooling, the tokenizer, and the LoRA targets of the study's LoRA arms."""
    from transformers import AutoConfig

    from lorastudy.study import classifiers

    family, model, path = found.family, found.model, found.path
    if found.gguf is not None:
        check_gguf_architecture(found.path, found.gguf, family)
        cache = model_sources.default_cache_dir()
        check_writable(cache, "the model cache", "set LORASTUDY_CACHE_DIR to a writable folder.")
        # dequantised once into the cache, as the first of its arms would: a failure shows before any training
        path = model_sources.resolve_source(model.source, cache_dir=cache, revision=model.revision,
                                            allow_pickle=config.allow_pickle).path
        check_folder_files(model.source, path, config.allow_pickle)
    with artifacts.reading(path / "config.json", DAMAGED_MODEL_FIX), quiet_library_calls():
        model_config = AutoConfig.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    kind = classifiers.model_family(model_config)
    if kind != family:
        raise StudyError(f"models.{family}.source '{model.source}' holds {'an' if kind == 'encoder' else 'a'} "
                         f"{kind} ({model_config.model_type}).", f"set models.{family}.source to a {family} checkpoint.")
    classifiers.pooling_fits(model_config, family, model.pooling)
    with quiet_library_calls():
        classifiers.load_tokenizer(path, trust_remote_code=config.trust_remote_code)
    if any(arm.startswith(family) and "_lora" in arm for arm in config.arms):
        check_lora_targets(model_config, model.lora, family, config.trust_remote_code)


def check_gguf_architecture(path: Path, header: model_files.GgufHeader, family: str) -> None:
    """An architecture transformers can load from GGUF, and a decoder where a decoder is wanted."""
    from lorastudy.study.classifiers import ENCODER_TYPES

    supported = model_files.gguf_architectures()
    if supported is not None and header.architecture not in supported:
        raise StudyError(f"{path} holds a '{header.architecture}' model, which transformers cannot load from GGUF "
                         f"(it loads {', '.join(sorted(supported))}).",
                         "convert the model to a folder with config.json and safetensors weights, or use another.")
    if header.architecture in ENCODER_TYPES and family == "decoder":
        raise StudyError(f"models.decoder.source {path} holds an encoder ({header.architecture}).",
                         "set models.decoder.source to a decoder checkpoint.")


def _check_shard_index(path: Path) -> None:
    """Sharded weights: every shard the index names is there."""
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        return
    with artifacts.reading(index, DAMAGED_MODEL_FIX):
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    missing = [name for name in shards if not (path / name).is_file()]
    if missing:
        raise StudyError(f"Model folder {path} lacks {len(missing)} of the weight shards its index names: "
                         f"{', '.join(missing[:3])}.", "download the model again (all its files).")


def check_lora_targets(model_config, lora: LoraConfig, family: str, trust_remote_code: bool) -> None:
    """The LoRA target modules, found in a skeleton of the model built on the meta device (no weights)."""
    import torch
    from transformers import AutoModel

    from lorastudy.study.lora import lora_target_modules

    try:
        with torch.device("meta"), quiet_library_calls():
            skeleton = AutoModel.from_config(model_config, trust_remote_code=trust_remote_code)
    except (ValueError, TypeError, ImportError, RuntimeError, NotImplementedError):
        return  # a model that cannot be built without weights: its arms check the targets when they apply LoRA
    if lora.target_modules == "auto":
        lora_target_modules(skeleton, lora.include_mlp)
        return
    names = [name for name, _ in skeleton.named_modules()]
    missing = [t for t in lora.target_modules if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        raise StudyError(f"models.{family}.lora.target_modules names {', '.join(missing)}, which the "
                         f"{model_config.model_type} model does not have.",
                         "use the names of its linear layers, or target_modules: auto.")
