"""Starlette adapter for the FHIR router: HTTP in, :class:`FhirRequest` → router → HTTP out.

Only the web concerns live here: content negotiation (``Accept``/``_format``), body size limit, the ``Prefer``
header, status/headers/body conversion, and the last-resort error handler that turns any failure into an
OperationOutcome (never a stack trace; the log line carries the request id and the error type, no health data).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from esante.config import Settings
from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import FhirError, Issue, error, operation_outcome
from esante.fhir.router import FhirRequest, FhirRouter
from esante.security.policy import Caller

log = structlog.get_logger("esante.http")

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
_XML_HINTS = ("xml",)
_DROP_PARAMS = {"_format", "_pretty"}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _raw_content_read(request: Request) -> bool:
    """A read of a Binary (``Binary/id`` or ``Binary/id/_history/n``): its content type is negotiated by the
    content reader (any type the document has, IHE MHD ITI-68), not refused here for not being JSON."""
    parts = [p for p in str(request.path_params.get("path", "")).split("/") if p]
    shaped = len(parts) == 2 or (len(parts) == 4 and parts[2] == "_history")
    return request.method in ("GET", "HEAD") and shaped and parts[0] == "Binary"


def _negotiate(request: Request) -> None:
    """Refuse what we cannot produce: only JSON is served (406 for XML/turtle), except a Binary's own content."""
    if _raw_content_read(request) and "_format" not in request.query_params:
        return
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in _JSON_FORMATS:
        raise error(406, "not-supported", f"_format '{fmt}' is not supported; this server speaks JSON")
    accept = request.headers.get("accept", "")
    if fmt is None and accept:
        kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if not any(k in ("*/*", "application/*") or "json" in k for k in kinds) and any(
            hint in k for k in kinds for hint in _XML_HINTS
        ):
            raise error(406, "not-supported", f"Accept '{accept}' cannot be satisfied; use application/fhir+json")


def _prefer(header: str) -> tuple[str | None, bool]:
    prefer_return: str | None = None
    strict = False
    for item in header.split(","):
        for token in item.split(";"):
            key, _, value = token.strip().partition("=")
            value = value.strip().strip('"')
            if key == "return" and value in ("minimal", "representation", "OperationOutcome"):
                prefer_return = value
            elif key == "handling":
                strict = value == "strict"
    return prefer_return, strict


def _render(outcome: Outcome, head: bool) -> Response:
    headers = dict(outcome.headers)
    if outcome.stream is not None:
        stream = outcome.stream
        close = getattr(stream, "aclose", None)
        if head:  # the headers only: the stream is closed unread
            return Response(
                status_code=outcome.status,
                headers=headers,
                media_type=outcome.media_type,
                background=BackgroundTask(close) if close is not None else None,
            )
        return StreamingResponse(stream, status_code=outcome.status, headers=headers, media_type=outcome.media_type)
    if outcome.body is None or outcome.status == 204 or head:
        return Response(
            status_code=outcome.status,
            headers=headers,
            media_type=None if outcome.body is None else FHIR_JSON,
        )
    content = outcome.body if isinstance(outcome.body, bytes) else orjson.dumps(outcome.body)
    return Response(content=content, status_code=outcome.status, headers=headers, media_type=FHIR_JSON)


def error_response(exc: FhirError) -> Response:
    return Response(
        content=orjson.dumps(exc.outcome()), status_code=exc.status, headers=exc.headers, media_type=FHIR_JSON
    )


class FhirEndpoint:
    """The ASGI endpoint mounted at ``/fhir``."""

    def __init__(self, router: FhirRouter, settings: Settings) -> None:
        self.router = router
        self.settings = settings

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise error(413, "too-costly", f"the request body ({declared} bytes) exceeds the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise error(413, "too-costly", f"the request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def base_url(self, request: Request) -> str:
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        return str(request.base_url).rstrip("/") + "/fhir"

    async def __call__(self, request: Request) -> Response:
        request_id = request.headers.get("x-request-id", "")
        if not _REQUEST_ID.fullmatch(request_id):  # recorded in the audit trail and logs: no free text there
            request_id = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            _negotiate(request)
            body = await self._body(request) if request.method in ("POST", "PUT", "PATCH") else b""
            prefer_return, strict = _prefer(request.headers.get("prefer", ""))
            caller = request.scope.get("esante.caller") or Caller()
            client = request.client.host if request.client else None
            ctx = RequestContext(caller, self.base_url(request), prefer_return, strict, request_id, client)
            query = [(k, v) for k, v in request.query_params.multi_items() if k not in _DROP_PARAMS]
            headers = {k.lower(): v for k, v in request.headers.items()}
            if request.query_params.get("_format"):  # _format overrides Accept (negotiated JSON above)
                headers["accept"] = "application/fhir+json"
            fhir_request = FhirRequest(
                method=request.method,
                path=request.path_params.get("path", ""),
                query=query,
                headers=headers,
                body=body,
                ctx=ctx,
            )
            outcome = await self.router.handle(fhir_request)
            response = _render(outcome, request.method == "HEAD")
        except FhirError as exc:
            response = error_response(exc)
        except Exception as exc:
            log.error(
                "unhandled_error",
                request_id=request_id,
                error_type=type(exc).__name__,
                path_kind=_kind(request),
            )
            issue = Issue("exception", f"internal error (request id {request_id}); the operators have the details")
            response = Response(content=orjson.dumps(operation_outcome([issue])), status_code=500, media_type=FHIR_JSON)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response.headers["X-Request-Id"] = request_id
        return response


def _kind(request: Request) -> str:
    """A log-safe description of the path: the resource type only, never ids or query values."""
    path: Any = request.path_params.get("path", "")
    return str(path).split("/")[0][:64]
