"""LoRA: target modules per layout, the head modules trained in full beside the adapter, parameter counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn
from transformers import PreTrainedModel

from lorastudy.core.errors import StudyError
from lorastudy.core.quiet import quiet_library_calls
from lorastudy.study.classifiers import LOAD_RECORD_ATTR, LoadRecord, model_family
from lorastudy.study.config import LoraConfig

if TYPE_CHECKING:
    from peft import PeftModel

# (a module-name suffix that identifies the layout, attention targets, extra MLP targets).
# PEFT matches a target against the end of a module name, so BERT's attention output must be
# "attention.output.dense" (plain "output.dense" would also hit the MLP) and ModernBERT's "attn.Wo".
LORA_LAYOUTS = (
    ("attention.self.query", ["query", "key", "value", "attention.output.dense"], ["intermediate.dense", "output.dense"]),
    ("attn.Wqkv", ["Wqkv", "attn.Wo"], ["mlp.Wi", "mlp.Wo"]),
    ("self_attn.q_proj", ["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "up_proj", "down_proj"]),
)
HEAD_NAMES = ("pre_classifier", "classifier", "score", "head")


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
        with quiet_library_calls():
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
