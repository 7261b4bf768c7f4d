"""Persons and establishment identities as FHIR R4 Patient resources (plain dicts, ready for orjson)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esante.synth.config import Domain
from esante.synth.model import Address, Person

if TYPE_CHECKING:
    from esante.synth.errors import LocalTraits

MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"


def address_json(address: Address) -> dict[str, Any]:
    return {
        "use": "home",
        "line": [address.line],
        "city": address.city,
        "postalCode": address.postal_code,
        "country": address.country,
    }


def birth_place_extension(place: tuple[str, str]) -> dict[str, Any]:
    country, city = place
    return {"url": BIRTH_PLACE_URL, "valueAddress": {"city": city, "country": country}}


def certified_patient(person: Person) -> dict[str, Any]:
    """The certified identity as the register sends it: matricule, official (and maiden) name, all traits.

    No ``id`` and no eSanté patient identifier: the MPI assigns both when it imports the identity.
    """
    names: list[dict[str, Any]] = [{"use": "official", "family": person.family, "given": list(person.given)}]
    if person.birth_family:
        names.append({"use": "maiden", "family": person.birth_family, "given": list(person.given)})
    return {
        "resourceType": "Patient",
        "extension": [birth_place_extension(person.birth_place)],
        "identifier": [{"use": "official", "system": MATRICULE_SYSTEM, "value": person.matricule}],
        "active": True,
        "name": names,
        "gender": person.sex,
        "birthDate": person.birth_date_text,
        "address": [address_json(person.address)],
    }


def local_patient(traits: LocalTraits, domain: Domain, local_id: str) -> dict[str, Any]:
    """A local identity as an establishment sends it (PIXm feed): its own identifier first, then what it recorded."""
    identifiers: list[dict[str, Any]] = [{"use": "usual", "system": domain.system, "value": local_id}]
    if traits.matricule:
        identifiers.append({"use": "official", "system": MATRICULE_SYSTEM, "value": traits.matricule})
    name: dict[str, Any] = {"use": "official", "family": traits.family}
    if traits.given:
        name["given"] = list(traits.given)
    names = [name]
    if traits.maiden:
        names.append({"use": "maiden", "family": traits.maiden})
    resource: dict[str, Any] = {"resourceType": "Patient"}
    if traits.birth_place:
        resource["extension"] = [birth_place_extension(traits.birth_place)]
    resource["identifier"] = identifiers
    resource["active"] = True
    resource["name"] = names
    if traits.sex:
        resource["gender"] = traits.sex
    if traits.birth_date:
        resource["birthDate"] = traits.birth_date
    if traits.address:
        resource["address"] = [address_json(traits.address)]
    return resource
