"""Index extraction: resources → IndexRows."""

from __future__ import annotations

from typing import Any

from ig_examples import example_resources

from esante.fhir.indexing import extract_index_rows
from esante.fhir.values import MAX_MICROS, parse_date_range

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"lastUpdated": "2024-01-01T00:00:00Z", "tag": [{"system": "http://t", "code": "vip"}]},
    "identifier": [
        {
            "system": "urn:oid:1.2.250.1.213.1.4.8",
            "value": "1234567890123",
            "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}],
                "text": "Numéro national",
            },
        },
        {"system": "http://hospital/mrn", "value": "MRN-1"},
    ],
    "name": [{"family": "Lefèvre", "given": ["Hélène", "Zoé"], "prefix": ["Mme"], "text": "Hélène LEFÈVRE"}],
    "telecom": [
        {"system": "phone", "value": "+33 1 23 45 67 89", "use": "home"},
        {"system": "email", "value": "helene@example.org"},
    ],
    "gender": "female",
    "birthDate": "1980-02-29",
    "address": [{"line": ["12 rue de l'Église"], "city": "Saint-Étienne", "postalCode": "42000", "country": "FR"}],
    "managingOrganization": {"reference": "Organization/org1"},
    "generalPractitioner": [{"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000000001"}}],
    "active": True,
}


def test_patient_strings() -> None:
    rows = extract_index_rows(PATIENT)
    strings = {(p, v) for p, _, v, _ in rows.string}
    assert ("family", "lefevre") in strings
    assert {("given", "helene"), ("given", "zoe")} <= strings
    assert {("name", "lefevre"), ("name", "helene"), ("name", "mme"), ("name", "helene lefevre")} <= strings
    assert {("address", "12 rue de l'eglise"), ("address-city", "saint-etienne")} <= strings
    assert ("address-postalcode", "42000") in strings
    assert "Lefèvre" in {exact for p, _, _, exact in rows.string if p == "family"}


def test_patient_tokens() -> None:
    rows = extract_index_rows(PATIENT)
    tokens = {(p, s, c) for p, _, s, c, _ in rows.token}
    assert ("identifier", "urn:oid:1.2.250.1.213.1.4.8", "1234567890123") in tokens
    assert ("identifier", "http://hospital/mrn", "MRN-1") in tokens
    assert (
        "identifier:of-type",
        "http://terminology.hl7.org/CodeSystem/v2-0203",
        "NI|1234567890123",
    ) in tokens
    assert ("gender", None, "female") in tokens
    assert ("active", None, "true") in tokens
    assert ("telecom", "phone", "+33 1 23 45 67 89") in tokens
    assert ("phone", "phone", "+33 1 23 45 67 89") in tokens
    assert ("email", "email", "helene@example.org") in tokens
    assert ("phone", "email", "helene@example.org") not in tokens
    assert ("_tag", "http://t", "vip") in tokens
    assert ("deceased", None, "false") in tokens
    assert not any(p in ("_id", "_lastUpdated") for p, *_ in rows.token)
    text = {t for p, _, s, c, t in rows.token if p == "identifier" and c == "1234567890123"}
    assert text == {"numero national"}


def test_patient_dates_and_references() -> None:
    rows = extract_index_rows(PATIENT)
    assert ("birthdate", 0, *parse_date_range("1980-02-29")) in rows.date
    assert not any(p == "_lastUpdated" for p, *_ in rows.date)
    refs = {(p, t, i) for p, _, t, i, *_ in rows.reference}
    assert ("organization", "Organization", "org1") in refs
    gp = [r for r in rows.reference if r[0] == "general-practitioner"]
    assert gp == [("general-practitioner", 0, None, None, None, None, "urn:oid:1.2.250.1.71.4.2.1", "810000000001")]


OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp",
    "status": "final",
    "category": [{"coding": [{"system": "http://cat", "code": "vital-signs", "display": "Vital Signs"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure"}]},
    "subject": {"reference": "Patient/p1"},
    "encounter": {"reference": "http://example.org/fhir/Encounter/e1/_history/2"},
    "performer": [{"reference": "#c1"}],
    "effectivePeriod": {"start": "2024-03-01T10:00:00+01:00"},
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {
                "value": 120,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {
                "value": 80,
                "unit": "mmHg",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
    ],
}


def test_observation() -> None:
    rows = extract_index_rows(OBSERVATION)
    tokens = {(p, s, c, t) for p, _, s, c, t in rows.token}
    assert ("code", "http://loinc.org", "85354-9", "blood pressure") in tokens
    assert ("category", "http://cat", "vital-signs", "vital signs") in tokens
    assert ("component-code", "http://loinc.org", "8480-6", None) in tokens
    refs = {(p, t, i, v, u) for p, _, t, i, v, u, *_ in rows.reference}
    assert ("subject", "Patient", "p1", None, None) in refs
    assert ("patient", "Patient", "p1", None, None) in refs
    assert ("encounter", "Encounter", "e1", "2", "http://example.org/fhir/Encounter/e1") in refs
    assert not any(p == "performer" for p, *_ in refs)  # contained reference
    lo = parse_date_range("2024-03-01T10:00:00+01:00")[0]
    assert ("date", 0, lo, MAX_MICROS) in rows.date
    quantities = {(p, v, s, c) for p, _, v, s, c, _ in rows.quantity}
    assert ("component-value-quantity", 120.0, "http://unitsofmeasure.org", "mm[Hg]") in quantities
    assert ("combo-value-quantity", 80.0, "http://unitsofmeasure.org", "mm[Hg]") in quantities


def test_observation_composites_share_groups() -> None:
    rows = extract_index_rows(OBSERVATION)
    codes = {g: c for p, g, _, c, _ in rows.token if p == "component-code-value-quantity$0"}
    values = {g: v for p, g, v, *_ in rows.quantity if p == "component-code-value-quantity$1"}
    assert sorted(codes.values()) == ["8462-4", "8480-6"]
    pairs = {codes[g]: values[g] for g in codes}
    assert pairs == {"8480-6": 120.0, "8462-4": 80.0}
    assert all(g >= 1 for p, g, *_ in rows.token if "$" in p)
    # combo: the Observation itself (grp 1, its code but no value) then each component
    combo = {(g, c) for p, g, _, c, _ in rows.token if p == "combo-code-value-quantity$0"}
    assert (1, "85354-9") in combo and len(combo) == 3


def test_observation_value_types() -> None:
    base = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}}
    rows = extract_index_rows({**base, "valueString": "Très élevé", "effectiveDateTime": "2021-05"})
    assert ("value-string", 0, "tres eleve", "Très élevé") in rows.string
    assert ("date", 0, *parse_date_range("2021-05")) in rows.date
    assert ("code", 0, None, None, "x") in rows.token
    rows = extract_index_rows({**base, "valueCodeableConcept": {"coding": [{"system": "s", "code": "c"}]}})
    assert ("value-concept", 0, "s", "c", None) in rows.token
    rows = extract_index_rows({**base, "valueQuantity": {"value": 3}, "effectiveInstant": "2021-05-01T00:00:00Z"})
    assert ("value-quantity", 0, 3.0, None, None, None) in rows.quantity
    assert any(p == "date" for p, *_ in rows.date)


def test_condition_onset_choice_types() -> None:
    base = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"}}
    rows = extract_index_rows({**base, "onsetDateTime": "2019"})
    assert ("onset-date", 0, *parse_date_range("2019")) in rows.date
    rows = extract_index_rows({**base, "onsetPeriod": {"start": "2019-01", "end": "2019-03"}})
    assert ("onset-date", 0, parse_date_range("2019-01")[0], parse_date_range("2019-03")[1]) in rows.date
    rows = extract_index_rows({**base, "onsetAge": {"value": 42, "unit": "a", "system": "http://unitsofmeasure.org"}})
    assert ("onset-age", 0, 42.0, "http://unitsofmeasure.org", None, "a") in rows.quantity
    rows = extract_index_rows({**base, "onsetRange": {"low": {"value": 1}, "high": {"value": 5}}})
    assert {v for p, _, v, *_ in rows.quantity if p == "onset-age"} == {1.0, 5.0}
    rows = extract_index_rows({**base, "onsetString": "childhood"})
    assert ("onset-info", 0, "childhood", "childhood") in rows.string
    assert not rows.date or all(p != "onset-date" for p, *_ in rows.date)


def test_encounter() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "participant": [{"individual": {"reference": "Practitioner/dr1"}}],
        "period": {"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T09:00:00Z"},
        "length": {"value": 60, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
        "location": [{"location": {"reference": "Location/l1"}, "period": {"start": "2024-01-01"}}],
    }
    rows = extract_index_rows(encounter)
    tokens = {(p, c) for p, _, _, c, _ in rows.token}
    assert {("class", "AMB"), ("status", "finished")} <= tokens
    refs = {(p, t, i) for p, _, t, i, *_ in rows.reference}
    assert {
        ("patient", "Patient", "p1"),
        ("practitioner", "Practitioner", "dr1"),
        ("location", "Location", "l1"),
    } <= refs
    dates = {p: (lo, hi) for p, _, lo, hi in rows.date}
    assert dates["date"] == (
        parse_date_range("2024-01-01T08:00:00Z")[0],
        parse_date_range("2024-01-01T09:00:00Z")[1],
    )
    assert dates["location-period"][1] == MAX_MICROS
    assert ("length", 0, 60.0, "http://unitsofmeasure.org", "min", "min") in rows.quantity


def test_uri_and_canonical() -> None:
    vs = {
        "resourceType": "ValueSet",
        "id": "v",
        "url": "http://example.org/ValueSet/v",
        "version": "1.0",
        "status": "active",
        "useContext": [
            {"code": {"code": "age"}, "valueRange": {"low": {"value": 18}, "high": {"value": 65}}},
            {"code": {"code": "focus"}, "valueCodeableConcept": {"coding": [{"code": "f"}]}},
        ],
    }
    rows = extract_index_rows(vs)
    assert ("url", 0, "http://example.org/ValueSet/v") in rows.uri
    assert ("context", 0, None, "f", None) in rows.token
    assert {v for p, _, v, *_ in rows.quantity if p == "context-quantity"} == {18.0, 65.0}
    qs = {(g, v) for p, g, v, *_ in rows.quantity if p == "context-type-quantity$1"}
    ts = {(g, c) for p, g, _, c, _ in rows.token if p == "context-type-quantity$0"}
    assert qs == {(1, 18.0), (1, 65.0)} and (1, "age") in ts


def test_odd_data_never_raises() -> None:
    odd = {
        "resourceType": "Patient",
        "id": "x",
        "birthDate": "not-a-date",
        "name": [{"family": 12, "given": [None, "Ok"]}, "garbage"],
        "identifier": [{"value": {"nested": 1}}],
        "telecom": "oops",
        "managingOrganization": {"reference": 5},
        "deceasedDateTime": "2020-13-01",
    }
    rows = extract_index_rows(odd)
    assert ("given", 0, "ok", "Ok") in rows.string
    assert not any(p == "birthdate" for p, *_ in rows.date)
    assert extract_index_rows({"resourceType": "Nope"}).token == []
    assert extract_index_rows({}).string == []


def test_long_values_are_cut() -> None:
    rows = extract_index_rows({"resourceType": "Patient", "name": [{"family": "x" * 400}]})
    assert all(len(v) <= 255 and len(e) <= 255 for _, _, v, e in rows.string)


def test_rows_are_deduplicated() -> None:
    rows = extract_index_rows({"resourceType": "Patient", "name": [{"family": "A"}, {"family": "A"}]})
    assert [r for r in rows.string if r[0] == "family"] == [("family", 0, "a", "A")]


def test_mhd_document_references() -> None:
    docs = [(n, r) for n, r in example_resources("MHD") if r["resourceType"] == "DocumentReference"]
    assert docs
    for name, doc in docs:
        rows = extract_index_rows(doc)
        assert rows.token, name
        if doc.get("status"):
            assert ("status", None, doc["status"]) in {(p, s, c) for p, _, s, c, _ in rows.token}, name
        if doc.get("subject", {}).get("reference", "").startswith("Patient/"):
            assert any(p == "patient" for p, *_ in rows.reference), name
    comprehensive = [r for n, r in docs if r.get("relatesTo")]
    for doc in comprehensive:
        rows = extract_index_rows(doc)
        assert any(p == "relationship$1" for p, *_ in rows.reference)
        assert any(p == "relationship$0" for p, *_ in rows.token)


def test_every_example_resource_extracts() -> None:
    for name, resource in example_resources():
        rows = extract_index_rows(resource)
        for table in (
            rows.string,
            rows.token,
            rows.date,
            rows.number,
            rows.quantity,
            rows.reference,
            rows.uri,
        ):
            assert len(table) == len(set(table)), name
        for _, _, lo, hi in rows.date:
            assert lo <= hi, name
