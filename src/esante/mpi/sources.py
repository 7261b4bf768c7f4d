"""Reading identity files for the MPI's bulk imports: NDJSON of FHIR Patients, or CSV with these columns.

CSV (UTF-8, header row, ``,`` separated; empty cells are absent traits):

=================  ==========================================================================================
column             meaning
=================  ==========================================================================================
``matricule``      national identification number (13 digits, or the old 11-digit form)
``family``         family name in use
``birth_name``     birth (maiden) name, when different
``given``          given names, space-separated, in order
``birth_date``     ``YYYY-MM-DD`` (``YYYY-MM`` or ``YYYY`` when partial)
``sex``            ``F``, ``M``, ``X`` (other) or ``U`` (unknown)
``birth_place``    town (and country after a comma: ``Ettelbruck, LU``)
``street``         street line of the residence address
``postal_code``    e.g. ``L-4011``
``city``           locality
``country``        ISO 3166 alpha-2 code (``LU``, ``FR``, ``BE``, ``DE`` …)
``phone``          phone number (optional)
``email``          e-mail address (optional)
=================  ==========================================================================================
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from esante.mpi.model import MATRICULE_SYSTEM

COLUMNS = (
    "matricule",
    "family",
    "birth_name",
    "given",
    "birth_date",
    "sex",
    "birth_place",
    "street",
    "postal_code",
    "city",
    "country",
    "phone",
    "email",
)
_SEX = {"F": "female", "M": "male", "X": "other", "U": "unknown"}
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def parse_line(line: bytes) -> dict[str, Any] | str:
    """One NDJSON line → its JSON object, or the reason it is unreadable."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        return f"not JSON ({error.msg})"
    return item if isinstance(item, dict) else "not a JSON object"


def read_ndjson(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in read_ndjson_lines(path):
        yield number, parse_line(line)


def read_ndjson_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines, unparsed: the certified import parses them in its worker processes."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [
            c for c in ("matricule", "family", "given", "birth_date", "sex") if c not in (reader.fieldnames or [])
        ]
        if missing:
            yield 1, f"the header lacks the column(s) {', '.join(missing)}"
            return
        unknown = [c for c in reader.fieldnames or [] if c not in COLUMNS]
        if unknown:
            yield 1, f"unknown column(s) {', '.join(unknown)} (see the documented columns)"
            return
        for row in reader:
            try:
                yield reader.line_num, patient_from_row(row)
            except ValueError as error:
                yield reader.line_num, str(error)


def patient_from_row(row: dict[str, str | None]) -> dict[str, Any]:
    """One CSV row as a FHIR Patient (values are checked later, like any imported Patient)."""
    cell = {k: (v or "").strip() for k, v in row.items() if k is not None}
    sex = cell.get("sex", "").upper()
    if sex not in _SEX:
        raise ValueError(f"sex must be F, M, X or U, not {cell.get('sex')!r}")
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": MATRICULE_SYSTEM, "value": cell.get("matricule", "")}],
        "name": [{"use": "official", "family": cell.get("family", ""), "given": cell.get("given", "").split()}],
        "gender": _SEX[sex],
        "birthDate": cell.get("birth_date", ""),
    }
    if cell.get("birth_name"):
        patient["name"].append({"use": "maiden", "family": cell["birth_name"]})
    address = {
        key: value
        for key, value in (
            ("line", [cell["street"]] if cell.get("street") else None),
            ("postalCode", cell.get("postal_code")),
            ("city", cell.get("city")),
            ("country", cell.get("country")),
        )
        if value
    }
    if address:
        patient["address"] = [{"use": "home", **address}]
    telecom = [{"system": s, "value": cell[c]} for s, c in (("phone", "phone"), ("email", "email")) if cell.get(c)]
    if telecom:
        patient["telecom"] = telecom
    if cell.get("birth_place"):
        town, _, country = cell["birth_place"].partition(",")
        place = {"city": town.strip(), **({"country": country.strip()} if country.strip() else {})}
        patient["extension"] = [{"url": BIRTH_PLACE, "valueAddress": place}]
    return patient


def read_file(path: Path) -> Iterator[tuple[int, dict[str, Any] | str | bytes]]:
    """By extension: ``.csv`` → CSV rows as Patients, anything else (``.ndjson``, ``.jsonl``) → NDJSON lines (raw
    bytes, parsed by the importer's preparation step: :func:`parse_line`)."""
    return read_csv(path) if path.suffix.lower() == ".csv" else read_ndjson_lines(path)
