"""batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction).

transaction: one database transaction, all or nothing. Entries run in the FHIR order (DELETE, POST, PUT/PATCH,
then GET/HEAD), whatever their order in the Bundle; before any write, every POST gets its server id (or, with
``ifNoneExist``, the id of the existing match) so that ``urn:uuid`` fullUrls and conditional references
(``Patient?identifier=...``) anywhere in the Bundle's resources are rewritten to real ``Type/id`` references.
The response lists entries in the request's order. A failing entry fails the whole transaction with its own
status and an OperationOutcome naming ``Bundle.entry[i]``.

batch: each entry in its own database transaction; a failing entry reports its OperationOutcome in its
``response.outcome`` and the others still apply.

Services may claim some transactions (``BundleProcessor.claim``): IHE MHD's Provide Document Bundle [ITI-65] is a
transaction whose documents go to the blob store and whose metadata is checked first. The claiming handler
rewrites the Bundle and runs it through :meth:`BundleProcessor.run_transaction`, the same processing as any
transaction, with a callback that runs inside the database transaction once every entry is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import FhirError, Issue, bad_request, not_found, precondition_failed
from esante.fhir.json import raw
from esante.fhir.model import StoredResource, micros_to_instant
from esante.fhir.store import ResourceStore, StoreSession
from esante.security.policy import Action

# the resources the entries of the Bundle being processed read or wrote (reported to the audit trail)
_TOUCHED: ContextVar[list[StoredResource] | None] = ContextVar("bundle_touched", default=None)


def _note(outcome: Outcome) -> None:
    touched = _TOUCHED.get()
    if touched is not None:
        if outcome.touched is not None:
            touched.extend(outcome.touched)
        elif outcome.stored is not None:
            touched.append(outcome.stored)


_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content", 404: "404 Not Found"}

Dispatch = Callable[
    [StoreSession, RequestContext, str, str, list[tuple[str, str]], dict[str, str], Any], Awaitable[Outcome]
]
# a service's handling of the transactions it claims (ctx, the parsed Bundle) → the response
TransactionHandler = Callable[[RequestContext, dict[str, Any]], Awaitable[Outcome]]
# runs inside a transaction's database transaction after its writes: (session, the response entries in request
# order); raising a FhirError rolls everything back
BeforeCommit = Callable[[StoreSession, list[dict[str, Any]]], Awaitable[None]]


@dataclass
class _Entry:
    index: int
    method: str
    url: str
    path: str
    query: list[tuple[str, str]]
    resource: dict[str, Any] | None
    full_url: str | None
    headers: dict[str, str]
    if_none_exist: str | None


def _parse_entries(bundle: dict[str, Any], max_entries: int) -> list[_Entry]:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise bad_request("Bundle.entry must be an array", expression="Bundle.entry")
    if len(entries) > max_entries:
        raise FhirError(
            413,
            [Issue("too-costly", f"the Bundle has {len(entries)} entries; the limit is {max_entries}")],
        )
    parsed: list[_Entry] = []
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise bad_request(f"{where} must be an object", expression=where)
        request = entry.get("request")
        if not isinstance(request, dict):
            raise bad_request(f"{where}.request is required in a batch or transaction", expression=f"{where}.request")
        method = request.get("method")
        url = request.get("url")
        if method not in _ORDER:
            raise bad_request(
                f"{where}.request.method '{method}' is not supported", expression=f"{where}.request.method"
            )
        if not isinstance(url, str) or not url:
            raise bad_request(f"{where}.request.url is required", expression=f"{where}.request.url")
        resource = entry.get("resource")
        if method in ("POST", "PUT") and not isinstance(resource, dict):
            raise bad_request(f"{where}.resource is required for {method}", expression=f"{where}.resource")
        split = urlsplit(url)
        path = split.path.strip("/")
        if split.scheme:  # absolute URL: keep the part after /fhir/ if any
            path = path.split("fhir/", 1)[-1] if "fhir/" in path else path
        # lenient: "PUT Type" with the id in the resource (as in IHE MHD's addToFolder example) is taken
        # as an update of Type/<resource.id>
        bare_put = method == "PUT" and "/" not in path and not split.query
        if bare_put and isinstance(resource, dict) and isinstance(resource.get("id"), str):
            path = f"{path}/{resource['id']}"
        headers = {
            header: str(request[key])
            for key, header in (("ifMatch", "if-match"), ("ifNoneMatch", "if-none-match"))
            if request.get(key)
        }
        parsed.append(
            _Entry(
                index=i,
                method=method,
                url=url,
                path=path,
                query=parse_qsl(split.query, keep_blank_values=True),
                resource=resource if isinstance(resource, dict) else None,
                full_url=entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None,
                headers=headers,
                if_none_exist=request.get("ifNoneExist"),
            )
        )
    return parsed


def _rewrite(value: Any, mapping: dict[str, str]) -> Any:
    """Replace every string equal to a mapped fullUrl (references, attachment URLs) by its Type/id."""
    if isinstance(value, dict):
        return {key: _rewrite(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, mapping) for item in value]
    if isinstance(value, str) and value in mapping:
        return mapping[value]
    return value


def _dangling_urns(value: Any) -> str | None:
    """A ``urn:uuid:``/``urn:oid:`` Reference.reference left after resolution (it points outside the Bundle)."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref.startswith(("urn:uuid:", "urn:oid:")):
            return ref
        for item in value.values():
            found = _dangling_urns(item)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _dangling_urns(item)
            if found:
                return found
    return None


def _collect_conditional_refs(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and "?" in ref and not ref.startswith(("http:", "https:", "urn:")):
            found.add(ref)
        for item in value.values():
            _collect_conditional_refs(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_conditional_refs(item, found)


class BundleProcessor:
    """Runs batch and transaction Bundles through the same interactions as single requests."""

    def __init__(self, store: ResourceStore, service: Any, dispatch: Dispatch, max_entries: int) -> None:
        self.store = store
        self.service = service
        self.dispatch = dispatch
        self.max_entries = max_entries
        self._claims: list[tuple[Callable[[dict[str, Any]], bool], TransactionHandler]] = []

    def claim(self, claims: Callable[[dict[str, Any]], bool], handler: TransactionHandler) -> None:
        """Let ``handler`` process the transaction Bundles ``claims`` recognises (checked in registration order)."""
        self._claims.append((claims, handler))

    async def process(self, ctx: RequestContext, bundle: Any) -> Outcome:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise bad_request(
                "POST to the base URL expects a Bundle of type batch or transaction",
                expression="resourceType",
            )
        kind = bundle.get("type")
        if kind not in ("batch", "transaction"):
            raise bad_request(
                f"Bundle.type must be 'batch' or 'transaction' to be processed, not '{kind}'",
                expression="Bundle.type",
            )
        if kind == "transaction":
            for claims, handler in self._claims:
                if claims(bundle):
                    return await handler(ctx, bundle)
            return await self.run_transaction(ctx, bundle)
        entries = _parse_entries(bundle, self.max_entries)
        touched: list[StoredResource] = []
        token = _TOUCHED.set(touched)
        try:
            responses = await self._batch(ctx, entries)
        finally:
            _TOUCHED.reset(token)
        body = {"resourceType": "Bundle", "type": "batch-response", "entry": responses}
        return Outcome(200, body, touched=touched)

    async def run_transaction(
        self, ctx: RequestContext, bundle: dict[str, Any], before_commit: BeforeCommit | None = None
    ) -> Outcome:
        """Process ``bundle`` as a transaction (its ``type`` is not looked at); ``before_commit`` runs inside the
        database transaction after every entry is written, with the response entries in request order."""
        entries = _parse_entries(bundle, self.max_entries)
        touched: list[StoredResource] = []
        token = _TOUCHED.set(touched)
        try:
            responses = await self._transaction(ctx, entries, before_commit)
        finally:
            _TOUCHED.reset(token)
        body = {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}
        return Outcome(200, body, touched=touched)

    # ------------------------------------------------------------------ transaction
    async def _transaction(
        self, ctx: RequestContext, entries: list[_Entry], before_commit: BeforeCommit | None = None
    ) -> list[dict[str, Any]]:
        targets = [(e.method, e.path.split("/")[0], e.path) for e in entries if e.method in ("PUT", "PATCH", "DELETE")]
        seen: set[str] = set()
        for _method, _type, path in targets:
            if "/" in path and path in seen:
                raise bad_request(f"the transaction touches {path} more than once", expression="Bundle.entry")
            seen.add(path)
        order = sorted(entries, key=lambda e: (_ORDER[e.method], e.index))
        results: dict[int, dict[str, Any]] = {}
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn, ctx.caller)
            posts = [e for e in order if e.method == "POST"]
            await session.reserve_rids(len(posts))
            for entry in order:
                if entry.method == "DELETE":
                    results[entry.index] = await self._run(session, ctx, entry)
            mapping, assigned = await self._assign_ids(session, ctx, entries, posts, results)
            conditional: set[str] = set()
            for entry in entries:
                if entry.resource is not None:
                    _collect_conditional_refs(entry.resource, conditional)
            for ref in sorted(conditional):
                mapping[ref] = await self._resolve_conditional(session, ctx, ref)
            if mapping:
                for entry in entries:
                    if entry.resource is not None:
                        entry.resource = _rewrite(entry.resource, mapping)
            for entry in entries:
                dangling = _dangling_urns(entry.resource)
                if dangling:
                    raise bad_request(
                        f"Bundle.entry[{entry.index}] refers to {dangling}, which is the fullUrl of no entry",
                        expression=f"Bundle.entry[{entry.index}].resource",
                    )
            for entry in order:
                if entry.index in results:
                    continue
                if entry.method == "POST":
                    results[entry.index] = await self._guard(
                        entry,
                        self.service.create(
                            session, ctx, entry.path, entry.resource, assigned_id=assigned[entry.index]
                        ),
                    )
                else:
                    results[entry.index] = await self._run(session, ctx, entry)
            responses = [results[e.index] for e in entries]
            if before_commit is not None:
                await before_commit(session, responses)
            await session.flush()
        return responses

    async def _assign_ids(
        self,
        session: StoreSession,
        ctx: RequestContext,
        entries: list[_Entry],
        posts: list[_Entry],
        results: dict[int, dict[str, Any]],
    ) -> tuple[dict[str, str], dict[int, str]]:
        mapping: dict[str, str] = {}
        assigned: dict[int, str] = {}
        for entry in posts:
            res_type = entry.path
            self.service.check_type(res_type)
            if entry.if_none_exist:
                outcome = await self._guard(entry, self._existing(session, ctx, res_type, entry.if_none_exist))
                if outcome is not None:
                    results[entry.index] = outcome
                    stored = outcome["_stored"]
                    if entry.full_url:
                        mapping[entry.full_url] = f"{res_type}/{stored.res_id}"
                    continue
            new_id = self.store.new_id()
            assigned[entry.index] = new_id
            if entry.full_url:
                mapping[entry.full_url] = f"{res_type}/{new_id}"
        for entry in entries:
            if entry.method != "PUT" or not entry.full_url or not entry.full_url.startswith("urn:"):
                continue
            if "/" in entry.path:
                mapping[entry.full_url] = entry.path
            elif entry.query:  # conditional update: the match, or the id the created resource will get
                mapping[entry.full_url] = await self._guard(entry, self._conditional_target(session, ctx, entry))
        for result in results.values():
            result.pop("_stored", None)
        return mapping, assigned

    async def _conditional_target(self, session: StoreSession, ctx: RequestContext, entry: _Entry) -> str:
        """Type/id a conditional PUT will write: its single match, else a new id given to the resource now."""
        res_type = entry.path
        decision = self.service.policy.decide(ctx, Action("update", res_type))
        matches = await self.service.find(session, ctx, res_type, entry.query, 2, decision)
        if len(matches) > 1:
            raise precondition_failed(f"the conditional update criteria match more than one {res_type}")
        if matches:
            return f"{res_type}/{matches[0].res_id}"
        assert entry.resource is not None
        if not isinstance(entry.resource.get("id"), str):
            entry.resource = {**entry.resource, "id": self.store.new_id()}
        return f"{res_type}/{entry.resource['id']}"

    async def _existing(
        self, session: StoreSession, ctx: RequestContext, res_type: str, criteria: str
    ) -> dict[str, Any] | None:
        query = parse_qsl(criteria.split("?", 1)[-1], keep_blank_values=True)
        decision = self.service.policy.decide(ctx, Action("create", res_type))
        matches = await self.service.find(session, ctx, res_type, query, 2, decision)
        if len(matches) > 1:
            raise precondition_failed(f"ifNoneExist '{criteria}' matches more than one {res_type}")
        if not matches:
            return None
        response = self._response(self.service.write_outcome(ctx, matches[0], 200))
        response["_stored"] = matches[0]
        return response

    async def _resolve_conditional(self, session: StoreSession, ctx: RequestContext, ref: str) -> str:
        res_type, criteria = ref.split("?", 1)
        query = parse_qsl(criteria, keep_blank_values=True)
        # resolved among what the caller may search; a type it may not search resolves to nothing
        decision = self.service.policy.decide(ctx, Action("search-type", res_type), required=False)
        matches = await self.service.find(session, ctx, res_type, query, 2, decision)
        if not matches:
            raise not_found(f"the conditional reference '{ref}' matches no resource")
        if len(matches) > 1:
            raise precondition_failed(f"the conditional reference '{ref}' matches more than one resource")
        return f"{res_type}/{matches[0].res_id}"

    async def _run(self, session: StoreSession, ctx: RequestContext, entry: _Entry) -> dict[str, Any]:
        return await self._guard(
            entry,
            self.dispatch(session, ctx, entry.method, entry.path, entry.query, entry.headers, entry.resource),
        )

    async def _guard(self, entry: _Entry, pending: Awaitable[Any]) -> Any:
        """Await an entry's work; a failure names the entry and aborts the transaction."""
        try:
            result = await pending
        except FhirError as exc:
            prefix = f"Bundle.entry[{entry.index}] ({entry.method} {entry.url}): "
            issues = [
                Issue(
                    i.code,
                    prefix + i.diagnostics,
                    i.severity,
                    i.expression or (f"Bundle.entry[{entry.index}]",),
                    i.details_code,
                )
                for i in exc.issues
            ]
            raise FhirError(exc.status, issues, exc.headers) from exc
        if isinstance(result, Outcome):
            _note(result)
            return self._response(result)
        return result

    @staticmethod
    def _response(outcome: Outcome) -> dict[str, Any]:
        response: dict[str, Any] = {"status": _STATUS_TEXT.get(outcome.status, str(outcome.status))}
        stored = outcome.stored
        if "Location" in outcome.headers:
            response["location"] = outcome.headers["Location"]
        if stored is not None:
            response["etag"] = stored.etag
            response["lastModified"] = micros_to_instant(stored.last_updated)
        entry: dict[str, Any] = {}
        if stored is not None and not stored.deleted:
            entry["fullUrl"] = outcome.headers.get("Location", "").split("/_history/")[0] or None
        if isinstance(outcome.body, bytes):
            entry["resource"] = raw(outcome.body)
        elif isinstance(outcome.body, dict):
            if outcome.body.get("resourceType") == "OperationOutcome" and outcome.status >= 200 and stored is not None:
                response["outcome"] = outcome.body
            else:
                entry["resource"] = outcome.body
        entry["response"] = response
        return {k: v for k, v in entry.items() if v is not None}

    # ------------------------------------------------------------------ batch
    async def _batch(self, ctx: RequestContext, entries: list[_Entry]) -> list[dict[str, Any]]:
        results: dict[int, dict[str, Any]] = {}
        touched = _TOUCHED.get()
        for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
            noted = len(touched) if touched is not None else 0
            try:
                async with self.store.database.transaction() as conn:
                    session = self.store.session(conn, ctx.caller)
                    if entry.method == "POST":
                        outcome = await self.service.create(
                            session, ctx, entry.path, entry.resource, if_none_exist=entry.if_none_exist
                        )
                        _note(outcome)
                        results[entry.index] = self._response(outcome)
                    else:
                        results[entry.index] = await self._run(session, ctx, entry)
                    await session.flush()
            except FhirError as exc:
                if touched is not None:  # the entry's transaction rolled back: it touched nothing
                    del touched[noted:]
                results[entry.index] = {"response": {"status": str(exc.status), "outcome": exc.outcome()}}
        return [results[e.index] for e in entries]
