"""The error taxonomy of the FHIR layer, mapped to OperationOutcome in one place.

Every failure the platform reports to a client is a :class:`FhirError` carrying the HTTP status and one or
more issues; the HTTP adapter turns it into an OperationOutcome and never leaks a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: severity, code (IssueType), human text and the FHIRPath of the element."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()
    details_code: str | None = None  # e.g. an XDS error code, added to issue.details.coding

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.details_code:
            issue["details"] = {"coding": [{"code": self.details_code}], "text": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FhirError(Exception):
    """A client-visible failure: an HTTP status plus OperationOutcome issues."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(issue.diagnostics for issue in self.issues)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.to_json() for issue in issues]}


def error(status: int, code: str, diagnostics: str, *, expression: str | tuple[str, ...] | None = None) -> FhirError:
    """Shorthand for a one-issue error; ``expression`` names the offending element (FHIRPath)."""
    expr: tuple[str, ...] = (expression,) if isinstance(expression, str) else tuple(expression or ())
    return FhirError(status, [Issue(code=code, diagnostics=diagnostics, expression=expr)])


def bad_request(diagnostics: str, *, expression: str | tuple[str, ...] | None = None) -> FhirError:
    return error(400, "invalid", diagnostics, expression=expression)


def unprocessable(diagnostics: str, *, expression: str | tuple[str, ...] | None = None) -> FhirError:
    return error(422, "processing", diagnostics, expression=expression)


def not_found(diagnostics: str) -> FhirError:
    return error(404, "not-found", diagnostics)


def gone(diagnostics: str) -> FhirError:
    return error(410, "deleted", diagnostics)


def conflict(diagnostics: str) -> FhirError:
    return error(409, "conflict", diagnostics)


def precondition_failed(diagnostics: str) -> FhirError:
    return error(412, "conflict", diagnostics)


def not_supported(diagnostics: str, status: int = 400) -> FhirError:
    return error(status, "not-supported", diagnostics)


def forbidden(diagnostics: str) -> FhirError:
    return error(403, "forbidden", diagnostics)
