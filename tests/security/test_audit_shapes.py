"""The AuditEvent builders produce the IHE BALP 1.1 shapes: compared with the IG's own examples (read in place)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from esante.fhir.definitions import get_registry
from esante.fhir.validation import validate_resource
from esante.security.audit import (
    AuditRecord,
    Touched,
    build_events,
    interaction_of,
    outcome_code,
    patients_of,
)
from esante.security.policy import Caller
from tests.conftest import shared_data

SERVER = "https://esante.example.lu/fhir"
DOCTOR = Caller(
    kind="professional",
    subject="Practitioner/dr-muller",
    purpose_of_use="TREAT",
    attributes={
        "name": "Dr Anne Muller",
        "token_id": "jti-42",
        "access_token": "SECRET-TOKEN",
        "subject_role": {"system": "urn:oid:1.3.6.1.4.1.21367.100.1", "code": "physician"},
        "client_id": "dsp-viewer",
    },
)


def example(name: str) -> dict[str, Any]:
    path = shared_data("ig-examples", "BALP", f"AuditEvent-ex-{name}.json")
    return dict(json.loads(path.read_text()))


def record(interaction: str, *, status: int = 200, patients: tuple[str, ...] = ("Patient/p1",)) -> AuditRecord:
    return AuditRecord(
        interaction=interaction,
        status=status,
        caller=DOCTOR,
        request_id="req-1",
        recorded="2026-11-22T09:00:00.000000Z",
        server=SERVER,
        method="GET",
        path="Observation",
        query_string="patient=p1&code=8480-6",
        client_address="10.0.0.7",
        resource_type="Observation",
        resource_id="o1",
        touched=(Touched("Observation/o1", patients),),
    )


def _codes(event: dict[str, Any]) -> dict[str, Any]:
    """What BALP fixes in a shape: type, subtype, action, agent types (requestor apart), entity type/role."""
    agents = event["agent"]
    return {
        "type": (event["type"]["system"], event["type"]["code"]),
        "subtype": [(s["system"], s["code"]) for s in event["subtype"]],
        "action": event["action"],
        "agents": sorted(
            (c["system"], c["code"]) for a in agents if not a.get("requestor") for c in a["type"]["coding"]
        ),
        "requestor": sorted(
            (c["system"], c["code"]) for a in agents if a.get("requestor") for c in a["type"]["coding"]
        ),
        "entities": sorted(
            (e["type"]["system"], e["type"]["code"], e.get("role", {}).get("code"))
            for e in event["entity"]
            if e["type"]["code"] != "XrequestId"
        ),
        "profile": event["meta"]["profile"],
    }


@pytest.mark.parametrize(
    ("interaction", "golden", "patients"),
    [
        ("create", "auditBasicCreateServer", ("Patient/p1",)),
        ("create", "auditBasicCreateNoPatient", ()),
        ("read", "auditBasicReadServer", ("Patient/p1",)),
        ("read", "auditBasicReadNoPatient", ()),
        ("patch", "auditBasicPatch", ("Patient/p1",)),
        ("delete", "auditBasicDeleteServer", ("Patient/p1",)),
        ("delete", "auditBasicDeleteNoPatient", ()),
        ("search-type", "auditBasicQueryPost", ("Patient/p1",)),
    ],
)
def test_events_carry_the_codings_of_the_balp_examples(
    interaction: str, golden: str, patients: tuple[str, ...]
) -> None:
    events = build_events(record(interaction, patients=patients))
    assert len(events) == 1
    event = events[0]
    assert _codes(event) == _codes(example(golden))
    assert event["outcome"] == "0"
    validate_resource(event, expected_type="AuditEvent")
    request_ids = [e for e in event["entity"] if e["type"]["code"] == "XrequestId"]
    assert request_ids == [
        {
            "type": {
                "system": "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType",
                "code": "XrequestId",
            },
            "what": {"identifier": {"value": "req-1"}},
        }
    ]


@pytest.mark.parametrize(
    ("interaction", "golden", "subtype"),
    [
        ("vread", "auditBasicReadServer", "vread"),
        ("update", "auditBasicUpdate1", "update"),
        ("search-system", "auditBasicQueryGetServer", "search-system"),
        ("history-instance", "auditBasicQueryGetServer", "history-instance"),
        ("operation", "auditBasicQueryGetServer", "operation"),
    ],
)
def test_variants_follow_their_base_shape(interaction: str, golden: str, subtype: str) -> None:
    """vread is a Read, update a (Patient)Update, history/operation a Query; only the subtype code differs."""
    event = build_events(record(interaction))[0]
    mine, theirs = _codes(event), _codes(example(golden))
    assert mine["subtype"] == [("http://hl7.org/fhir/restful-interaction", subtype)]
    for key in ("type", "action", "agents", "entities", "profile"):
        assert mine[key] == theirs[key], key
    # the user is the author of a write, the recipient of a read (BALP: AUT / IRCP)
    assert mine["requestor"] == [
        ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "AUT" if event["action"] == "U" else "IRCP")
    ]
    validate_resource(event, expected_type="AuditEvent")


def test_one_event_per_patient_and_the_query_in_base64() -> None:
    rec = AuditRecord(
        interaction="search-type",
        status=200,
        caller=DOCTOR,
        request_id="req-2",
        recorded="2026-11-22T09:00:00.000000Z",
        server=SERVER,
        path="Observation",
        query_string="code=8480-6",
        touched=(
            Touched("Observation/a", ("Patient/p1",)),
            Touched("Observation/b", ("Patient/p2",)),
            Touched("Observation/c", ("Patient/p1",)),
            Touched("Organization/x"),
        ),
    )
    events = build_events(rec)
    patients = [[e["what"]["reference"] for e in ev["entity"] if e.get("role", {}).get("code") == "1"] for ev in events]
    assert patients == [["Patient/p1"], ["Patient/p2"]]
    query = next(e for e in events[0]["entity"] if e.get("role", {}).get("code") == "24")
    assert base64.b64decode(query["query"]).decode() == f"GET {SERVER}/Observation?code=8480-6"
    assert "description" not in query  # identifiers in a query string stay out of plain text


def test_agent_from_the_caller_never_carries_a_token() -> None:
    event = build_events(record("read"))[0]
    user = next(a for a in event["agent"] if a["requestor"])
    assert user["who"] == {"reference": "Practitioner/dr-muller", "display": "Dr Anne Muller"}
    assert [r["coding"][0]["code"] for r in user["role"]] == ["professional", "physician"]
    assert user["policy"] == ["jti-42"]
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert "SECRET-TOKEN" not in json.dumps(event)
    client = event["agent"][0]
    assert client["network"] == {"address": "10.0.0.7", "type": "2"}
    assert client["who"] == {"identifier": {"value": "dsp-viewer"}}
    assert event["source"]["observer"] == {"display": SERVER}
    anonymous = build_events(AuditRecord("read", 200, Caller(), "r", "2026-11-22T09:00:00Z", SERVER))[0]
    assert next(a for a in anonymous["agent"] if a["requestor"])["who"] == {"display": "anonymous"}


def test_outcome_codes_and_interactions() -> None:
    assert [outcome_code(s) for s in (200, 201, 204, 304, 400, 403, 404, 409, 500, 503)] == list("0000444488")
    failed = build_events(record("read", status=403))[0]
    assert failed["outcome"] == "4" and failed["outcomeDesc"] == "HTTP 403"
    cases = {
        ("GET", "Patient/1"): "read",
        ("HEAD", "Patient/1"): "read",
        ("GET", "Patient/1/_history/2"): "vread",
        ("GET", "Patient/1/_history"): "history-instance",
        ("GET", "Patient/_history"): "history-type",
        ("GET", "_history"): "history-system",
        ("GET", "Patient"): "search-type",
        ("POST", "Patient/_search"): "search-type",
        ("GET", "Patient/1/Observation"): "search-type",
        ("GET", ""): "search-system",
        ("GET", "metadata"): "capabilities",
        ("POST", "Patient"): "create",
        ("PUT", "Patient/1"): "update",
        ("PATCH", "Patient/1"): "patch",
        ("DELETE", "Patient/1"): "delete",
        ("POST", "Patient/$validate"): "operation",
    }
    for (method, path), expected in cases.items():
        assert interaction_of(method, [p for p in path.split("/") if p], 200) == expected, (method, path)
    assert interaction_of("PUT", ["Patient", "1"], 201) == "create"
    assert interaction_of("POST", [], 200, "transaction") == "transaction"


def test_patients_of_a_resource_follow_the_patient_compartment() -> None:
    registry = get_registry()
    assert patients_of(registry, {"resourceType": "Patient", "id": "p1"}) == ("Patient/p1",)
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Patient/p2"}, {"reference": "Practitioner/d"}],
    }
    assert set(patients_of(registry, observation)) == {"Patient/p1", "Patient/p2"}
    assert patients_of(registry, {"resourceType": "Organization", "name": "CHL"}) == ()
    assert patients_of(registry, {"resourceType": "Observation", "subject": {"reference": "Group/g"}}) == ()
