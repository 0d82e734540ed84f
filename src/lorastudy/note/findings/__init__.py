"""What the numbers say, decided once as typed data: the findings the note words.

Each finding names its kind, the quantities it rests on (with the artifact path each
was read from), the test that decides it and the verdict. `report.py` and its
templates only put findings into words: a sentence in the note exists because a
finding's verdict selected it, and other numbers select other sentences.

Verdict vocabulary (the note's words map onto these one to one):
- a difference: "a_higher" / "b_higher" when its interval excludes 0, else
  "not_distinguishable"; the interval's source (`uncertainty.Uncertainty`) picks the words:
  test-set resampling with one seed ("clear" / "not distinguishable on this test set"),
  that widened by the seed t-interval otherwise ("clear" / "not distinguishable", the
  note's header saying what such an interval holds);
- a mechanism, a bottleneck, a decision: the rule is in the function that makes it.

Calls the note makes by combining findings or comparing their numbers (which arm a
difference favours, which metrics weighting transferred better on, whether a limitation
applies, ...) are typed fields of each section's `Verdicts`, computed once here, so the
template selects words and computes nothing.

One module per section of the note (`systems`, `weighting`, `tiers`, `deployment`,
`next_experiment`, `limitations`) on the shared types of `base`; `derive` assembles them in
the note's order.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lorastudy.note.findings.base import DEC, ENC, LATENCY, RESULTS, WEIGHTED, Finding, Quantity, Source, \
    difference_verdict
from lorastudy.note.findings.deployment import DeploymentVerdicts, decision_findings, deployment_verdicts
from lorastudy.note.findings.latency import fitness_finding, latency_finding, memory_baseline_findings, \
    shared_measurement_findings
from lorastudy.note.findings.limitations import LimitationVerdicts, limitation_verdicts
from lorastudy.note.findings.next_experiment import NextStepVerdicts, bottleneck_findings, next_step_verdicts
from lorastudy.note.findings.systems import SystemsVerdicts, architecture_split_finding, hidden_tail_finding, \
    matched_budget_finding, systems_findings, systems_verdicts
from lorastudy.note.findings.tiers import TierVerdicts, tier_findings, tier_verdicts
from lorastudy.note.findings.weighting import WeightingVerdicts, weighting_findings, weighting_verdicts
from lorastudy.study.config import StudyConfig

__all__ = ["DEC", "ENC", "LATENCY", "RESULTS", "WEIGHTED", "Finding", "Findings", "Quantity", "Source", "derive",
           "difference_verdict"]


class SeedGroup(BaseModel):
    """Arms that trained the same number of seeds, for the note's opening line."""

    n: int
    arms: list[str]
    words: str | None = None
    """How the note names the group when a short name fits ("the 4 LoRA arms", "the other arms"); None: list them."""


def seed_groups(seeds_per_arm: dict[str, int]) -> list[SeedGroup]:
    """Most seeds first; a group that is exactly the LoRA arms, or the rest after one, is named rather than listed."""
    from lorastudy.study.config import LORA_ARMS

    counts = sorted(set(seeds_per_arm.values()), reverse=True)
    groups = [SeedGroup(n=n, arms=[arm for arm, k in seeds_per_arm.items() if k == n]) for n in counts]
    lora = sorted(arm for arm in seeds_per_arm if arm in LORA_ARMS)
    for index, group in enumerate(groups):
        if sorted(group.arms) == lora:
            group.words = f"the {len(lora)} LoRA arms"
        elif index == len(groups) - 1 and len(groups) == 2:
            group.words = "the other arms"
    return groups


class Findings(BaseModel):
    """Every finding the note may word, and each section's verdicts over them (schema 2 added the verdicts)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    schema_version: int = 2
    uncertainty: dict
    findings: list[Finding]
    rare_and_common: bool = False
    """The note can contrast a rare tier with a common one: there is more than one tier and both the first (rarest)
    and the last hold classes. Stricter than `base.has_tail` (any two tiers with classes), which gates findings."""
    systems: SystemsVerdicts = Field(default_factory=SystemsVerdicts)
    weighting: WeightingVerdicts = Field(default_factory=WeightingVerdicts)
    tiers: TierVerdicts = Field(default_factory=TierVerdicts)
    deployment: DeploymentVerdicts = Field(default_factory=DeploymentVerdicts)
    next_step: NextStepVerdicts = Field(default_factory=NextStepVerdicts)
    limitations: LimitationVerdicts = Field(default_factory=LimitationVerdicts)
    seed_groups: list[SeedGroup] = []
    """The arms by how many seeds they trained (the opening line of a study with mixed seeds)."""

    def get(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def intervals_reported(self) -> int:
        return sum(1 for f in self.findings for q in f.quantities if q.name.endswith("_lo"))


def uncertainty_finding(src: Source) -> Finding:
    info = src.results.get("uncertainty", {"source": "test_resampling", "n_seeds": 1})
    return Finding(id="uncertainty", kind="uncertainty", section=0, test="results.uncertainty.source",
                   verdict=info["source"], quantities=[src.value("n_seeds", "uncertainty", "n_seeds")],
                   facts=dict(info))


def rare_and_common(src: Source) -> bool:
    sizes = src.results["data"]["tier_sizes"]
    return len(src.tiers) > 1 and sizes.get(src.tiers[0], 0) > 0 and sizes.get(src.tiers[-1], 0) > 0


def derive(results: dict, latency: dict | None, config: StudyConfig, runs: list[dict] | None = None,
           summary: dict | None = None, per_class: dict[str, list[dict]] | None = None) -> Findings:
    """Every finding the note may word, from the run's results and latency, and each section's verdicts over them
    (the limitations also read the run records and the data summary; the label-group split reads every seed's
    per-class rows, `evaluation/per_class/<run>.csv`, where given)."""
    src = Source(results, latency, config)
    src.per_class = per_class or {}
    found = [uncertainty_finding(src), *systems_findings(src)]
    found += [f for f in (architecture_split_finding(src), hidden_tail_finding(src), matched_budget_finding(src)) if f]
    found += weighting_findings(src, config) + tier_findings(src, config)
    found += [f for f in (latency_finding(src), fitness_finding(src)) if f]
    found += shared_measurement_findings(src) + memory_baseline_findings(src) + decision_findings(src, config)
    found += bottleneck_findings(src, config, summary, found)
    return Findings(uncertainty=found[0].facts, findings=found, rare_and_common=rare_and_common(src),
                    systems=systems_verdicts(src, found), weighting=weighting_verdicts(src, found),
                    tiers=tier_verdicts(src, found), deployment=deployment_verdicts(found),
                    next_step=next_step_verdicts(found),
                    limitations=limitation_verdicts(src, runs or [], summary or {}),
                    seed_groups=seed_groups(found[0].facts.get("seeds_per_arm") or {}))

