"""Classifiers: encoder/decoder detection, the classification heads (incl. MeanPoolingClassifier), loading.

`load_classifier` turns a resolved source (`lorastudy.study.model_sources`) into a float32 sequence
classifier and its tokenizer, and attaches a `LoadRecord` that saving a run needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from lorastudy.core import artifacts
from lorastudy.core.errors import StudyError
from lorastudy.core.quiet import quiet_library_calls
from lorastudy.study.model_sources import (
    DAMAGED_MODEL_FIX,
    PICKLE_WEIGHTS,
    SAFE_WEIGHTS,
    ResolvedSource,
    matching_files,
)

Family = Literal["encoder", "decoder"]

LOAD_RECORD_ATTR = "lorastudy_load"

# model_type values whose checkpoints are causal language models (decoders) or bidirectional encoders.
DECODER_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral", "mixtral", "gemma", "gemma2", "gemma3_text", "phi",
                           "phi3", "gpt2", "gpt_neox", "gptj", "falcon", "olmo", "olmo2", "smollm3", "granite"})
ENCODER_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "distilbert", "modernbert", "deberta", "deberta-v2",
                           "electra", "mpnet", "albert", "camembert"})



@dataclass
class LoadRecord:
    """What `load_classifier` knows that a saved run must remember; attached to the model it returns."""

    source: ResolvedSource
    pooling: str
    newly_initialized: list[str] = field(default_factory=list)


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


def pooling_fits(config: PretrainedConfig, family: Family, pooling: str) -> None:
    """Raise a StudyError when `pooling` does not fit the model (cls on a decoder, last on an encoder)."""
    _uses_mean_head(config, family, pooling)


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
    with artifacts.reading(_weights_name(resolved.path), DAMAGED_MODEL_FIX), quiet_library_calls():
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
    weights = matching_files(Path(folder), SAFE_WEIGHTS) or matching_files(Path(folder), PICKLE_WEIGHTS)
    return weights[0] if len(weights) == 1 else Path(folder)

