"""IHE MHD ITI-68 Retrieve Document: ``GET [base]/Binary/<id>`` serves the document's own bytes.

The read itself is the platform's (``FhirRouter`` then this reader): the bearer gate, the policy decision (a
restricted caller sees a Binary only when they may read the DocumentReference its ``securityContext`` names) and
the audit trail have run when :meth:`DocumentRetriever.__call__` gets the Binary. It then negotiates what to send:

- the document itself (streamed from the blob store, decrypted segment by segment) when ``Accept`` is absent,
  ``*/*``, the document's media type or a range covering it;
- the Binary resource (FHIR JSON, the document base64 in ``data``) when ``Accept`` names ``application/fhir+json``
  or ``application/json`` (``_format=json`` too), as FHIR's Binary read says — unless the document is itself FHIR
  JSON and that is what is asked for;
- 406 otherwise.

Gone (410): the Binary deleted, its blob destroyed (a DSP past its retention period), its DocumentReference
deleted or ``entered-in-error``, or ``superseded`` (the guide's "deprecated"; setting ``mhd_serve_superseded``
serves replaced documents instead).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import structlog

from esante.blobs import AsyncBlobStore, BlobError, BlobNotFound
from esante.dsp.mhd.content import media_type
from esante.dsp.mhd.registry import blob_of
from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import error, gone
from esante.fhir.model import StoredResource
from esante.fhir.store import StoreSession

log = structlog.get_logger("esante.dsp.mhd")

_FHIR_JSON = ("application/fhir+json", "application/json", "application/json+fhir")


def _ranges(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their q (0 excluded), in order."""
    found: list[tuple[str, float]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        kind = pieces[0].lower()
        if not kind:
            continue
        q = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            found.append((kind, q))
    return found


def _covers(media_range: str, kind: str) -> bool:
    if media_range in ("*/*", kind):
        return True
    major, _, minor = media_range.partition("/")
    return minor == "*" and kind.startswith(major + "/")


def negotiate(accept: str, content_type: str) -> str:
    """``raw`` (the document), ``resource`` (the Binary resource as FHIR JSON) or ``none`` (406)."""
    kind = media_type(content_type)
    ranges = _ranges(accept)
    if not accept.strip() or not ranges:
        return "raw" if not accept.strip() else "none"
    document_q = max((q for r, q in ranges if _covers(r, kind)), default=0.0)
    exact_q = max((q for r, q in ranges if r == kind), default=0.0)
    fhir_q = max((q for r, q in ranges if r in _FHIR_JSON), default=0.0)
    if kind in _FHIR_JSON and exact_q:  # a FHIR document asked for as itself
        return "raw"
    if fhir_q and (fhir_q > document_q or (fhir_q == document_q and not exact_q)):
        return "resource"
    return "raw" if document_q else "none"


class DocumentRetriever:
    """The platform's content reader for Binary (``FhirRouter.content_readers["Binary"]``)."""

    def __init__(self, blobs: Callable[[], AsyncBlobStore], serve_superseded: bool, max_inline_bytes: int) -> None:
        self._blobs = blobs
        self.serve_superseded = serve_superseded
        self.max_inline_bytes = max_inline_bytes

    async def __call__(
        self, session: StoreSession, ctx: RequestContext, outcome: Outcome, headers: dict[str, str]
    ) -> Outcome:
        stored = outcome.stored
        if outcome.status != 200 or stored is None or stored.content is None or stored.res_type != "Binary":
            return outcome
        binary: dict[str, Any] = orjson.loads(stored.content)
        link = await blob_of(session.conn, stored.res_id)
        content_type = str(binary.get("contentType") or "application/octet-stream")
        mode = negotiate(headers.get("accept", ""), content_type)
        if mode == "none":
            raise error(
                406,
                "not-supported",
                f"this document is {media_type(content_type)}; ask for that type, */* or application/fhir+json",
            )
        document = await self._document(session, binary)
        touched = [stored, document] if document is not None else [stored]
        if mode == "resource":
            if link is None:
                return outcome
            if link.size > self.max_inline_bytes:
                raise error(
                    406,
                    "too-costly",
                    f"the document ({link.size} bytes) is too large to embed in a Binary resource; ask for its own "
                    f"type ({media_type(content_type)})",
                )
            data = await self._read(link.address)
            body = {**binary, "data": base64.b64encode(data).decode("ascii")}
            return Outcome(200, orjson.dumps(body), dict(outcome.headers), stored, touched=touched)
        headers_out = {
            **{k: v for k, v in outcome.headers.items() if k in ("ETag", "Last-Modified")},
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        if link is not None:
            stream = await self._open(link.address)
            headers_out["Content-Length"] = str(link.size)
        else:
            data = _inline(binary)
            headers_out["Content-Length"] = str(len(data))
            stream = _once(data)
        return Outcome(200, None, headers_out, stored, touched=touched, stream=stream, media_type=content_type)

    async def _document(self, session: StoreSession, binary: dict[str, Any]) -> StoredResource | None:
        """The DocumentReference the Binary is the content of (None: a Binary of no document); 410 when the
        document is deleted, entered in error or (by default) superseded."""
        reference = (binary.get("securityContext") or {}).get("reference")
        if not isinstance(reference, str) or not reference.startswith("DocumentReference/"):
            return None
        document = await session.read("DocumentReference", reference.split("/")[1])
        if document is None:
            return None
        if document.deleted or document.content is None:
            raise gone(f"the document of this Binary ({reference}) was deleted")
        status = orjson.loads(document.content).get("status")
        if status == "entered-in-error":
            raise gone(f"the document {reference} was entered in error")
        if status == "superseded" and not self.serve_superseded:
            raise gone(f"the document {reference} was replaced by a newer one (superseded)")
        return document

    async def _open(self, address: str) -> AsyncIterator[bytes]:
        try:
            return await self._blobs().open(address)
        except BlobNotFound as exc:
            raise gone("the document's content was destroyed") from exc
        except BlobError as exc:
            log.error("blob_unreadable", address=address, error_type=type(exc).__name__)
            raise error(500, "exception", f"the document's content cannot be read (blob {address})") from exc

    async def _read(self, address: str) -> bytes:
        chunks = [chunk async for chunk in await self._open(address)]
        return b"".join(chunks)


def _inline(binary: dict[str, Any]) -> bytes:
    data = binary.get("data")
    if not isinstance(data, str):
        raise error(404, "not-found", "this Binary holds no content")
    return base64.b64decode(data)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
