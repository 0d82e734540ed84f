"""Table building: a Markdown table from its cells, and the cells that need more than a formatter."""

from __future__ import annotations

from lorastudy.note.formatting import ci_f1, count, esc, pct, sf1

CLASS_ROWS = 8


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


CANDIDATE_NAMES = {"decision_rule": "Decision rule on the tail (logit-adjustment probe)",
                   "rare_data": "Too few rare-tier examples (unused rows of the source)",
                   "training_budget": "Training budget (matched-budget validation)",
                   "truncation": "Truncated inputs",
                   "representation": "Representation / adapter capacity (full fine-tune vs LoRA)",
                   "quantised_base": "Quantised base weights (GGUF source)"}


def evidence(candidate: dict) -> str:
    """One table cell per candidate: the numbers its verdict rests on."""
    facts = candidate["facts"]
    if candidate["name"] == "decision_rule":
        return f"probe (tau {facts['tau']:g}, chosen on validation): test macro F1 {sf1(facts['gain'])} {ci_f1(facts['ci'])}"
    if candidate["name"] == "rare_data":
        zero = ("every class up to " + count(facts["zero_below"]) + " training examples at F1 0"
                if facts["zero_below"] is not None else "the rarest class scores above 0")
        rows = f"{count(facts['unused_rows'])} unused rows of the source" if facts.get("unused_rows") else "no unused rows"
        seed = f" (seed {facts['seed']})" if facts.get("seed") is not None else ""
        return f"{rows}; {count(facts['rare_zero'])} of {count(facts['rare_n'])} rare-tier classes at F1 0; {zero}{seed}"
    if candidate["name"] == "training_budget":
        if facts.get("same_budget"):
            return "both LoRA arms saw the same number of examples"
        return (f"{count(facts['examples'])} vs {count(facts['other_examples'])} examples; validation gap "
                f"{sf1(facts['gap_at_matched'])} at {count(facts['matched_examples'])}, {sf1(facts['gap_at_own'])} at the end")
    if candidate["name"] == "truncation":
        return f"{pct(facts['share'])} of texts cut at {count(facts['max_length'])} tokens"
    if "untestable" in facts:
        return esc(facts["untestable"])
    return f"full fine-tune minus LoRA macro F1 {sf1(facts['diff'])} {ci_f1(facts['ci'])}"


def finding_ci(finding, name_: str) -> list[float] | None:
    """A finding's interval of one quantity (its `_lo` and `_hi`), or None where either end is undefined."""
    lo, hi = finding.q(name_ + "_lo"), finding.q(name_ + "_hi")
    return None if lo is None or hi is None else [lo, hi]
