"""The directory's CSV import format: one row per professional x place of practice (what a Ministry/CNS extract
looks like). Pure: a row becomes a :class:`~esante.hpd.lines.Line` of FHIR resources, or the reason it is refused.

UTF-8, a header row, ``,`` separated; an empty cell is an absent value. Columns (``*`` required in the header and
on every row; the others may be left out of the header altogether, e.g. in a delta file):

=========================  ========================================================================================
column                     meaning
=========================  ========================================================================================
``authorisation`` *        the Ministry of Health's register number of the right to practise (the professional's
                           key: ``urn:esante:hpd:ministry-authorisation``); letters, digits, ``.``, ``/``, ``-``
``profession`` *           a profession code of ``urn:esante:hpd:profession`` (``medecin``, ``infirmier`` …)
``specialties``            specialty codes of that profession, separated by ``;`` or spaces (``med-cardiologie``)
``family`` *, ``given`` *  family name; given names separated by spaces
``prefix``                 e.g. ``Dr``
``gender``                 ``F``, ``M``, ``X`` (other) or ``U`` (unknown)
``languages``              languages spoken, BCP-47 codes separated by spaces (``lb fr de en``)
``cns_code``               CNS provider code ``NNNNNN-NN`` (a physician's begins with 9)
``authorised_from`` *      first day of the right to practise (``YYYY-MM-DD``)
``authorised_until``       last day, when limited in time
``status``                 ``active`` (default), ``suspended`` or ``withdrawn``
``status_date``            since when (required unless active)
``status_reason``          why (required unless active)
``org_id``                 the place of practice's organisation code (``urn:esante:hpd:organization``); empty:
                           the row states the professional only
``org_name``, ``org_type``  its name and type (``urn:esante:hpd:organization-type``: hospital, laboratory,
                           pharmacy, practice, care-network, care-home, rescue, imaging); required with ``org_id``
``org_cns_code``           the organisation's CNS provider code
``org_phone``, ``org_email``  the organisation's contact
``org_endpoint``           its electronic address (``mailto:`` secure messaging, or ``https://`` FHIR base)
``org_affiliated_with``    code of an organisation it is affiliated with (e.g. the hospital of a practice);
                           that organisation must come earlier in the file or be in the directory
``site_id``                the site's code (``urn:esante:hpd:location``); a site belongs to one organisation
``site_name``              defaults to the organisation's name
``street``, ``postal_code``, ``city``, ``country``  the site's address (``city`` required with ``site_id``;
                           ``country`` ISO alpha-2, default ``LU``; a Luxembourg code is written ``L-NNNN``)
``role_phone``, ``role_email``  how to reach the professional at this place
``role_from``, ``role_until``  when they practise there; a ``role_until`` in the past ends the role
=========================  ========================================================================================

Organisations, sites and professionals appearing on several rows must be given the same way on each (a row that
disagrees with an earlier one is refused, naming it). The resources a row states are checked against FHIR R4 by the
writer, once each (an organisation named on a thousand rows is validated once).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from esante.hpd.codes import CodeError, check_organization_type, check_profession, check_specialty
from esante.hpd.lines import Item, Line, logical_ref, period_ended
from esante.hpd.model import (
    AFFILIATION_SYSTEM,
    CNS_PROVIDER_SYSTEM,
    ENDPOINT_SYSTEM,
    HEALTHCARE_SERVICE_SYSTEM,
    LOCATION_SYSTEM,
    MINISTRY_AUTHORISATION_SYSTEM,
    MINISTRY_NAME,
    MINISTRY_ORGANIZATION_ID,
    ORGANIZATION_SYSTEM,
    ORGANIZATION_TYPE_SYSTEM,
    PRACTITIONER_ROLE_SYSTEM,
    RightToPractise,
    Status,
    right_to_practise_extension,
)
from esante.identifiers.cns_provider_code import CnsProviderCodeError, is_physician_code, parse_cns_provider_code

COLUMNS = (
    "authorisation",
    "profession",
    "specialties",
    "family",
    "given",
    "prefix",
    "gender",
    "languages",
    "cns_code",
    "authorised_from",
    "authorised_until",
    "status",
    "status_date",
    "status_reason",
    "org_id",
    "org_name",
    "org_type",
    "org_cns_code",
    "org_phone",
    "org_email",
    "org_endpoint",
    "org_affiliated_with",
    "site_id",
    "site_name",
    "street",
    "postal_code",
    "city",
    "country",
    "role_phone",
    "role_email",
    "role_from",
    "role_until",
)
REQUIRED = ("authorisation", "profession", "family", "given", "authorised_from")

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9./-]{0,39}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Z]{2})?")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{3,24}")
_LU_POSTAL = re.compile(r"(?:L-?)?(\d{4})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_GENDER = {"F": "female", "M": "male", "X": "other", "U": "unknown"}
_HL7_ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
_PROV = {"system": _HL7_ORG_TYPE, "code": "prov", "display": "Healthcare Provider"}


class RowError(ValueError):
    """A row the import refuses; the message names the column and the problem."""


def read_csv(path: Path, today: date | None = None) -> Iterator[tuple[int, Line | str]]:
    """The rows of ``path`` as lines (or the reason each is refused). A header lacking a required column, or
    naming an unknown one, refuses the file at line 1."""
    today = today or date.today()
    for number, row in read_csv_rows(path):
        yield number, row if isinstance(row, str) else prepare_row(number, row, today)


def prepare_row(number: int, row: Mapping[str, str | None], today: date) -> Line | str:
    """:func:`row_to_line`, or the reason the row is refused."""
    try:
        return row_to_line(number, row, today)
    except RowError as error:
        return str(error)


def read_csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str | None] | str]]:
    """The rows of ``path`` (column -> cell) by line number, unchecked; a string is the reason a row (or, at line 1,
    the whole file) is refused."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            yield 1, f"the header lacks the required column(s) {', '.join(missing)}"
            return
        unknown = [c for c in header if c not in COLUMNS]
        if unknown:
            yield 1, f"unknown column(s) {', '.join(unknown)} (see the documented columns)"
            return
        for row in reader:
            number = reader.line_num
            if None in row:
                yield number, f"{len(row[None])} cell(s) more than the header has columns"
                continue
            yield number, row


def row_to_line(number: int, row: Mapping[str, str | None], today: date) -> Line:
    """One row → the resources it states (Endpoint, Organization, affiliation, Location, Practitioner,
    HealthcareService, PractitionerRole: each referenced one before the one referring to it)."""
    cell = {k: (v or "").strip() for k, v in row.items() if k}
    for column, value in cell.items():
        control = _CONTROL.search(value)
        if control is not None:
            raise RowError(f"{column}: a control character (code {ord(control.group())}) has no place in a cell")
    for column in REQUIRED:
        if not cell.get(column):
            raise RowError(f"{column}: required")
    practitioner, right, profession, specialties = _practitioner(cell, today)
    items: list[Item] = []
    org_id = cell.get("org_id", "")
    place_columns = [c for c in COLUMNS[COLUMNS.index("org_name") :] if cell.get(c)]
    if not org_id:
        if place_columns:
            raise RowError(f"{place_columns[0]}: given without org_id")
        items.append(Item("Practitioner", cell["authorisation"], practitioner, right))
        return Line(number, items)
    org_id = _code(cell, "org_id")
    org_name = _required(cell, "org_name", "org_id")
    items.extend(_organization(cell, org_id, org_name))
    site_id = cell.get("site_id", "")
    site_name = cell.get("site_name") or org_name
    if site_id:
        site_id = _code(cell, "site_id")
        items.append(_location(cell, site_id, site_name, org_id, org_name))
    elif any(cell.get(c) for c in ("site_name", "street", "postal_code", "city", "country")):
        raise RowError("site_id: required with a site's name or address")
    items.append(Item("Practitioner", cell["authorisation"], practitioner, right))
    service = specialties[0] if specialties else profession
    service_key = f"{org_id}/{site_id or '-'}/{service['code']}"
    items.append(
        Item(
            "HealthcareService",
            service_key,
            _drop_empty(
                {
                    "resourceType": "HealthcareService",
                    "identifier": [{"system": HEALTHCARE_SERVICE_SYSTEM, "value": service_key}],
                    "active": True,
                    "providedBy": logical_ref("Organization", org_id, org_name),
                    "category": [{"coding": [profession]}],
                    # mCSD's HealthcareService requires a type: the service given (the specialty, else the profession)
                    "type": [{"coding": [service]}],
                    "specialty": [{"coding": [service]}] if specialties else None,
                    "location": [logical_ref("Location", site_id, site_name)] if site_id else None,
                    "name": f"{service['display']} — {site_name}",
                }
            ),
        )
    )
    role_from = _date(cell, "role_from")
    role_until = _date(cell, "role_until")
    if role_from and role_until and role_until < role_from:
        raise RowError("role_until: before role_from")
    period = _drop_empty({"start": role_from, "end": role_until}) or None
    role_key = f"{cell['authorisation']}/{org_id}/{site_id or '-'}"
    name = practitioner["name"][0]
    items.append(
        Item(
            "PractitionerRole",
            role_key,
            _drop_empty(
                {
                    "resourceType": "PractitionerRole",
                    "identifier": [{"system": PRACTITIONER_ROLE_SYSTEM, "value": role_key}],
                    "active": not period_ended(period, today),
                    "period": period,
                    "practitioner": logical_ref(
                        "Practitioner", cell["authorisation"], " ".join([*name["given"], name["family"]])
                    ),
                    "organization": logical_ref("Organization", org_id, org_name),
                    "location": [logical_ref("Location", site_id, site_name)] if site_id else None,
                    "healthcareService": [logical_ref("HealthcareService", service_key)],
                    "code": [{"coding": [profession]}],
                    "specialty": [{"coding": [s]} for s in specialties] or None,
                    "telecom": _telecom(cell, "role_phone", "role_email"),
                }
            ),
        )
    )
    return Line(number, items)


def _practitioner(
    cell: dict[str, str], today: date
) -> tuple[dict[str, Any], RightToPractise, dict[str, str], list[dict[str, str]]]:
    authorisation = _code(cell, "authorisation")
    try:
        profession = check_profession(cell["profession"])
    except CodeError as error:
        raise RowError(f"profession: {error}") from error
    try:
        codes = [code for code in re.split(r"[;\s]+", cell.get("specialties", "")) if code]
        specialties = [check_specialty(code, profession.code) for code in codes]
    except CodeError as error:
        raise RowError(f"specialties: {error}") from error
    identifiers = [{"use": "official", "system": MINISTRY_AUTHORISATION_SYSTEM, "value": authorisation}]
    if cell.get("cns_code"):
        try:
            cns = parse_cns_provider_code(cell["cns_code"])
        except CnsProviderCodeError as error:
            raise RowError(f"cns_code: {error}") from error
        if profession.code == "medecin" and not is_physician_code(cns):
            raise RowError(f"cns_code: a physician's CNS provider code begins with 9, not {cns[0]}")
        identifiers.append({"system": CNS_PROVIDER_SYSTEM, "value": cns})
    start = _date(cell, "authorised_from")
    end = _date(cell, "authorised_until")
    if start and end and end < start:
        raise RowError("authorised_until: before authorised_from")
    right = _right(cell, today)
    gender = cell.get("gender", "").upper()
    if gender and gender not in _GENDER:
        raise RowError(f"gender: F, M, X or U, not {cell.get('gender')!r}")
    languages = cell.get("languages", "").split()
    for language in languages:
        if not _LANGUAGE.fullmatch(language):
            raise RowError(f"languages: {language!r} is not a BCP-47 language code (lb, fr, de, en, pt …)")
    issuer = logical_ref("Organization", MINISTRY_ORGANIZATION_ID, MINISTRY_NAME)
    period = _drop_empty({"start": start, "end": end})
    qualification_id = [{"system": MINISTRY_AUTHORISATION_SYSTEM, "value": authorisation}]
    qualifications = [
        {"identifier": qualification_id, "code": {"coding": [concept.coding()]}, "period": period, "issuer": issuer}
        for concept in (profession, *specialties)
    ]
    practitioner = _drop_empty(
        {
            "resourceType": "Practitioner",
            "extension": [right_to_practise_extension(right)],
            "identifier": identifiers,
            "active": right.active,
            "name": [
                _drop_empty(
                    {
                        "use": "official",
                        "family": cell["family"],
                        "given": cell["given"].split(),
                        "prefix": cell.get("prefix", "").split() or None,
                    }
                )
            ],
            "gender": _GENDER.get(gender),
            "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": lang}]} for lang in languages] or None,
            "qualification": qualifications,
        }
    )
    return practitioner, right, profession.coding(), [s.coding() for s in specialties]


def _right(cell: dict[str, str], today: date) -> RightToPractise:
    try:
        status = Status(cell.get("status") or "active")
    except ValueError:
        raise RowError(f"status: active, suspended or withdrawn, not {cell.get('status')!r}") from None
    when = _date(cell, "status_date")
    reason = cell.get("status_reason") or None
    if status is not Status.ACTIVE and not (when and reason):
        raise RowError(f"status_date, status_reason: required when the status is {status.value}")
    if when and when > today.isoformat():
        raise RowError(f"status_date: {when} is in the future (a change is recorded on the day it takes effect)")
    if reason and len(reason) > 1000:
        raise RowError("status_reason: at most 1,000 characters")
    return RightToPractise(status, when, reason)


def _organization(cell: dict[str, str], org_id: str, org_name: str) -> list[Item]:
    try:
        kind = check_organization_type(_required(cell, "org_type", "org_id"))
    except CodeError as error:
        raise RowError(f"org_type: {error}") from error
    items: list[Item] = []
    identifiers = [{"use": "official", "system": ORGANIZATION_SYSTEM, "value": org_id}]
    if cell.get("org_cns_code"):
        try:
            identifiers.append({"system": CNS_PROVIDER_SYSTEM, "value": parse_cns_provider_code(cell["org_cns_code"])})
        except CnsProviderCodeError as error:
            raise RowError(f"org_cns_code: {error}") from error
    endpoint = cell.get("org_endpoint", "")
    if endpoint:
        if endpoint.startswith("mailto:") and _EMAIL.fullmatch(endpoint[7:]):
            connection = "direct-project"
        elif re.fullmatch(r"https://[^\s/]+(/\S*)?", endpoint):
            connection = "hl7-fhir-rest"
        else:
            raise RowError(f"org_endpoint: a mailto: or https:// address, not {endpoint!r}")
        items.append(
            Item(
                "Endpoint",
                org_id,
                {
                    "resourceType": "Endpoint",
                    "identifier": [{"system": ENDPOINT_SYSTEM, "value": org_id}],
                    "status": "active",
                    "connectionType": {
                        "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                        "code": connection,
                    },
                    "name": "Messagerie sécurisée" if connection == "direct-project" else "API FHIR",
                    "payloadType": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
                                    "code": "any",
                                }
                            ]
                        }
                    ],
                    "address": endpoint,
                },
            )
        )
    items.append(
        Item(
            "Organization",
            org_id,
            _drop_empty(
                {
                    "resourceType": "Organization",
                    "identifier": identifiers,
                    "active": True,
                    "type": [{"coding": [kind.coding(ORGANIZATION_TYPE_SYSTEM)]}, {"coding": [_PROV]}],
                    "name": org_name,
                    "telecom": _telecom(cell, "org_phone", "org_email"),
                    "endpoint": [logical_ref("Endpoint", org_id)] if endpoint else None,
                }
            ),
        )
    )
    affiliated = cell.get("org_affiliated_with", "")
    if affiliated:
        affiliated = _code(cell, "org_affiliated_with")
        if affiliated == org_id:
            raise RowError("org_affiliated_with: an organisation is not affiliated with itself")
        key = f"{affiliated}/{org_id}"
        items.append(
            Item(
                "OrganizationAffiliation",
                key,
                {
                    "resourceType": "OrganizationAffiliation",
                    "identifier": [{"system": AFFILIATION_SYSTEM, "value": key}],
                    "active": True,
                    "organization": logical_ref("Organization", affiliated),
                    "participatingOrganization": logical_ref("Organization", org_id, org_name),
                    "code": [{"coding": [{"system": "http://hl7.org/fhir/organization-role", "code": "member"}]}],
                },
            )
        )
    return items


def _location(cell: dict[str, str], site_id: str, site_name: str, org_id: str, org_name: str) -> Item:
    city = _required(cell, "city", "site_id")
    country = (cell.get("country") or "LU").upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise RowError(f"country: an ISO 3166 alpha-2 code (LU, FR, BE, DE …), not {cell.get('country')!r}")
    postal = cell.get("postal_code", "")
    if postal and country == "LU":
        match = _LU_POSTAL.fullmatch(postal)
        if match is None:
            raise RowError(f"postal_code: a Luxembourg postal code is L-NNNN, not {postal!r}")
        postal = f"L-{match.group(1)}"
    address = _drop_empty(
        {
            "use": "work",
            "type": "physical",
            "line": [cell["street"]] if cell.get("street") else None,
            "postalCode": postal or None,
            "city": city,
            "country": country,
        }
    )
    return Item(
        "Location",
        site_id,
        {
            "resourceType": "Location",
            "identifier": [{"system": LOCATION_SYSTEM, "value": site_id}],
            "status": "active",
            "name": site_name,
            "mode": "instance",
            "address": address,
            "physicalType": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                        "code": "bu",
                        "display": "Building",
                    }
                ]
            },
            "managingOrganization": logical_ref("Organization", org_id, org_name),
        },
    )


def _telecom(cell: dict[str, str], phone: str, email: str) -> list[dict[str, str]] | None:
    telecom = []
    if cell.get(phone):
        if not _PHONE.fullmatch(cell[phone]):
            raise RowError(f"{phone}: not a phone number ({cell[phone]!r})")
        telecom.append({"system": "phone", "value": cell[phone], "use": "work"})
    if cell.get(email):
        if not _EMAIL.fullmatch(cell[email]):
            raise RowError(f"{email}: not an e-mail address ({cell[email]!r})")
        telecom.append({"system": "email", "value": cell[email], "use": "work"})
    return telecom or None


def _code(cell: dict[str, str], column: str) -> str:
    value = cell[column]
    if not _CODE.fullmatch(value):
        raise RowError(f"{column}: letters, digits, '.', '/' and '-' (at most 40), not {value!r}")
    return value


def _required(cell: dict[str, str], column: str, with_column: str) -> str:
    if not cell.get(column):
        raise RowError(f"{column}: required with {with_column}")
    return cell[column]


def _date(cell: dict[str, str], column: str) -> str | None:
    value = cell.get(column, "")
    if not value:
        return None
    if not _DATE.fullmatch(value):
        raise RowError(f"{column}: a date is YYYY-MM-DD, not {value!r}")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise RowError(f"{column}: {value} is not a calendar date") from None
    return value


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and (v or not isinstance(v, list | dict))}
