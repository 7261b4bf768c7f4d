"""Text normalisation for names, places and addresses written in French, German, Luxembourgish and Portuguese.

Rules (documented in docs/mpi-matching.md, tested in tests/mpi/test_normalize.py):

- *Folding*: Unicode NFKD, combining marks dropped, then lower case (``casefold``), so ``é→e``, ``ç→c``, ``ã→a``,
  ``ß→ss``; letters that do not decompose are spelled out: ``æ→ae``, ``œ→oe``, ``ø→o``, ``ł→l``, ``đ/ð→d``,
  ``þ→th``, dotless i → ``i``.
- *Umlauts*: ``ä``, ``ö``, ``ü`` fold to ``a``, ``o``, ``u`` (what a French keyboard or a passport's VIZ gives), and a
  name that had an umlaut also gets the German transliteration as a variant (``Müller`` → ``muller`` and
  ``mueller``), so ``Müller``, ``Muller`` and ``Mueller`` are the same name while ``Manuel`` is never read as
  ``Manul`` (a blanket ``ue→u`` would do that).
- *Punctuation*: hyphens, apostrophes, dots, commas become spaces (``Jean-Marie`` = ``Jean Marie``,
  ``d'Almeida`` = ``d Almeida``); anything that is not a letter, digit or space is dropped; spaces are collapsed.
- *Particles*: ``de da das do dos di del della des du d van von der den ter ten zu zum zur vom le la les l y e``
  are left out of a name's core unless nothing else would remain (``Le`` alone stays a name).
- *Maiden markers*: ``X née Y``, ``X geb. Y``, ``X geborene Y``, ``X nascida Y`` give current name X, birth name Y;
  ``Y ép. X``, ``Y épouse X``, ``Y verh. X``, ``Y veuve X``, ``Y vve X``, ``Y casada X`` give birth name Y, current X.
"""

from __future__ import annotations

import unicodedata

_SPECIAL = str.maketrans(
    {"æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "\u0131": "i", "ŀ": "l", "ħ": "h"}
)
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_SEPARATORS = "-'\u2019\u02bc`\u00b4.,;:/_()\"&+"
_TO_SPACE = str.maketrans(dict.fromkeys(_SEPARATORS, " "))

_PARTICLE_TEXT = "de da das do dos di del della des du d van von der den ter ten zu zum zur vom le la les l y e"
PARTICLES = frozenset(_PARTICLE_TEXT.split(" "))
_BIRTH_AFTER = frozenset({"nee", "geb", "geborene", "nascida", "nata"})
_CURRENT_AFTER = frozenset({"ep", "epse", "epouse", "verh", "verheiratete", "veuve", "vve", "casada"})


def fold(text: str) -> str:
    """Lower-case ASCII letters, digits and single spaces (see the module's rules)."""
    value = unicodedata.normalize("NFKD", text.translate(_SPECIAL).translate(_TO_SPACE))
    value = "".join(ch for ch in value if not unicodedata.combining(ch)).casefold().translate(_SPECIAL)
    value = "".join(ch if ("a" <= ch <= "z" or "0" <= ch <= "9") else " " for ch in value)
    return " ".join(value.split())


def fold_variants(text: str) -> tuple[str, ...]:
    """The folded text, plus its German transliteration (``ü→ue``) when it had an umlaut."""
    plain = fold(text)
    if not any(ch in text for ch in "äöüÄÖÜ"):
        return (plain,)
    german = fold(text.translate(_UMLAUTS))
    return (plain,) if german == plain else (plain, german)


def core_tokens(folded: str) -> tuple[str, ...]:
    """The name's tokens without particles, unless only particles are there."""
    tokens = folded.split()
    core = tuple(token for token in tokens if token not in PARTICLES)
    return core or tuple(tokens)


def split_maiden(text: str) -> tuple[str, str | None]:
    """``(current, birth)`` from a family name that carries a maiden marker, else ``(text, None)``.

    Works on the raw text (so the parts keep their spelling) by finding the marker among the folded words.
    """
    words = text.replace(".", ". ").split()
    folded = [fold(word) for word in words]
    for position, marker in enumerate(folded):
        if 0 < position < len(words) - 1 and (marker in _BIRTH_AFTER or marker in _CURRENT_AFTER):
            left = " ".join(words[:position]).strip(" ,")
            right = " ".join(words[position + 1 :]).strip(" ,")
            if not fold(left) or not fold(right):
                continue
            return (left, right) if marker in _BIRTH_AFTER else (right, left)
    return text, None


def digits_only(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def postal_code(text: str) -> str:
    """``L-1234``, ``1234``, ``F-57100`` → the code without its country prefix; letters kept for codes like BE's."""
    value = fold(text).replace(" ", "")
    if len(value) > 1 and value[0] in "lfbd" and value[1:].isdigit():
        value = value[1:]
    return value


_COUNTRIES = {
    "lu": ("lu", "lux", "luxembourg", "luxemburg", "letzebuerg", "grand duche de luxembourg"),
    "fr": ("fr", "fra", "france", "frankreich", "franca"),
    "be": ("be", "bel", "belgique", "belgium", "belgien", "belgie", "belgica"),
    "de": ("de", "deu", "allemagne", "germany", "deutschland", "alemanha"),
    "pt": ("pt", "prt", "portugal"),
    "nl": ("nl", "nld", "pays bas", "netherlands", "nederland", "niederlande"),
    "it": ("it", "ita", "italie", "italy", "italia", "italien"),
}
_COUNTRY_CODES = {name: code for code, names in _COUNTRIES.items() for name in names}


def country(text: str) -> str:
    """ISO 3166 alpha-2 for the countries of Luxembourg's residents and cross-border workers; else the folded text."""
    value = fold(text)
    return _COUNTRY_CODES.get(value, value)
