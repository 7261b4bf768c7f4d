"""The DSP's pure parts: the lifecycle state machine, the habilitation matrix (packaged file and bad files), the
grant Consent profile, the confidentiality labels, the settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from esante.config import Settings
from esante.dsp.grants_model import Kind, build_consent, ended, grant_row, in_force, kind_of, parse_time, renewed
from esante.dsp.habilitation import HabilitationError, load_habilitation, parse_habilitation
from esante.dsp.lifecycle_model import (
    DspStatus,
    LifecycleError,
    accepting,
    activate,
    add_years,
    close,
    destroy,
    effective_status,
    open_record,
    refuse,
    reopen,
)
from esante.dsp.model import DOCUMENT_CLASSES, DspSettings, labels_of, level_of, patient_of, reference_id, with_labels
from esante.fhir.validation import validate_resource

T = 1_800_000_000
DAY = 86400


def _code(action: object) -> str:
    with pytest.raises(LifecycleError) as error:
        action()  # type: ignore[operator]
    return error.value.code


def test_lifecycle_transitions() -> None:
    pending = open_record("p", T, 30)
    assert pending.status is DspStatus.PENDING and pending.window_ends_at == T + 30 * DAY
    assert effective_status(pending, T + 30 * DAY - 1) is DspStatus.PENDING
    assert effective_status(pending, T + 30 * DAY) is DspStatus.ACTIVE
    assert open_record("p", T, 0).status is DspStatus.ACTIVE
    assert accepting(pending, T) is not None and accepting(pending, T).code == "dsp-not-open"  # type: ignore[union-attr]
    assert accepting(None, T).code == "dsp-missing"  # type: ignore[union-attr]
    active = activate(pending, T + 1)
    assert active.status is DspStatus.ACTIVE and active.activated_at == T + 1 and accepting(active, T + 1) is None
    assert _code(lambda: refuse(active, T + 2)) == "dsp-window-over"
    assert _code(lambda: refuse(pending, T + 31 * DAY)) == "dsp-window-over", "the window ended by itself"
    refused = refuse(pending, T + 1)
    assert refused.status is DspStatus.REFUSED and accepting(refused, T + 1).code == "dsp-refused"  # type: ignore[union-attr]
    assert _code(lambda: close(refused, T, 10)) == "dsp-refused"
    assert activate(refused, T + 5).status is DspStatus.ACTIVE
    closed = close(active, T + 10, 10)
    assert closed.retention_until == add_years(T + 10, 10) and accepting(closed, T).code == "dsp-closed"  # type: ignore[union-attr]
    assert _code(lambda: close(closed, T, 10)) == "dsp-closed"
    assert _code(lambda: activate(closed, T)) == "dsp-closed"
    assert _code(lambda: destroy(closed, T + 11)) == "dsp-retained"
    reopened = reopen(closed, T + 20)
    assert reopened.status is DspStatus.ACTIVE and reopened.retention_until is None
    assert _code(lambda: reopen(reopened, T)) == "dsp-active"
    gone = destroy(closed, closed.retention_until or 0)
    assert gone.status is DspStatus.DESTROYED and accepting(gone, T).code == "dsp-destroyed"  # type: ignore[union-attr]
    assert _code(lambda: reopen(gone, T)) == "dsp-destroyed"
    assert _code(lambda: destroy(active, T)) == "dsp-active"


def test_add_years_keeps_the_calendar_day() -> None:
    leap = int(datetime(2028, 2, 29, 12, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(add_years(leap, 10), UTC) == datetime(2038, 2, 28, 12, tzinfo=UTC)
    assert datetime.fromtimestamp(add_years(T, 0), UTC) == datetime.fromtimestamp(T, UTC)


def test_packaged_habilitation() -> None:
    matrix = load_habilitation()
    assert matrix.reads(["pharmacien"]).codes == {"prescription", "medication-list", "laboratory-results"}
    assert matrix.reads(["medecin"]).everything and matrix.reads(["med-cardiologie"]).everything
    assert not matrix.reads(["aide-soignant"]) and not matrix.reads(["unknown"])
    assert matrix.emergency_reads(["pharmacien"]).codes == {"medication-list"}
    assert matrix.emergency_reads(["medecin"]).codes == matrix.essential
    assert matrix.essential <= set(DOCUMENT_CLASSES)
    assert matrix.writes(["pharmacien"]).codes == {"medication-list"}
    assert matrix.reads(["pharmacien", "infirmier"]).codes >= {"prescription", "vaccination-history"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "needs an object 'professions'"),
        ({"professions": {"wizard": {"read": []}}}, "not a profession of the HPD"),
        ({"professions": {"med-cardiologie": {"read": []}}}, "not a profession of the HPD"),
        ({"professions": {"pharmacien": {"read": ["potions"]}}}, "unknown document class"),
        ({"professions": {"pharmacien": {"read": ["*", "prescription"]}}}, "'*' stands alone"),
        ({"professions": {"pharmacien": {"read": "prescription"}}}, "expected a list"),
        ({"professions": {"pharmacien": {"read": ["prescription"], "write": ["medication-list"]}}}, "may not read"),
        ({"professions": {"pharmacien": {"read": [], "delete": []}}}, "'read' and 'write' lists only"),
        ({"professions": {}, "essential": ["*"]}, "not '*'"),
    ],
)
def test_bad_habilitation_files(data: object, message: str) -> None:
    with pytest.raises(HabilitationError, match=message):
        parse_habilitation(data)


def test_habilitation_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps({"professions": {"medecin": {"read": ["prescription"], "write": []}}}))
    assert load_habilitation(path).reads(["medecin"]).codes == {"prescription"}
    path.write_text("{not json")
    with pytest.raises(HabilitationError, match="not valid JSON"):
        load_habilitation(path)
    with pytest.raises(HabilitationError, match="cannot be read"):
        load_habilitation(tmp_path / "missing.json")


@pytest.mark.parametrize("kind", list(Kind))
def test_consent_profile_round_trip(kind: Kind) -> None:
    actor = {"assistant": "Patient/dora", "emergency-opt-out": None}.get(kind.value, "Practitioner/gp")
    ends = T + DAY if kind in (Kind.RELATIONSHIP, Kind.EMERGENCY) else None
    consent = build_consent(
        kind,
        patient_id="anna",
        performer="Patient/anna",
        now=T,
        actor=actor,
        ends_at=ends,
        reason="coma" if kind is Kind.EMERGENCY else None,
    )
    validate_resource(consent)
    row = grant_row({**consent, "id": "c1"})
    assert row is not None and row.kind is kind and row.patient_id == "anna" and row.consent_id == "c1"
    assert row.practitioner_id == ("gp" if actor == "Practitioner/gp" else None)
    assert row.starts_at == T and row.ends_at == ends
    assert consent["provision"]["type"] == ("deny" if kind in (Kind.BLOCK, Kind.EMERGENCY_OPT_OUT) else "permit")
    assert in_force(row, T) and not in_force(row, T - 1)
    finished = grant_row({**ended(consent, T + 10), "id": "c1"})
    assert finished is not None and not finished.active and not in_force(finished, T + 11)
    if kind is Kind.RELATIONSHIP:
        longer = grant_row({**renewed(consent, T + 5, T + 9 * DAY), "id": "c1"})
        assert longer is not None and longer.ends_at == T + 9 * DAY and longer.starts_at == T


def test_consents_that_are_not_grants() -> None:
    assert (
        kind_of({"resourceType": "Consent", "category": [{"coding": [{"system": "http://loinc.org", "code": "x"}]}]})
        is None
    )
    assert kind_of({"category": [{"coding": [{"system": "urn:esante:dsp:consent-kind", "code": "friends"}]}]}) is None
    assert grant_row({"category": [{"coding": [{"system": "urn:esante:dsp:consent-kind", "code": "block"}]}]}) is None
    assert parse_time("2030") == int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    assert parse_time("2030-02") == int(datetime(2030, 2, 1, tzinfo=UTC).timestamp())
    assert parse_time("2030-02-03") == int(datetime(2030, 2, 3, tzinfo=UTC).timestamp())
    assert parse_time("2030-02-03T04:05:06+01:00") == int(datetime(2030, 2, 3, 3, 5, 6, tzinfo=UTC).timestamp())
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_confidentiality_labels() -> None:
    doc = {"resourceType": "DocumentReference", "securityLabel": [{"coding": [{"system": "urn:x", "code": "V"}]}]}
    assert labels_of(doc) == [] and level_of(doc) == "N"
    hidden = with_labels(doc, "R", True)
    assert labels_of(hidden) == ["R", "V"] and level_of(hidden) == "V"
    assert hidden["securityLabel"][0] == {"coding": [{"system": "urn:x", "code": "V"}]}, "other systems kept"
    assert labels_of(with_labels(hidden, "N", False)) == ["N"]


def test_references() -> None:
    assert reference_id({"reference": "Patient/a"}, "Patient") == "a"
    assert reference_id({"reference": "http://x/fhir/Patient/a/_history/2"}, "Patient") == "a"
    assert reference_id({"reference": "Practitioner/a"}, "Patient") is None
    assert reference_id({"reference": "MyPatient/a"}, "Patient") is None
    assert reference_id({"display": "x"}, "Patient") is None
    assert patient_of({"resourceType": "Consent", "patient": {"reference": "Patient/p"}}) == "p"
    assert patient_of({"resourceType": "List", "subject": {"reference": "Patient/q"}}) == "q"


def test_settings() -> None:
    defaults = DspSettings.from_settings(Settings())
    assert (
        defaults.refusal_window_days,
        defaults.retention_years,
        defaults.relationship_days,
        defaults.emergency_hours,
    ) == (30, 10, 120, 24)
    assert not defaults.assistants_may_appoint and defaults.open_on_certification and not defaults.establishment_reads
    for name, value in (("dsp_relationship_days", 0), ("dsp_emergency_hours", -1), ("dsp_refusal_window_days", -1)):
        with pytest.raises(ValueError, match=name):
            DspSettings.from_settings(Settings(**{name: value}))  # type: ignore[arg-type]
