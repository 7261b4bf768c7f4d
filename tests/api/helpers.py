"""Small assertions shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an error response: the status and an OperationOutcome body; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    return body


def expressions(body: dict[str, Any]) -> list[str]:
    return [expr for issue in body["issue"] for expr in issue.get("expression", [])]


def patient(family: str = "Schmit", given: str = "Marie", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": [given]}], **extra}
