"""AuditEvents for the MPI's operator jobs run from the command line (register import, duplicate detection,
training, yearly report): one event per run naming the operator, the job, its outcome and its figures.

A job over the whole register touches a million identities; one event naming the job and its counts stands for it
(the identities, Tasks and parameter sets it wrote keep their own version history).
"""

from __future__ import annotations

import time
from typing import Any

from esante.fhir.model import micros_to_instant

DCM = "http://dicom.nema.org/resources/ontology/DCM"
JOB_SYSTEM = "urn:esante:mpi-operation"


def operator_event(
    *,
    event: tuple[str, str],
    job: str,
    action: str,
    operator: str,
    server: str,
    what: str,
    details: dict[str, Any],
    failure: str | None = None,
    entity_type: str | None = None,
    observer: str | None = None,
) -> dict[str, Any]:
    """``event``: the DICOM event (code, display), e.g. ("110107", "Import"); ``job``: the subtype code;
    ``failure``: set, the outcome is 4 (minor failure) with this description."""
    entity: dict[str, Any] = {
        "what": {"display": what},
        "detail": [{"type": name, "valueString": str(value)} for name, value in details.items()],
    }
    if entity_type is not None:
        entity["type"] = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": entity_type}
    return {
        "resourceType": "AuditEvent",
        "type": {"system": DCM, "code": event[0], "display": event[1]},
        "subtype": [{"system": JOB_SYSTEM, "code": job}],
        "action": action,
        "recorded": micros_to_instant(int(time.time() * 1_000_000)),
        "outcome": "4" if failure else "0",
        **({"outcomeDesc": failure} if failure else {}),
        "agent": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "AUT"}]
                },
                "who": {"identifier": {"system": "urn:esante:operator", "value": operator}},
                "requestor": True,
            }
        ],
        "source": {"site": server, "observer": {"display": observer or f"esante mpi {job}"}},
        "entity": [entity],
    }
