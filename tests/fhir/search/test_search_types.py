"""Search by parameter type, modifiers, prefixes, OR/AND, chains, _has, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from search_kit import BASE, SearchKit

from esante.fhir.errors import FhirError

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _q(value: float, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "system": UCUM, "code": code, "unit": unit or code}


DATA: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "o2", "name": "Groupe Santé", "address": [{"city": "Esch"}]},
    {
        "resourceType": "Organization",
        "id": "o1",
        "name": "Hôpital Central",
        "partOf": {"reference": "Organization/o2"},
    },
    {"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Weber"}]},
    {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "tag": [{"system": "http://tags", "code": "vip"}],
            "profile": ["http://example.org/StructureDefinition/lux-patient"],
            "security": [{"system": "http://sec", "code": "R"}],
            "source": "http://source.example/a",
        },
        "active": True,
        "name": [{"family": "Dupont", "given": ["Jean"]}],
        "gender": "male",
        "birthDate": "1980-05-12",
        "identifier": [
            {
                "system": "urn:oid:1.2",
                "value": "A1",
                "type": {"coding": [{"system": V2, "code": "MR"}], "text": "Medical record"},
            }
        ],
        "managingOrganization": {"reference": "Organization/o1"},
        "address": [{"city": "Luxembourg"}],
    },
    {
        "resourceType": "Patient",
        "id": "p2",
        "active": False,
        "name": [{"family": "Durand", "given": ["Élodie"]}],
        "gender": "female",
        "birthDate": "1990",
        "identifier": [{"system": "urn:oid:1.2", "value": "B2"}],
        "generalPractitioner": [{"reference": "Practitioner/pr1"}],
    },
    {
        "resourceType": "Patient",
        "id": "p3",
        "name": [{"family": "Martin, Jr", "given": ["Paul"]}],
        "birthDate": "2001-01-01",
        "managingOrganization": {"reference": f"{BASE}/Organization/o2"},
    },
    {
        "resourceType": "Observation",
        "id": "ob1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "1234-5", "display": "Glucose"}]},
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Practitioner/pr1"}],
        "effectiveDateTime": "2020-03-01T10:00:00Z",
        "valueQuantity": _q(5.4, "mg/dL"),
    },
    {
        "resourceType": "Observation",
        "id": "ob2",
        "status": "preliminary",
        "code": {"coding": [{"system": LOINC, "code": "1234-5"}], "text": "blood sugar"},
        "subject": {"reference": "Patient/p2"},
        "effectivePeriod": {"start": "2021-01-01", "end": "2021-01-31"},
        "valueQuantity": {"value": 7.1, "unit": "mmol/L"},
    },
    {
        "resourceType": "Observation",
        "id": "ob3",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2022",
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": _q(120, "mm[Hg]")},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": _q(80, "mm[Hg]")},
        ],
    },
    {
        "resourceType": "Observation",
        "id": "ob4",
        "status": "cancelled",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "999"}]},
        "subject": {"reference": "Patient/p3"},
        "valueString": "n/a, 100% \\ odd_value",
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra1",
        "status": "final",
        "subject": {"reference": "Patient/p2"},
        "prediction": [{"probabilityDecimal": 0.25}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra2",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 100}],
    },
    {"resourceType": "ValueSet", "id": "vs1", "status": "active", "url": "http://acme.org/fhir/ValueSet/123"},
    {
        "resourceType": "ValueSet",
        "id": "vs2",
        "status": "active",
        "url": "http://acme.org/fhir/ValueSet/123/sub",
    },
    {"resourceType": "ValueSet", "id": "vs3", "status": "active", "url": "http://acme.org/fhir"},
    {
        "resourceType": "Provenance",
        "id": "prov1",
        "target": [{"reference": "Observation/ob1"}],
        "recorded": "2020-03-02T00:00:00Z",
        "agent": [{"who": {"reference": "Practitioner/pr1"}}],
    },
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "length": {"value": 2, "system": UCUM, "code": "h", "unit": "hours"},
    },
]


@pytest.fixture
async def k(kit: SearchKit) -> SearchKit:
    await kit.add(*DATA)
    return kit


async def test_string(k: SearchKit) -> None:
    assert await k.idset("Patient", "family=dup") == {"p1"}
    assert await k.idset("Patient", "family=DU") == {"p1", "p2"}
    assert await k.idset("Patient", "given=elo") == {"p2"}  # accent-insensitive
    assert await k.idset("Patient", "family:exact=Dupont") == {"p1"}
    assert await k.idset("Patient", "family:exact=dupont") == set()
    assert await k.idset("Patient", "family:contains=ran") == {"p2"}
    assert await k.idset("Patient", "name=jean,paul") == {"p1", "p3"}  # OR
    assert await k.idset("Patient", "name=d&name=jean") == {"p1"}  # AND
    assert await k.idset("Patient", r"family:exact=Martin\, Jr") == {"p3"}  # escaped comma
    assert await k.idset("Patient", "family=%") == set()  # LIKE wildcards are literal
    assert await k.idset("Patient", "family=_") == set()
    assert await k.idset("Organization", "name=hopital") == {"o1"}
    assert await k.idset("Patient", "address-city=lux") == {"p1"}


async def test_token(k: SearchKit) -> None:
    assert await k.idset("Observation", "code=1234-5") == {"ob1", "ob2"}
    assert await k.idset("Observation", f"code={LOINC}|8480-6") == {"ob3"}
    assert await k.idset("Observation", "code=http://other|1234-5") == set()
    assert await k.idset("Observation", f"code={LOINC}|") == {"ob1", "ob2", "ob3"}
    assert await k.idset("Patient", "gender=|male") == {"p1"}
    assert await k.idset("Observation", "code=|1234-5") == set()
    assert await k.idset("Observation", "code:text=gluc") == {"ob1"}
    assert await k.idset("Observation", "code:text=blood") == {"ob2"}
    assert await k.idset("Observation", "code:not=1234-5") == {"ob3", "ob4"}
    assert await k.idset("Observation", "status:not=final,cancelled") == {"ob2"}
    assert await k.idset("Patient", "gender:not=male") == {"p2", "p3"}  # no value at all counts as "not"
    assert await k.idset("Patient", "active=true") == {"p1"}
    assert await k.idset("Patient", "active=false") == {"p2"}
    assert await k.idset("Patient", "identifier=urn:oid:1.2|A1,urn:oid:1.2|B2") == {"p1", "p2"}
    assert await k.idset("Patient", "identifier=B2") == {"p2"}
    assert await k.idset("Patient", f"identifier:of-type={V2}|MR|A1") == {"p1"}
    assert await k.idset("Patient", f"identifier:of-type={V2}|MR|B2") == set()
    assert await k.idset("Patient", "identifier:text=medical") == {"p1"}
    assert await k.idset("Patient", "_tag=http://tags|vip") == {"p1"}
    assert await k.idset("Patient", "_security=R") == {"p1"}
    assert await k.idset("Encounter", "class=AMB") == {"e1"}


async def test_token_and_uri_hierarchy(k: SearchKit) -> None:
    assert await k.idset("ValueSet", "url=http://acme.org/fhir/ValueSet/123") == {"vs1"}
    assert await k.idset("ValueSet", "url:below=http://acme.org/fhir/ValueSet/123") == {"vs1", "vs2"}
    assert await k.idset("ValueSet", "url:below=http://acme.org/fhir") == {"vs1", "vs2", "vs3"}
    above = "url:above=http://acme.org/fhir/ValueSet/123/sub"
    assert await k.idset("ValueSet", above) == {"vs1", "vs2", "vs3"}
    assert await k.idset("ValueSet", "url:above=http://acme.org/fhir/ValueSet/123") == {"vs1", "vs3"}
    assert await k.idset("Patient", "_profile=http://example.org/StructureDefinition/lux-patient") == {"p1"}
    assert await k.idset("Patient", "_source=http://source.example/a") == {"p1"}


async def test_reference(k: SearchKit) -> None:
    assert await k.idset("Observation", "subject=Patient/p1") == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject=p1") == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject:Patient=p2") == {"ob2"}
    assert await k.idset("Observation", "patient=p2,p3") == {"ob2", "ob4"}
    assert await k.idset("Observation", f"subject={BASE}/Patient/p1") == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject=http://elsewhere.org/fhir/Patient/p1") == set()
    # an absolute reference to this server matches the relative search
    assert await k.idset("Patient", "organization=Organization/o2") == {"p3"}
    assert await k.idset("Patient", "general-practitioner=Practitioner/pr1") == {"p2"}
    assert await k.idset("Observation", "subject:missing=true") == set()
    assert await k.idset("Patient", "organization:missing=true") == {"p2"}
    assert await k.idset("Patient", "organization:missing=false") == {"p1", "p3"}


async def test_reference_identifier_and_canonical(kit: SearchKit) -> None:
    await kit.add(
        {
            "resourceType": "Observation",
            "id": "x1",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"identifier": {"system": "urn:oid:9", "value": "ID-9"}},
        },
        {
            "resourceType": "QuestionnaireResponse",
            "id": "qr1",
            "status": "completed",
            "questionnaire": "http://acme.org/Questionnaire/base|2.0",
        },
        {
            "resourceType": "QuestionnaireResponse",
            "id": "qr2",
            "status": "completed",
            "questionnaire": "http://acme.org/Questionnaire/base|3.0",
        },
    )
    assert await kit.idset("Observation", "subject:identifier=urn:oid:9|ID-9") == {"x1"}
    assert await kit.idset("Observation", "subject:identifier=ID-9") == {"x1"}
    assert await kit.idset("Observation", "subject:identifier=urn:oid:8|ID-9") == set()
    url = "http://acme.org/Questionnaire/base"
    assert await kit.idset("QuestionnaireResponse", f"questionnaire={url}") == {"qr1", "qr2"}
    assert await kit.idset("QuestionnaireResponse", f"questionnaire={url}|2.0") == {"qr1"}
    assert await kit.idset("QuestionnaireResponse", f"questionnaire={url}|4.0") == set()


async def test_date_prefixes(k: SearchKit) -> None:
    # birthdates: p1 1980-05-12, p2 1990 (the whole year), p3 2001-01-01
    assert await k.idset("Patient", "birthdate=1980-05-12") == {"p1"}
    assert await k.idset("Patient", "birthdate=1980") == {"p1"}
    assert await k.idset("Patient", "birthdate=1990-06") == set()  # the year is wider than June
    assert await k.idset("Patient", "birthdate=eq1990") == {"p2"}
    assert await k.idset("Patient", "birthdate=ne1990") == {"p1", "p3"}
    assert await k.idset("Patient", "birthdate=gt1985") == {"p2", "p3"}
    assert await k.idset("Patient", "birthdate=lt1990-06-01") == {"p1", "p2"}
    assert await k.idset("Patient", "birthdate=ge1990") == {"p2", "p3"}
    assert await k.idset("Patient", "birthdate=le1990") == {"p1", "p2"}
    assert await k.idset("Patient", "birthdate=sa1990") == {"p3"}
    assert await k.idset("Patient", "birthdate=eb1990") == {"p1"}
    assert await k.idset("Patient", "birthdate=ap1980-05-11") == {"p1"}
    assert await k.idset("Patient", "birthdate=ap1970-01-01") == set()
    assert await k.idset("Patient", "birthdate=ge1980&birthdate=lt2000") == {"p1", "p2"}
    assert await k.idset("Patient", "birthdate=1980,2001") == {"p1", "p3"}
    assert await k.idset("Observation", "date=2021-01-15") == set()  # the period is not inside that day
    assert await k.idset("Observation", "date=2021-01") == {"ob2"}
    assert await k.idset("Observation", "date=ge2021-01-15") == {"ob2", "ob3"}
    assert await k.idset("Observation", "date=2020-03-01T10:00:00Z") == {"ob1"}
    assert await k.idset("Observation", "date=2020-03-01T11:00:00%2B01:00") == {"ob1"}
    assert await k.idset("Observation", "date:missing=true") == {"ob4"}


async def test_last_updated_and_id(k: SearchKit) -> None:
    assert await k.idset("Patient", "_id=p1,p3") == {"p1", "p3"}
    assert await k.idset("Patient", "_id:not=p1") == {"p2", "p3"}
    assert await k.idset("Patient", "_lastUpdated=gt2000-01-01") == {"p1", "p2", "p3"}
    assert await k.idset("Patient", "_lastUpdated=lt2000-01-01") == set()
    assert await k.idset("Patient", "_lastUpdated=ap2000-01-01") == set()


async def test_number_and_quantity(k: SearchKit) -> None:
    assert await k.idset("RiskAssessment", "probability=0.25") == {"ra1"}
    assert await k.idset("RiskAssessment", "probability=0.3") == {"ra1"}  # [0.25, 0.35)
    assert await k.idset("RiskAssessment", "probability=0.2") == set()
    assert await k.idset("RiskAssessment", "probability=1e2") == {"ra2"}  # [50, 150)
    assert await k.idset("RiskAssessment", "probability=100") == {"ra2"}
    assert await k.idset("RiskAssessment", "probability=gt0.25") == {"ra2"}
    assert await k.idset("RiskAssessment", "probability=ge0.25") == {"ra1", "ra2"}
    assert await k.idset("RiskAssessment", "probability=lt1") == {"ra1"}
    assert await k.idset("RiskAssessment", "probability=le0.25") == {"ra1"}
    assert await k.idset("RiskAssessment", "probability=ne100") == {"ra1"}
    assert await k.idset("RiskAssessment", "probability=ap95") == {"ra2"}
    assert await k.idset("RiskAssessment", "probability=ap80") == set()
    assert await k.idset("Observation", "value-quantity=5.4") == {"ob1"}
    assert await k.idset("Observation", f"value-quantity=5.4|{UCUM}|mg/dL") == {"ob1"}
    assert await k.idset("Observation", f"value-quantity=5.4|{UCUM}|mmol/L") == set()
    assert await k.idset("Observation", "value-quantity=gt5||mmol/L") == {"ob2"}  # code matches the unit
    assert await k.idset("Observation", "value-quantity=lt10||mg/dL") == {"ob1"}
    assert await k.idset("Observation", "value-quantity=ge5,lt1") == {"ob1", "ob2"}
    assert await k.idset("Encounter", f"length=2|{UCUM}|h") == {"e1"}
    assert await k.idset("Encounter", "length=le2||hours") == {"e1"}


async def test_composite(k: SearchKit) -> None:
    assert await k.idset("Observation", "code-value-quantity=1234-5$5.4") == {"ob1"}
    assert await k.idset("Observation", f"code-value-quantity={LOINC}|1234-5$gt6") == {"ob2"}
    assert await k.idset("Observation", "code-value-quantity=1234-5$gt100") == set()
    assert await k.idset("Observation", "component-code-value-quantity=8480-6$gt100") == {"ob3"}
    # components must come from the same component (same grp): 8462-4 is 80, not > 100
    assert await k.idset("Observation", "component-code-value-quantity=8462-4$gt100") == set()
    assert await k.idset("Observation", "component-code-value-quantity=8462-4$lt100,8480-6$lt1") == {"ob3"}
    assert await k.idset("Observation", "component-code-value-quantity:missing=true") == {"ob1", "ob2", "ob4"}


async def test_string_values_bound_not_interpolated(k: SearchKit) -> None:
    evil = "x' OR '1'='1"
    assert await k.idset("Patient", [("family", evil)]) == set()
    assert await k.idset("Patient", [("_id", evil)]) == set()
    assert await k.idset("Observation", [("value-string", "n/a, 100% \\ odd")]) == {"ob4"}
    assert await k.idset("Observation", [("value-string", r"n/a\, 100% \\ odd_")]) == {"ob4"}
    assert await k.idset("Observation", [("value-string:contains", "100%")]) == {"ob4"}
    assert await k.idset("Observation", [("value-string:contains", "0%")]) == {"ob4"}
    assert await k.idset("Observation", [("value-string:contains", "1%0")]) == set()


async def test_chains(k: SearchKit) -> None:
    assert await k.idset("Observation", "subject:Patient.name=dupont") == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject.name=dur") == {"ob2"}
    assert await k.idset("Observation", "subject.family:exact=Durand") == {"ob2"}
    assert await k.idset("Observation", "subject:Patient.birthdate=lt1985") == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject._id=p3") == {"ob4"}
    # 3 levels: Observation → Patient → Organization → name
    assert await k.idset("Observation", "subject:Patient.organization.name=hopital") == {"ob1", "ob3"}
    # 4 levels: Observation → Patient → Organization → partOf Organization → address-city
    four = "subject:Patient.organization.partof.address-city=esch"
    assert await k.idset("Observation", four) == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject.organization.partof.name=groupe") == {"ob1", "ob3"}
    assert await k.idset("Observation", "subject.general-practitioner.name=weber") == {"ob2"}
    assert await k.idset("Observation", "subject.name=nobody") == set()


async def test_has(k: SearchKit) -> None:
    assert await k.idset("Patient", "_has:Observation:patient:code=1234-5") == {"p1", "p2"}
    assert await k.idset("Patient", "_has:Observation:subject:status=cancelled") == {"p3"}
    assert await k.idset("Patient", "_has:Observation:patient:code=8480-6&gender=male") == {"p1"}
    # nested: patients with an observation that has a Provenance
    assert await k.idset("Patient", "_has:Observation:patient:_has:Provenance:target:_id=prov1") == {"p1"}
    assert await k.idset("Practitioner", "_has:Provenance:agent:_id=prov1") == {"pr1"}
    # _has with a chain inside
    assert await k.idset("Patient", "_has:Observation:subject:performer.name=weber") == {"p1"}


async def test_system_search_and_type(k: SearchKit) -> None:
    ids = await k.idset(None, "_id=p1,ob1,o1")
    assert ids == {"p1", "ob1", "o1"}
    assert await k.idset(None, "_type=Patient,Observation&_id=p1,ob1,o1") == {"p1", "ob1"}
    assert await k.idset(None, "_tag=vip") == {"p1"}
    assert await k.idset(None, "_type=Patient,Practitioner&name=weber") == {"pr1"}


async def test_deleted_and_updated(k: SearchKit) -> None:
    await k.delete("Patient", "p2")
    assert await k.idset("Patient", "family=du") == {"p1"}
    await k.update({**DATA[3], "name": [{"family": "Schmit"}]})
    assert await k.idset("Patient", "family=dupont") == set()
    assert await k.idset("Patient", "family=schmit") == {"p1"}
    assert await k.idset("Observation", "subject.name=du") == set()  # chain target deleted or renamed


async def test_compartment(k: SearchKit) -> None:
    result = await k.search("Observation", "", compartment=("Patient", "p1"))
    assert {m.res_id for m in result.matches} == {"ob1", "ob3"}
    result = await k.search("Observation", "code=8480-6", compartment=("Patient", "p1"))
    assert {m.res_id for m in result.matches} == {"ob3"}
    result = await k.search("Patient", "", compartment=("Patient", "p1"))
    assert {m.res_id for m in result.matches} == {"p1"}
    result = await k.search("ValueSet", "", compartment=("Patient", "p1"))
    assert result.matches == []
    with pytest.raises(FhirError) as err:
        await k.search("Observation", "", compartment=("Encounter", "e1"))
    assert err.value.status == 400


async def test_lenient_and_strict(k: SearchKit) -> None:
    request = k.parse("Patient", "family=dup&foo=bar&_text=x&subject.name=y")
    assert request.ignored == ["foo", "_text", "subject.name"]
    assert ("foo", "bar") not in request.link_params
    assert ("family", "dup") in request.link_params
    assert await k.idset("Patient", "family=dup&foo=bar") == {"p1"}
    for query in ("foo=bar", "_text=x", "name.x=1", "organization.nothing=1"):
        with pytest.raises(FhirError) as err:
            k.parse("Patient", query, strict=True)
        assert err.value.status == 400
        assert query.split("=")[0] in str(err.value)


async def test_token_above_below(kit: SearchKit) -> None:
    await kit.add(
        *[
            {"resourceType": "Patient", "id": pid, "meta": {"tag": [{"system": "http://t", "code": code}]}}
            for pid, code in [("a", "care"), ("b", "care/acute"), ("c", "care/acute/icu"), ("d", "careful")]
        ]
    )
    assert await kit.idset("Patient", "_tag:below=care") == {"a", "b", "c"}
    assert await kit.idset("Patient", "_tag:below=http://t|care/acute") == {"b", "c"}
    assert await kit.idset("Patient", "_tag:above=care/acute/icu") == {"a", "b", "c"}
    assert await kit.idset("Patient", "_tag:above=http://other|care/acute") == set()
