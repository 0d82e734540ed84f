"""Which arm a prose number belongs to when its sentence names several: narrower readings where the wording is
unambiguous, so a number moved to another arm is caught (a wider arm set lets any named arm's value support it).

* A clause whose every model mention carries its weighting qualifier ("the weighted decoder", "encoder LoRA + cw",
  "SmolLM2 (weighted)") is about the weighted arms only, not their unweighted twins.
* A parenthesis that names no model ("the encoder ran 2 epochs (250 steps), the decoder 1 (125 steps)") is about
  the model of the clause it follows, when that clause names one family and the sentence sets families side by side.
* In a sentence about weighting, "A → B" is before → after: A is the unweighted arms', B the weighted arms'.
* A sentence that opens with weighting as its condition ("With weights, rare recall is 25.9% on the encoder ...",
  "Weighted, ...") is about the weighted arms, one opening "Unweighted," or "Before weighting," about the unweighted
  ones: its values are theirs (not its gaps, which may be weighting's effect).
"""

from __future__ import annotations

import re

from lorastudy.check.entity_names import UNWEIGHTED, WEIGHTED, _families, _Names, weighting_twin

NUMBER = r"[-−+~]?\$?\d[\d,.]*\s?(?:%|x)?"
GLOSS = rf"\s*(?:[a-z][\w-]*\s+){{0,2}}{NUMBER}(?:\s*(?:→|->)\s*{NUMBER})?(?:\s+[a-z][\w-]*){{0,3}}\s*"
# a number (or a before → after pair) with up to two words before and three after: "(250 steps)", "(F1 0.708 → 0.597)"
QUALIFIED_BEFORE = r"\b(?:class[- ]?|loss[- ]?)?weighted\s+(?:the\s+)?(?:[\w-]+\s+){0,2}$"
QUALIFIED_AFTER = r"^(?:['’]s)?(?:\s+(?:lora|full(?:[- ]fine[- ]?tune| ft)?|fine[- ]?tune))?\s*" \
                  r"(?:\+\s*(?:cw\b|weighting\b|class[- ]weight)|\(\s*(?:class-?)?weighted\s*\)|,\s*weighted\b|\s+with\s+(?:class\s+)?weighting\b)"


WEIGHTED_OPENER = r"^\W*(?:with\s+(?:the\s+)?(?:class[- ]|loss[- ]|inverse[- ]frequency\s+)?weight(?:s|ing)|" \
                  r"(?:class[- ]|loss[- ])?weighted|after\s+(?:class\s+)?weighting|once\s+weighted)\s*,"
UNWEIGHTED_OPENER = r"^\W*(?:unweighted|without\s+(?:class\s+)?weight(?:s|ing)|before\s+(?:class\s+)?weighting)\s*,"


def weighted_opener(sentence: str, arms: set[str]) -> set[str] | None:
    """The weighted (or unweighted) twins of a number's arms when its sentence opens with weighting (or its absence)
    as its condition (see the module docstring); None where the sentence also speaks of the other side, of before
    and after, or of a change."""
    if re.search(WEIGHTED_OPENER, sentence, re.I):
        weighted, other = True, UNWEIGHTED + r"|\bbefore\b"
    elif re.search(UNWEIGHTED_OPENER, sentence, re.I):
        weighted, other = False, r"\bafter\b|\bweighting\b.*\bweighting\b|(?<!un)weighted|\bwith (?:class )?weight"
    else:
        return None
    if re.search(other + r"|→|->|\bfrom\b", sentence, re.I):
        return None
    twins = {t for a in arms if (t := weighting_twin(a, weighted))}
    return twins | {a for a in arms if weighting_twin(a, True) is None} if twins else None  # TF-IDF stays


def weighted_only(clause: str, arms: set[str], names: _Names) -> set[str] | None:
    """The weighted arms of a clause whose every model mention is qualified as weighted; None when any is not."""
    if re.search(UNWEIGHTED, clause, re.I):
        return None
    mentions = [m for pattern in (names.encoder, names.decoder) if pattern for m in re.finditer(pattern, clause, re.I)]
    if not mentions or not all(re.search(QUALIFIED_BEFORE, clause[:m.start()], re.I) or
                               re.search(QUALIFIED_AFTER, clause[m.end():], re.I) for m in mentions):
        return None
    weighted = {a for a in arms if a.endswith("_cw")}
    return weighted or None


def parenthesis_owner(sentence: str, clauses: list[tuple[int, int]], clause: tuple[int, int], names: _Names,
                      families: set[str]) -> set[str] | None:
    """The arms of the clause right before a parenthesis that names none (see the module docstring)."""
    if len(families) < 2 or clause[0] == 0 or sentence[clause[0] - 1] != "(":
        return None
    inside = sentence[clause[0]:sentence.find(")", clause[0]) if ")" in sentence[clause[0]:] else clause[1]]
    if not re.fullmatch(GLOSS, inside, re.I) or names.find(inside, strict_weighting=False).get("arm"):
        return None  # only a number glossing its clause, not "(9 of them rare: boat, drama, ...)" or "(58 vs 12 ms)"
    before = next((c for c in clauses if c[1] == clause[0] - 1), None)
    if before is None:
        return None
    arms = names.find(sentence[before[0]:before[1]], strict_weighting=False).get("arm")
    return set(arms) if arms and len(_families(arms)) == 1 else None


def before_after_weighting(sentence: str, start: int, end: int, arms: set[str]) -> set[str] | None:
    """In a sentence about class weighting, "rare recall 10.1% → 25.9% on the encoder" is before → after: the number
    left of the arrow is the unweighted arms', the one right of it the weighted arms'."""
    if not re.search(WEIGHTED, sentence, re.I) or re.search(UNWEIGHTED, sentence, re.I):
        return None
    left = re.match(r"\s?(?:%|pp)?\s*(?:→|->)\s*[-−+]?\d", sentence[end:])
    right = re.search(r"\d(?:%|pp)?\s*(?:→|->)\s*$", sentence[:start])
    if bool(left) == bool(right):  # none, or the middle of a chain
        return None
    chosen = {a for a in arms if a.endswith("_cw") == bool(right)}
    twins = {a.removesuffix("_cw") for a in arms}
    return chosen if chosen and all(t in arms and w in arms for t in twins if (w := weighting_twin(t, True))) else None
