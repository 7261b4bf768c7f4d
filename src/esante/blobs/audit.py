"""AuditEvents for the blob store's operator commands: one per run of ``rotate-key``, ``verify`` and ``destroy``,
naming the operator, the job, its outcome and its counts (never a document's content; a destroyed blob is named by
its address, which is a keyed hash and says nothing about the document)."""

from __future__ import annotations

from typing import Any

from esante.mpi.operator_events import operator_event

JOB_SYSTEM = "urn:esante:blob-operation"
SECURITY_ALERT = ("110113", "Security Alert")  # DICOM: a change of security configuration (the master key)
APPLICATION_ACTIVITY = ("110100", "Application Activity")


def blob_job_event(
    *,
    job: str,
    event: tuple[str, str],
    action: str,
    operator: str,
    server: str,
    what: str,
    details: dict[str, Any],
    failure: str | None = None,
) -> dict[str, Any]:
    """``job``: rotate-key | verify | destroy; ``action``: the FHIR AuditEvent action code (U, E, D)."""
    built = operator_event(
        event=event,
        job=job,
        action=action,
        operator=operator,
        server=server,
        what=what,
        details=details,
        failure=failure,
        observer=f"esante blobs {job}",
    )
    built["subtype"] = [{"system": JOB_SYSTEM, "code": job}]
    return built
