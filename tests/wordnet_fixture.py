"""A tiny WordNet 3.0 dict folder in the real data.* file format, for tests that must not need apt's copy."""

from __future__ import annotations

from pathlib import Path

LICENSE_HEADER = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2 Princeton University under the following license.  By obtaining, using  \n"
    "  3   \n"
    "  4 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.  \n"
)

SYNSETS = {
    "data.noun": [
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 ~ 00002137 n 0000 ~ 04424418 n 0000 | that which is "
        "perceived or known or inferred to have its own distinct existence (living or nonliving)  ",
        "00007846 18 n 03 person 0 individual 0 someone 0 001 @ 00004475 n 0000 | a human being; \"there was too "
        "much for one person to do\"; \"every individual has rights\"  ",
        # eleven lemmas: the word count is hexadecimal (0b)
        "09999999 18 n 0b a1 0 a2 0 a3 0 a4 0 a5 0 a6 0 a7 0 a8 0 a9 0 a10 0 guardian 0 000 | a person who "
        "keeps watch; \"the guardian slept\"  ",
    ],
    "data.verb": [
        # a verb with frames (`02 + 02 00 + 08 00`) after its pointers
        "00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 002 @ 00002325 v 0000 ^ 00004227 v 0103 "
        "02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; \"I can breathe better when the air is "
        "clean\"; \"The patient is respiring\"; \"Take a breath now\"  ",
        "00004032 29 v 02 sigh 0 suspire 4 001 @ 00001740 v 0000 01 + 02 00 | heave or utter a sigh; breathe "
        "deeply and heavily; \"She sighed sadly\"  ",
    ],
    "data.adj": [
        "00001740 00 a 01 able 0 005 = 05207437 n 0000 = 05624029 n 0000 + 05624029 n 0102 ! 00002098 a 0101 "
        "+ 05207437 n 0101 | (usually followed by `to') having the necessary means or skill to do something; "
        "\"able to swim\"  ",
        # an adjective satellite with a position marker on a multi-word lemma
        "00019731 00 s 02 handy 0 ready_to_hand(p) 0 002 & 00019131 a 0000 + 04718999 n 0101 | easy to reach; "
        "\"found a handy spot for the can opener\"; \"kept it ready to hand\"  ",
    ],
    "data.adv": [
        "00001740 02 r 01 barely 0 001 \\ 00002756 a 0201 | only a very short time before; \"they could barely "
        "hear\"  ",
    ],
}


def write_wordnet(folder: Path) -> Path:
    """Write data.noun/verb/adj/adv (license header included) into `folder` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in SYNSETS.items():
        (folder / name).write_text(LICENSE_HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return folder
