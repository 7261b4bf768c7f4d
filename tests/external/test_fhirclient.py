"""The SMART on FHIR python client (fhirclient) against a real server on loopback."""

from __future__ import annotations

from fhirclient import client
from fhirclient.models import bundle as fbundle
from fhirclient.models import observation as fobservation
from fhirclient.models import patient as fpatient
from fhirclient.server import FHIRServer


def test_fhirclient_create_read_update_search_history_transaction(server_url: str, server_token: str) -> None:
    smart = client.FHIRClient(settings={"app_id": "esante-tests", "api_base": server_url})
    server: FHIRServer = smart.server
    server.session.headers["Authorization"] = f"Bearer {server_token}"
    server.get_capability()
    assert server.capabilityStatement.fhirVersion == "4.0.1"

    new = fpatient.Patient(
        {"name": [{"family": "Muller", "given": ["Léa"]}], "gender": "female", "birthDate": "1990-04-01"}
    )
    created = new.create(server)
    assert created is not None
    pid = created["id"]

    read = fpatient.Patient.read(pid, server)
    assert read.name[0].family == "Muller" and read.meta.versionId == "1"
    read.gender = "other"
    read.update(server)
    assert fpatient.Patient.read(pid, server).gender == "other"

    found = list(
        fpatient.Patient.where(struct={"family": "muller", "birthdate": "ge1990"}).perform_resources_iter(server)
    )
    assert [p.id for p in found] == [pid]
    assert (
        list(fpatient.Patient.where(struct={"family": "muller", "birthdate": "lt1990"}).perform_resources_iter(server))
        == []
    )

    history = fbundle.Bundle(server.request_json(f"Patient/{pid}/_history"))
    assert history.total == 2

    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:4f1c0c1e-6f63-4d1e-9c1e-000000000001",
                "resource": {"resourceType": "Patient", "name": [{"family": "Thill"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                    "subject": {"reference": "urn:uuid:4f1c0c1e-6f63-4d1e-9c1e-000000000001"},
                    "valueQuantity": {
                        "value": 72,
                        "unit": "kg",
                        "system": "http://unitsofmeasure.org",
                        "code": "kg",
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    response = fbundle.Bundle(server.post_json("", tx).json())
    assert response.type == "transaction-response" and len(response.entry) == 2
    observations = list(
        fobservation.Observation.where(
            struct={"code": "http://loinc.org|29463-7", "subject.family": "Thill"}
        ).perform_resources_iter(server)
    )
    assert len(observations) == 1 and observations[0].valueQuantity.value == 72
    fpatient.Patient.read(pid, server).delete(server)
    try:
        fpatient.Patient.read(pid, server)
        raise AssertionError("a deleted patient must not be readable")
    except Exception as exc:  # fhirclient raises requests' HTTPError
        assert "410" in str(exc)
