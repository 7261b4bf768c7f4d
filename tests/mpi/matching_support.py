"""Helpers for the matching-engine tests: compact record builders."""

from __future__ import annotations

from esante.mpi.matching import Address, Features, IdentityRecord, PartialDate, prepare


def person(
    rid: str = "r1",
    family: str | None = "Schmit",
    given: tuple[str, ...] = ("Jean",),
    born: str | None = "1974-05-16",
    *,
    birth_family: str | None = None,
    sex: str | None = "male",
    birth_place: str | None = None,
    lines: tuple[str, ...] = ("12, rue de la Gare",),
    postal: str | None = "L-3236",
    city: str | None = "Bettembourg",
    state: str | None = None,
    country: str | None = "LU",
    matricule: str | None = None,
) -> IdentityRecord:
    address = Address(lines=lines, postal_code=postal, city=city, state=state, country=country)
    return IdentityRecord(
        id=rid,
        family=family,
        birth_family=birth_family,
        given=given,
        birth_date=PartialDate.parse(born) if born else None,
        sex=sex,
        birth_place=birth_place,
        address=None if address.empty else address,
        matricule=matricule,
    )


def feat(**kwargs: object) -> Features:
    return prepare(person(**kwargs))  # type: ignore[arg-type]
