"""Trained runs: save a run's model (adapter + head, or the full model) and load it back, checked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn
from transformers import PreTrainedTokenizerBase

from lorastudy.core import artifacts
from lorastudy.core.errors import StudyError
from lorastudy.core.quiet import quiet_library_calls
from lorastudy.study.classifiers import DAMAGED_MODEL_FIX, LOAD_RECORD_ATTR, LoadRecord, load_classifier, load_tokenizer
from lorastudy.study.arms import ArmSpec
from lorastudy.study.model_sources import checked_source, default_cache_dir, resolve_source

if TYPE_CHECKING:
    from peft import PeftModel

BASE_RECORD = "base_model.json"


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
    with artifacts.atomic_dir(Path(out_dir)) as tmp, quiet_library_calls():
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
        saved = checked_source(str(model_dir), model_dir, "folder", None, allow_pickle=False)
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
            with quiet_library_calls():
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
