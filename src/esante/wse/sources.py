"""The CCSS affiliation feed: CSV or NDJSON lines → :class:`Affiliation` (pure; the file is read lazily).

CSV (UTF-8, header row, ``,``-separated, an empty cell is an absent value; * required)::

    affiliation_id*,matricule*,insurer*,type*,start*,end,status,relationship,subscriber

NDJSON: one FHIR Coverage per line, in the shape the platform stores (docs/wse.md): the affiliation number in
``identifier`` (``urn:esante:wse:affiliation``), the beneficiary's matricule in ``beneficiary.identifier``, the
fund's code in ``payor[0].identifier`` (``urn:esante:wse:insurer``), ``type`` (``urn:esante:wse:coverage-type``),
``period``, ``status``, ``relationship`` and, for a co-insured person, ``subscriber.identifier``. Other elements are
not kept: the platform rebuilds the Coverage from these values.

Every line is the full current state of one affiliation: a delta file holds the affiliations that are new or
changed (an ended affiliation is a line with its ``end``; an annulled one has status ``cancelled``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from esante.wse.model import (
    AFFILIATION_SYSTEM,
    COVERAGE_TYPE_SYSTEM,
    INSURER_SYSTEM,
    MATRICULE_SYSTEM,
    Affiliation,
    AffiliationError,
)

COLUMNS = ("affiliation_id", "matricule", "insurer", "type", "start", "end", "status", "relationship", "subscriber")
REQUIRED = ("affiliation_id", "matricule", "insurer", "type", "start")

# (line number, the affiliation, or the reason the line cannot be read)
Line = tuple[int, Affiliation | str]


def read_file(path: Path) -> Iterator[Line]:
    """The file's lines: ``.csv`` → CSV, anything else → NDJSON."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from read_csv(handle)
    else:
        with path.open("rb") as handle:
            yield from read_ndjson(handle)


def read_csv(handle: io.TextIOBase | Any) -> Iterator[Line]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        return
    names = [name.strip().lower() for name in header]
    missing = [column for column in REQUIRED if column not in names]
    unknown = [name for name in names if name not in COLUMNS]
    if missing or unknown:
        problem = f"missing columns {', '.join(missing)}" if missing else f"unknown columns {', '.join(unknown)}"
        raise ValueError(f"the CSV header is not the affiliation format: {problem} (expected {', '.join(COLUMNS)})")
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(names):
            yield number, f"{len(cells)} cells where the header has {len(names)}"
            continue
        row = {name: cell.strip() for name, cell in zip(names, cells, strict=True)}
        empty = [column for column in REQUIRED if not row.get(column)]
        if empty:
            yield number, f"{empty[0]}: required"
            continue
        yield (
            number,
            Affiliation(
                affiliation_id=row["affiliation_id"],
                matricule=row["matricule"],
                insurer=row["insurer"].upper(),
                coverage_type=row["type"],
                start=row["start"],
                end=row.get("end") or None,
                status=row.get("status") or "active",
                relationship=row.get("relationship") or "self",
                subscriber=row.get("subscriber") or None,
            ),
        )


def read_ndjson(handle: Any) -> Iterator[Line]:
    for number, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            resource = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            yield number, f"not JSON: {error}"
            continue
        try:
            yield number, from_coverage(resource)
        except AffiliationError as error:
            yield number, str(error)


def _identifier(value: Any, system: str, element: str) -> str:
    if not isinstance(value, dict) or value.get("system") != system or not isinstance(value.get("value"), str):
        raise AffiliationError(f"{element}: an identifier of system {system}")
    return str(value["value"])


def _code(concept: Any, system: str) -> str | None:
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    codes = [c.get("code") for c in codings if isinstance(c, dict) and c.get("system") == system]
    return str(codes[0]) if codes and isinstance(codes[0], str) else None


def from_coverage(resource: Any) -> Affiliation:
    """An NDJSON line's Coverage → the affiliation it states (values checked later by ``check_affiliation``)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Coverage":
        raise AffiliationError("not a FHIR Coverage")
    ids = [
        i for i in resource.get("identifier", []) or [] if isinstance(i, dict) and i.get("system") == AFFILIATION_SYSTEM
    ]
    if len(ids) != 1:
        raise AffiliationError(f"Coverage.identifier: exactly one affiliation number ({AFFILIATION_SYSTEM})")
    beneficiary = resource.get("beneficiary")
    matricule = _identifier(
        beneficiary.get("identifier") if isinstance(beneficiary, dict) else None,
        MATRICULE_SYSTEM,
        "Coverage.beneficiary.identifier",
    )
    payors = resource.get("payor") or []
    if not isinstance(payors, list) or len(payors) != 1 or not isinstance(payors[0], dict):
        raise AffiliationError("Coverage.payor: exactly one insurer")
    insurer = _identifier(payors[0].get("identifier"), INSURER_SYSTEM, "Coverage.payor.identifier")
    kind = _code(resource.get("type"), COVERAGE_TYPE_SYSTEM)
    if kind is None:
        raise AffiliationError(f"Coverage.type: a code of {COVERAGE_TYPE_SYSTEM}")
    period = resource.get("period")
    if not isinstance(period, dict) or not isinstance(period.get("start"), str):
        raise AffiliationError("Coverage.period.start: required")
    end = period.get("end")
    if end is not None and not isinstance(end, str):
        raise AffiliationError("Coverage.period.end: a date")
    subscriber = resource.get("subscriber")
    subscriber_matricule = (
        _identifier(subscriber.get("identifier"), MATRICULE_SYSTEM, "Coverage.subscriber.identifier")
        if isinstance(subscriber, dict)
        else None
    )
    return Affiliation(
        affiliation_id=str(ids[0].get("value") or ""),
        matricule=matricule,
        insurer=insurer,
        coverage_type=kind,
        start=period["start"],
        end=end,
        status=str(resource.get("status") or ""),
        relationship=_code(
            resource.get("relationship"), "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
        )
        or "self",
        subscriber=subscriber_matricule,
    )
