"""The identity record and its construction from a FHIR R4 Patient."""

from __future__ import annotations

from typing import Any

import pytest

from esante.mpi.matching import Address, IdentityRecord, PartialDate, RecordError, record_from_fhir


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1974-05-16", (1974, 5, 16)),
        ("1974-05", (1974, 5, 0)),
        ("1974", (1974, 0, 0)),
        ("19740516", (1974, 5, 16)),
        ("19740500", (1974, 5, 0)),
        ("19740000", (1974, 0, 0)),
    ],
)
def test_partial_dates(text: str, parts: tuple[int, int, int]) -> None:
    date = PartialDate.parse(text)
    assert (date.year, date.month, date.day) == parts
    assert date.complete == (parts[2] != 0)
    assert date.digits == f"{parts[0]:04d}{parts[1]:02d}{parts[2]:02d}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1974-13-01", "month 13"),
        ("1974-02-30", "no day 30"),
        ("19740025", "needs a month"),
        ("1700-01-01", "not plausible"),
        ("16/05/1974", "is not YYYY"),
        ("1974-5-16", "is not YYYY"),
        ("", "is not YYYY"),
    ],
)
def test_bad_dates_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        PartialDate.parse(text)


def test_record_checks_id_and_sex() -> None:
    with pytest.raises(RecordError, match="needs an id"):
        IdentityRecord(id="")
    with pytest.raises(RecordError, match="sex"):
        IdentityRecord(id="x", sex="unknown")


PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
            "valueAddress": {"city": "Esch-sur-Alzette", "country": "LU"},
        }
    ],
    "identifier": [
        {"system": "urn:oid:1.3.182.3.1.1.7.2", "value": "S0099"},
        {"system": "urn:oid:1.3.182.4.4", "value": "1974 0516 588 11"},
    ],
    "name": [
        {"use": "nickname", "family": "Nana"},
        {"use": "maiden", "family": "Weber", "given": ["Anne"]},
        {"use": "official", "family": "Schmit-Weber", "given": ["Anne", "Marie"]},
    ],
    "gender": "female",
    "birthDate": "1974-05-16",
    "address": [
        {"use": "old", "line": ["1, rue Haute"], "city": "Wiltz"},
        {"use": "home", "line": ["12, rue de la Gare", ""], "city": "Bettembourg", "postalCode": "L-3236"},
    ],
}


def test_record_from_fhir() -> None:
    record = record_from_fhir(PATIENT)
    assert record == IdentityRecord(
        id="p1",
        family="Schmit-Weber",
        birth_family="Weber",
        given=("Anne", "Marie"),
        birth_date=PartialDate(1974, 5, 16),
        sex="female",
        birth_place="Esch-sur-Alzette",
        address=Address(lines=("12, rue de la Gare",), postal_code="L-3236", city="Bettembourg"),
        matricule="1974051658811",
    )


def test_record_from_fhir_minimal_and_fallbacks() -> None:
    record = record_from_fhir(
        {"resourceType": "Patient", "name": [{"family": "Schmit"}], "gender": "unknown", "birthDate": "1974"},
        record_id="local-7",
    )
    assert record.id == "local-7"
    assert record.family == "Schmit" and record.given == () and record.birth_family is None
    assert record.sex is None and record.birth_date == PartialDate(1974)
    assert record.address is None and record.matricule is None and record.birth_place is None
    usual = record_from_fhir({"id": "u", "name": [{"use": "old", "family": "A"}, {"use": "usual", "family": "B"}]})
    assert usual.family == "B"


@pytest.mark.parametrize(
    ("patient", "message"),
    [
        ({"resourceType": "Observation", "id": "x"}, "expected a FHIR Patient"),
        ({"resourceType": "Patient"}, "no id"),
        ({"resourceType": "Patient", "id": "x", "birthDate": "16.05.1974"}, "birth date"),
        ({"resourceType": "Patient", "id": "x", "birthDate": 1974}, "birthDate is not a string"),
        ({"resourceType": "Patient", "id": "x", "gender": "f"}, "gender"),
    ],
)
def test_bad_patients_are_refused_with_the_element(patient: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        record_from_fhir(patient)
