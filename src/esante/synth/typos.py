"""Typing errors as people make them at a registration desk: substitution, keyboard slip, transposition,
omission, doubled letter; and names written without their accents.

Keyboard slips use the layout of the establishment: Luxembourg's desks type on the Swiss-French QWERTZ layout,
French software on AZERTY. Only letters are touched, and the first letter less often (it is read back more).
"""

from __future__ import annotations

import random
import string
import unicodedata

_ROWS = {
    "qwertz": ("qwertzuiop", "asdfghjkl", "yxcvbnm"),
    "azerty": ("azertyuiop", "qsdfghjklm", "wxcvbn"),
}
#: kinds of typing error and their relative frequency
TYPO_KINDS = (("keyboard", 0.35), ("substitution", 0.15), ("transposition", 0.2), ("omission", 0.2), ("double", 0.1))


_ROW_SHIFT = (0.0, 0.25, 0.75)  # ISO keyboards: each row starts a little further right (a "<" key before y/w)


def _neighbours(rows: tuple[str, ...]) -> dict[str, str]:
    """Keys touching each key: left and right on its row, and the two overlapping it on the rows above/below."""
    where = {ch: (r, c + _ROW_SHIFT[r]) for r, row in enumerate(rows) for c, ch in enumerate(row)}
    out = {}
    for ch, (r, x) in where.items():
        near = [
            other
            for other, (r2, x2) in where.items()
            if other != ch and ((r2 == r and abs(x2 - x) == 1) or (abs(r2 - r) == 1 and abs(x2 - x) < 1))
        ]
        out[ch] = "".join(sorted(near))
    return out


NEIGHBOURS = {layout: _neighbours(rows) for layout, rows in _ROWS.items()}

#: letters NFD does not decompose, and the German habit of writing umlauts with an e
_SPECIAL = str.maketrans({"ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "œ": "oe", "Œ": "Oe",
                          "æ": "ae", "Æ": "Ae"})  # fmt: skip
_UMLAUT_E = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})


def has_accents(text: str) -> bool:
    return not text.isascii()


def drop_accents(text: str, *, umlaut_e: bool = False) -> str:
    """``Gonçalves`` -> ``Goncalves``; ``Müller`` -> ``Muller`` (or ``Mueller`` with ``umlaut_e``)."""
    if umlaut_e:
        text = text.translate(_UMLAUT_E)
    text = text.translate(_SPECIAL)
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _letter_positions(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if ch.isalpha()]


def can_typo(text: str) -> bool:
    return len(_letter_positions(text)) >= 3


def typo(rng: random.Random, text: str, keyboard: str = "qwertz") -> tuple[str, str]:
    """``text`` with one typing error, and the kind of error; the result always differs from ``text``."""
    positions = _letter_positions(text)
    if len(positions) < 3:
        raise ValueError("too short for a typing error")
    for _ in range(20):
        kind = _pick_kind(rng)
        pos = rng.choice(positions)
        if pos == positions[0] and rng.random() < 0.7:
            pos = rng.choice(positions[1:])
        result = _apply(rng, text, pos, kind, keyboard)
        if result != text and result.strip():
            return result, kind
    # every draw gave the same text (e.g. "Aaa" transposed): a substitution always changes it
    result = _apply(rng, text, positions[-1], "substitution", keyboard)
    return result, "substitution"


def _pick_kind(rng: random.Random) -> str:
    draw = rng.random()
    for kind, share in TYPO_KINDS:
        draw -= share
        if draw < 0:
            return kind
    return TYPO_KINDS[-1][0]


def _apply(rng: random.Random, text: str, pos: int, kind: str, keyboard: str) -> str:
    ch = text[pos]
    if kind == "omission":
        return text[:pos] + text[pos + 1 :]
    if kind == "double":
        return text[: pos + 1] + ch + text[pos + 1 :]
    if kind == "transposition":
        if pos + 1 < len(text) and text[pos + 1].isalpha():
            return text[:pos] + text[pos + 1] + ch + text[pos + 2 :]
        return text
    base = drop_accents(ch).lower()
    if kind == "keyboard" and base in NEIGHBOURS[keyboard]:
        new = rng.choice(NEIGHBOURS[keyboard][base])
    else:
        new = rng.choice([c for c in string.ascii_lowercase if c != base])
    if ch.isupper():
        new = new.upper()
    return text[:pos] + new + text[pos + 1 :]
