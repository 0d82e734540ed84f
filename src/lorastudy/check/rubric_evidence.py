"""The rubric's required evidence per section, recognised by content.

* Evidence is recognised by content: numbers of the required kinds about the
  required entities inside each section (e.g. section 4 needs ms numbers for an
  encoder and a decoder, a cost/throughput/instances number, a named context,
  a recommendation naming a model and a conditional sentence with a number).
"""

from __future__ import annotations

import re
from typing import Callable

from lorastudy.check.entity_names import _Names
from lorastudy.check.note_sections import _Block, _sentences
from lorastudy.check.readings import COMPARATOR, Reading
from lorastudy.check.printed_numbers import _metric_like, _numbers

# "Prediction: the gain stays near 3 points", "I expect it to reach about 47%": a predicted value, not only a threshold
PREDICTED_VALUE = r"\b(?:predict\w*|expect\w*|will|would)\b[^.]*?\b(?:near|around|about|roughly|approximately|within|" \
                  r"reach\w*|stays?|plateau\w*|falls?|rises?|drops?)\s+(?:[\w'’.-]+\s+){0,3}?[-+−]?\$?\d"
GENERIC_CONTEXTS = r"real[- ]?time|triage|nightly|batch job|audit|compliance|stream\w*|interactive|online|offline|overnight"


def _about(readings: list[Reading], kinds: set[str] | None = None, family: str | None = None,
           entity_type: str | None = None) -> list[Reading]:
    """Readings of some kinds, about an arm of a family (encoder/decoder) or naming an entity type."""
    return [r for r in readings
            if (kinds is None or r.kind in kinds)
            and (family is None or any(a.startswith(family) for a in r.entities.get("arm", ())))
            and (entity_type is None or r.entities.get(entity_type))]


def _both(kinds: set[str], entity_type: str | None = None) -> Callable[[_Block, list[Reading]], bool]:
    return lambda b, rs: all(_about(rs, kinds, family, entity_type) for family in ("encoder", "decoder"))


def _sentence_with(pattern: str, numbers: int = 1) -> Callable[[_Block, list[Reading]], bool]:
    return lambda b, rs: any(re.search(pattern, s, re.I) and len(_numbers(s)) >= numbers for s in b.sentences())


def _paragraph_with(pattern: str) -> Callable[[_Block, list[Reading]], bool]:
    """A sentence with the pattern in a paragraph (or a bullet list) with a metric-like number: reasoning grounded in
    the numbers beside it, as people write it (the claim in one sentence, its numbers in the next)."""
    def test(block: _Block, readings: list[Reading]) -> bool:
        for paragraph in block.paragraphs():
            if any(re.search(pattern, s, re.I) for s in _sentences(paragraph)) and \
                    any(_metric_like(m, paragraph, False) for m in _numbers(paragraph)):
                return True
        return False
    return test


def _named_classes(block: _Block, readings: list[Reading]) -> bool:
    named = {label for r in readings for label in r.entities.get("label", ())}
    if len(named) >= 2:
        return True
    return len(set(re.findall(r"`([^`\s]{3,40})`|\b([a-z]+\.[a-z_]+)\b", block.text))) >= 2


def _bottleneck(block: _Block, readings: list[Reading]) -> bool:
    pattern = r"bottleneck|limit\w*|constrain\w*|holding (?:it |them )?back|holds? (?:it |them )?back|weak(?:est)? (?:point|link)|" \
              r"the (?:main |real |core )?(?:problem|issue|obstacle) is|fails? on|ceiling|root cause|starv\w*|scarcit\w*|" \
              r"too few|lack of|not enough (?:data|examples|signal)|data-limited|what (?:limits|caps|hurts)|caps? (?:it|the)|" \
              r"binding|choke|the gap (?:is|comes from|lives in)"
    return any(re.search(pattern, p, re.I) and len([m for m in _numbers(p) if _metric_like(m, p, False)]) >= 2
               for p in block.paragraphs())


def _recommendation(block: _Block, readings: list[Reading], names: _Names) -> bool:
    verbs = r"recommend|\bchoose\b|\bchoice\b|\bpick\b|\bprefer|go with|\bdeploy\b|should (?:use|run|serve|ship|be)|" \
            r"\buse (?:the )?\w+ for|is the (?:better |right |clear |obvious )?(?:choice|pick|option|default)|\bwins\b|" \
            r"\bship\b|\bopt for\b|\bfavou?r\b|\bselect\b|\badopt\b|stick with|(?:i|we)(?:'d|’d| would) (?:use|run|serve|put|go)|" \
            r"\bserve (?:it |them |this |the \w+ )?(?:with|on|by)\b|my (?:pick|call|recommendation)|the answer is|" \
            r"\bcandidate\b|\bwinner\b|\bgoes to\b|\)\s*:\s*\*\*[^*]+\*\*"
    lines = block.sentences() + ["| " + " | ".join(h) + " " + " | ".join(c for r in rows for c in r) for h, rows in block.tables]
    return any(re.search(verbs, s, re.I) and names.arms(s, strict_weighting=False) for s in lines)


def _evidence(names: _Names) -> dict[int, list[tuple[str, Callable[[_Block, list[Reading]], bool]]]]:
    causal = r"\bbecause\b|\bsince\b|\bso\b|\bexplain|due to|\bas a result\b|\btherefore\b|\bthus\b|which is why|mechanism|" \
             r"\bdriv|\bcaus|\bleads? to\b|\breason\b|\bwhy\b|consistent with|\bsuggests?\b|\bmeans\b|\balready\b|" \
             r"little (?:room|headroom|left)|saturat|ceiling|attribut|stems? from|comes? from|owing to|result of|\bhence\b|" \
             r"\bin turn\b|account(?:s|ed)? for|the (?:likely |plausible )?story|what (?:\w+ ){0,3}(?:knew|knows|learned|had learned)"
    conditional = r"\bif\b|\bunless\b|\bonce\b|\bwhenever\b|break[- ]?even|as long as|would (?:change|flip|switch|tip)|" \
                  + COMPARATOR + r"\s+(?:[\w'’.-]+\s+){0,3}\$?\d"
    return {
        1: [("accuracy for both models", _both({"accuracy"})),
            ("macro F1 for both models", _both({"macro_f1"})),
            ("zero-F1 count for both models", _both({"zero_f1"})),
            ("trainable parameter share for both", _both({"share", "parameters"})),
            ("comparison with the full fine-tune", lambda b, rs: any("encoder_full" in r.entities.get("arm", ()) for r in rs)),
            ("what the aggregates hide (a tier or class)", lambda b, rs: bool({"tier", "label"} & set(names.find(b.text, False))))],
        2: [("decoder accuracy with weighting", lambda b, rs: bool(_about(rs, {"accuracy"}, "decoder"))),
            ("decoder macro F1 with weighting", lambda b, rs: bool(_about(rs, {"macro_f1"}, "decoder"))),
            ("decoder zero-F1 count with weighting", lambda b, rs: bool(_about(rs, {"zero_f1"}, "decoder"))),
            ("effect size for the encoder", lambda b, rs: any(r.signed or r.unit == "pp" for r in _about(rs, None, "encoder"))),
            ("a mechanism grounded in numbers", _paragraph_with(causal))],
        3: [("tier breakdown", lambda b, rs: len({t for r in rs for t in r.entities.get("tier", ())}) >= 2),
            ("mean F1 per tier for both models", _both({"f1", "macro_f1"}, "tier")),
            ("zero-F1 per tier for both models", _both({"zero_f1"}, "tier")),
            ("specific classes named", _named_classes)],
        4: [("latency numbers for both models", lambda b, rs: all(
                [r for r in _about(rs, {"latency"}, family) if r.unit == "ms" or r.kind == "latency"]
                for family in ("encoder", "decoder"))),
            ("throughput, cost or SLA translation", lambda b, rs: bool(_about(rs, {"throughput", "cost", "instances"})
                                                                       or any(r.unit == "$" for r in rs))),
            ("a named operational context", lambda b, rs: bool(_about(rs, entity_type="context"))
                or re.search(GENERIC_CONTEXTS, b.text, re.I) is not None),
            ("a recommendation naming a model", lambda b, rs: _recommendation(b, rs, names)),
            ("a condition that would change it (with a number)", _sentence_with(conditional))],
        5: [("a proposed experiment", _sentence_with(r"\b(?:experiment|ablation|re-?train|re-?run|train|try|collect|"
                                                     r"fine-?tune|swap|replace|test whether|compare)\b", numbers=0)),
            ("a hypothesis (causal statement)", _sentence_with(r"hypothes|\bbecause\b|\bcaus|due to|suppress|\bdriv|"
                                                              r"\blimits?\b|\bexplains?\b|comes from|is responsible", 0)),
            ("a numeric prediction (a threshold)", lambda b, rs: _sentence_with(COMPARATOR + r"\s+(?:[\w'’.-]+\s+){0,4}?[-+−]?\$?\d")(b, rs)
             or _sentence_with(PREDICTED_VALUE)(b, rs)),
            ("a bottleneck with two numbers of evidence", _bottleneck),
            ("an alternative weighed", _sentence_with(r"instead of|rather than|alternative|over (?:a|the) |other option|"
                                                      r"\bchose\b|\bconsidered\b|cheaper than|better than|not (?:a|the) ", 0))],
    }
