"""The AuditEvent of a directory import run (DICOM 110107 Import): who imported which file, with what outcome.

A national import touches 25,000 professionals and their places of practice: one event naming the file and the
counts stands for the run (every resource it wrote keeps its own version history).
"""

from __future__ import annotations

import time
from typing import Any

from esante.fhir.model import micros_to_instant
from esante.hpd.directory_import import ImportResult

JOB_SYSTEM = "urn:esante:hpd-operation"


def import_event(result: ImportResult, file_name: str, operator: str, server: str) -> dict[str, Any]:
    details: dict[str, Any] = {
        "lines": result.read,
        "professionals": result.professionals,
        "created": sum(result.created.values()),
        "updated": sum(result.updated.values()),
        "unchanged": result.unchanged,
        "status-changes": result.status_changes,
        "rejected": len(result.rejected),
    }
    failure = f"{len(result.rejected)} line(s) rejected" if result.rejected else None
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110107", "display": "Import"},
        "subtype": [{"system": JOB_SYSTEM, "code": "directory-import"}],
        "action": "C",
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
        "source": {"site": server, "observer": {"display": "esante hpd import"}},
        "entity": [
            {
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "what": {"display": file_name},
                "detail": [{"type": name, "valueString": str(value)} for name, value in details.items()],
            }
        ],
    }
