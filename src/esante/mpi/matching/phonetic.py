"""A phonetic key for the names met in Luxembourg (French, German, Luxembourgish, Portuguese, and English for FEBRL).

Soundex and Double Metaphone are English; Kölner Phonetik is German only. This key is deliberately coarse: it is
used to block (so two spellings of one sound must share it) and as a comparison level under string similarity
(which orders the spellings that share it). Rules, applied to the folded name with spaces removed:

1. ``chr``/``chl`` → ``kr``/``kl`` (Christophe, Chlodwig); then ``sch``, ``sh``, ``ch`` → ``s`` (the /ʃ/ of
   Schmit, Chevalier, Chaves);
2. ``ph`` → ``f``; ``th`` → ``t``; ``gh`` → ``g``; ``ck`` → ``k``; ``qu``, ``q`` → ``k``; ``dt`` → ``t``;
   ``bv`` → ``v`` (Lefebvre); ``ault`` → ``aut`` (Thibault);
3. ``lh`` → ``l``, ``nh`` → ``n`` (Coelho, Pinheiro); ``gn`` → ``n`` (Magnier);
4. ``c`` before ``e i y`` → ``s``, other ``c`` → ``k``; ``tz``, ``ts``, ``z`` → ``s``; ``x`` → ``ks``;
   ``gu`` before ``e i y`` → ``g``; ``w`` → ``v``; ``y`` → ``i``;
5. ``h`` is dropped (silent in French and Portuguese, a lengthener in German);
6. a final ``d`` → ``t`` (German final devoicing, French Dupond/Dupont);
7. every run of vowels becomes ``a`` except a final run, which is dropped (so Meyer, Meier, Mayer, Maier share
   ``mar``; Müller, Muller, Mueller, Miller share ``malar``);
8. repeated letters collapse (Schmitt/Schmit, Ferreira's ``rr``).
"""

from __future__ import annotations

import re

_STEPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"ch(?=[rl])", "k"),
        (r"sch|sh|ch", "s"),
        (r"ph", "f"),
        (r"th", "t"),
        (r"gh", "g"),
        (r"ck", "k"),
        (r"qu|q", "k"),
        (r"dt", "t"),
        (r"bv", "v"),
        (r"ault", "aut"),
        (r"lh", "l"),
        (r"nh", "n"),
        (r"gn", "n"),
        (r"c(?=[eiy])", "s"),
        (r"c", "k"),
        (r"tz|ts|z", "s"),
        (r"x", "ks"),
        (r"gu(?=[eiy])", "g"),
        (r"w", "v"),
        (r"y", "i"),
        (r"h", ""),
        (r"d$", "t"),
        (r"[aeiou]+$", ""),
        (r"[aeiou]+", "a"),
        (r"(.)\1+", r"\1"),
    )
)


def phonetic_key(folded: str) -> str:
    """The key of a folded name (``normalize.fold``); spaces and digits are ignored; ``""`` when nothing is left."""
    value = "".join(ch for ch in folded if "a" <= ch <= "z")
    if not value:
        return ""
    for pattern, replacement in _STEPS:
        value = pattern.sub(replacement, value)
    return value or folded[:1]
