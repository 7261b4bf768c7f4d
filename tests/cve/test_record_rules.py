"""The pure rules behind the record, the authorisation and the forecast mapping (no database, no HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from esante.cve.consent import build_authorisation, is_cve_consent, is_vaccinator, revoked
from esante.cve.engine import Forecast, SeriesStatus, VaccineGroupForecast, load_supporting_data
from esante.cve.immds_input import forecast_input
from esante.cve.immds_output import forecast_status
from esante.cve.record.products import load_products
from esante.cve.record.profile import Origin
from esante.cve.record.validate import Facts, check_record, settle_origin
from tests.cve.record_support import CDC_DATA, HEXYON, PRODUCT, immunization

TODAY = date(2025, 6, 1)
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def schedule() -> Any:
    return load_supporting_data(CDC_DATA)


def _facts(birth: str | None = "2024-01-15") -> Facts:
    products = load_products()
    return Facts(TODAY, NOW, birth, frozenset({"146", "8", "3", "208"}) | products.cvx_codes, products)


def _texts(resource: dict[str, Any], origin: Origin = Origin.PERFORMED, birth: str | None = "2024-01-15") -> str:
    return " | ".join(i.diagnostics for i in check_record(resource, origin, _facts(birth)))


def test_partial_birth_dates_are_compared_at_their_precision() -> None:
    assert "before the patient's birth" in _texts(immunization("p", day="2023-12-31"), birth="2024")
    assert _texts(immunization("p", day="2024-01-01"), birth="2024") == ""
    assert "before the patient's birth" in _texts(immunization("p", day="2024-01-31"), birth="2024-02")
    assert _texts(immunization("p", day="2024-02-01"), birth="2024-02") == ""
    assert _texts(immunization("p", day="2020-01-01"), birth=None) == ""  # no birth date recorded: not checked


def test_a_time_today_is_the_future_only_beyond_the_clock_skew() -> None:
    assert _texts(immunization("p", day="2025-06-01T12:04:00Z")) == ""
    assert "future" in _texts(immunization("p", day="2025-06-01T12:06:00Z"))
    assert "future" in _texts(immunization("p", day="2025-06-01T23:00:00-02:00"))  # 2025-06-02 01:00 UTC


def test_a_product_without_a_scan_fills_and_checks() -> None:
    body = immunization("p", lot="L1")
    body["extension"].append({"url": PRODUCT, "valueCoding": {"system": "https://www.gs1.org/gtin", "code": HEXYON}})
    assert _texts(body) == ""
    assert body["manufacturer"]["identifier"]["value"] == "PMC"
    body["manufacturer"] = {"identifier": {"system": "http://hl7.org/fhir/sid/mvx", "value": "SKB"}}
    assert "manufacturer MVX SKB" in _texts(body)
    wrong = immunization("p")
    wrong["extension"].append({"url": PRODUCT, "valueCoding": {"system": "urn:x", "code": HEXYON}})
    assert "valueCoding of system https://www.gs1.org/gtin" in _texts(wrong)


def test_not_done_and_other_origins_need_less() -> None:
    not_done = immunization("p", lot=None, expiry=None, performer=None, status="not-done")
    assert _texts(not_done) == ""
    historical = immunization("p", "historical", lot=None, expiry=None, performer=None)
    assert _texts(historical, Origin.HISTORICAL) == ""
    assert historical["primarySource"] is False and historical["reportOrigin"]["coding"][0]["code"] == "record"
    recall = immunization(
        "p",
        "historical",
        reportOrigin={
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/immunization-origin", "code": "recall"}]
        },
    )
    assert _texts(recall, Origin.HISTORICAL) == ""
    performed = immunization("p", reportOrigin={"text": "card"})
    assert "reportOrigin is for records" in _texts(performed)


def test_the_origin_is_settled_once() -> None:
    body = immunization("p", None, primarySource=True)
    origin, issues = settle_origin(body, None)
    assert origin is Origin.PERFORMED and not issues
    assert body["extension"][0]["valueCoding"]["code"] == "performed"
    twice = immunization("p")
    twice["extension"] *= 2
    assert "more than once" in settle_origin(twice, None)[1][0].diagnostics
    changed = immunization("p", "historical")
    assert "cannot change" in settle_origin(changed, immunization("p"))[1][0].diagnostics


def test_who_is_a_vaccinator() -> None:
    def practitioner(*codings: tuple[str, str], period: dict[str, str] | None = None) -> dict[str, Any]:
        qualifications = []
        for system, code in codings:
            item: dict[str, Any] = {"code": {"coding": [{"system": system, "code": code}]}}
            if period and system == "urn:esante:cve:qualification":
                item["period"] = period
            qualifications.append(item)
        return {"resourceType": "Practitioner", "qualification": qualifications}

    professions = frozenset({"medecin"})
    profession = "urn:esante:hpd:profession"
    trained = ("urn:esante:cve:qualification", "trained-vaccinator")
    assert is_vaccinator(practitioner((profession, "medecin")), professions, TODAY)
    assert not is_vaccinator(practitioner((profession, "pharmacien")), professions, TODAY)
    assert is_vaccinator(practitioner((profession, "pharmacien"), trained), professions, TODAY)
    assert not is_vaccinator(practitioner(trained, period={"end": "2025-05-31"}), professions, TODAY)
    assert not is_vaccinator(practitioner(trained, period={"start": "2025-06-02"}), professions, TODAY)
    assert is_vaccinator(practitioner(trained, period={"start": "2024-01-01", "end": "2026-01-01"}), professions, TODAY)
    assert not is_vaccinator({"resourceType": "Practitioner"}, professions, TODAY)


def test_the_authorisation_consent() -> None:
    consent = build_authorisation("p", "doc", "Patient/p", NOW, None)
    assert is_cve_consent(consent) and consent["provision"]["period"] == {"start": "2025-06-01T12:00:00Z"}
    ended = revoked(consent, NOW)
    assert ended["status"] == "inactive" and ended["provision"]["period"]["end"] == "2025-06-01T12:00:00Z"
    limited = build_authorisation("p", "doc", "Patient/p", NOW, "2025-05-01")
    assert revoked(limited, NOW)["provision"]["period"]["end"] == "2025-05-01"  # ended already: kept
    assert not is_cve_consent({"category": [{"coding": [{"system": "urn:esante:dsp:consent-kind"}]}]})


def test_what_the_forecast_reads(schedule: Any) -> None:
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1995-04-10", "gender": "female"}
    pregnant = {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]}
    conditions = [
        {"resourceType": "Condition", "code": pregnant, "onsetDateTime": "2025-01-01"},
        {"resourceType": "Condition", "code": pregnant, "clinicalStatus": {"coding": [{"code": "resolved"}]}},
        {"resourceType": "Condition", "code": pregnant, "verificationStatus": {"coding": [{"code": "refuted"}]}},
        {"resourceType": "Condition", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}},
        {
            "resourceType": "Condition",
            "code": {"coding": [{"system": "urn:esante:cve:cdsi-observation", "code": "003"}]},
        },
    ]
    observations = [
        {"resourceType": "Observation", "status": "cancelled", "code": pregnant},
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueCodeableConcept": pregnant,
            "effectivePeriod": {"start": "2025-01-01", "end": "2025-09-30"},
        },
    ]
    immunizations = [
        immunization("p", cvx="08", day="1995-04-11"),
        {**immunization("p", cvx="08", day="1995-05-11"), "status": "entered-in-error"},
        {
            **immunization("p", cvx="08", day="1995-06-11"),
            "isSubpotent": True,
            "id": "i3",
            "manufacturer": {"identifier": {"system": "http://hl7.org/fhir/sid/mvx", "value": "SKB"}},
        },
        immunization("p", cvx="9999", day="1995-07-11"),
    ]
    fi = forecast_input(patient, immunizations, schedule, conditions=conditions, observations=observations)
    assert fi.patient.gender == "Female" and fi.patient_reference == {"reference": "Patient/p"}
    assert [(o.code, o.date, o.end) for o in fi.patient.observations] == [
        ("007", date(2025, 1, 1), None),
        ("003", None, None),
        ("007", date(2025, 1, 1), date(2025, 9, 30)),
    ]
    assert [d.cvx for d in fi.patient.doses] == ["08", "08"]  # entered-in-error left out, unknown CVX left out
    assert fi.patient.doses[1].dose_condition and fi.patient.doses[1].mvx == "SKB"
    assert fi.dose_references == ({"display": "immunization[0]"}, {"reference": "Immunization/i3"})
    assert len(fi.notes) == 1 and "9999" in fi.notes[0]
    with pytest.raises(Exception, match="9999"):
        forecast_input(patient, immunizations[3:], schedule, strict=True)


def test_forecast_status_codes() -> None:
    def group(status: SeriesStatus, earliest: date | None = None, past_due: date | None = None) -> VaccineGroupForecast:
        forecast = Forecast(2, earliest, earliest, past_due, None) if earliest else None
        return VaccineGroupForecast("HepB", "Standard", status, forecast, (), ())

    on = date(2025, 6, 1)
    assert forecast_status(group(SeriesStatus.NOT_COMPLETE, date(2025, 7, 1), date(2025, 9, 1)), on) == (
        "notComplete",
        None,
    )
    assert forecast_status(group(SeriesStatus.NOT_COMPLETE, date(2025, 6, 1), date(2025, 9, 1)), on) == (
        "notComplete",
        "due",
    )
    assert forecast_status(group(SeriesStatus.NOT_COMPLETE, date(2025, 1, 1), date(2025, 6, 1)), on) == (
        "notComplete",
        "overdue",
    )
    assert forecast_status(group(SeriesStatus.COMPLETE), on) == ("complete", "complete")
    assert forecast_status(group(SeriesStatus.IMMUNE), on) == ("immune", "immune")
    assert forecast_status(group(SeriesStatus.CONTRAINDICATED), on) == ("contraindicated", "contraindicated")
    assert forecast_status(group(SeriesStatus.AGED_OUT), on) == ("agedOut", None)
    assert forecast_status(group(SeriesStatus.NOT_RECOMMENDED), on) == ("notRecommended", None)
