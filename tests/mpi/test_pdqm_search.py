"""IHE PDQm ITI-78 (Mobile Patient Demographics Query): every search parameter the Patient Demographics Supplier
must support (its CapabilityStatement in ../shared/data/ig-examples/PDQm), with :exact, AND and OR, and the total."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.helpers import FHIR_JSON
from tests.conftest import shared_data

SUPPLIER = "CapabilityStatement-IHE.PDQm.PatientDemographicsSupplier.json"
MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


def _example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(shared_data("ig-examples", "PDQm", name).read_text())
    return resource


PEOPLE: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "lea",
        "active": True,
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": "1982080285657"}],
        "name": [{"use": "official", "family": "Schmit", "given": ["Léa", "Marie"]}],
        "telecom": [{"system": "phone", "value": "+352 621 123 456"}],
        "gender": "female",
        "birthDate": "1982-08-02",
        "address": [
            {"line": ["12 rue de l'Alzette"], "city": "Esch-sur-Alzette", "postalCode": "L-4011", "country": "LU"}
        ],
        "extension": [{"url": MAIDEN, "valueString": "Wagner"}],
    },
    {
        "resourceType": "Patient",
        "id": "joao",
        "active": False,
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": "1974091186700"}],
        "name": [{"family": "Da Silva", "given": ["João"]}],
        "gender": "male",
        "birthDate": "1974-09-11",
        "address": [{"city": "Thionville", "postalCode": "57100", "state": "Moselle", "country": "FR"}],
        "extension": [{"url": MAIDEN, "valueString": "Pereira"}],
    },
]

# (query, ids expected among ex-patient / ex-patient-mothers-maiden-name / lea / joao)
QUERIES: dict[str, list[tuple[str, set[str]]]] = {
    "_lastUpdated": [("_lastUpdated=gt2000-01-01&family=Schmit&gender=female", {"lea"})],
    "_id": [("_id=lea", {"lea"}), ("_id=lea,joao", {"lea", "joao"})],
    "active": [("active=false", {"joao"})],
    "family": [
        ("family=schmid", {"ex-patient"}),
        ("family=schm", {"lea", "ex-patient", "ex-patient-mothers-maiden-name"}),
        ("family=da%20sil", {"joao"}),
    ],
    "family:exact": [
        ("family:exact=Schmit", {"lea", "ex-patient-mothers-maiden-name"}),
        ("family:exact=schmit", set()),
    ],
    "given": [
        ("given=lea", {"lea"}),
        ("given=marie&given=lea", {"lea"}),
        ("given=jo", {"joao", "ex-patient", "ex-patient-mothers-maiden-name"}),
        ("given=jacob", {"ex-patient"}),
    ],
    "given:exact": [("given:exact=João", {"joao"}), ("given:exact=Joao", set())],
    "identifier": [
        ("identifier=urn:oid:1.3.182.4.4|1982080285657", {"lea"}),
        ("identifier=http://example.org/exampleSystem|8675309", {"ex-patient"}),
        ("identifier=urn:oid:1.3.182.4.4|", {"lea", "joao"}),
    ],
    "telecom": [("telecom=phone|%2B352%20621%20123%20456", {"lea"})],
    "birthdate": [("birthdate=1982-08-02", {"lea"}), ("birthdate=lt1930", {"ex-patient"})],
    "address": [("address=12%20rue", {"lea"}), ("address=thion", {"joao"}), ("address=alzette", set())],
    "address:exact": [("address:exact=Thionville", {"joao"})],
    "address-city": [("address-city=esch", {"lea"}), ("address-city=esch,thionville", {"lea", "joao"})],
    "address-city:exact": [("address-city:exact=Esch-sur-Alzette", {"lea"}), ("address-city:exact=esch", set())],
    "address-country": [("address-country=FR", {"joao"})],
    "address-country:exact": [("address-country:exact=LU", {"lea"})],
    "address-postalcode": [("address-postalcode=L-40", {"lea"})],
    "address-postalcode:exact": [("address-postalcode:exact=57100", {"joao"})],
    "address-state": [
        ("address-state=mos", {"joao"}),
        ("address-state=WI", {"ex-patient", "ex-patient-mothers-maiden-name"}),
    ],
    "address-state:exact": [("address-state:exact=Moselle", {"joao"})],
    "gender": [
        ("gender=female", {"lea"}),
        ("gender=male,other", {"joao", "ex-patient", "ex-patient-mothers-maiden-name"}),
        ("gender=male&birthdate=lt1950", {"ex-patient-mothers-maiden-name"}),
    ],
    "mothersMaidenName": [
        ("mothersMaidenName=wag", {"lea"}),
        ("mothersMaidenName=Doe", {"ex-patient-mothers-maiden-name"}),
    ],
    "mothersMaidenName:exact": [
        ("mothersMaidenName:exact=Pereira", {"joao"}),
        ("mothersMaidenName:exact=pereira", set()),
    ],
}


def _required_parameters() -> list[str]:
    statement = json.loads(shared_data("ig-examples", "PDQm", SUPPLIER).read_text())
    (patient,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    return [p["name"] for p in patient["searchParam"]]


def test_every_supplier_parameter_has_a_case() -> None:
    assert sorted(_required_parameters()) == sorted(QUERIES)


@pytest.mark.no_audit
async def test_pdqm_patient_searches(client: httpx.AsyncClient) -> None:
    for example in ("Patient-ex-patient.json", "Patient-ex-patient-mothers-maiden-name.json"):
        resource = _example(example)
        response = await client.put(f"/fhir/Patient/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code in (200, 201), response.text
    for person in PEOPLE:
        assert (await client.put(f"/fhir/Patient/{person['id']}", json=person, headers=FHIR_JSON)).status_code == 201
    failures = []
    for parameter, cases in QUERIES.items():
        for query, expected in cases:
            bundle = (await client.get(f"/fhir/Patient?{query}")).json()
            found = {e["resource"]["id"] for e in bundle.get("entry", [])}
            if found != expected or bundle.get("total") != len(expected):
                failures.append(
                    f"{parameter}: {query} → {sorted(found)} (total {bundle.get('total')}), expected {sorted(expected)}"
                )
    assert not failures, "\n".join(failures)
    unknown = await client.get("/fhir/Patient?mothersMaidenName:contains=agn")
    assert {e["resource"]["id"] for e in unknown.json()["entry"]} == {"lea"}
