"""The MLLP listener of the MPI: each HL7 v2 message becomes FHIR requests handled by the platform's router.

The listener speaks for ONE OAuth client, the establishment's identity source (``--client``): it holds a bearer
token minted for that client with its registered scopes, and every message goes through the same gate as a FHIR
call — token check (a suspended client stops the feed), access policy, the feed's domain-source check (a client
feeding another domain's identities gets AE with the 403's text), the audit trail. One message is one FHIR write,
hence one transaction: a message that fails changes nothing.

Logs name the message type, its control id and the outcome only — never a patient's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import FhirError
from esante.fhir.router import FhirRequest
from esante.mpi.domains import DomainStore
from esante.mpi.mllp.errors import Code, Hl7Error, Location, app_error, reject
from esante.mpi.mllp.framing import DEFAULT_MAX_BYTES, Frame, FrameTooLarge, frame, read_frame, stream_limit
from esante.mpi.mllp.messages import (
    Feed,
    Header,
    Incoming,
    Merge,
    Query,
    QueryResult,
    acknowledgement,
    query_response,
    read,
)
from esante.security.operator_tokens import plan_token
from esante.security.tokens import mint_for, principal

if TYPE_CHECKING:
    from esante.app import Platform

log = structlog.get_logger("esante.mllp")

# FHIR element of a refusal (OperationOutcome issue expression) → the HL7 field it came from
_FIELD_OF = {
    "Patient.identifier": Location("PID", 3),
    "Patient.name": Location("PID", 5),
    "Patient.birthDate": Location("PID", 7),
    "Patient.gender": Location("PID", 8),
    "Patient.address": Location("PID", 11),
    "Patient.telecom": Location("PID", 13),
    "Patient.deceased": Location("PID", 29),
    "Patient.link": Location("MRG", 1),
    "Patient.active": Location("MRG", 1),
}


def _location(error: FhirError) -> Location | None:
    for issue in error.issues:
        for expression in issue.expression:
            for prefix, location in _FIELD_OF.items():
                if expression.startswith(prefix):
                    return location
    return None


def _refusal(error: FhirError) -> Hl7Error:
    """A FHIR refusal as an application error: its OperationOutcome text in ERR-8."""
    text = "; ".join(issue.diagnostics for issue in error.issues) or f"HTTP {error.status}"
    code = Code.UNKNOWN_KEY if error.status in (404, 410) else Code.INTERNAL
    return app_error(code, f"refused ({error.status}): {text}", _location(error))


def _matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"]


class MllpService:
    """Turns messages into the platform's FHIR requests, as the configured client."""

    def __init__(self, platform: Platform, client_id: str, *, token_ttl: int | None = None) -> None:
        self.platform = platform
        self.client_id = client_id
        self.domains = DomainStore(platform.database)
        self.token_ttl = token_ttl or min(3600, platform.settings.token_max_ttl)
        self._token: tuple[str, float] | None = None  # (token, renew after)
        self._scope: str | None = None

    async def check_client(self) -> None:
        """The client must be registered and active (raises OperatorTokenError naming the problem)."""
        async with self.platform.database.read() as conn:
            plan = await plan_token(conn, principal(f"system:{self.client_id}"), None, [])
        self._scope = plan.scope

    def _authorization(self) -> str:
        now = time.time()
        if self._token is None or now >= self._token[1]:
            value = mint_for(
                self.platform.settings,
                self.platform.keyring,
                principal(f"system:{self.client_id}"),
                scope=self._scope,
                ttl=self.token_ttl,
            )
            self._token = (value, now + self.token_ttl / 2)
        return f"Bearer {self._token[0]}"

    async def _fhir(
        self, method: str, path: str, query: list[tuple[str, str]], peer: str | None, body: Any = None
    ) -> Outcome:
        headers = {"authorization": self._authorization(), "accept": "application/fhir+json"}
        if body is not None:
            headers["content-type"] = "application/fhir+json"
        ctx = RequestContext(
            base_url=self.platform.settings.effective_audience, request_id=uuid.uuid4().hex, client_address=peer
        )
        request = FhirRequest(method, path, query, headers, orjson.dumps(body) if body is not None else b"", ctx)
        return await self.platform.router.handle(request)

    async def _search(self, query: list[tuple[str, str]], peer: str | None) -> dict[str, Any]:
        outcome = await self._fhir("GET", "Patient", query, peer)
        body = outcome.body
        # a generated Bundle holds its resources as stored JSON fragments: read it back as plain JSON
        bundle: dict[str, Any] = orjson.loads(body if isinstance(body, bytes) else orjson.dumps(body))
        return bundle

    async def _find(self, key: tuple[str, str], peer: str | None) -> dict[str, Any] | None:
        bundle = await self._search([("identifier", f"{key[0]}|{key[1]}")], peer)
        matches = [
            e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode", "match") == "match"
        ]
        return matches[0] if matches else None

    async def _check_domain(self, system: str, location: Location) -> None:
        if await self.domains.get(system) is None:
            raise app_error(Code.UNKNOWN_KEY, f"{system} is not a registered identifier domain", location)

    async def handle(self, payload: bytes, peer: str | None = None) -> bytes:
        """The answer (ACK or RSP^K22, unframed) to one message."""
        started = time.perf_counter()
        incoming = read(payload)
        header = incoming.header
        error = incoming.error
        result: QueryResult | None = None
        if error is None:
            try:
                result = await self._execute(incoming, peer)
            except Hl7Error as refused:
                error = refused
            except FhirError as refused:
                error = _refusal(refused)
            except Exception as failure:  # the answer must still go out: AE, details for the operators only
                log.error("mllp.failed", kind=header.kind, control_id=header.control_id, error=type(failure).__name__)
                error = app_error(Code.INTERNAL, "internal error; the operators have the details")
        log.info(
            "mllp.message",
            kind=header.kind or "?",
            control_id=header.control_id,
            ack=error.ack if error else "AA",
            error_code=int(error.code) if error else None,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        if header.message_code == "QBP" and header.event == "Q22":
            query = incoming.action if isinstance(incoming.action, Query) else None
            return query_response(header, query, result, error)
        return acknowledgement(header, error)

    async def _execute(self, incoming: Incoming, peer: str | None) -> QueryResult | None:
        action = incoming.action
        if isinstance(action, Feed):
            await self._check_domain(action.key[0], Location("PID", 3, 4))
            system, value = action.key
            await self._fhir("PUT", "Patient", [("identifier", f"{system}|{value}")], peer, action.patient)
            return None
        if isinstance(action, Merge):
            await self._merge(action, peer)
            return None
        if isinstance(action, Query):
            return await self._query(action, peer)
        raise reject(Code.UNSUPPORTED_MESSAGE_TYPE, "nothing to do with this message")

    async def _merge(self, merge: Merge, peer: str | None) -> None:
        """The merged identity, as stored, written back inactive and replaced-by the survivor (one write)."""
        await self._check_domain(merge.survivor[0], Location("PID", 3, 4))
        await self._check_domain(merge.merged[0], Location("MRG", 1, 4))
        survivor = await self._find(merge.survivor, peer)
        if survivor is None:
            raise app_error(Code.UNKNOWN_KEY, "the surviving identity (PID-3) is unknown", Location("PID", 3))
        merged = await self._find(merge.merged, peer)
        if merged is None:
            raise app_error(Code.UNKNOWN_KEY, "the merged identity (MRG-1) is unknown", Location("MRG", 1))
        body = {k: v for k, v in merged.items() if k not in ("meta", "text")}
        body["active"] = False
        body["link"] = [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
        system, value = merge.merged
        await self._fhir("PUT", "Patient", [("identifier", f"{system}|{value}")], peer, body)

    async def _query(self, query: Query, peer: str | None) -> QueryResult:
        for index, system in enumerate(query.domains or [], start=1):
            await self._check_domain(system, Location("QPD", 8, 4, index))
        cap = self.platform.settings.max_page_size
        limit = min(query.limit or cap, cap)
        params = [*query.params, ("active:not", "false"), ("_count", str(limit)), ("_total", "accurate")]
        bundle = await self._search(params, peer)
        patients = _matches(bundle)
        total = bundle.get("total")
        return QueryResult(patients[:limit], int(total) if isinstance(total, int) else None)


class MllpServer:
    """The TCP listener: MLLP frames in, one answer frame per message, in order, per connection."""

    def __init__(
        self, service: MllpService, *, max_bytes: int = DEFAULT_MAX_BYTES, idle_timeout: float = 300.0
    ) -> None:
        self.service = service
        self.max_bytes = max_bytes
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound address (port 0 picks a free port)."""
        self._server = await asyncio.start_server(self._connection, host, port, limit=stream_limit(self.max_bytes))
        bound = self._server.sockets[0].getsockname()
        return str(bound[0]), int(bound[1])

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening and close the open connections (a client re-sends what got no answer)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            if self._tasks:  # let each connection's handler see its end rather than be cancelled at loop exit
                await asyncio.wait(list(self._tasks), timeout=5)
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else None
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                try:
                    got = await asyncio.wait_for(read_frame(reader, self.max_bytes), self.idle_timeout)
                except TimeoutError:
                    break
                except FrameTooLarge as error:
                    log.info("mllp.frame_refused", reason="too_large", limit=error.limit)
                    text = f"message larger than {error.limit} bytes (no MLLP end block within the limit)"
                    writer.write(frame(acknowledgement(Header(), reject(Code.INTERNAL, text))))
                    await writer.drain()
                    break  # the rest of the stream cannot be resynchronised safely
                if got is None:
                    break
                if isinstance(got, Frame):
                    if got.skipped:
                        log.info("mllp.bytes_skipped", count=got.skipped)
                    answer = await self.service.handle(got.payload, peer)
                else:
                    log.info("mllp.frame_refused", reason="no_start_block", size=got.size)
                    text = "no MLLP start block (0x0B) before the message"
                    answer = acknowledgement(Header(), reject(Code.INTERNAL, text))
                writer.write(frame(answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
