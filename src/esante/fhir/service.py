"""The FHIR interactions as use cases over a :class:`StoreSession`, independent of HTTP.

The REST router (single requests) and the bundle processor (batch/transaction entries) both call these
functions, so an interaction behaves identically wherever it arrives. Each one asks the policy decision point
first (``policy.decide``: 403 when denied), applies the decision's restriction to what it reads (in SQL for
searches; on the loaded resource for reads: an invisible resource is reported as absent, 404) and to what it
writes, and validates every resource it writes.
Specifications: https://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from esante.fhir.context import Outcome, RequestContext
from esante.fhir.definitions import Registry
from esante.fhir.errors import (
    FhirError,
    bad_request,
    error,
    gone,
    not_found,
    precondition_failed,
)
from esante.fhir.json import raw
from esante.fhir.model import StoredResource
from esante.fhir.patch import apply_fhirpath_patch, apply_json_patch
from esante.fhir.search.compile import Cond
from esante.fhir.search.execute import execute_search
from esante.fhir.search.parse import SearchRequest, parse_search
from esante.fhir.search.plan_choice import scoped_to_one_patient
from esante.fhir.search.summary import apply_summary
from esante.fhir.store import StoreSession, check_if_match
from esante.fhir.validation import validate_resource
from esante.security.pdp.decision import Decision
from esante.security.pdp.enforce import PolicyEnforcer, forbidden_error
from esante.security.policy import Action

Query = Sequence[tuple[str, str]]


@dataclass
class FhirService:
    """Interactions, wired with the registry, the policy and paging limits."""

    registry: Registry
    policy: PolicyEnforcer
    default_page_size: int = 20
    max_page_size: int = 1000

    # ------------------------------------------------------------------ helpers
    def check_type(self, res_type: str) -> None:
        if not self.registry.is_resource_type(res_type):
            raise not_found(f"unknown resource type '{res_type}'")

    def check_writable(self, res_type: str) -> None:
        """A known type that the API may write: AuditEvents are appended by the audit trail alone (405)."""
        self.check_type(res_type)
        if res_type in APPEND_ONLY:
            raise error(405, "not-supported", f"{res_type} is append-only: only the server writes it")

    def location(self, ctx: RequestContext, stored: StoredResource) -> str:
        return f"{ctx.base_url}/{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"

    def write_outcome(self, ctx: RequestContext, stored: StoredResource, status: int) -> Outcome:
        """Status, ETag, Last-Modified, Location and the body the Prefer header asks for."""
        headers = {
            "ETag": stored.etag,
            "Last-Modified": _http_date(stored.last_updated),
            "Location": self.location(ctx, stored),
            "Content-Location": self.location(ctx, stored),
        }
        if ctx.prefer_return == "minimal":
            return Outcome(status, None, headers, stored)
        if ctx.prefer_return == "OperationOutcome":
            verb = "created" if status == 201 else "updated"
            body: dict[str, Any] = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "information",
                        "code": "informational",
                        "diagnostics": f"{stored.res_type}/{stored.res_id} {verb} as version {stored.version_id}",
                    }
                ],
            }
            return Outcome(status, body, headers, stored)
        return Outcome(status, stored.content, headers, stored)

    def read_outcome(self, stored: StoredResource, *, content_location: str | None = None) -> Outcome:
        headers = {"ETag": stored.etag, "Last-Modified": _http_date(stored.last_updated)}
        if content_location:
            headers["Content-Location"] = content_location
        return Outcome(200, stored.content, headers, stored)

    async def _visible(self, session: StoreSession, decision: Decision, stored: StoredResource) -> None:
        if not await self.policy.visible(session, decision, stored):
            # existence itself may be sensitive: an invisible resource is reported as absent
            raise not_found(f"{stored.res_type}/{stored.res_id} is not known")

    async def _store_checked(
        self, session: StoreSession, decision: Decision, body: dict[str, Any], write: Any
    ) -> StoredResource:
        """Write ``body`` (``write`` does it) only within the decision's restriction: refused before the write
        when memory can tell, else checked in SQL after it, inside the same transaction (which a 403 rolls back)."""
        verdict = await self.policy.check_content(session, decision, body)
        if verdict is False:
            raise forbidden_error(_outside(decision))
        stored: StoredResource = await write()
        if verdict is None and not await self.policy.check_written(session, decision, stored):
            raise forbidden_error(_outside(decision))
        return stored

    def _prepare_body(self, resource: dict[str, Any], res_type: str) -> dict[str, Any]:
        """Validate, then take a top-level copy whose server-owned meta fields are cleared.

        The parsed request body belongs to this request alone, so nested values are shared, not deep-copied
        (a deep copy cost more than validation's walker on the ingest path); only ``meta`` is copied because
        the store rewrites it.
        """
        validate_resource(resource, expected_type=res_type)
        body = dict(resource)
        meta = body.get("meta")
        if isinstance(meta, dict):
            body["meta"] = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        return body

    # ------------------------------------------------------------------ read
    async def read(self, session: StoreSession, ctx: RequestContext, res_type: str, res_id: str) -> Outcome:
        self.check_type(res_type)
        decision = self.policy.decide(ctx, Action("read", res_type, res_id))
        stored = await session.read(res_type, res_id)
        if stored is None:
            raise not_found(f"{res_type}/{res_id} is not known")
        await self._visible(session, decision, stored)
        if stored.deleted:
            raise _deleted(stored)
        return self.read_outcome(stored, content_location=self.location(ctx, stored))

    async def vread(
        self, session: StoreSession, ctx: RequestContext, res_type: str, res_id: str, version: str
    ) -> Outcome:
        self.check_type(res_type)
        decision = self.policy.decide(ctx, Action("vread", res_type, res_id))
        if not version.isdigit():
            raise not_found(f"{res_type}/{res_id} has no version '{version}'")
        stored = await session.vread(res_type, res_id, int(version))
        if stored is None:
            raise not_found(f"{res_type}/{res_id} has no version {version}")
        await self._visible(session, decision, stored)
        if stored.deleted:
            raise _deleted(stored)
        return self.read_outcome(stored, content_location=self.location(ctx, stored))

    # ------------------------------------------------------------------ create
    async def create(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str,
        resource: dict[str, Any],
        *,
        if_none_exist: str | None = None,
        assigned_id: str | None = None,
    ) -> Outcome:
        """Create; ``assigned_id`` is a server id reserved earlier (transaction urn:uuid resolution)."""
        self.check_writable(res_type)
        decision = self.policy.decide(ctx, Action("create", res_type))
        body = self._prepare_body(resource, res_type)
        if if_none_exist:
            matches = await self.find(session, ctx, res_type, parse_query_string(if_none_exist), 2, decision)
            if len(matches) > 1:
                raise precondition_failed(
                    f"If-None-Exist '{if_none_exist}' matches more than one {res_type}; nothing created"
                )
            if matches:
                return self.write_outcome(ctx, matches[0], 200)
        body.pop("id", None)  # R4: the server ignores an id supplied on create

        async def write() -> StoredResource:
            return await session.create(body, res_id=assigned_id, client_id=False)

        stored = await self._store_checked(session, decision, body, write)
        return self.write_outcome(ctx, stored, 201)

    # ------------------------------------------------------------------ update
    async def update(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str,
        res_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> Outcome:
        self.check_writable(res_type)
        body_id = resource.get("id")
        if body_id is None:
            raise bad_request("the resource must carry an id equal to the id in the URL", expression="id")
        if body_id != res_id:
            raise bad_request(
                f"the resource id '{body_id}' does not match the id in the URL '{res_id}'",
                expression=f"{res_type}.id",
            )
        decision = self.policy.decide(ctx, Action("update", res_type, res_id))
        body = self._prepare_body(resource, res_type)
        current = await session.read(res_type, res_id)
        if current is None or current.deleted:  # update as create: the caller must be allowed to create too
            decision = self.policy.decide(ctx, Action("create", res_type))
        if current is not None and not current.deleted:
            await self._visible(session, decision, current)
        check_if_match(if_match, current)
        if current is None:

            async def create() -> StoredResource:
                return await session.create(body, res_id=res_id)

            stored = await self._store_checked(session, decision, body, create)
            return self.write_outcome(ctx, stored, 201)
        existing = current

        async def update() -> StoredResource:
            return await session.update(body, existing)

        stored = await self._store_checked(session, decision, body, update)
        return self.write_outcome(ctx, stored, 200 if not current.deleted else 201)

    async def conditional_update(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str,
        query: Query,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
    ) -> Outcome:
        self.check_writable(res_type)
        validate_resource(resource, expected_type=res_type)
        decision = self.policy.decide(ctx, Action("update", res_type))
        matches = await self.find(session, ctx, res_type, query, 2, decision)
        if len(matches) > 1:
            raise precondition_failed(f"the conditional update criteria match more than one {res_type}")
        body_id = resource.get("id")
        if not matches:
            if body_id:
                return await self.update(session, ctx, res_type, body_id, resource, if_match=if_match)
            return await self.create(session, ctx, res_type, resource)
        match = matches[0]
        if body_id is not None and body_id != match.res_id:
            raise bad_request(
                f"the resource id '{body_id}' differs from the matched {res_type}/{match.res_id}",
                expression=f"{res_type}.id",
            )
        body = dict(resource, id=match.res_id)
        return await self.update(session, ctx, res_type, match.res_id, body, if_match=if_match)

    # ------------------------------------------------------------------ patch
    async def patch(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str,
        res_id: str,
        patch_body: Any,
        content_type: str,
        *,
        if_match: str | None = None,
    ) -> Outcome:
        self.check_writable(res_type)
        decision = self.policy.decide(ctx, Action("patch", res_type, res_id))
        current = await session.read(res_type, res_id)
        if current is None:
            raise not_found(f"{res_type}/{res_id} is not known")
        await self._visible(session, decision, current)
        if current.deleted:
            raise _deleted(current)
        check_if_match(if_match, current)
        assert current.content is not None
        original = orjson.loads(current.content)
        if "json-patch" in content_type:
            patched = apply_json_patch(original, patch_body)
        else:
            if not isinstance(patch_body, dict) or patch_body.get("resourceType") != "Parameters":
                raise bad_request(
                    "a FHIRPath Patch body must be a Parameters resource "
                    "(or send application/json-patch+json for JSON Patch)"
                )
            patched = apply_fhirpath_patch(original, patch_body)
        if patched.get("resourceType") != res_type or patched.get("id") != res_id:
            raise FhirError(
                422,
                [
                    _issue(
                        "processing",
                        "a patch may not change the resource type or id",
                        f"{res_type}.id",
                    )
                ],
            )
        body = self._prepare_body(patched, res_type)
        existing = current

        async def write() -> StoredResource:
            return await session.update(body, existing, method="PATCH")

        stored = await self._store_checked(session, decision, body, write)
        return self.write_outcome(ctx, stored, 200)

    async def conditional_patch(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str,
        query: Query,
        patch_body: Any,
        content_type: str,
        *,
        if_match: str | None = None,
    ) -> Outcome:
        self.check_writable(res_type)
        decision = self.policy.decide(ctx, Action("patch", res_type))
        matches = await self.find(session, ctx, res_type, query, 2, decision)
        if not matches:
            raise not_found(f"no {res_type} matches the conditional patch criteria")
        if len(matches) > 1:
            raise precondition_failed(f"the conditional patch criteria match more than one {res_type}")
        return await self.patch(session, ctx, res_type, matches[0].res_id, patch_body, content_type, if_match=if_match)

    # ------------------------------------------------------------------ delete
    async def delete(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str,
        res_id: str,
        *,
        if_match: str | None = None,
    ) -> Outcome:
        self.check_writable(res_type)
        decision = self.policy.decide(ctx, Action("delete", res_type, res_id))
        current = await session.read(res_type, res_id)
        if current is not None and not current.deleted:
            await self._visible(session, decision, current)
        check_if_match(if_match, current)
        if current is None or current.deleted:
            # R4: deleting a missing or already-deleted resource succeeds (idempotent)
            return Outcome(204, None, {})
        stored = await session.delete(current)
        return Outcome(204, None, {"ETag": stored.etag}, stored, touched=[current])

    async def conditional_delete(
        self, session: StoreSession, ctx: RequestContext, res_type: str, query: Query
    ) -> Outcome:
        """Delete the single match; several matches → 412 (we never mass-delete health data by criteria)."""
        self.check_writable(res_type)
        if not any(not name.startswith("_") or name in _CONDITIONAL_ALLOWED for name, _ in query):
            raise precondition_failed("a conditional delete needs search criteria")
        decision = self.policy.decide(ctx, Action("delete", res_type))
        matches = await self.find(session, ctx, res_type, query, 2, decision)
        if len(matches) > 1:
            raise precondition_failed(f"the conditional delete criteria match more than one {res_type}")
        if not matches:
            return Outcome(204, None, {})
        return await self.delete(session, ctx, res_type, matches[0].res_id)

    # ------------------------------------------------------------------ search
    def parse(self, ctx: RequestContext, res_type: str | None, query: Query) -> SearchRequest:
        return parse_search(
            res_type,
            query,
            self.registry,
            strict=ctx.strict_handling,
            default_count=self.default_page_size,
            max_count=self.max_page_size,
            base_url=ctx.base_url,
        )

    async def find(
        self, session: StoreSession, ctx: RequestContext, res_type: str, query: Query, limit: int, decision: Decision
    ) -> list[StoredResource]:
        """Matches of a conditional interaction's criteria (strict: an unknown parameter is an error), among the
        resources ``decision`` (the write's own) lets the caller touch.

        Takes the criteria's lock first, so concurrent conditional writes with the same criteria are serial.
        """
        await session.lock_condition(res_type, urlencode(list(query)))
        strict_ctx = dataclasses.replace(ctx, strict_handling=True)
        request = self.parse(strict_ctx, res_type, [*query, ("_count", str(limit)), ("_total", "none")])
        request.filters = self.policy.secure_filters(ctx, request.filters)
        await session.flush()
        await session.plan_searches_per_execution()
        result = await execute_search(session.conn, request, access=self.policy.cond(decision))
        return result.matches

    async def search(
        self,
        session: StoreSession,
        ctx: RequestContext,
        res_type: str | None,
        query: Query,
        *,
        compartment: tuple[str, str] | None = None,
    ) -> Outcome:
        if res_type is not None:
            self.check_type(res_type)
        action = Action("search-type" if res_type else "search-system", res_type)
        if res_type is not None:
            decisions = {res_type: self.policy.decide(ctx, action)}
        request = self.parse(ctx, res_type, query)
        access: Cond | None
        if res_type is None:
            types = request.res_types or tuple(self.registry.resource_types)
            decisions = self.policy.decide_types(ctx, action, types)
            access = self.policy.types_cond(decisions, some_denied=len(decisions) < len(types))
        else:
            access = self.policy.cond(decisions[res_type])
        counting = [d for d in decisions.values() if d.count_only]
        if counting and request.summary != "count":
            raise forbidden_error(
                dataclasses.replace(counting[0], reason=f"{ctx.caller.kind} may only count (use _summary=count)")
            )
        request.filters = self.policy.secure_filters(ctx, request.filters)
        await session.flush()
        await session.plan_searches_per_execution()
        one_patient = scoped_to_one_patient(
            query, in_patient_compartment=compartment is not None and compartment[0] == "Patient"
        )
        result = await execute_search(
            session.conn, request, compartment=compartment, access=access, one_patient=one_patient
        )
        if result.included:
            result.included = await self.policy.filter_visible(
                session, lambda t: self._include_decision(ctx, t), result.included
            )
        path = f"{ctx.base_url}/{res_type}" if res_type else ctx.base_url
        if compartment is not None:
            path = f"{ctx.base_url}/{compartment[0]}/{compartment[1]}/{res_type}"

        def link(relation: str, offset: int) -> dict[str, str]:
            params = [*result.link_params]
            if offset:
                params.append(("_offset", str(offset)))
            return {"relation": relation, "url": f"{path}?{urlencode(params)}" if params else path}

        links = [link("self", result.offset)]
        if result.has_next:
            links.append(link("next", result.offset + result.count))
        if result.offset > 0:
            links.append(link("previous", max(0, result.offset - result.count)))
        entries: list[dict[str, Any]] = []
        touched: list[StoredResource] = []
        for stored, mode in [(m, "match") for m in result.matches] + [(i, "include") for i in result.included]:
            assert stored.content is not None
            touched.append(stored)
            content: Any = raw(stored.content)
            if request.summary not in (None, "false") or request.elements:
                content = apply_summary(orjson.loads(stored.content), request, self.registry)
            entries.append(
                {
                    "fullUrl": f"{ctx.base_url}/{stored.res_type}/{stored.res_id}",
                    "resource": content,
                    "search": {"mode": mode},
                }
            )
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        if result.total is not None:
            bundle["total"] = result.total
        bundle["link"] = links
        if request.summary != "count":
            bundle["entry"] = entries
        return Outcome(200, bundle, {}, touched=touched)

    def _include_decision(self, ctx: RequestContext, res_type: str) -> Decision | None:
        """An included resource is shown when the caller may search its type (never to count-only callers)."""
        decision = self.policy.pdp.decide(ctx.caller, Action("search-type", res_type))
        return None if decision.count_only else decision


def _outside(decision: Decision) -> Decision:
    """The decision, worded for a write whose content falls outside what it allows."""
    words = {"c": "create", "u": "update", "d": "delete"}.get(decision.letter, decision.letter)
    reason = f"this {decision.resource_type} is outside what the caller may {words} ({decision.reason})"
    return dataclasses.replace(decision, reason=reason)


APPEND_ONLY = frozenset({"AuditEvent"})  # written by the audit trail (security/audit_trail.py), never the API
_CONDITIONAL_ALLOWED = frozenset({"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_has"})


def _issue(code: str, text: str, expression: str) -> Any:
    from esante.fhir.errors import Issue

    return Issue(code=code, diagnostics=text, expression=(expression,))


def _deleted(stored: StoredResource) -> FhirError:
    err = gone(f"{stored.res_type}/{stored.res_id} was deleted (version {stored.version_id})")
    err.headers["ETag"] = stored.etag
    return err


def parse_query_string(text: str) -> list[tuple[str, str]]:
    """Split ``a=1&b=2`` (the part after ``?`` if a URL is given) keeping repeated keys and blank values."""
    from urllib.parse import parse_qsl

    query = text.split("?", 1)[1] if "?" in text else text
    return parse_qsl(query, keep_blank_values=True)


def _http_date(micros: int) -> str:
    from email.utils import formatdate

    return formatdate(micros / 1_000_000, usegmt=True)
