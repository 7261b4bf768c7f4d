"""The PID segment ↔ a FHIR R4 Patient (pure functions): the mapping tables are in docs/mpi-mllp.md.

Reading (ADT feeds) is strict where a wrong value would make a wrong identity: a missing PID-3, an identifier
without an OID assigning authority, an impossible birth date or an unknown sex code are refused (AE, with the
field's location); free-text fields are taken as they are. Writing (PDQ answers) is the inverse mapping.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from esante.mpi.mllp.er7 import Field, Segment, one
from esante.mpi.mllp.errors import Code, Location, app_error
from esante.mpi.model import ESANTE_ID_SYSTEM, MATRICULE_SYSTEM, NATIONAL_SYSTEMS

MOTHERS_MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
# DTM: YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?(?:[+-]\d{4})?$")

SEX_TO_GENDER = {"F": "female", "M": "male", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
GENDER_TO_SEX = {"female": "F", "male": "M", "other": "O", "unknown": "U"}
# HL7 table 0200 name type → FHIR HumanName.use (B, the name at birth, is the French/Luxembourgish "nom de naissance")
NAME_USE = {"L": "official", "M": "maiden", "B": "maiden", "D": "usual", "N": "nickname", "S": "anonymous"}
USE_TO_NAME_TYPE = {"official": "L", "maiden": "M", "usual": "D", "nickname": "N", "anonymous": "S"}
ADDRESS_USE = {"H": ("home", None), "B": ("work", None), "O": ("work", None), "M": (None, "postal")}
ADDRESS_USE.update({"C": ("temp", None), "BDL": ("home", None)})
PHONE_USE = {"PRN": "home", "ORN": "home", "WPN": "work", "PRS": "mobile", "VHN": "home", "EMR": "home"}
USE_TO_PHONE = {"home": "PRN", "work": "WPN", "mobile": "PRS"}
# identifier type (HL7 table 0203) the MPI writes for its systems; local domains are patient identifiers (PI)
TYPE_OF_SYSTEM = {MATRICULE_SYSTEM: "NNLUX", ESANTE_ID_SYSTEM: "NH"}


def _loc(field: int, component: int | None = None, repetition: int = 1, segment: str = "PID") -> Location:
    return Location(segment, field, component, repetition)


def parse_date(value: str, location: Location) -> str:
    """An HL7 DT/DTM (YYYY, YYYYMM, YYYYMMDD, with an optional time that is dropped) → FHIR date."""
    match = _DTM.match(value)
    if match is None:
        raise app_error(Code.DATA_TYPE, f"{location} is not a date (YYYY[MM[DD]]): {value!r}", location)
    year, month, day = match.groups()
    try:
        dt.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise app_error(Code.DATA_TYPE, f"{location} is not a valid date: {value!r}", location) from None
    if int(year) < 1800:
        raise app_error(Code.DATA_TYPE, f"{location} is before 1800: {value!r}", location)
    return "-".join(part for part in (year, month, day) if part)


def system_of(rep: list[list[str]], location: Location) -> str:
    """CX-4 (assigning authority, HD) → the identifier's system: the universal id when it is an ISO OID
    (``&1.3.182...&ISO``), or a namespace id that is itself an OID."""

    def get(comp: int, sub: int) -> str:
        try:
            return rep[comp - 1][sub - 1].strip()
        except IndexError:
            return ""

    namespace, universal, kind = get(4, 1), get(4, 2), get(4, 3)
    if universal and kind.upper() == "ISO" and _OID.match(universal):
        return f"urn:oid:{universal}"
    if not universal and _OID.match(namespace):
        return f"urn:oid:{namespace}"
    if universal.startswith("urn:oid:") and _OID.match(universal[8:]):
        return universal
    raise app_error(
        Code.DATA_TYPE,
        f"{location} needs an assigning authority with an ISO OID (CX-4: ^^^Name&1.3.182...&ISO)",
        location,
    )


def identifiers(segment: Segment, number: int, segment_name: str = "PID") -> list[tuple[str, str]]:
    """The (system, value) pairs of a CX field (PID-3, MRG-1); an empty CX-1 with an authority is refused."""
    found: list[tuple[str, str]] = []
    for index, rep in enumerate(segment.repetitions(number), start=1):
        value = rep[0][0].strip() if rep and rep[0] else ""
        location = _loc(number, 1, index, segment_name)
        if not value:
            raise app_error(Code.REQUIRED_FIELD_MISSING, f"{location} has no identifier (CX-1)", location)
        found.append((system_of(rep, _loc(number, 4, index, segment_name)), value))
    return found


def key_identifier(found: list[tuple[str, str]], number: int = 3, segment: str = "PID") -> tuple[str, str]:
    """The identity's key: the first identifier of an establishment domain (not a national one)."""
    location = _loc(number, segment=segment)
    if not found:
        raise app_error(Code.REQUIRED_FIELD_MISSING, f"{location} (patient identifier list) is required", location)
    local = [pair for pair in found if pair[0] not in NATIONAL_SYSTEMS]
    if not local:
        raise app_error(
            Code.REQUIRED_FIELD_MISSING,
            f"{location} needs an identifier of the establishment's domain (only national ones were given)",
            location,
        )
    return local[0]


def _comp(rep: list[list[str]], index: int) -> str:
    try:
        value = rep[index - 1][0].strip()
    except IndexError:
        return ""
    return "" if value == '""' else value


def _name(rep: list[list[str]], number: int, index: int) -> dict[str, Any] | None:
    family, given, middle = _comp(rep, 1), _comp(rep, 2), _comp(rep, 3)
    suffix, prefix, kind = _comp(rep, 4), _comp(rep, 5), _comp(rep, 7).upper()
    if not (family or given or middle):
        return None
    name: dict[str, Any] = {}
    if kind:
        if kind not in NAME_USE and kind not in ("A", "C", "I", "P", "R", "T", "U"):
            location = _loc(number, 7, index)
            raise app_error(
                Code.TABLE_VALUE_NOT_FOUND, f"{location}: unknown name type {kind!r} (table 0200)", location
            )
        if kind in NAME_USE:
            name["use"] = NAME_USE[kind]
    if family:
        name["family"] = family
    givens = [g for g in [given, *middle.split()] if g]
    if givens:
        name["given"] = givens
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    return name


def _address(rep: list[list[str]], index: int) -> dict[str, Any] | None:
    street = rep[0][0].strip() if rep and rep[0] and rep[0][0] != '""' else ""
    other, city, state = _comp(rep, 2), _comp(rep, 3), _comp(rep, 4)
    postal, country, kind = _comp(rep, 5), _comp(rep, 6), _comp(rep, 7).upper()
    if not (street or other or city or postal or country or state):
        return None
    address: dict[str, Any] = {}
    use, type_ = ADDRESS_USE.get(kind, (None, None))
    if use:
        address["use"] = use
    if type_:
        address["type"] = type_
    lines = [line for line in (street, other) if line]
    if lines:
        address["line"] = lines
    for key, value in (("city", city), ("state", state), ("postalCode", postal), ("country", country)):
        if value:
            address[key] = value
    return address


def _telecoms(segment: Segment, number: int, default_use: str) -> list[dict[str, Any]]:
    found = []
    for rep in segment.repetitions(number):
        use_code, equipment = _comp(rep, 2).upper(), _comp(rep, 3).upper()
        email = _comp(rep, 4)
        if use_code == "NET" or equipment == "INTERNET" or email:
            if email or _comp(rep, 1):
                found.append({"system": "email", "value": email or _comp(rep, 1), "use": default_use})
            continue
        value = _comp(rep, 1)  # XTN-1 (the number as text), else XTN-5/6/7 (country, area, local number)
        country, area, local = _comp(rep, 5).lstrip("+"), _comp(rep, 6), _comp(rep, 7)
        if not value and local:
            value = " ".join(p for p in (f"+{country}" if country else "", area, local) if p)
        if not value:
            continue
        telecom: dict[str, Any] = {"system": "fax" if equipment == "FX" else "phone", "value": value}
        use = "mobile" if equipment == "CP" else PHONE_USE.get(use_code, default_use)
        telecom["use"] = use
        found.append(telecom)
    return found


def patient_from_pid(pid: Segment) -> tuple[dict[str, Any], tuple[str, str]]:
    """The Patient a PID segment describes and its key identifier (system, value) for the conditional update."""
    found = identifiers(pid, 3)
    key = key_identifier(found)
    seen: set[tuple[str, str]] = set()
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": []}
    for system, value in found:
        if (system, value) not in seen:
            seen.add((system, value))
            patient["identifier"].append({"system": system, "value": value})
    names = [n for i, rep in enumerate(pid.repetitions(5), 1) if (n := _name(rep, 5, i)) is not None]
    if not names:
        location = _loc(5)
        raise app_error(Code.REQUIRED_FIELD_MISSING, f"{location} (patient name) is required", location)
    patient["name"] = names
    extensions: list[dict[str, Any]] = []
    mother = pid.value(6)
    if mother:
        extensions.append({"url": MOTHERS_MAIDEN_NAME, "valueString": mother})
    birth = pid.value(7)
    if birth:
        patient["birthDate"] = parse_date(birth, _loc(7))
    sex = pid.value(8).upper()
    if sex:
        if sex not in SEX_TO_GENDER:
            location = _loc(8)
            raise app_error(Code.TABLE_VALUE_NOT_FOUND, f"{location}: unknown sex {sex!r} (F, M, O, U)", location)
        patient["gender"] = SEX_TO_GENDER[sex]
    addresses = [a for i, rep in enumerate(pid.repetitions(11), 1) if (a := _address(rep, i)) is not None]
    if addresses:
        patient["address"] = addresses
    telecom = _telecoms(pid, 13, "home") + _telecoms(pid, 14, "work")
    if telecom:
        patient["telecom"] = telecom
    place = pid.value(23)
    if place:
        extensions.append({"url": BIRTH_PLACE, "valueAddress": {"city": place}})
    death, indicator = pid.value(29), pid.value(30).upper()
    if indicator and indicator not in ("Y", "N"):
        location = _loc(30)
        raise app_error(Code.TABLE_VALUE_NOT_FOUND, f"{location}: the death indicator is Y or N", location)
    if death:
        if indicator == "N":
            location = _loc(30)
            raise app_error(Code.DATA_TYPE, f"{location} is N but PID-29 gives a death date", location)
        patient["deceasedDateTime"] = parse_date(death, _loc(29))
    elif indicator:
        patient["deceasedBoolean"] = indicator == "Y"
    if extensions:
        patient["extension"] = extensions
    return patient, key


# --- writing (PDQ answers) ---------------------------------------------------------------------------------------


def _hl7_date(value: str) -> str:
    return value[:10].replace("-", "")


def _cx(identifier: dict[str, Any]) -> Field | None:
    system, value = str(identifier.get("system") or ""), str(identifier.get("value") or "")
    if not system.startswith("urn:oid:") or not value:
        return None
    return one(value, "", "", ("", system[8:], "ISO"), TYPE_OF_SYSTEM.get(system, "PI"))


def pid_fields(patient: dict[str, Any], set_id: int, systems: Iterable[str] | None = None) -> list[Field]:
    """PID-1..30 of a Patient; ``systems`` keeps only the identifiers of those domains (QPD-8)."""
    wanted = set(systems) if systems is not None else None
    fields: list[Field] = [[] for _ in range(30)]

    def put(number: int, value: Field) -> None:
        fields[number - 1] = value

    put(1, one(str(set_id)))
    cxs = [
        cx
        for ident in patient.get("identifier", [])
        if isinstance(ident, dict) and (wanted is None or ident.get("system") in wanted) and (cx := _cx(ident))
    ]
    put(3, [rep for cx in cxs for rep in cx])
    names = []
    for name in patient.get("name", []):
        given = list(name.get("given") or [])
        names += one(
            str(name.get("family") or ""),
            given[0] if given else "",
            " ".join(given[1:]),
            " ".join(name.get("suffix") or []),
            " ".join(name.get("prefix") or []),
            "",
            USE_TO_NAME_TYPE.get(str(name.get("use") or ""), "L" if name.get("use") is None else "U"),
        )
    put(5, names)
    extensions = {e.get("url"): e for e in patient.get("extension", []) if isinstance(e, dict)}
    if MOTHERS_MAIDEN_NAME in extensions:
        put(6, one(str(extensions[MOTHERS_MAIDEN_NAME].get("valueString") or "")))
    if patient.get("birthDate"):
        put(7, one(_hl7_date(str(patient["birthDate"]))))
    if patient.get("gender") in GENDER_TO_SEX:
        put(8, one(GENDER_TO_SEX[patient["gender"]]))
    addresses = []
    for address in patient.get("address", []):
        lines = list(address.get("line") or [])
        kind = {"home": "H", "work": "B", "temp": "C"}.get(str(address.get("use") or ""), "")
        if address.get("type") == "postal":
            kind = "M"
        addresses += one(
            lines[0] if lines else "",
            " ".join(lines[1:]),
            str(address.get("city") or ""),
            str(address.get("state") or ""),
            str(address.get("postalCode") or ""),
            str(address.get("country") or ""),
            kind,
        )
    put(11, addresses)
    phones = []
    for telecom in patient.get("telecom", []):
        value = str(telecom.get("value") or "")
        if telecom.get("system") == "email":
            phones += one("", "NET", "Internet", value)
        elif telecom.get("system") in ("phone", "fax") and value:
            equipment = "FX" if telecom.get("system") == "fax" else "CP" if telecom.get("use") == "mobile" else "PH"
            phones += one(value, USE_TO_PHONE.get(str(telecom.get("use") or ""), "PRN"), equipment)
    put(13, phones)
    place = extensions.get(BIRTH_PLACE, {}).get("valueAddress") or {}
    if place:
        put(23, one(str(place.get("city") or place.get("text") or place.get("country") or "")))
    if patient.get("deceasedDateTime"):
        put(29, one(_hl7_date(str(patient["deceasedDateTime"]))))
        put(30, one("Y"))
    elif "deceasedBoolean" in patient:
        put(30, one("Y" if patient["deceasedBoolean"] else "N"))
    return fields
