"""What the numbers say, decided once as typed data: the findings the note words.

Each finding names its kind, the quantities it rests on (with the artifact path each
was read from), the test that decides it and the verdict. `report.py` and its
templates only put findings into words: a sentence in the note exists because a
finding's verdict selected it, and other numbers select other sentences.

Verdict vocabulary (the note's words map onto these one to one):
- a difference: "a_higher" / "b_higher" when its interval excludes 0, else
  "not_distinguishable"; the interval's source (`evaluation.Uncertainty`) picks the words:
  test-set resampling with one seed ("clear" / "not distinguishable on this test set"),
  that widened by the seed t-interval otherwise ("clear" / "not distinguishable", the
  note's header saying what such an interval holds);
- a mechanism, a bottleneck, a decision: the rule is in the function that makes it.

One module per section of the note (`systems`, `weighting`, `tiers`, `deployment`,
`next_experiment`) on the shared types of `base`; `derive` assembles them in the note's order.
"""

from __future__ import annotations

from pydantic import BaseModel

from lorastudy.note.findings.base import DEC, ENC, LATENCY, RESULTS, WEIGHTED, Finding, Quantity, Source, \
    difference_verdict
from lorastudy.note.findings.deployment import decision_findings, latency_finding, shared_measurement_findings
from lorastudy.note.findings.next_experiment import bottleneck_findings
from lorastudy.note.findings.systems import architecture_split_finding, hidden_tail_finding, systems_findings
from lorastudy.note.findings.tiers import tier_findings
from lorastudy.note.findings.weighting import weighting_findings
from lorastudy.study.config import StudyConfig

__all__ = ["DEC", "ENC", "LATENCY", "RESULTS", "WEIGHTED", "Finding", "Findings", "Quantity", "Source", "derive",
           "difference_verdict"]


class Findings(BaseModel):
    schema_version: int = 1
    uncertainty: dict
    findings: list[Finding]

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


def derive(results: dict, latency: dict | None, config: StudyConfig) -> Findings:
    """Every finding the note may word, from the run's results and latency."""
    src = Source(results, latency, config)
    found = [uncertainty_finding(src), *systems_findings(src)]
    found += [f for f in (architecture_split_finding(src), hidden_tail_finding(src)) if f]
    found += weighting_findings(src, config) + tier_findings(src, config)
    ratio = latency_finding(src)
    found += ([ratio] if ratio else []) + shared_measurement_findings(src) + decision_findings(src, config)
    found += bottleneck_findings(src, config)
    return Findings(uncertainty=found[0].facts, findings=found)

