"""Restrictions: which resources of one type a grant covers, as a small boolean algebra. Pure: no I/O.

A rule grants an interaction on a resource type with a restriction; the engine combines the rules' grants (OR),
the SMART scopes' limits (AND) and the vetoes (AND NOT) into one restriction per decision. The enforcement layer
(``enforce.py``) turns a restriction into a SQL condition (searches filter in SQL, so totals and pages never count
what the caller may not see) and checks it on a loaded resource (reads, includes, writes).

Leaves:

- :data:`EVERYTHING` / :data:`NOTHING`;
- :class:`InCompartment`: the resource is in the Patient compartment of one of the patients (a Patient resource is
  in its own compartment);
- :class:`MatchesQuery`: the resource matches FHIR search criteria (SMART v2 granular scopes,
  ``patient/Observation.rs?category=laboratory``);
- :class:`ViaSecurityContext`: a Binary whose ``securityContext`` the caller may see;
- :class:`SqlCondition`: a service-defined condition (e.g. a DSP rule reading its own grants) with its SQL text
  and an optional in-memory check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Everything:
    def __repr__(self) -> str:
        return "EVERYTHING"


@dataclass(frozen=True)
class Nothing:
    def __repr__(self) -> str:
        return "NOTHING"


EVERYTHING = Everything()
NOTHING = Nothing()


@dataclass(frozen=True)
class InCompartment:
    """Resources in the Patient compartment of any of ``patients`` (FHIR ids)."""

    patients: tuple[str, ...]


@dataclass(frozen=True)
class MatchesQuery:
    """Resources matching the search ``query`` (name, value pairs) on their type."""

    query: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ViaSecurityContext:
    """A Binary the caller may read because they may read the resource its ``securityContext`` references.

    Searching Binaries this way is not offered (the link is not indexed): in SQL it is false, so such callers
    retrieve a Binary by id, from the URL in the DocumentReference they can see.
    """


@dataclass(frozen=True)
class SqlCondition:
    """A condition a service writes itself: ``sql`` uses ``{r}`` for the resource row alias and ``?`` for ``params``.

    ``check`` (optional) answers for a loaded resource's JSON without the database; without it the condition is
    evaluated in SQL on the resource's row.
    """

    name: str
    sql: str
    params: tuple[Any, ...] = ()
    check: Callable[[dict[str, Any]], bool] | None = None


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Restriction, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Restriction, ...]


@dataclass(frozen=True)
class Not:
    part: Restriction


Restriction = (
    Everything | Nothing | InCompartment | MatchesQuery | ViaSecurityContext | SqlCondition | AllOf | AnyOf | Not
)


def any_of(parts: Iterable[Restriction]) -> Restriction:
    """OR, simplified: EVERYTHING absorbs, NOTHING vanishes, compartments merge."""
    flat: list[Restriction] = []
    patients: dict[str, None] = {}
    for part in parts:
        if isinstance(part, Everything):
            return EVERYTHING
        if isinstance(part, Nothing):
            continue
        if isinstance(part, AnyOf):
            flat.extend(part.parts)
        elif isinstance(part, InCompartment):
            patients.update(dict.fromkeys(part.patients))
        else:
            flat.append(part)
    if patients:
        flat.insert(0, InCompartment(tuple(patients)))
    unique = tuple(dict.fromkeys(flat))
    if not unique:
        return NOTHING
    return unique[0] if len(unique) == 1 else AnyOf(unique)


def all_of(parts: Iterable[Restriction]) -> Restriction:
    """AND, simplified: NOTHING absorbs, EVERYTHING vanishes."""
    flat: list[Restriction] = []
    for part in parts:
        if isinstance(part, Nothing):
            return NOTHING
        if isinstance(part, Everything):
            continue
        flat.extend(part.parts if isinstance(part, AllOf) else (part,))
    unique = tuple(dict.fromkeys(flat))
    if not unique:
        return EVERYTHING
    return unique[0] if len(unique) == 1 else AllOf(unique)


def none_of(parts: Sequence[Restriction]) -> Restriction:
    """AND NOT each part (vetoes)."""
    return all_of(NOTHING if isinstance(p, Everything) else Not(p) for p in parts if not isinstance(p, Nothing))


def describe(restriction: Restriction) -> str:
    """A short human text of a restriction, for audit details and error messages (no patient ids)."""
    if isinstance(restriction, Everything):
        return "all"
    if isinstance(restriction, Nothing):
        return "none"
    if isinstance(restriction, InCompartment):
        return "own compartment" if len(restriction.patients) == 1 else f"{len(restriction.patients)} compartments"
    if isinstance(restriction, MatchesQuery):
        return "matching " + "&".join(f"{k}={v}" for k, v in restriction.query)
    if isinstance(restriction, ViaSecurityContext):
        return "via securityContext"
    if isinstance(restriction, SqlCondition):
        return restriction.name
    if isinstance(restriction, AllOf):
        return " and ".join(describe(p) for p in restriction.parts)
    if isinstance(restriction, AnyOf):
        return "(" + " or ".join(describe(p) for p in restriction.parts) + ")"
    return "not " + describe(restriction.part)
