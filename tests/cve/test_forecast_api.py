"""``$immds-forecast`` over real HTTP on SQLite and PostgreSQL, compared with the engine and with the CDC's expected
results: POST with Parameters (nothing stored), GET on a stored patient read through the policy (the patient, an
authorised vaccinator, not anyone else), health parameters (pregnancy) changing the forecast, bad input refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from esante.cve.conformance import TestCase, check_case, group_name, read_cases
from esante.cve.engine import Observation, Patient, assess, load_supporting_data
from esante.cve.engine.patient import AdministeredDose
from esante.cve.forecast import patient_forecast
from tests.conftest import shared_data
from tests.cve.record_support import (
    CDC_DATA,
    authorize,
    cve_world,
    immunization,
    outcome,
    parameters,
    patient,
    practitioner,
)

HEALTHY = shared_data("cdsi", "test-cases-healthy-v4.45-dev.csv")
# one passing CDC case per vaccine group, with a history and a recommended date
CASES = ["2013-0002", "2013-0199", "2013-0528", "2013-0579", "2013-0757", "2025-0046", "2013-0400"]
TODAY = date(2026, 1, 1)  # after every case's assessment date: the stored doses are in the past
LOINC = {"30981-5": "earliest", "30980-7": "recommended", "59778-1": "past_due", "59777-3": "latest"}


@pytest.fixture(scope="module")
def schedule() -> Any:
    return load_supporting_data(CDC_DATA)


@pytest.fixture(scope="module")
def cases() -> dict[str, TestCase]:
    return {c.case_id: c for c in read_cases(HEALTHY) if c.case_id in CASES}


def _patient_resource(case: TestCase, patient_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "gender": {"F": "female", "M": "male"}.get(case.gender, "unknown"),
        "birthDate": case.birth_date.isoformat(),
    }
    if patient_id:
        body["id"] = patient_id
    return body


def _immunizations(case: TestCase, patient_id: str) -> list[dict[str, Any]]:
    return [
        immunization(patient_id, "historical", cvx=d.cvx, day=d.date_administered.isoformat(), lot=None, performer=None)
        for d in case.doses
    ]


def _entries(parameters_body: dict[str, Any], group: str) -> list[dict[str, Any]]:
    recommendation = next(p["resource"] for p in parameters_body["parameter"] if p["name"] == "recommendation")
    return [
        r
        for r in recommendation["recommendation"]
        if any(
            c["code"] == group for c in r["targetDisease"]["coding"] if c["system"] == "urn:esante:cve:vaccine-group"
        )
    ]


def _dates(entry: dict[str, Any]) -> dict[str, str]:
    return {LOINC[c["code"]["coding"][0]["code"]]: c["value"] for c in entry.get("dateCriterion", [])}


def _expected(case: TestCase) -> dict[str, str]:
    out = {}
    for name in ("earliest", "recommended", "past_due"):
        value = getattr(case, name).strip()
        if value and value != "-":
            month, day, year = (int(p) for p in value.split("/")) if "/" in value else (0, 0, 0)
            out[name] = date(year, month, day).isoformat() if year else date.fromisoformat(value).isoformat()
    return out


def _evaluations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [p["resource"] for p in body["parameter"] if p["name"] == "evaluation"]


async def test_post_matches_the_engine_and_the_cdc_cases(
    db_url: str, tmp_path: Path, schedule: Any, cases: dict[str, TestCase]
) -> None:
    assert set(cases) == set(CASES)
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=60) as http:
        doc = await practitioner(http, world, "doc", 1)
        for case in cases.values():
            assert check_case(schedule, case).passed, case.case_id  # the engine passes it: the API must too
            group = group_name(schedule, case.vaccine_group)
            body = parameters(
                assessmentDate=("valueDate", case.assessment_date.isoformat()),
                patient=_patient_resource(case, "p1"),
                immunization=[{**imm, "id": f"i{n}"} for n, imm in enumerate(_immunizations(case, "p1"))],
            )
            response = await http.post(f"{world.fhir}/$immds-forecast", json=body, headers=world.professional(doc))
            assert response.status_code == 200, response.text
            result = response.json()
            entries = _entries(result, group)
            assert entries, (case.case_id, group)
            # the CDC's expected dates and dose number
            risk_or_only = entries[-1] if len(entries) > 1 else entries[0]
            dates = _dates(risk_or_only)
            for name, value in _expected(case).items():
                assert dates.get(name) == value, (case.case_id, name, dates)
            if case.forecast_number.strip() not in ("", "-"):
                assert risk_or_only["doseNumberPositiveInt"] == int(case.forecast_number)
            assert risk_or_only["forecastStatus"]["coding"][0]["code"] == "notComplete"
            # the engine's own results, one evaluation per dose and antigen of the best series
            engine = assess(
                schedule,
                Patient(
                    case.birth_date,
                    case.gender,
                    tuple(AdministeredDose(d.date_administered, d.cvx) for d in case.doses),
                ),
                case.assessment_date,
            )
            assert len(_evaluations(result)) == sum(len(a.evaluations) for a in engine.antigens)
            forecasts = [g for g in engine.vaccine_groups if g.vaccine_group == group]
            assert [(_dates(e).get("earliest"), e.get("doseNumberPositiveInt")) for e in entries] == [
                (
                    g.forecast.earliest.isoformat() if g.forecast and g.forecast.earliest else None,
                    g.forecast.dose_number if g.forecast else None,
                )
                for g in forecasts
            ]
            for evaluation in _evaluations(result):
                reference = evaluation["immunizationEvent"]["reference"]
                assert reference.startswith("Immunization/i")
                assert evaluation["doseStatus"]["coding"][0]["code"] in ("valid", "notvalid")
        assert await world.count("Immunization") == 0  # nothing stored


async def test_get_on_a_stored_patient_reads_through_the_policy(
    db_url: str, tmp_path: Path, schedule: Any, cases: dict[str, TestCase]
) -> None:
    case = cases["2013-0002"]  # DTaP, two doses, dose 3 due
    group = group_name(schedule, case.vaccine_group)
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=60) as http:
        await patient(http, world, "baby", case.birth_date.isoformat(), "female")
        await patient(http, world, "other", "2020-01-01")
        doc = await practitioner(http, world, "doc", 1)
        stranger = await practitioner(http, world, "stranger", 2)
        for body in _immunizations(case, "baby"):
            assert (await http.post(f"{world.fhir}/Immunization", json=body, headers=world.system())).status_code == 201
        # a withdrawn record does not count
        wrong = immunization("baby", "historical", cvx="107", day="2025-09-30", lot=None, performer=None)
        wrong["status"] = "entered-in-error"
        assert (await http.post(f"{world.fhir}/Immunization", json=wrong, headers=world.system())).status_code == 201
        await authorize(http, world, "baby", "doc")
        url = f"{world.fhir}/Patient/baby/$immds-forecast?assessmentDate={case.assessment_date.isoformat()}"

        by_patient = await http.get(url, headers=world.patient("baby"))
        assert by_patient.status_code == 200, by_patient.text
        by_vaccinator = await http.get(url, headers=world.professional(doc))
        assert by_vaccinator.status_code == 200, by_vaccinator.text
        posted = await http.post(
            f"{world.fhir}/$immds-forecast",
            json=parameters(
                assessmentDate=("valueDate", case.assessment_date.isoformat()),
                patient=_patient_resource(case, "baby"),
                immunization=_immunizations(case, "baby"),
            ),
            headers=world.professional(doc),
        )
        for response in (by_patient, by_vaccinator):
            entries = _entries(response.json(), group)
            assert _dates(entries[0]) == _dates(_entries(posted.json(), group)[0])
            for name, value in _expected(case).items():
                assert _dates(entries[0])[name] == value
            evaluations = _evaluations(response.json())
            assert evaluations and all(
                e["immunizationEvent"]["reference"].startswith("Immunization/") for e in evaluations
            )
            recommendation = next(p["resource"] for p in response.json()["parameter"] if p["name"] == "recommendation")
            assert recommendation["patient"] == {"reference": "Patient/baby"}
            assert recommendation["extension"][0]["valueString"] == "supporting-data-4.64"
        # the platform's own function gives the same forecast (for the reminders job)
        expected = _expected(case)
        async with world.database.read() as conn:
            session = world.platform.store.session(conn)
            forecast = await patient_forecast(world.context, session, "baby", case.assessment_date)
            assert forecast is not None
            assert _dates(_entries(forecast.parameters, group)[0]) == _dates(_entries(by_patient.json(), group)[0])
            assert not [d for d in forecast.due if d.vaccine_group == group]  # before the earliest date: not yet
            for day, status in ((expected["earliest"], "due"), (expected["past_due"], "overdue")):
                later = await patient_forecast(world.context, session, "baby", date.fromisoformat(day))
                assert later is not None
                due = [d for d in later.due if d.vaccine_group == group]
                assert [(d.status, d.dose_number) for d in due] == [(status, int(case.forecast_number))]
            assert await patient_forecast(world.context, session, "nobody") is None

        # nobody else: an unauthorised vaccinator, another patient (404, as if the patient did not exist)
        outcome(await http.get(url, headers=world.professional(stranger)), 404)
        outcome(await http.get(url, headers=world.patient("other")), 404)
        outcome(await http.get(url.replace("/baby/", "/nobody/"), headers=world.system()), 404)
        # today by default
        assert (
            await http.get(f"{world.fhir}/Patient/baby/$immds-forecast", headers=world.patient("baby"))
        ).status_code == 200
        # bad input
        outcome(
            await http.get(url.replace(case.assessment_date.isoformat(), "2025-13-01"), headers=world.system()), 400
        )
        outcome(await http.get(f"{world.fhir}/Patient/baby/$immds-forecast?foo=1", headers=world.system()), 400)
        await patient(http, world, "vague", "2020")
        outcome(await http.get(f"{world.fhir}/Patient/vague/$immds-forecast", headers=world.system()), 422)


async def test_health_parameters_and_bad_input(db_url: str, tmp_path: Path, schedule: Any) -> None:
    async with cve_world(db_url, tmp_path, TODAY) as world, httpx.AsyncClient(timeout=60) as http:
        url = f"{world.fhir}/$immds-forecast"
        headers = world.system()
        mother = {"resourceType": "Patient", "gender": "female", "birthDate": "1995-04-10"}
        pregnancy = {
            "resourceType": "Condition",
            "subject": {"reference": "Patient/m"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]},
            "onsetDateTime": "2025-06-01",
        }
        on = ("valueDate", "2025-11-01")
        plain = (await http.post(url, json=parameters(assessmentDate=on, patient=mother), headers=headers)).json()
        pregnant = await http.post(
            url, json=parameters(assessmentDate=on, patient=mother, condition=[pregnancy]), headers=headers
        )
        assert pregnant.status_code == 200, pregnant.text
        engine = assess(
            schedule,
            Patient(date(1995, 4, 10), "F", observations=(Observation("007", date(2025, 6, 1)),)),
            date(2025, 11, 1),
        )
        dtap = group_name(schedule, "DTaP")
        series = sorted(e["series"] for e in _entries(pregnant.json(), dtap))
        assert series == sorted(g.series_type for g in engine.vaccine_groups if g.vaccine_group == dtap)
        assert series != sorted(e["series"] for e in _entries(plain, dtap))  # pregnancy adds the risk forecast
        # the same as a pregnancy-status Observation
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
            "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]},
            "effectiveDateTime": "2025-06-01",
        }
        observed = await http.post(
            url, json=parameters(assessmentDate=on, patient=mother, observation=[observation]), headers=headers
        )
        assert sorted(e["series"] for e in _entries(observed.json(), dtap)) == series

        bad: list[tuple[dict[str, Any], int]] = [
            (parameters(assessmentDate=on), 400),  # no patient
            (parameters(patient={"resourceType": "Practitioner"}), 400),
            (parameters(patient={"resourceType": "Patient", "birthDate": "1990"}), 422),
            (parameters(assessmentDate=("valueDate", "01/02/2025"), patient=mother), 400),
            (parameters(patient=mother, immunization=[immunization("m", cvx="9999")]), 422),
            (parameters(patient=mother, immunization=[{**immunization("m"), "vaccineCode": {"text": "x"}}]), 422),
            (parameters(patient=mother, immunization=[immunization("m", day="2024")]), 422),
            (parameters(patient=mother, unknown="x"), 400),
            ({"resourceType": "Bundle"}, 400),
        ]
        for body, status in bad:
            outcome(await http.post(url, json=body, headers=headers), status)
        # GET at system level cannot carry resources
        outcome(await http.get(f"{url}?patient=x", headers=headers), 400)
