"""The study config's schema: every setting of a study, validated by pydantic.

A study is data as much as code: everything that changes a number in the note
lives here, is written resolved into the run directory, and is hashed per run
so that resume can tell finished work from stale work. Reading a config (shipped
profiles, `extends:`, `--set` overrides) is `config_loading`; one run's resolved
recipe is `arms`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

Arm = Literal[
    "tfidf_logreg",
    "encoder_full",
    "encoder_full_cw",
    "encoder_lora",
    "encoder_lora_cw",
    "decoder_lora",
    "decoder_lora_cw",
]
ARMS: tuple[str, ...] = get_args(Arm)
# The arms the study is about; the others are references (a classical baseline, the full fine-tunes).
LORA_ARMS = ("encoder_lora", "encoder_lora_cw", "decoder_lora", "decoder_lora_cw")
# transformers' SchedulerType values that need no lr_scheduler_kwargs (the recipe has no field for them).
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                    "inverse_sqrt"]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    source: str = Field("wordnet-supersense", description="wordnet-supersense, a .csv/.jsonl/.parquet path, or hf:<dataset id>")
    text_column: str = "text"
    label_column: str = "label"
    split_column: str | None = Field(None, description="column with train/val/test values, if the file is pre-split")
    wordnet_dir: str | None = Field(None, description="folder with data.noun etc.; searched automatically when empty")
    hf_train_split: str = "train"
    hf_test_split: str | None = "test"
    label_merge_map: str | None = Field(None, description="JSON {old: new}; 'course:' prefix = vendored course file")
    label_list: str | None = Field(None, description="JSON list of labels to keep (and their ids)")
    train_indices: str | None = None
    val_indices: str | None = None
    max_length: PositiveInt = 128
    deduplicate: bool = Field(False, description="drop rows whose text also occurs in an earlier split "
                                                 "(test, then val, keep train's copy: no train/test leakage)")


class SplitConfig(Strict):
    seed: int = 42
    train_size: PositiveInt | None = Field(None, description="cap on train rows (stratified sample); None = all")
    val_size: PositiveInt | None = None
    test_size: PositiveInt | None = None
    val_fraction: float = Field(0.1, gt=0, lt=1, description="used when the data has no given split")
    test_fraction: float = Field(0.2, gt=0, lt=1)
    min_eval_per_class: int = Field(2, ge=0, description="minimum val and test examples per class where the data allows")


class TierConfig(Strict):
    scheme: Literal["bottom_quartile", "quantiles"] = "bottom_quartile"
    quantiles: list[float] = Field(default_factory=lambda: [0.25, 0.75])
    names: list[str] = Field(default_factory=lambda: ["tail", "torso", "head"])

    @model_validator(mode="after")
    def _names_match(self) -> "TierConfig":
        if self.scheme == "quantiles" and len(self.names) != len(self.quantiles) + 1:
            raise ValueError("tiers.names needs one more entry than tiers.quantiles")
        if not all(0 < q < 1 for q in self.quantiles):
            raise ValueError(f"tiers.quantiles {self.quantiles} must lie strictly between 0 and 1")
        if any(a >= b for a, b in zip(self.quantiles, self.quantiles[1:])):
            raise ValueError(f"tiers.quantiles {self.quantiles} must increase, e.g. [0.25, 0.75]")
        return self


class LoraConfig(Strict):
    r: PositiveInt = 16
    alpha: PositiveInt = 32
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | Literal["auto"] = "auto"
    include_mlp: bool = False


Attention = Literal["auto", "eager", "sdpa"]


class TrainConfig(Strict):
    """One training recipe. Model sections override single fields of the global one."""

    epochs: PositiveFloat = 3
    batch_size: PositiveInt = 32
    eval_batch_size: PositiveInt = 64
    learning_rate: PositiveFloat = 2e-4
    head_learning_rate: PositiveFloat | None = Field(None, description="separate rate for a newly initialised head")
    weight_decay: float = Field(0.01, ge=0)
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    lr_scheduler: Scheduler = "linear"
    max_grad_norm: PositiveFloat = 1.0
    group_by_length: bool = True
    pad_to_multiple_of: PositiveInt | None = 8
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    attention: Attention = Field("auto", description="attention kernel while training; auto: eager on CPU, sdpa on GPU")
    max_steps: int = Field(-1, description="cap on optimizer steps; -1 = epochs decide")

    @model_validator(mode="after")
    def _one_warmup(self) -> "TrainConfig":
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) and warmup_ratio ({self.warmup_ratio}) are both "
                             "set; set only one of them")
        return self


class TrainOverride(Strict):
    """The same fields as TrainConfig, all optional."""

    epochs: PositiveFloat | None = None
    batch_size: PositiveInt | None = None
    eval_batch_size: PositiveInt | None = None
    learning_rate: PositiveFloat | None = None
    head_learning_rate: PositiveFloat | None = None
    weight_decay: float | None = Field(None, ge=0)
    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    lr_scheduler: Scheduler | None = None
    max_grad_norm: PositiveFloat | None = None
    group_by_length: bool | None = None
    pad_to_multiple_of: PositiveInt | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] | None = None
    attention: Attention | None = None
    max_steps: int | None = None


class ModelConfig(Strict):
    source: str = Field(..., description="hf:<id>, a folder, pypi:<package>[/file.gguf], a .gguf path, or tiny:<family>")
    revision: str | None = None
    pooling: Literal["auto", "cls", "mean", "last"] = "auto"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    lora_train: TrainOverride = Field(default_factory=TrainOverride, description="recipe changes for the LoRA arms")
    full_train: TrainOverride = Field(default_factory=TrainOverride, description="recipe changes for the full fine-tune arms")


class ModelsConfig(Strict):
    encoder: ModelConfig
    decoder: ModelConfig


class WeightingConfig(Strict):
    scheme: Literal["sqrt_inverse", "balanced", "effective_number", "none"] = "sqrt_inverse"
    beta: float = Field(0.999, gt=0, lt=1, description="effective_number only")
    loss: Literal["cross_entropy", "logit_adjusted"] = "cross_entropy"
    tau: float = Field(1.0, ge=0, description="logit_adjusted only")


class TfidfConfig(Strict):
    max_features: PositiveInt = 50_000
    ngram_max: PositiveInt = 2
    C: PositiveFloat = 1.0
    max_iter: PositiveInt = 1000


class EvaluationConfig(Strict):
    bootstrap_samples: PositiveInt = 1000
    confidence: float = Field(0.95, gt=0, lt=1)
    top_confused_pairs: PositiveInt = 10
    logit_adjust_taus: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0])


class QualityFloor(Strict):
    """The least quality a context accepts on its primary metric, fixed before its target filters the arms: from the
    best arm of the study whatever its speed (so the only arm that meets a target is not measured against itself),
    and `minimum`, an absolute floor per context.

    An arm that may lie below the floor is never a candidate, however cheap or fast: one whose paired difference to
    the best reaches under it (`deployment.decide`, a non-inferiority test), or, where the best's own interval
    reaches under it too, one whose point estimate lies under it; when the best arm that meets the target is
    itself below it, nothing is recommended. Both relative rules apply at once (the stricter one binds): with the
    defaults the floor is 3 points below the best, or 90% of the best. Three points is about the half-width of a 95% interval on a test set of a few thousand examples,
    the most an engineer gives up without a business case that should then be written into the config; 90% of the
    best keeps the rule meaningful on small metrics (a rare tier's recall of 26% allows 23%, not 6%).
    """

    max_drop: float = Field(0.03, ge=0, le=1, description="the floor lies this many points (0.03 = 3 points) "
                                                          "below the best on the primary metric")
    min_share: float = Field(0.9, ge=0, le=1, description="the floor lies at least at this share of the best's "
                                                          "point estimate")
    minimum: float | None = Field(None, ge=0, le=1, description="an absolute minimum on the primary metric; None: none")


class ContextConfig(Strict):
    """A named operational context: what it needs (its primary metric) and what it constrains."""

    name: str
    kind: Literal["realtime", "batch", "audit"]
    primary_metric: Literal["accuracy", "macro_f1", "rare_recall"] = Field(
        "macro_f1", description="the quality the context decides on; rare_recall = the rare tier's pooled recall")
    p95_sla_ms: PositiveFloat | None = Field(None, description="realtime: p95 latency target at peak_rps")
    peak_rps: PositiveFloat | None = Field(None, description="realtime: arrival rate the SLA must hold at")
    examples: PositiveInt | None = Field(None, description="batch/audit: texts per job")
    window_minutes: PositiveFloat | None = None
    monthly_predictions: PositiveInt | None = None
    tie_breakers: list[Literal["cost", "p95", "memory"]] = Field(default_factory=lambda: ["cost", "p95", "memory"])
    quality_floor: QualityFloor = Field(default_factory=QualityFloor)
    equivalence_margin: float | None = Field(
        None, gt=0, lt=1, description="two arms are equivalent on the primary metric only when the interval of "
                                      "their difference lies inside +-this; None: deployment.equivalence_margins")
    description: str = ""

    @model_validator(mode="after")
    def _kind_fields(self) -> "ContextConfig":
        needed = ("p95_sla_ms", "peak_rps") if self.kind == "realtime" else ("examples", "window_minutes")
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} context needs {', '.join(missing)}")
        return self


def _default_contexts() -> list[ContextConfig]:
    """Generic contexts for any dataset; the shipped profiles describe their own task's contexts."""
    return [
        ContextConfig(name="real-time tagging", kind="realtime", primary_metric="accuracy", p95_sla_ms=100,
                      peak_rps=20, monthly_predictions=2_000_000,
                      description="each text labelled as it arrives; the label a user sees must be right"),
        ContextConfig(name="nightly batch", kind="batch", primary_metric="macro_f1", examples=64_000,
                      window_minutes=60, monthly_predictions=64_000 * 30,
                      description="the day's texts labelled overnight for reporting across all classes"),
        ContextConfig(name="rare-class audit", kind="audit", primary_metric="rare_recall", examples=1_000_000,
                      window_minutes=24 * 60, monthly_predictions=1_000_000,
                      description="the archive re-scored to find the rare classes' items"),
    ]


class LatencyConfig(Strict):
    single_requests: PositiveInt = 100
    warmup: int = Field(5, ge=0)
    batch_sizes: list[PositiveInt] = Field(default_factory=lambda: [1, 8, 32, 64])
    batched_examples: PositiveInt = 512
    score_examples: PositiveInt = 64_000
    threads: PositiveInt | None = None
    compare_unmerged: bool = True
    attention: Attention = Field("auto", description="attention kernel when serving; auto: time eager and sdpa "
                                                     "on this model and keep the faster")


class DeploymentConfig(Strict):
    price_per_hour: dict[str, PositiveFloat] = Field(
        default_factory=lambda: {"cpu": 0.10, "cuda": 0.53, "mps": 0.50},
        description="USD per instance-hour by device type; defaults: a 2-vCPU cloud instance, an on-demand T4",
    )
    contexts: list[ContextConfig] = Field(default_factory=_default_contexts)
    equivalence_margins: dict[Literal["accuracy", "macro_f1", "rare_recall"], PositiveFloat] = Field(
        default_factory=lambda: {"accuracy": 0.01, "macro_f1": 0.01, "rare_recall": 0.03},
        description="practical equivalence per metric: a difference whose whole interval lies inside +-margin does "
                    "not matter. 1 point of accuracy or macro F1 is below what a user of a classifier notices; "
                    "a rare tier's recall rests on few examples, so 3 points")
    cost_materiality_usd: float = Field(10.0, ge=0, description="USD a month: a smaller cost difference never "
                                                               "decides (about one engineer-hour a year)")
    cost_materiality_share: float = Field(0.10, ge=0, description="a cost difference below this share of the "
                                                                  "cheaper arm's cost never decides")


class ReportConfig(Strict):
    """How the note is written; every qualifier its prose uses is a rule with a threshold here."""

    title: str = "LoRA on an encoder and a decoder for long-tail classification"
    task: str = Field("", description="one line on what the texts and labels are, for the note's opening")
    max_prose_words: PositiveInt = 1200
    external_reference: str | None = Field(None, description="course: show the course's published numbers as external rows")
    equal_within: float = Field(0.005, ge=0, description="two macro F1 contributions closer than this are 'about equal'")
    fragile_tier_classes: int = Field(2, ge=0, description="a tier mean resting on at most this many non-zero "
                                                          "classes is flagged as resting on those classes")
    focus_arm: Literal["decoder_lora", "encoder_lora"] = Field(
        "decoder_lora", description="the arm whose bottleneck Section 5 diagnoses (falls back to the other)")


class RunResources(Strict):
    """What one run asks the Ray scheduler for; a run waits until a node has it free."""

    num_cpus: PositiveFloat = Field(1, description="CPU cores per run; also the run's torch threads when `threads` is unset")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per run (a fraction shares one GPU between runs); "
                                                           "None = one when the cluster has GPUs, else none")


class FamilyResources(Strict):
    encoder: RunResources = Field(default_factory=RunResources)
    decoder: RunResources = Field(default_factory=RunResources)
    tfidf: RunResources = Field(default_factory=lambda: RunResources(num_gpus=0), description="sklearn: CPU only")


class ExecutionConfig(Strict):
    """Where the runs train. Not part of a run's hash: a study can resume under another backend."""

    backend: Literal["local", "process", "ray"] = Field(
        "local", description="local: one after another in this process; process: each run in its own child "
                             "process; ray: each run a Ray task on a local or remote cluster")
    address: str = Field("", description="ray: empty = $RAY_ADDRESS, else start a local cluster; "
                                         "'auto' or 'ray://host:10001' = join that cluster")
    resources: FamilyResources = Field(default_factory=FamilyResources, description="ray: per run, by family")
    max_concurrent: PositiveInt | None = Field(None, description="runs in flight at once; ray: None = as many as "
                                                                 "the cluster's resources allow; process: None = 1")
    max_retries: int = Field(1, ge=0, description="process, ray: further attempts of a failed run")
    return_artifacts: bool = Field(False, description="ray: workers send each run folder back to the driver "
                                                      "even when they see the run directory (detected otherwise)")


class StudyConfig(Strict):
    name: str = "study"
    description: str = ""
    output_dir: str = "runs/study"
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    tiers: TierConfig = Field(default_factory=TierConfig)
    models: ModelsConfig
    arms: list[Arm] = Field(default_factory=lambda: list(ARMS))
    seeds: list[int] = Field(default_factory=lambda: [42])
    reference_seeds: PositiveInt | None = Field(
        None, description="how many of seeds (the first ones) the reference arms (TF-IDF, full fine-tunes) "
                          "train; None = all. Run-to-run variation is measured where it is asked about: LoRA")
    train: TrainConfig = Field(default_factory=TrainConfig)
    weighting: WeightingConfig = Field(default_factory=WeightingConfig)
    tfidf: TfidfConfig = Field(default_factory=TfidfConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    threads: PositiveInt | None = Field(None, description="torch threads; None = all cores")
    trust_remote_code: bool = False
    allow_pickle: bool = False
    report_to: list[str] = Field(default_factory=list, description="passed to the HF Trainer: mlflow, tensorboard, wandb")

    @model_validator(mode="after")
    def _non_empty(self) -> "StudyConfig":
        if not self.arms:
            raise ValueError("arms must name at least one arm")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds lists a seed twice")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError("arms lists an arm twice")
        for family in ("encoder", "decoder"):
            model = getattr(self.models, family)
            for section in ("lora_train", "full_train"):
                try:
                    merged_recipe(self.train, getattr(model, section))
                except ValidationError as exc:
                    reason = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
                    raise ValueError(f"train + models.{family}.{section}: {reason}") from None
        return self

    def seeds_of(self, arm: str) -> list[int]:
        """The seeds one arm trains with: every seed for the LoRA arms, the first reference_seeds for the others
        (so every pair of arms shares the first seed, which one-seed comparisons pair on)."""
        return self.seeds if arm in LORA_ARMS else self.seeds[:self.reference_seeds]

    def arm_seeds(self) -> list[tuple[str, int]]:
        """Every (arm, seed) of the study, seed by seed, so that a study stopped early has whole seeds."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms if seed in self.seeds_of(arm)]


def merged_recipe(train: TrainConfig, override: TrainOverride) -> TrainConfig:
    """The global recipe with a model's overrides applied, validated as a whole (e.g. one warmup setting)."""
    return TrainConfig.model_validate(train.model_dump() | override.model_dump(exclude_none=True))


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
