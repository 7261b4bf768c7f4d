"""The FHIR REST router: URL + method → interaction, independent of the web framework.

``FhirRouter.handle`` takes a :class:`FhirRequest` (method, path below the FHIR base, query, headers, body
bytes) and returns an :class:`Outcome`; the Starlette adapter (esante.fhir.http) only converts. Reads run on a
read connection, writes in one database transaction. ``dispatch`` is reused by the bundle processor for the
entries of a batch/transaction, inside the bundle's own session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from esante.fhir.bundles import BundleProcessor
from esante.fhir.capabilities import CapabilityAdditions, capability_statement
from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import FhirError, Issue, bad_request, error, not_found
from esante.fhir.history import history
from esante.fhir.json import loads_any, loads_resource
from esante.fhir.operations import OperationCall, OperationRegistry, query_to_parameters
from esante.fhir.search.plan_choice import plan_depends_on_values
from esante.fhir.service import FhirService
from esante.fhir.store import ResourceStore, StoreSession

if TYPE_CHECKING:
    from esante.security.audit_trail import Auditor
    from esante.security.resource_server import ResourceServer

_READ_METHODS = frozenset({"GET", "HEAD"})

# A service's reader of a type's own content (IHE MHD ITI-68: a Binary's document bytes): given the read's
# session, context, outcome (the resource, already checked by the policy) and the request headers (Accept), it
# returns the outcome to send: the FHIR resource unchanged, or the raw content (``Outcome.stream``).
ContentReader = Callable[[StoreSession, RequestContext, Outcome, dict[str, str]], Awaitable[Outcome]]
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")


@dataclass
class FhirRequest:
    """An HTTP request as the router sees it (path relative to the FHIR base, without leading slash)."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    ctx: RequestContext = field(default_factory=RequestContext)


class FhirRouter:
    """Maps requests onto the service's interactions, history, bundles and operations."""

    def __init__(
        self,
        store: ResourceStore,
        service: FhirService,
        operations: OperationRegistry,
        max_bundle_entries: int,
        auditor: Auditor | None = None,
        authenticator: ResourceServer | None = None,
        *,
        cached_plans_for_one_patient: bool = True,
    ) -> None:
        self.store = store
        self.cached_plans_for_one_patient = cached_plans_for_one_patient
        self.service = service
        self.operations = operations
        self.auditor = auditor
        self.authenticator = authenticator
        self.capability = CapabilityAdditions()  # what services declare in the CapabilityStatement
        self.content_readers: dict[str, ContentReader] = {}  # resource type → reader of its raw content
        # operations (by name) whose GET reads AuditEvents: the trail is chained before them, as before a search
        # of AuditEvent (e.g. the DSP's $dsp-access-log)
        self.audit_readers: set[str] = set()
        self.bundles = BundleProcessor(store, service, self.dispatch, max_bundle_entries)

    async def handle(self, request: FhirRequest) -> Outcome:
        """Authenticate, run one request and, with an auditor, record its AuditEvents afterwards, whether it
        succeeded or failed.

        The audit is appended in its own transaction once the interaction's transaction has ended, so a refused
        or rolled-back write is still recorded (with its failure outcome); a request refused at the gate (401) is
        recorded with an anonymous requestor. If the audit cannot be written the request fails (500): nothing is
        served unaudited.
        """
        if self.auditor is None:
            return await self._authenticated(request)
        try:
            outcome = await self._authenticated(request)
        except FhirError as exc:
            await self._audit(request, exc.status, None)
            raise
        except Exception:
            await self._audit(request, 500, None)
            raise
        await self._audit(request, outcome.status, outcome)
        return outcome

    async def _authenticated(self, request: FhirRequest) -> Outcome:
        """The bearer token check (ITI-72) for everything but the CapabilityStatement, which SMART clients read
        before they have a token. Reads check the token on their own read connection (see ``_handle``); other
        requests are authenticated before their body is even parsed."""
        if self._needs_token(request) and not self._reads(request.method, request.path):
            await self._authenticate(request)
        return await self._handle(request)

    def _reads(self, method: str, path: str) -> bool:
        """Served on a read connection: GET/HEAD, POST _search, and POST to an operation declared ``read_only``."""
        if _is_read(method, path):
            return True
        return method.upper() == "POST" and self._read_only_operation([p for p in path.split("/") if p])

    def _read_only_operation(self, parts: list[str]) -> bool:
        if not parts or not parts[-1].startswith("$") or len(parts) > 3:
            return False
        scope = parts[:-1]
        operation = self.operations.find(parts[-1][1:], scope[0] if scope else None, len(scope) == 2)
        return operation is not None and operation.read_only

    def _needs_token(self, request: FhirRequest) -> bool:
        """Every request but the CapabilityStatement and, when no token is sent, a public operation."""
        if self.authenticator is None or request.path.strip("/") == "metadata":
            return False
        return "authorization" in request.headers or not self._public_operation(request.path)

    def _public_operation(self, path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        if not parts or not parts[-1].startswith("$") or len(parts) > 3:
            return False
        scope = parts[:-1]
        operation = self.operations.find(parts[-1][1:], scope[0] if scope else None, len(scope) == 2)
        return operation is not None and operation.public

    async def _authenticate(self, request: FhirRequest, conn: Any = None) -> None:
        assert self.authenticator is not None
        caller = await self.authenticator.authenticate(request.headers, conn)
        request.ctx = dataclasses.replace(request.ctx, caller=caller)

    async def _audit(self, request: FhirRequest, status: int, outcome: Outcome | None) -> None:
        assert self.auditor is not None
        record = self.auditor.record_of(
            method=request.method,
            path=request.path,
            query=request.query,
            body=request.body,
            ctx=request.ctx,
            status=status,
            outcome=outcome,
        )
        await self.auditor.record(record, request.ctx.decisions)

    async def _handle(self, request: FhirRequest) -> Outcome:
        method = request.method.upper()
        parts = [p for p in request.path.split("/") if p]
        ctx = request.ctx
        if method == "POST" and self._read_only_operation(parts):
            async with self.store.database.read() as conn:
                if self._needs_token(request):
                    await self._authenticate(request, conn)
                    ctx = request.ctx
                parameters = self._parse_body(method, parts, request)
                session = self.store.session(conn, ctx.caller)
                return await self.dispatch(
                    session, ctx, method, request.path, request.query, request.headers, parameters
                )
        if _is_read(method, request.path):
            if parts == ["metadata"]:
                return Outcome(200, capability_statement(self, ctx))
            if self.auditor is not None and (
                _may_read_audit_events(parts, request.query)
                or (parts and parts[-1].startswith("$") and parts[-1][1:] in self.audit_readers)
            ):
                await self.auditor.flush()  # readers of the trail see every event already answered for
            # a search planned with its values takes a connection of the pool that plans every statement anew;
            # one scoped to a patient in the default order keeps cached plans (search/plan_choice.py)
            per_execution = _is_search(parts) and (
                not self.cached_plans_for_one_patient or plan_depends_on_values(parts, request.query)
            )
            if per_execution and self._needs_token(request):
                # the token's checks (a dozen statements keyed on ids) on a connection that keeps their generic
                # plans: on the search connection PostgreSQL would plan each anew (~0.5-1 ms apiece, ~4 ms a search)
                async with self.store.database.read() as conn:
                    await self._authenticate(request, conn)
                ctx = request.ctx
            async with self.store.database.read(search=per_execution) as conn:
                if not per_execution and self._needs_token(request):
                    await self._authenticate(request, conn)
                    ctx = request.ctx
                session = self.store.session(conn, ctx.caller)
                outcome = await self.dispatch(
                    session, ctx, method, request.path, request.query, request.headers, request
                )
                reader = self.content_readers.get(parts[0]) if _is_instance_read(parts) else None
                if reader is not None:
                    outcome = await reader(session, ctx, outcome, request.headers)
                return outcome
        body: Any = None
        if method in ("POST", "PUT", "PATCH"):
            body = self._parse_body(method, parts, request)
        if method == "POST" and not parts:
            return await self.bundles.process(ctx, body)
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn, ctx.caller)
            outcome = await self.dispatch(session, ctx, method, request.path, request.query, request.headers, body)
            await session.flush()
            return outcome

    def _parse_body(self, method: str, parts: list[str], request: FhirRequest) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        is_operation = bool(parts) and parts[-1].startswith("$")
        if content_type and content_type not in _JSON_TYPES:
            raise error(
                415,
                "not-supported",
                f"Content-Type '{content_type}' is not supported; send application/fhir+json",
            )
        if is_operation and not request.body.strip():
            return None
        if method == "PATCH":
            return loads_any(request.body)
        return loads_resource(request.body)

    async def dispatch(
        self,
        session: StoreSession,
        ctx: RequestContext,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: Any,
    ) -> Outcome:
        """Route one interaction inside ``session`` (``body``: parsed JSON, or the FhirRequest for reads)."""
        parts = [p for p in path.split("/") if p]
        service = self.service
        if isinstance(body, FhirRequest):  # POST _search: form body adds to the query
            query = [*query, *_form(body)]
            body = None
        if parts and parts[-1].startswith("$"):
            return await self._operation(session, ctx, method, parts, query, body)
        if method == "HEAD":
            method = "GET"
        n = len(parts)
        if method == "GET" or (method == "POST" and n and parts[-1] == "_search"):
            if n == 0 or parts == ["_search"]:
                return await service.search(session, ctx, None, query)
            if parts == ["_history"]:
                return await history(service, session, ctx, query)
            if n == 1 or (n == 2 and parts[1] == "_search"):
                return await service.search(session, ctx, parts[0], query)
            if n == 2 and parts[1] == "_history":
                return await history(service, session, ctx, query, parts[0])
            if n == 2:
                return await service.read(session, ctx, parts[0], parts[1])
            if n == 3 and parts[2] == "_history":
                return await history(service, session, ctx, query, parts[0], parts[1])
            if n == 4 and parts[2] == "_history":
                return await service.vread(session, ctx, parts[0], parts[1], parts[3])
            if n in (3, 4) and (n == 3 or parts[3] == "_search"):
                service.check_type(parts[0])
                service.check_type(parts[2])
                if parts[0] != "Patient":
                    raise not_found(f"compartment '{parts[0]}' is not supported (only Patient)")
                return await service.search(session, ctx, parts[2], query, compartment=(parts[0], parts[1]))
            raise not_found(f"no interaction at '{path}'")
        if method == "POST":
            if n == 1:
                return await service.create(session, ctx, parts[0], body, if_none_exist=headers.get("if-none-exist"))
            raise error(405, "not-supported", f"POST is not allowed at '{path}'")
        if method == "PUT":
            if n == 1 and query:
                return await service.conditional_update(
                    session, ctx, parts[0], query, body, if_match=headers.get("if-match")
                )
            if n == 2:
                return await service.update(session, ctx, parts[0], parts[1], body, if_match=headers.get("if-match"))
            raise error(405, "not-supported", f"PUT is not allowed at '{path}'")
        if method == "PATCH":
            content_type, body = _patch_format(headers, body)
            if n == 1 and query:
                return await service.conditional_patch(
                    session, ctx, parts[0], query, body, content_type, if_match=headers.get("if-match")
                )
            if n == 2:
                return await service.patch(
                    session, ctx, parts[0], parts[1], body, content_type, if_match=headers.get("if-match")
                )
            raise error(405, "not-supported", f"PATCH is not allowed at '{path}'")
        if method == "DELETE":
            if n == 1 and query:
                return await service.conditional_delete(session, ctx, parts[0], query)
            if n == 2:
                return await service.delete(session, ctx, parts[0], parts[1], if_match=headers.get("if-match"))
            raise error(405, "not-supported", f"DELETE is not allowed at '{path}'")
        raise error(405, "not-supported", f"method {method} is not supported")

    async def _operation(
        self,
        session: StoreSession,
        ctx: RequestContext,
        method: str,
        parts: list[str],
        query: list[tuple[str, str]],
        body: Any,
    ) -> Outcome:
        name = parts[-1][1:]
        scope = parts[:-1]
        if len(scope) > 2:
            raise not_found(f"no operation at '{'/'.join(parts)}'")
        res_type = scope[0] if scope else None
        res_id = scope[1] if len(scope) == 2 else None
        if res_type is not None:
            self.service.check_type(res_type)
        op = self.operations.find(name, res_type, res_id is not None)
        if op is None:
            raise not_found(f"operation ${name} is not supported at this level")
        if method == "GET" and op.affects_state:
            raise error(405, "not-supported", f"${name} changes state: invoke it with POST")
        if method not in ("GET", "POST"):
            raise error(405, "not-supported", f"operations are invoked with GET or POST, not {method}")
        self.service.policy.authorize_operation(ctx, op, res_type, res_id)
        parameters = body if isinstance(body, dict) else query_to_parameters(query)
        return await op.handler(OperationCall(session, ctx, name, res_type, res_id, parameters, method, tuple(query)))


def _may_read_audit_events(parts: list[str], query: list[tuple[str, str]]) -> bool:
    """Whether a read may return AuditEvents: it names the type, or searches or histories every type."""
    if not parts or parts[0] in ("_search", "_history") or "AuditEvent" in parts:
        return True
    return any("AuditEvent" in value for name, value in query if name in ("_type", "_include", "_revinclude"))


def _is_instance_read(parts: list[str]) -> bool:
    """``Type/id`` or ``Type/id/_history/n`` (a read or vread)."""
    if len(parts) == 2:
        return not parts[0].startswith(("$", "_")) and not parts[1].startswith(("$", "_"))
    return len(parts) == 4 and parts[2] == "_history" and not parts[0].startswith(("$", "_"))


def _is_read(method: str, path: str) -> bool:
    """GET/HEAD, or a POST _search: served on a read connection."""
    method = method.upper()
    return method in _READ_METHODS or (method == "POST" and path.rstrip("/").endswith("_search"))


def _is_search(parts: list[str]) -> bool:
    """Whether a GET/POST-_search path is a search (planned per execution), not a read by id or history."""
    n = len(parts)
    if n == 0 or parts[-1] == "_search" or (n == 1 and not parts[0].startswith(("$", "_"))):
        return True
    return n == 3 and parts[2] != "_history" and not parts[2].startswith("$")


def _patch_format(headers: dict[str, str], body: Any) -> tuple[str, Any]:
    """Tell JSON Patch from FHIRPath Patch: by body shape (bundle entries carry no Content-Type).

    In a Bundle a JSON Patch travels as a Binary whose data is the base64 of the patch document.
    """
    if isinstance(body, list):
        return "application/json-patch+json", body
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        return "application/fhir+json", body
    if isinstance(body, dict) and body.get("resourceType") == "Binary":
        import base64

        try:
            return "application/json-patch+json", loads_any(base64.b64decode(body.get("data", ""), validate=True))
        except (ValueError, TypeError) as exc:
            raise bad_request("the Binary of a JSON Patch entry must hold base64 JSON") from exc
    return headers.get("content-type", "application/json-patch+json"), body


def _form(request: FhirRequest) -> list[tuple[str, str]]:
    """POST _search: parameters from an application/x-www-form-urlencoded body."""
    from urllib.parse import parse_qsl

    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not request.body:
        return []
    if content_type != "application/x-www-form-urlencoded":
        raise FhirError(
            415,
            [Issue("not-supported", "POST _search takes an application/x-www-form-urlencoded body")],
        )
    try:
        return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise bad_request("the search form body is not UTF-8") from exc
