"""A trained arm as a self-contained model folder a user deploys without the run directory (`lorastudy export`).

safetensors: LoRA merged into the weights, `id2label`/`label2id` = the study's label names, the tokenizer
(truncating at the study's max_length), and a model card (README.md) with the arm's test metrics and
intervals, its recipe, its data and the study's recommendation per context. onnx: the same folder with
`model.onnx` (logits from input_ids and attention_mask, run by onnxruntime) instead of the torch weights,
checked against the torch model before it is written.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from lorastudy.core import artifacts, runtime
from lorastudy.core.errors import StudyError
from lorastudy.core.quiet import quiet_library_calls
from lorastudy.serve.predict import TrainedRun, locate_run

FORMATS = ("safetensors", "onnx")
ONNX_FILE = "model.onnx"
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_TOLERANCE = 1e-4  # max |logit difference| between onnxruntime and torch (float32) on the check batch


def export_model(run_dir: Path, arm: str, out: Path, *, seed: int | None = None, fmt: str = "safetensors") -> Path:
    """Write the model folder `out` (created whole, or not at all) and return it."""
    if fmt not in FORMATS:
        raise StudyError(f"Unknown export format '{fmt}'.", f"use --format {' or --format '.join(FORMATS)}.")
    run = locate_run(run_dir, arm, seed)
    evaluation = _evaluation(run)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"{out} already exists and is not an empty folder.", "choose a new folder, or delete it.")
    artifacts.make_folder(out.parent, "choose a writable place for the model folder.")
    if run.method == "tfidf" and fmt == "onnx":
        raise StudyError("The TF-IDF arm has no ONNX export.", "export it with --format safetensors.")
    with artifacts.atomic_dir(out) as tmp:
        if run.method == "tfidf":
            for name in ("tfidf.json", "logreg.safetensors"):
                shutil.copy2(run.path / "model" / name, tmp / name)
            artifacts.write_json(tmp / "labels.json", {"id2label": dict(enumerate(run.labels))})
            head = "tfidf"
        else:
            head = _export_neural(run, tmp, fmt)
        artifacts.write_text(tmp / "README.md", model_card(run, evaluation, fmt, head))
    return out


def _export_neural(run: TrainedRun, folder: Path, fmt: str) -> str:
    """Save the merged model (or its ONNX graph) and tokenizer; return "standard" or "mean_pooling"."""
    from lorastudy.study.classifiers import MeanPoolingClassifier
    from lorastudy.study.trained import load_trained

    model, tokenizer = load_trained(run.path, merged=True, allow_pickle=run.config.allow_pickle)
    model.config.id2label = dict(enumerate(run.labels))
    model.config.label2id = {label: i for i, label in enumerate(run.labels)}
    tokenizer.model_max_length = run.config.data.max_length  # the length the study truncated at
    tokenizer.save_pretrained(folder)
    if fmt == "onnx":
        model.config.save_pretrained(folder)  # labels and architecture, for readers of the folder
        _write_onnx(model, tokenizer, folder / ONNX_FILE, _check_texts(run))
    else:
        with quiet_library_calls():
            model.save_pretrained(folder, safe_serialization=True)
    return "mean_pooling" if isinstance(model, MeanPoolingClassifier) else "standard"


class LogitsOnly(torch.nn.Module):
    """The model as a function of (input_ids, attention_mask) -> logits: the ONNX graph's signature."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _write_onnx(model, tokenizer, path: Path, texts: list[str]) -> None:
    """torch.onnx (dynamo) with dynamic batch and sequence axes, then onnxruntime must give the same logits."""
    try:
        import onnxruntime
    except ImportError:
        raise StudyError("The ONNX export needs onnx, onnxscript and onnxruntime.",
                         "pip install 'lorastudy[onnx]' (make setup installs them).") from None
    encoded = tokenizer(texts, truncation=True, padding=True, return_tensors="pt")
    inputs = tuple(encoded[name] for name in ONNX_INPUTS)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with _quiet(), torch.inference_mode():
        expected = LogitsOnly(model).eval()(*inputs).numpy()
    with _quiet():
        torch.onnx.export(LogitsOnly(model).eval(), inputs, str(path), input_names=list(ONNX_INPUTS), output_names=["logits"],
                          dynamic_shapes={name: {0: batch, 1: sequence} for name in ONNX_INPUTS}, dynamo=True,
                          verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {name: encoded[name].numpy() for name in ONNX_INPUTS})[0]
    difference = float(np.abs(got - expected).max())
    if difference > ONNX_TOLERANCE:
        raise StudyError(f"The ONNX graph's logits differ from the model's by {difference:.2e} (> {ONNX_TOLERANCE}).",
                         "export with --format safetensors instead.")


@contextlib.contextmanager
def _quiet():
    """torch.onnx reports every optional operator set it skips; none of it concerns the user."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _check_texts(run: TrainedRun) -> list[str]:
    """Test texts of different lengths for the export's example batch and its check (padding included)."""
    from lorastudy.measure.latency import load_test_texts

    texts = sorted(load_test_texts(run.run_dir), key=len)
    return [texts[0], texts[len(texts) // 2], texts[-1]] if texts else ["a short text", "a somewhat longer text here"]


def _evaluation(run: TrainedRun) -> dict:
    """The run's entry in results.json (required: a model card without its test metrics is not shipped)."""
    path = run.run_dir / "evaluation" / "results.json"
    if not path.is_file():
        raise StudyError(f"{run.run_dir} has not been evaluated (no evaluation/results.json).",
                         f"evaluate first: lorastudy run --output-dir {run.run_dir} --stage evaluate.")
    results = artifacts.read_json(path)
    if run.path.name not in results.get("runs", {}):
        raise StudyError(f"evaluation/results.json has no entry for {run.path.name}.",
                         f"re-evaluate: lorastudy run --output-dir {run.run_dir} --stage evaluate.")
    return results


# --- the model card ------------------------------------------------------------


def model_card(run: TrainedRun, results: dict, fmt: str, head: str) -> str:
    """README.md of the exported folder: what the model is, how to load it, how good it is, what it saw."""
    spec = artifacts.read_json(run.path / "spec.json")
    summary_path = run.run_dir / "data" / "summary.json"
    summary = artifacts.read_json(summary_path) if summary_path.is_file() else None
    title = f"{run.arm} (seed {run.seed}) from the lorastudy study '{run.config.name}'"
    lines = ["---", "library_name: " + ("transformers" if head == "standard" and fmt == "safetensors" else "lorastudy"),
             "pipeline_tag: text-classification", "tags: [lorastudy, text-classification]", "---", "",
             f"# {title}", "",
             f"{_describe(run)}, trained by lorastudy on {len(run.labels)} classes; exported from "
             f"`{run.path}`.", ""]
    lines += ["## How to load it", ""] + _loading(run, fmt, head) + [""]
    lines += ["## Test metrics", ""] + _metrics(run, results) + [""]
    lines += ["## Training recipe", ""] + _recipe(run, spec) + [""]
    lines += ["## Data", ""] + (_data(summary) if summary else ["`data/summary.json` was not found."]) + [""]
    lines += ["## The study's recommendation per context", ""] + _recommendations(run) + [""]
    lines += ["## Labels", "", ", ".join(f"{i}: {_cell(label)}" for i, label in enumerate(run.labels)), ""]
    return "\n".join(lines)


def _describe(run: TrainedRun) -> str:
    record = run.record
    if run.method == "tfidf":
        return "A TF-IDF + logistic-regression classifier"
    what = {"lora": "LoRA fine-tune (adapter merged into the weights)", "full": "full fine-tune"}[run.method]
    model = record.get("model") or {}
    article = "An" if str(record.get("family")).startswith(("a", "e", "i", "o", "u")) else "A"
    return (f"{article} {record.get('family')} {what} of `{model.get('source')}` ({model.get('model_type')}, "
            f"{record['parameters']['total']:,} parameters)")


def _loading(run: TrainedRun, fmt: str, head: str) -> list[str]:
    max_length = run.config.data.max_length
    if head == "tfidf":
        return ["The vocabulary and settings are in `tfidf.json`, the idf weights and the logistic-regression "
                "coefficients in `logreg.safetensors` (no pickle); `labels.json` maps class ids to names. With "
                "lorastudy installed:", "", "```python",
                "from lorastudy.study.training import load_tfidf, tfidf_logits",
                "pipeline = load_tfidf('OUT')",
                f"logits = tfidf_logits(pipeline, ['a text to label'], {len(run.labels)})", "```"]
    if fmt == "onnx":
        return ["`model.onnx` maps `input_ids` and `attention_mask` (int64, batch x sequence) to `logits` "
                "(float32, batch x classes); `config.json` has `id2label`. It was checked against the torch model "
                f"(max |logit difference| <= {ONNX_TOLERANCE}) when exported.", "", "```python",
                "import numpy as np, onnxruntime",
                "from transformers import AutoConfig, AutoTokenizer",
                "tokenizer = AutoTokenizer.from_pretrained('OUT')",
                "labels = AutoConfig.from_pretrained('OUT').id2label",
                "session = onnxruntime.InferenceSession('OUT/model.onnx')",
                "encoded = tokenizer(['a text to label'], truncation=True, padding=True, return_tensors='np')",
                "logits = session.run(['logits'], {k: encoded[k].astype(np.int64) for k in "
                "('input_ids', 'attention_mask')})[0]",
                "print([labels[i] for i in logits.argmax(-1)])", "```"]
    if head == "mean_pooling":
        return ["The head is not a standard transformers head: it averages the encoder's token states over the "
                "attention mask (mean pooling, how this sentence-embedding checkpoint was trained) and applies a "
                "linear layer. `AutoModelForSequenceClassification` would instead build the [CLS] head with random "
                "weights, so load it with lorastudy's class, or export with `--format onnx` to run it without "
                "lorastudy:", "", "```python", "from transformers import AutoConfig, AutoTokenizer",
                "from lorastudy.study.classifiers import MeanPoolingClassifier",
                "model = MeanPoolingClassifier.from_pretrained('OUT', config=AutoConfig.from_pretrained('OUT')).eval()",
                "tokenizer = AutoTokenizer.from_pretrained('OUT')",
                "encoded = tokenizer(['a text to label'], truncation=True, padding=True, return_tensors='pt')",
                "print(model.config.id2label[int(model(**encoded).logits.argmax(-1))])", "```"]
    return ["A standard transformers sequence classifier:", "", "```python",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline",
            "model = AutoModelForSequenceClassification.from_pretrained('OUT')",
            "tokenizer = AutoTokenizer.from_pretrained('OUT')",
            "classify = pipeline('text-classification', model='OUT', top_k=3)",
            "print(classify('a text to label', truncation=True))", "```", "",
            f"The tokenizer truncates at {max_length} tokens, as in the study."]


def _metrics(run: TrainedRun, results: dict) -> list[str]:
    test = results["runs"][run.path.name]["test"]
    evaluation = run.config.evaluation
    ci = test.get("ci") or {}
    rows = [["Accuracy", _pct(test.get("accuracy")), _interval(ci.get("accuracy"), _pct)],
            ["Macro F1", _f1(test.get("macro_f1")), _interval(ci.get("macro_f1"), _f1)],
            ["Weighted F1", _f1(test.get("weighted_f1")), "–"],
            ["Classes with zero F1", str(test.get("zero_f1_count")), "–"]]
    for tier, values in (test.get("per_tier") or {}).items():
        rows.append([f"{_cell(tier)} tier: mean F1 / recall",
                     f"{_f1(values.get('mean_f1'))} / {_pct(values.get('recall'))}", "–"])
    lines = [f"On the study's test split (seed {run.seed}); intervals: {evaluation.confidence:.0%} bootstrap "
             f"intervals over {evaluation.bootstrap_samples} resamples of the test examples, class by class.", "",
             "| Metric | Value | Interval |", "|---|---|---|"] + [f"| {' | '.join(row)} |" for row in rows]
    aggregate = (results.get("arms") or {}).get(run.arm) or {}
    if aggregate.get("n_seeds", 1) > 1:
        macro = aggregate["test"]["macro_f1"]
        lines += ["", f"Across {aggregate['n_seeds']} seeds the arm's test macro F1 is {_f1(macro['mean'])} "
                      f"± {_f1(macro['std'])} (mean ± sample standard deviation)."]
    if (run.record.get("collapse") or {}).get("collapsed"):
        lines += ["", f"**Warning: this run collapsed in training** ({run.record['collapse']['reason']})."]
    return lines


def _recipe(run: TrainedRun, spec: dict) -> list[str]:
    record = run.record
    lines = []
    if spec.get("tfidf"):
        lines.append("TF-IDF settings: " + _settings(spec["tfidf"]) + ".")
    if spec.get("model"):
        model = spec["model"]
        lines.append(f"Model: `{model['source']}`, pooling `{model['pooling']}`.")
        if run.method == "lora":
            lines.append("LoRA: " + _settings(model["lora"]) + "; target modules: "
                         + ", ".join(f"`{m}`" for m in record.get("lora_target_modules") or []) + ".")
        lines.append("Training: " + _settings(spec["train"]) + ".")
        weighting = spec.get("weighting") or {}
        lines.append(f"Class weighting: {weighting.get('scheme', 'none')}; loss {weighting.get('loss', 'cross_entropy')}.")
    lines.append(f"Run: {record.get('steps')} steps, best epoch {record.get('best_epoch')}, validation macro F1 "
                 f"{_f1(record.get('best_val_macro_f1'))}, {record.get('wall_time_s', 0):.0f} s on {record.get('device')} "
                 f"({record.get('threads')} thread(s)), precision {record.get('precision')}.")
    if run.method != "tfidf":
        lines.append(f"The study served it in {record.get('precision')} ({runtime.served_weights(record.get('precision'))}); "
                     "the exported weights are float32.")
    environment = record.get("environment") or {}
    libraries = environment.get("libraries") or {}
    lines.append("Environment: " + ", ".join(f"{k} {v}" for k, v in libraries.items() if v)
                 + (f"; lorastudy commit {environment['git_commit']}" if environment.get("git_commit") else "") + ".")
    return [f"- {line}" for line in lines]


def _data(summary: dict) -> list[str]:
    rows = summary.get("rows", {})
    tiers = summary.get("tiers", {})
    lengths = summary.get("text_length", {})
    tokens = lengths.get("tokens", {})
    lines = [f"Source: `{summary.get('source')}`; {summary.get('num_classes')} classes; "
             + ", ".join(f"{count:,} {split}" for split, count in rows.items()) + " examples.",
             f"Frequency tiers: {_cell(tiers.get('rule', ''))} ("
             + ", ".join(f"{size} {_cell(name)}" for name, size in (tiers.get("sizes") or {}).items()) + ").",
             f"Text length: mean {tokens.get('mean', 0):.1f}, p95 {tokens.get('p95', 0):.1f} ({tokens.get('counted_with')}); "
             f"truncated at {lengths.get('max_length')} tokens ({lengths.get('truncation_rate', 0):.1%} of texts)."]
    lines += [f"Warning: {_cell(w)}" for w in summary.get("warnings") or []]
    return [f"- {line}" for line in lines]


DECIDED_BY = {"quality": "the only candidate on {metric} (the others under the quality floor, clearly below "
                          "or missing the target)",
              "cost": "not ranked apart on {metric}; materially cheaper",
              "p95": "not ranked apart on {metric}; no material cost difference; the lowest p95",
              "memory": "not ranked apart on {metric}, cost or latency; the least memory",
              "point_estimate": "not ranked apart on {metric}, cost or latency; the higher point estimate",
              "no_arm_meets": "no arm meets the target",
              "below_floor": "no arm that meets the target reaches the quality floor"}


def _recommendations(run: TrainedRun) -> list[str]:
    path = run.run_dir / "evaluation" / "findings.json"
    note = run.run_dir / "note" / "note.md"
    if not path.is_file():
        return [f"This run directory has no `evaluation/findings.json`; the note (`{note}`) gives the study's "
                "recommendation per deployment context."]
    from lorastudy.note.findings import Findings

    decisions = Findings.model_validate(artifacts.read_json(path)).of_kind("decision")
    rows = []
    for finding in decisions:
        choice, metric = finding.facts["decision"]["choice"], finding.facts["metric"]
        rows.append(f"| {_cell(finding.facts['context']['name'])} | {_cell(choice or 'none')}"
                    f"{' (this model)' if choice == run.arm else ''} | {_cell(DECIDED_BY[finding.verdict].format(metric=metric))} |")
    return ["| Context | Choice | Reason |", "|---|---|---|", *rows, "", f"The reasoning is in the note (`{note}`)."]


def _settings(values: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in values.items() if value is not None)


def _cell(text: object) -> str:
    """Text from data (labels, reasons) inside a Markdown table cell: no pipes, no HTML."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _f1(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _interval(bounds: list[float] | None, fmt) -> str:
    return "–" if not bounds else f"{fmt(bounds[0])} – {fmt(bounds[1])}"
