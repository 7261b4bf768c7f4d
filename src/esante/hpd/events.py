"""The AuditEvent of a directory import run (DICOM 110107 Import): who imported which file, with what outcome.

A national import touches 25,000 professionals and their places of practice: one event naming the file and the
counts stands for the run (every resource it wrote keeps its own version history).
"""

from __future__ import annotations

from typing import Any

from esante.hpd.directory_import import ImportResult
from esante.import_report import import_audit_event

JOB_SYSTEM = "urn:esante:hpd-operation"


def import_event(result: ImportResult, file_name: str, operator: str, server: str) -> dict[str, Any]:
    counts = {
        "lines": result.read,
        "professionals": result.professionals,
        "created": sum(result.created.values()),
        "updated": sum(result.updated.values()),
        "unchanged": result.unchanged,
        "status-changes": result.status_changes,
        "rejected": len(result.rejected),
    }
    return import_audit_event(
        job_system=JOB_SYSTEM,
        job="directory-import",
        command="esante hpd import",
        file_name=file_name,
        operator=operator,
        server=server,
        counts=counts,
    )
