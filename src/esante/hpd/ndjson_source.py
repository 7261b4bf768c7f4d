"""The directory's NDJSON import format: one FHIR R4 resource per line, of the seven mCSD types.

Each resource carries its business identifier (exactly one, in the system its type is keyed on:
:data:`esante.hpd.model.KEY_SYSTEMS`) and refers to other directory resources by *logical reference*
(``{"type": "Organization", "identifier": {"system": "urn:esante:hpd:organization", "value": "ORG1"}}``), resolved on
import to the resource holding that identifier, which must come earlier in the file or be in the directory already.
Ids, ``meta`` and narrative are ignored (the directory assigns them); so is any eHealthID (the HPD assigns them).

Checks beyond FHIR R4 validation: a Practitioner has exactly one profession among its qualifications
(``urn:esante:hpd:profession``), its specialties belong to that profession, its CNS provider codes are well formed
(a physician's begins with 9) and its right-to-practise status (extension ``urn:esante:hpd:right-to-practise``,
active when absent) gives a date and a reason unless active; ``Practitioner.active`` is set from that status.
PractitionerRole codes and specialties, HealthcareService categories and Organization types in our code systems must
be codes those systems define.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from esante.fhir.errors import FhirError
from esante.fhir.validation import validate_resource
from esante.hpd.codes import CodeError, check_organization_type, check_profession, check_specialty, professions
from esante.hpd.lines import Item, Line
from esante.hpd.model import (
    CNS_PROVIDER_SYSTEM,
    DIRECTORY_TYPES,
    EHEALTH_ID_SYSTEM,
    KEY_SYSTEMS,
    ORGANIZATION_TYPE_SYSTEM,
    PROFESSION_SYSTEM,
    RIGHT_TO_PRACTISE_URL,
    Status,
    business_key,
    right_to_practise_extension,
    right_to_practise_of,
)
from esante.identifiers.cns_provider_code import CnsProviderCodeError, is_physician_code, parse_cns_provider_code


class ResourceError(ValueError):
    """A resource the import refuses; the message says why."""


def read_ndjson(path: Path) -> Iterator[tuple[int, Line | str]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, Line(number, [resource_to_item(_parse(raw))])
            except ResourceError as error:
                yield number, str(error)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ResourceError(f"not JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise ResourceError("not a JSON object")
    return value


def resource_to_item(resource: dict[str, Any]) -> Item:
    res_type = resource.get("resourceType")
    if res_type not in DIRECTORY_TYPES:
        raise ResourceError(f"not a directory resource ({', '.join(sorted(DIRECTORY_TYPES))}): {res_type!r}")
    body = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
    if res_type == "Practitioner":
        body["identifier"] = [
            i for i in body.get("identifier", []) if not (isinstance(i, dict) and i.get("system") == EHEALTH_ID_SYSTEM)
        ]
        if not body["identifier"]:
            del body["identifier"]
    try:
        validate_resource(body, expected_type=res_type)
    except FhirError as error:
        raise ResourceError("; ".join(issue.diagnostics for issue in error.issues)) from error
    key = business_key(body)
    if key is None:
        raise ResourceError(f"a {res_type} needs exactly one identifier in {KEY_SYSTEMS[res_type]} (its key)")
    try:
        if res_type == "Practitioner":
            return _practitioner(key, body)
        if res_type == "PractitionerRole":
            _check_professions(body.get("code", []), body.get("specialty", []), "PractitionerRole")
        elif res_type == "HealthcareService":
            _check_professions(body.get("category", []), body.get("specialty", []), "HealthcareService")
        elif res_type == "Organization":
            for coding in _codings(body.get("type", []), ORGANIZATION_TYPE_SYSTEM):
                check_organization_type(str(coding.get("code")))
    except CodeError as error:
        raise ResourceError(str(error)) from error
    return Item(res_type, key, body, checked=True)


def _practitioner(key: str, body: dict[str, Any]) -> Item:
    codes = [
        str(c.get("code")) for q in body.get("qualification", []) for c in _codings([q.get("code")], PROFESSION_SYSTEM)
    ]
    table = professions()
    found = [code for code in codes if (concept := table.get(code)) is not None and concept.parent is None]
    if len(found) != 1:
        raise ResourceError(
            f"a Practitioner needs exactly one profession ({PROFESSION_SYSTEM}) among its qualifications, "
            f"not {len(found)}"
        )
    profession = check_profession(found[0])
    for code in codes:
        if code != profession.code:
            try:
                check_specialty(code, profession.code)
            except CodeError as error:
                raise ResourceError(f"Practitioner.qualification: {error}") from error
    for identifier in body.get("identifier", []):
        if identifier.get("system") == CNS_PROVIDER_SYSTEM:
            try:
                identifier["value"] = parse_cns_provider_code(str(identifier.get("value", "")))
            except CnsProviderCodeError as error:
                raise ResourceError(f"Practitioner.identifier (CNS provider code): {error}") from error
            if profession.code == "medecin" and not is_physician_code(identifier["value"]):
                raise ResourceError("Practitioner.identifier: a physician's CNS provider code begins with 9")
    right = right_to_practise_of(body)
    if right.status is not Status.ACTIVE and not (right.date and right.reason):
        raise ResourceError(f"the right-to-practise status {right.status.value} needs a date and a reason")
    others = [e for e in body.get("extension", []) if e.get("url") != RIGHT_TO_PRACTISE_URL]
    body["extension"] = [*others, right_to_practise_extension(right)]
    body["active"] = right.active
    return Item("Practitioner", key, body, right, checked=True)


def _check_professions(codes: list[dict[str, Any]], specialties: list[dict[str, Any]], where: str) -> None:
    found = [str(c.get("code")) for c in _codings(codes, PROFESSION_SYSTEM)]
    for code in found:
        check_profession(code)
    for coding in _codings(specialties, PROFESSION_SYSTEM):
        code = str(coding.get("code"))
        concept = professions().get(code)
        if concept is None or concept.parent is None:
            raise CodeError(f"{where}.specialty: unknown specialty code {code!r} (see CodeSystem {PROFESSION_SYSTEM})")
        if found and concept.parent not in found:
            raise CodeError(f"{where}.specialty: {code!r} is not a specialty of {', '.join(found)}")


def _codings(concepts: list[Any], system: str) -> Iterator[dict[str, Any]]:
    for concept in concepts:
        if isinstance(concept, dict):
            for coding in concept.get("coding", []) or []:
                if isinstance(coding, dict) and coding.get("system") == system:
                    yield coding
