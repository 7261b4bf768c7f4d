"""What of the directory is public: the elements a patient (or anyone, without a login) may see.

Pure. The public directory search returns only these elements; everything else is removed, whatever a source
file or an administrator put in the resource. The rule is an allow-list, so an element added later stays private
until someone decides it is public.

Public: how to find and reach a professional at work —

* Practitioner: names (without their periods) and the languages spoken;
* PractitionerRole: whether it is active, its period, profession (``code``), specialties, the places and
  organisation it is practised at, the work telephone/e-mail of the role, opening hours;
* Location: name, status, type, work address and telephone, geographic position, opening hours, its organisation;
* Organization: name, type, whether it is active, work address and telephone, the organisation it is part of.

Private (never returned): every identifier (eHealthID, CNS provider code, matricule, the Ministry's authorisation
number, the establishments' codes), the professional's own telecom, home address, gender, birth date, photo,
qualifications, extensions (the right-to-practise record, ...), narrative ``text``, contained resources,
endpoints (secure-messaging addresses are for professionals), and any telecom or address whose ``use`` is not
``work`` (home, mobile, temporary, old).

A returned resource is marked ``SUBSETTED`` (FHIR's tag for a resource with elements left out), so no client
mistakes it for the whole resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_WORK_USES = frozenset({"work"})  # an element without ``use`` counts as work: it is the place's own


def _copy(value: Any) -> Any:
    return value


def _reference(value: Any) -> Any:
    """``reference`` and ``display`` only (a Reference's ``identifier`` could carry an eHealthID)."""
    if isinstance(value, list):
        return [r for r in (_reference(v) for v in value) if r]
    if not isinstance(value, dict):
        return None
    kept = {k: value[k] for k in ("reference", "display") if isinstance(value.get(k), str)}
    return kept or None


def _work_only(value: Any) -> Any:
    """ContactPoints / Addresses whose ``use`` is work (or not given); periods dropped."""
    items = value if isinstance(value, list) else [value]
    kept = [
        {k: v for k, v in item.items() if k != "period"}
        for item in items
        if isinstance(item, dict) and item.get("use", "work") in _WORK_USES
    ]
    if isinstance(value, list):
        return kept
    return kept[0] if kept else None


def _names(value: Any) -> Any:
    if not isinstance(value, list):
        return None
    keep = ("use", "text", "family", "given", "prefix", "suffix")
    return [{k: n[k] for k in keep if k in n} for n in value if isinstance(n, dict) and n.get("use") != "old"]


def _languages(value: Any) -> Any:
    """Practitioner.communication (R4: CodeableConcept, the languages spoken)."""
    return value if isinstance(value, list) else None


Trim = Callable[[Any], Any]

PUBLIC_ELEMENTS: Mapping[str, Mapping[str, Trim]] = {
    "Practitioner": {"active": _copy, "name": _names, "communication": _languages},
    "PractitionerRole": {
        "active": _copy,
        "period": _copy,
        "practitioner": _reference,
        "organization": _reference,
        "code": _copy,
        "specialty": _copy,
        "location": _reference,
        "healthcareService": _reference,
        "telecom": _work_only,
        "availableTime": _copy,
        "notAvailable": _copy,
        "availabilityExceptions": _copy,
    },
    "Location": {
        "status": _copy,
        "name": _copy,
        "alias": _copy,
        "description": _copy,
        "mode": _copy,
        "type": _copy,
        "telecom": _work_only,
        "address": _work_only,
        "physicalType": _copy,
        "position": _copy,
        "managingOrganization": _reference,
        "partOf": _reference,
        "hoursOfOperation": _copy,
        "availabilityExceptions": _copy,
    },
    "Organization": {
        "active": _copy,
        "type": _copy,
        "name": _copy,
        "alias": _copy,
        "telecom": _work_only,
        "address": _work_only,
        "partOf": _reference,
    },
}
PUBLIC_TYPES = frozenset(PUBLIC_ELEMENTS)


def public_view(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The public part of a directory resource (``ValueError`` for a type that has none)."""
    resource_type = resource.get("resourceType")
    elements = PUBLIC_ELEMENTS.get(resource_type) if isinstance(resource_type, str) else None
    if elements is None:
        raise ValueError(f"{resource_type!r} has no public view")
    view: dict[str, Any] = {"resourceType": resource_type, "id": resource.get("id")}
    meta = resource.get("meta")
    last_updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    view["meta"] = {**({"lastUpdated": last_updated} if last_updated else {}), "tag": [dict(SUBSETTED)]}
    for name, trim in elements.items():
        if name not in resource:
            continue
        value = trim(resource[name])
        if value not in (None, [], {}):
            view[name] = value
    return view
