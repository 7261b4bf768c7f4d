"""The per-request context handed from the HTTP adapter to the FHIR service, and the service's outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from esante.fhir.model import StoredResource
from esante.security.policy import Caller


@dataclass(frozen=True)
class RequestContext:
    """Who calls, under which base URL, with which preferences (Prefer header)."""

    caller: Caller = field(default_factory=Caller)
    base_url: str = "http://localhost:8080/fhir"
    prefer_return: str | None = None  # minimal | representation | OperationOutcome
    strict_handling: bool = False  # Prefer: handling=strict
    request_id: str = ""  # X-Request-Id (given or generated): recorded in the audit trail and the logs
    client_address: str | None = None  # the peer's network address, for the audit trail
    # the policy decisions taken while serving the request (security.pdp.decision.Decision), for the audit trail
    decisions: list[Any] = field(default_factory=list)


@dataclass
class Outcome:
    """What an interaction produced: status, body (stored bytes or a generated dict), headers.

    ``stream`` (with ``media_type``) replaces the FHIR body with raw bytes streamed to the client: a document's
    content (IHE MHD ITI-68) served from the blob store as it is decrypted.
    ``audit_entities`` are recorded in each of the interaction's AuditEvents, after the query or resource entities.
    """

    status: int
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stored: StoredResource | None = None
    touched: list[StoredResource] | None = None  # what a search/delete read or removed (for the audit trail)
    stream: AsyncIterator[bytes] | None = None
    media_type: str | None = None
    # BALP entities an operation adds to its AuditEvents: what it consulted that ``touched`` cannot name (e.g. a
    # person looked up by an identifier, a resource read by a query-type operation); no resource content
    audit_entities: tuple[dict[str, Any], ...] = ()
