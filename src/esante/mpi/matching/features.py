"""The comparison-ready form of an identity record, computed once per record.

Folding, particle removal, phonetic keys and address parsing cost far more than comparing their results, and an
index compares one stored record with many incoming ones: so each record is prepared once (``prepare``) and the
comparators read these precomputed slots only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from esante.mpi.matching.normalize import core_tokens, country, fold, fold_variants, postal_code, split_maiden
from esante.mpi.matching.phonetic import phonetic_key
from esante.mpi.matching.record import IdentityRecord


@dataclass(frozen=True, slots=True)
class NameForm:
    """A name (or a place) folded: ``tokens`` without particles, ``compact`` = tokens joined without spaces.

    ``spellings`` holds ``compact``, the German spelling (``ue``/``oe``/``ae``) when the name had an umlaut, and the
    spelling with its particles when it had some (``Da Silva`` is also ``dasilva``); two names are the same name
    when a spelling of one is a spelling of the other (``same``). ``phon`` is the phonetic key of
    ``compact``, ``first_phon`` that of the first token (the name people use among several given names).
    """

    tokens: tuple[str, ...]
    compact: str
    spellings: tuple[str, ...]
    phon: str
    first_phon: str

    def same(self, other: NameForm) -> bool:
        """One of the spellings of one is a spelling of the other."""
        if self.compact == other.compact:
            return True
        if len(self.spellings) == 1 and len(other.spellings) == 1:
            return False
        return any(spelling in other.spellings for spelling in self.spellings)


@lru_cache(maxsize=1 << 18)
def name_form(*parts: str) -> NameForm | None:
    """The folded form of one name written in one or more parts (given names are several parts); None if empty.

    Cached: the same few thousand names recur across a population, and sharing their forms keeps an index of a
    million records small.
    """
    tokens: list[str] = []
    alternates: list[str] = []
    full: list[str] = []
    for part in parts:
        variants = fold_variants(part)
        tokens.extend(core_tokens(variants[0]))
        alternates.append("".join(core_tokens(variants[-1])))
        full.append(variants[0].replace(" ", ""))
    if not tokens:
        return None
    compact = "".join(tokens)
    spellings = tuple(dict.fromkeys((compact, "".join(alternates), "".join(full))))
    return NameForm(tuple(tokens), compact, spellings, phonetic_key(compact), phonetic_key(tokens[0]))


@dataclass(frozen=True, slots=True)
class Features:
    """Everything the comparators and the blocking keys read, for one record (see ``comparators``)."""

    id: str
    given: NameForm | None
    family: NameForm | None
    birth: NameForm | None
    birth_date: tuple[int, int, int] | None
    birth_digits: str | None
    sex: str | None
    birth_place: NameForm | None
    house: str | None
    street: NameForm | None
    complement: NameForm | None
    postal: str | None
    city: NameForm | None
    state: str | None
    country: str | None
    matricule: str | None


def prepare(record: IdentityRecord) -> Features:
    """Fold and parse ``record`` once (pure; see ``normalize`` and ``phonetic`` for the rules)."""
    family_text, marked_birth = split_maiden(record.family) if record.family else (None, None)
    birth_text = record.birth_family or marked_birth
    date = record.birth_date
    address = record.address
    house = street = complement = postal = city = state = land = None
    if address is not None:
        if address.lines:
            house, street = _street(address.lines[0])
            complement = _line(" ".join(address.lines[1:]))
        postal = _postal(address.postal_code) if address.postal_code else None
        city = name_form(address.city) if address.city else None
        state = _fold(address.state) if address.state else None
        land = _country(address.country) if address.country else None
    matricule = record.matricule if record.matricule and len(record.matricule) in (11, 13) else None
    return Features(
        id=record.id,
        given=name_form(*record.given) if record.given else None,
        family=name_form(family_text) if family_text else None,
        birth=name_form(birth_text) if birth_text else None,
        birth_date=(date.year, date.month, date.day) if date else None,
        birth_digits=date.digits if date else None,
        sex=record.sex,
        birth_place=name_form(record.birth_place) if record.birth_place else None,
        house=house,
        street=street,
        complement=complement,
        postal=postal or None,
        city=city,
        state=state or None,
        country=land or None,
        matricule=matricule if matricule and matricule.isdigit() else None,
    )


@lru_cache(maxsize=1 << 16)
def _street(line: str) -> tuple[str | None, NameForm | None]:
    """Split ``12 rue de la Gare`` / ``rue de la Gare 12`` / ``12a, Hauptstrooss``: the house number is the first
    token that starts with a digit; the rest is the street's name (particles kept out like in names)."""
    tokens = fold(line).split()
    position = next((i for i, token in enumerate(tokens) if token[0].isdigit()), None)
    house = tokens[position] if position is not None else None
    rest = tokens[:position] + tokens[position + 1 :] if position is not None else tokens
    if not rest:
        return house, None
    compact = "".join(rest)
    return house, NameForm(tuple(rest), compact, (compact,), phonetic_key(compact), phonetic_key(rest[0]))


@lru_cache(maxsize=1 << 16)
def _line(text: str) -> NameForm | None:
    """Another address line (building, residence, c/o) as a form: compared like the street when lines swap."""
    tokens = fold(text).split()
    if not tokens:
        return None
    compact = "".join(tokens)
    return NameForm(tuple(tokens), compact, (compact,), phonetic_key(compact), phonetic_key(tokens[0]))


_postal = lru_cache(maxsize=1 << 14)(postal_code)
_fold = lru_cache(maxsize=1 << 10)(fold)
_country = lru_cache(maxsize=1 << 10)(country)
