"""Build an :class:`IdentityRecord` from a FHIR R4 Patient (a plain dict, as parsed JSON): a pure function.

Which FHIR element feeds which trait:

- family / given: the ``official`` name (else ``usual``, else the first name without a use other than ``maiden``,
  ``old`` or ``nickname``); given names keep their order;
- birth_family: the family of the ``maiden`` name (FHIR's use for the birth name);
- birth_date: ``birthDate`` (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``);
- sex: ``gender`` (``unknown`` becomes None);
- birth_place: the extension ``http://hl7.org/fhir/StructureDefinition/patient-birthPlace`` (its Address: city,
  else text, else country);
- address: the ``home`` address (else the first one that is not ``old``);
- matricule: the identifier of system ``urn:oid:1.3.182.4.4`` (separators removed).
"""

from __future__ import annotations

from typing import Any

from esante.mpi.matching.record import SEXES, Address, IdentityRecord, PartialDate, RecordError

MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
_NOT_CURRENT = {"maiden", "old", "nickname", "anonymous", "temp"}


def record_from_fhir(patient: dict[str, Any], record_id: str | None = None) -> IdentityRecord:
    """The identity traits of ``patient``; ``record_id`` defaults to the Patient's ``id``.

    Raises :class:`RecordError` naming the element when a trait is present but unreadable (a bad birthDate, an
    unknown gender), so the service can answer 400 instead of matching on garbage.
    """
    if not isinstance(patient, dict) or patient.get("resourceType", "Patient") != "Patient":
        raise RecordError("expected a FHIR Patient")
    rid = record_id or patient.get("id")
    if not rid:
        raise RecordError("the Patient has no id (and none was given)")
    names = [name for name in _list(patient, "name") if isinstance(name, dict)]
    current = _current_name(names)
    maiden = next((name for name in names if name.get("use") == "maiden"), None)
    birth_date = None
    if patient.get("birthDate") is not None:
        if not isinstance(patient["birthDate"], str):
            raise RecordError("Patient.birthDate is not a string")
        birth_date = PartialDate.parse(patient["birthDate"])
    sex = patient.get("gender")
    if sex == "unknown":
        sex = None
    if sex is not None and sex not in SEXES:
        raise RecordError(f"Patient.gender {sex!r} is not male, female, other or unknown")
    return IdentityRecord(
        id=str(rid),
        family=_text(current.get("family")) if current else None,
        birth_family=_text(maiden.get("family")) if maiden else None,
        given=tuple(g for g in (_text(v) for v in (current or {}).get("given", []) or []) if g),
        birth_date=birth_date,
        sex=sex,
        birth_place=_birth_place(patient),
        address=_address(patient),
        matricule=_matricule(patient),
    )


def _list(resource: dict[str, Any], key: str) -> list[Any]:
    value = resource.get(key) or []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _current_name(names: list[dict[str, Any]]) -> dict[str, Any] | None:
    for use in ("official", "usual"):
        for name in names:
            if name.get("use") == use:
                return name
    return next((name for name in names if name.get("use") not in _NOT_CURRENT), None)


def _birth_place(patient: dict[str, Any]) -> str | None:
    for ext in _list(patient, "extension"):
        if isinstance(ext, dict) and ext.get("url") == BIRTH_PLACE_URL:
            place = ext.get("valueAddress")
            if isinstance(place, dict):
                return _text(place.get("city")) or _text(place.get("text")) or _text(place.get("country"))
    return None


def _address(patient: dict[str, Any]) -> Address | None:
    addresses = [a for a in _list(patient, "address") if isinstance(a, dict)]
    chosen = next((a for a in addresses if a.get("use") == "home"), None)
    chosen = chosen or next((a for a in addresses if a.get("use") != "old"), None)
    if chosen is None:
        return None
    address = Address(
        lines=tuple(line for line in (_text(v) for v in _list(chosen, "line")) if line),
        postal_code=_text(chosen.get("postalCode")),
        city=_text(chosen.get("city")),
        state=_text(chosen.get("state")),
        country=_text(chosen.get("country")),
    )
    return None if address.empty else address


def _matricule(patient: dict[str, Any]) -> str | None:
    for identifier in _list(patient, "identifier"):
        if isinstance(identifier, dict) and identifier.get("system") == MATRICULE_SYSTEM:
            value = _text(identifier.get("value"))
            if value:
                digits = "".join(ch for ch in value if ch.isdigit())
                return digits or None
    return None
