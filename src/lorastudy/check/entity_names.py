"""The entities a note names, in human wording too: arms (a family word or a model name with its qualifiers,
"Encoder LoRA + weighting"), classes, tiers, deployment contexts and the validation split."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lorastudy.check.facts import ARMS, Vocabulary

ENCODER_WORDS = ["encoder", "encoders", "minilm", "roberta", "deberta", "electra", "modernbert", "bert"]
DECODER_WORDS = ["decoder", "decoders", "qwen", "smollm", "smollm2", "llama", "gpt", "mistral", "gemma"]
TFIDF = r"tf-?idf|logistic regression|\blogreg\b|bag[- ]of[- ]words"
FULL = r"\bfull(?:y)?\b|full[- ]?f(?:ine[- ]?)?t"
WEIGHTED = r"weight(?!s\b)|(?:class|loss|frequency|inverse|sqrt|\+)[- ]?weights\b|weights (?:on|in) the (?:loss|cross)|\bcw\b"
# ("trainable weights", "6x more weights" are parameters, not class weighting)
UNWEIGHTED = r"unweighted|without (?:class )?weight|no (?:class )?weight|before weight|vanilla|plain"


@dataclass
class _Names:
    """Regexes for the entities of one run (or generic ones without a run)."""

    vocab: Vocabulary
    encoder: str = ""
    decoder: str = ""
    labels: re.Pattern | None = None
    tiers: list[tuple[str, str]] = field(default_factory=list)  # (tier, pattern)
    contexts: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, vocab: Vocabulary) -> "_Names":
        def family(words: list[str], key: str) -> str:
            names = sorted(set(words) | set(vocab.model_names.get(key, [])), key=len, reverse=True)
            return r"\b(?:" + "|".join(re.escape(n) for n in names) + r")(?:[-\w]*)\b"

        # "Enc LoRA", "Zero-F1 enc / dec", "Dec − enc": the families' abbreviations, next to a method, a slash or a minus
        short = r"(?=\.?\s*(?:lora\b|full\b|ft\b|[+/−)|,-]|vs\b|$))"
        after = r"|(?<=[/−-]\s)(?:{0})\b|(?<=[/−-])(?:{0})\b"
        names = cls(vocab, family(ENCODER_WORDS, "encoder") + r"|\benc\b" + short + after.format("enc"),
                    family(DECODER_WORDS, "decoder") + r"|\bdec\b" + short + after.format("dec"))
        labels = sorted((x for x in vocab.labels if len(x) > 2 and not x.isdigit()), key=len, reverse=True)
        if labels:
            names.labels = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(x) for x in labels) + r")(?![\w])")
        tiers = vocab.tiers or ["rare", "common"]
        names.tiers = [(t, rf"\b{re.escape(t.lower())}\b") for t in tiers]
        if len(tiers) >= 2:
            names.tiers += [(tiers[0], r"\btail\b|\brare\b"), (tiers[-1], r"\bhead\b|\bfrequent\b|\bcommon\b")]
        words: dict[str, list[str]] = {}
        for context in vocab.contexts:
            for word in re.findall(r"[\w-]{6,}", context.lower()):
                words.setdefault(word, []).append(context)
        for context in vocab.contexts:
            distinctive = [w for w in re.findall(r"[\w-]{6,}", context.lower()) if len(words[w]) == 1]
            names.contexts.append((context, r"\b(?:" + "|".join(map(re.escape, [context.lower()] + distinctive)) + r")\b"))
        return names

    def find(self, text: str, strict_weighting: bool) -> dict[str, set[str]]:
        """Entities named in a piece of text, by type."""
        found: dict[str, set[str]] = {}
        arms = self.arms(text, strict_weighting)
        if arms:
            found["arm"] = arms
        if self.labels is not None:
            labels = set(self.labels.findall(text))
            if labels:
                found["label"] = labels
        lowered = text.lower()
        tiers = {tier for tier, pattern in self.tiers if re.search(pattern, lowered)}
        if tiers:
            found["tier"] = tiers
        if re.search(r"\bval(?:idation|\.)?\b", lowered):
            found["split"] = {"validation"}
        contexts = {context for context, pattern in self.contexts if re.search(pattern, lowered)}
        if contexts:
            found["context"] = contexts
        return found

    def arms(self, text: str, strict_weighting: bool) -> set[str]:
        """Arms named in text: canonical ids, TF-IDF, or a family word (encoder, a model name) with its qualifiers."""
        arms = {a for a in ARMS if re.search(rf"(?<![a-z_]){a}(?![a-z_])", text)}
        if re.search(r"\b(?:the|both|two|all)\s+(?:class-?)?weighted\s+(?:arms|models|runs|variants)\b", text, re.I):
            arms |= {a for a in ARMS if a.endswith("_cw")}  # "the weighted arms' macro F1 differ by 0.004"
        text = re.sub(r"(?:" + "|".join(ARMS) + r")", " ", text)
        if re.search(TFIDF, text, re.I):
            arms.add("tfidf_logreg")
        mentions = sorted([(m.start(), m.end(), "encoder") for m in re.finditer(self.encoder, text, re.I)]
                          + [(m.start(), m.end(), "decoder") for m in re.finditer(self.decoder, text, re.I)])
        if not mentions and re.search(r"full[- ]?(?:fine[- ]?tun\w*|ft\b|finetun\w*)|fully fine[- ]?tuned", text, re.I):
            mentions = [(m.start(), m.end(), "encoder") for m in re.finditer(r"full", text, re.I)][:1]
        windows = []
        for i, (start, end, family) in enumerate(mentions):
            left = mentions[i - 1][1] if i else 0
            right = mentions[i + 1][0] if i + 1 < len(mentions) else len(text)
            windows.append((max(left, start - 25), min(right, end + 45)))
            window = text[slice(*windows[-1])].lower()
            methods = ["lora"] if family == "decoder" or ("lora" in window and not re.search(FULL, window)) else \
                ["full"] if re.search(FULL, window) and "lora" not in window else ["lora", "full"]
            arms.update(f"{family}_{m}{v}" for m in methods for v in _variants(window, strict_weighting))
        families = {family for *_, family in mentions}
        if len(families) == 1:  # "the encoder's full fine-tune ... with LoRA": a bare method word is that family's
            family = families.pop()
            for method, pattern in (("lora", r"\blora\b"), ("full", FULL)):
                for m in re.finditer(pattern, text, re.I):
                    if f"{family}_{method}" in ARMS and not any(lo <= m.start() < hi for lo, hi in windows):
                        window = text[max(0, m.start() - 25):m.end() + 45].lower()
                        arms.update(f"{family}_{method}{v}" for v in _variants(window, strict_weighting))
        return arms


def _variants(window: str, strict_weighting: bool) -> list[str]:
    """Arm suffixes a mention's surroundings allow: weighted ("_cw"), unweighted, or both when unsure."""
    weighted = re.search(WEIGHTED, window) and not re.search(UNWEIGHTED, window)
    return [""] if not weighted else ["_cw"] if strict_weighting else ["", "_cw"]


def _families(arms) -> set[str]:
    """The model families (encoder, decoder, tfidf) some arms belong to."""
    return {a.split("_")[0] for a in arms}


def _family(arms: set[str]) -> set[str]:
    """An arm named only somewhere in the sentence may stand for its family (the sentence compares its members)."""
    named = _families(arms)
    return {a for a in ARMS if a.split("_")[0] in named}


def _models(arms) -> set[str]:
    """The models some arms train, weighted or not (encoder_lora and encoder_lora_cw are one model)."""
    return {a.removesuffix("_cw") for a in arms}


def weighting_twin(arm: str, weighted: bool) -> str | None:
    """The arm with class weighting on (`weighted`) or off; None for an arm that has no weighted variant (TF-IDF)."""
    base = arm.removesuffix("_cw")
    return (f"{base}_cw" if weighted else base) if f"{base}_cw" in ARMS else None


def _with_weighted(arms: set[str]) -> set[str]:
    """The arms and their class-weighted twins: a number about weighting is about both."""
    return arms | {f"{a}_cw" for a in arms if f"{a}_cw" in ARMS}
