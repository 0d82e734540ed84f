"""Table building: a Markdown table from its cells, and the cells that need more than a formatter."""

from __future__ import annotations

from lorastudy.note.formatting import ci_f1, count, esc, p_value, pct, sf1

CLASS_ROWS = 8


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


CANDIDATE_NAMES = {"decision_rule": "Decision rule on the tail (logit-adjustment probe)",
                   "data_volume": "Data volume of the rare tier (F1 against train count)",
                   "training_budget": "Training budget (steps, validation curve)",
                   "representation": "Representation / adapter capacity (full fine-tune vs LoRA)"}


def evidence(candidate: dict) -> str:
    """One table cell per candidate: the numbers its verdict rests on."""
    facts = candidate["facts"]
    if candidate["name"] == "decision_rule":
        return f"probe (tau {facts['tau']:g}, chosen on validation): test macro F1 {sf1(facts['gain'])} {ci_f1(facts['ci'])}"
    if candidate["name"] == "data_volume":
        if facts["f1_slope_per_doubling"] is None:
            return "train counts do not vary"
        return (f"F1 {sf1(facts['f1_slope_per_doubling'])} per doubling of train count ({p_value(facts['slope_p'])}); "
                f"rare-tier share of classes {pct(facts['rare_class_share'])}")
    if candidate["name"] == "training_budget":
        curve = f"best epoch {count(facts['best_epoch'])} of {count(facts['epochs'])}" if "untestable" not in facts \
            else esc(facts["untestable"])
        return f"{count(facts['steps'])} vs {count(facts['other_steps'])} steps; {curve}"
    if "untestable" in facts:
        return esc(facts["untestable"])
    return f"full fine-tune minus LoRA macro F1 {sf1(facts['diff'])} {ci_f1(facts['ci'])}"


def finding_ci(finding, name_: str) -> list[float] | None:
    """A finding's interval of one quantity (its `_lo` and `_hi`), or None where either end is undefined."""
    lo, hi = finding.q(name_ + "_lo"), finding.q(name_ + "_hi")
    return None if lo is None or hi is None else [lo, hi]
