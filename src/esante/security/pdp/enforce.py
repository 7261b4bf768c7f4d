"""Enforcement of decisions: in SQL for searches and history, on loaded resources for reads, includes and writes.

The FHIR service calls :class:`PolicyEnforcer` on every path; nothing else decides. Each decision is noted in the
request context (``RequestContext.decisions``) so the audit trail records what was decided and why.

A restriction becomes a search condition (``to_cond``), so a search's WHERE clause, its total and its pages only
ever see permitted rows. On a loaded resource the check runs in memory when it can (compartment membership from the
resource's own references, a service's ``SqlCondition.check``), else as one SQL statement over the resources'
rows (batched per type).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from esante.fhir.context import RequestContext
from esante.fhir.definitions import Registry
from esante.fhir.errors import FhirError, Issue
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationDefinition
from esante.fhir.search.compile import (
    FALSE,
    TRUE,
    AllCond,
    AnyCond,
    ChainCond,
    ColumnCond,
    Cond,
    HasCond,
    HierarchyCond,
    NotCond,
    Pred,
    Renderer,
    lit,
)
from esante.fhir.search.execute import patients_cond
from esante.fhir.store import StoreSession
from esante.security.audit import patients_of
from esante.security.pdp.decision import Decision
from esante.security.pdp.engine import PolicyDecisionPoint
from esante.security.pdp.restrictions import (
    AllOf,
    AnyOf,
    Everything,
    InCompartment,
    MatchesQuery,
    Not,
    Nothing,
    Restriction,
    SqlCondition,
    ViaSecurityContext,
)
from esante.security.policy import Action


def forbidden_error(decision: Decision) -> FhirError:
    """403 with an OperationOutcome naming what was refused (and, for scopes, RFC 6750 insufficient_scope)."""
    err = FhirError(403, [Issue("forbidden", f"access denied: {decision.reason}")])
    if decision.scope_denied:
        scope = f', scope="{decision.required_scope}"' if decision.required_scope else ""
        err.headers["WWW-Authenticate"] = f'Bearer realm="esante", error="insufficient_scope"{scope}'
    return err


class PolicyEnforcer:
    """The service's handle on the decision point."""

    def __init__(self, pdp: PolicyDecisionPoint, registry: Registry) -> None:
        self.pdp = pdp
        self.registry = registry

    # ---------------------------------------------------------------------------------------------- deciding
    def decide(
        self,
        ctx: RequestContext,
        action: Action,
        resource_type: str | None = None,
        *,
        letter: str | None = None,
        required: bool = True,
    ) -> Decision:
        """Decide and note the decision; ``required`` → a denial raises 403."""
        decision = self.pdp.decide(ctx.caller, action, resource_type, letter)
        ctx.decisions.append(decision)
        if required and not decision.allowed:
            raise forbidden_error(decision)
        return decision

    def decide_types(self, ctx: RequestContext, action: Action, types: Sequence[str]) -> dict[str, Decision]:
        """Per-type decisions of a system-level search or history (denied types are simply left out).

        All denied → 403 naming the first refusal (a system search that can find nothing is refused, not empty).
        """
        decisions = {t: self.pdp.decide(ctx.caller, action, t) for t in types}
        allowed = {t: d for t, d in decisions.items() if d.allowed}
        if not allowed:
            first = next(iter(decisions.values()), None)
            if first is None:
                raise FhirError(403, [Issue("forbidden", "access denied")])
            ctx.decisions.append(first)
            raise forbidden_error(first)
        ctx.decisions.extend(allowed.values())
        return allowed

    def authorize_operation(
        self, ctx: RequestContext, operation: OperationDefinition, res_type: str | None, res_id: str | None
    ) -> None:
        """An operation needs an authenticated caller and, when it declares one, the permission it names on the
        resource type (system-level operations naming a permission need it on at least one type)."""
        action = Action("operation", res_type, res_id, operation.name)
        if ctx.caller.kind == "anonymous" and not operation.public:
            raise FhirError(
                403, [Issue("forbidden", f"access denied: ${operation.name} needs an authenticated caller")]
            )
        if operation.requires is None:
            return
        if res_type is not None:
            self.decide(ctx, action, res_type, letter=operation.requires)
            return
        for candidate in operation.resource_types or self.registry.resource_types:
            decision = self.pdp.decide(ctx.caller, action, candidate, operation.requires)
            if decision.allowed:
                ctx.decisions.append(decision)
                return
        raise FhirError(403, [Issue("forbidden", f"access denied: this caller may not invoke ${operation.name}")])

    # ---------------------------------------------------------------------------------------------- SQL
    def cond(self, decision: Decision) -> Cond | None:
        """The search condition of ``decision`` (None: unrestricted)."""
        if isinstance(decision.restriction, Everything):
            return None
        return self.to_cond(decision.restriction, decision.resource_type)

    def types_cond(self, decisions: dict[str, Decision], some_denied: bool) -> Cond | None:
        """One condition for several types, each with its own restriction (``decisions`` holds the allowed types;
        ``some_denied``: other types were searched too and must be excluded). None: no restriction at all."""
        plain = [t for t, d in decisions.items() if isinstance(d.restriction, Everything)]
        if not some_denied and len(plain) == len(decisions):
            return None
        parts: list[Cond] = []
        if plain:
            parts.append(ColumnCond(Pred("{x}.res_type IN (" + ", ".join(lit(t) for t in plain) + ")")))
        for res_type, decision in decisions.items():
            if res_type in plain:
                continue
            type_pred = ColumnCond(Pred(f"{{x}}.res_type = {lit(res_type)}"))
            parts.append(AllCond((type_pred, self.to_cond(decision.restriction, res_type))))
        return AnyCond(tuple(parts)) if parts else ColumnCond(FALSE)

    def to_cond(self, restriction: Restriction, res_type: str) -> Cond:
        if isinstance(restriction, Everything):
            return ColumnCond(TRUE)
        if isinstance(restriction, Nothing | ViaSecurityContext):
            return ColumnCond(FALSE)
        if isinstance(restriction, InCompartment):
            return self._compartment(res_type, restriction.patients)
        if isinstance(restriction, MatchesQuery):
            return self._query(res_type, restriction.query)
        if isinstance(restriction, SqlCondition):
            return ColumnCond(Pred(restriction.sql.replace("{r}", "{x}"), restriction.params))
        if isinstance(restriction, AllOf):
            return AllCond(tuple(self.to_cond(p, res_type) for p in restriction.parts))
        if isinstance(restriction, AnyOf):
            return AnyCond(tuple(self.to_cond(p, res_type) for p in restriction.parts))
        if isinstance(restriction, Not):
            return NotCond(self.to_cond(restriction.part, res_type))
        raise TypeError(f"unknown restriction {restriction!r}")  # pragma: no cover

    def _compartment(self, res_type: str, patients: tuple[str, ...]) -> Cond:
        return patients_cond(self.registry, (res_type,), patients)

    def _query(self, res_type: str, query: tuple[tuple[str, str], ...]) -> Cond:
        from esante.fhir.search.parse import parse_search

        try:
            request = parse_search(res_type, list(query), self.registry, strict=True)
        except FhirError:
            return ColumnCond(FALSE)  # a scope query the server cannot evaluate grants nothing
        return AllCond(tuple(request.filters)) if request.filters else ColumnCond(TRUE)

    def secure_filters(self, ctx: RequestContext, filters: Iterable[Cond], via: Action | None = None) -> list[Cond]:
        """Chains and ``_has`` only look through resources the caller may search too.

        Without this, ``Patient?_has:Observation:subject:code=X`` would tell who has an Observation coded X to a
        caller who may not see those Observations, and a chain would reveal the referenced resources' values.
        Likewise ``:above``/``:below`` walk a hierarchy only through resources the caller may search.
        ``via``: the action the other types are searched for (default a search of the type; an operation that
        searches on its caller's behalf names itself, e.g. the public directory).
        """
        return [self._secure(ctx, cond, via) for cond in filters]

    def _search_decision(self, ctx: RequestContext, res_type: str, via: Action | None) -> Decision:
        return self.pdp.decide(ctx.caller, via or Action("search-type", res_type), res_type, "s")

    def _secure(self, ctx: RequestContext, cond: Cond, via: Action | None = None) -> Cond:
        if isinstance(cond, ChainCond):
            inner = self._secure(ctx, cond.inner, via)
            decisions = {t: self._search_decision(ctx, t, via) for t in cond.target_types}
            allowed = {t: d for t, d in decisions.items() if d.allowed}
            ctx.decisions.extend(allowed.values())
            if not allowed:
                return ColumnCond(FALSE)
            access = self.types_cond(allowed, some_denied=len(allowed) < len(decisions))
            return dataclasses.replace(cond, inner=inner if access is None else AllCond((inner, access)))
        if isinstance(cond, HasCond):
            inner = self._secure(ctx, cond.inner, via)
            decision = self._search_decision(ctx, cond.src_type, via)
            ctx.decisions.append(decision)
            if not decision.allowed:
                return ColumnCond(FALSE)
            access = self.cond(decision)
            return dataclasses.replace(cond, inner=inner if access is None else AllCond((inner, access)))
        if isinstance(cond, HierarchyCond):  # the walk goes only through resources the caller may search
            decision = self._search_decision(ctx, cond.target_type, via)
            if not decision.allowed:
                return dataclasses.replace(cond, walk=ColumnCond(FALSE))
            ctx.decisions.append(decision)
            walk = self.cond(decision)
            return cond if walk is None else dataclasses.replace(cond, walk=walk)
        if isinstance(cond, AllCond | AnyCond):
            return dataclasses.replace(cond, parts=tuple(self._secure(ctx, p, via) for p in cond.parts))
        if isinstance(cond, NotCond):
            return NotCond(self._secure(ctx, cond.part, via))
        return cond

    # ---------------------------------------------------------------------------------------------- loaded resources
    async def visible(self, session: StoreSession, decision: Decision, stored: StoredResource) -> bool:
        """Whether one loaded resource (any version) is within ``decision``."""
        return bool(await self.filter_visible(session, lambda _t: decision, [stored]))

    async def filter_visible(
        self,
        session: StoreSession,
        decision_for: Callable[[str], Decision | None],
        resources: Sequence[StoredResource],
    ) -> list[StoredResource]:
        """The resources (in their order) that their type's decision permits; ``decision_for`` → None: denied."""
        verdicts: list[bool | None] = []
        undecided: dict[str, list[int]] = {}
        decisions: dict[str, Decision | None] = {}
        for i, stored in enumerate(resources):
            if stored.res_type not in decisions:
                decisions[stored.res_type] = decision_for(stored.res_type)
            decision = decisions[stored.res_type]
            if decision is None or not decision.allowed:
                verdicts.append(False)
                continue
            content = orjson.loads(stored.content) if stored.content is not None else None
            verdict = await self._verdict(session, decision.restriction, stored, content)
            verdicts.append(verdict)
            if verdict is None:
                undecided.setdefault(stored.res_type, []).append(i)
        for res_type, positions in undecided.items():
            decision = decisions[res_type]
            assert decision is not None
            rids = sorted({resources[i].rid for i in positions})
            passed = await self._sql_visible(session, decision.restriction, res_type, rids)
            for i in positions:
                verdicts[i] = resources[i].rid in passed
        return [stored for stored, ok in zip(resources, verdicts, strict=True) if ok]

    async def check_content(self, session: StoreSession, decision: Decision, resource: dict[str, Any]) -> bool | None:
        """A resource about to be written: within ``decision``? (None: only SQL can tell, after the write)."""
        return await self._verdict(session, decision.restriction, None, resource)

    async def check_written(self, session: StoreSession, decision: Decision, stored: StoredResource) -> bool:
        """A resource just written (flushed, same transaction): within ``decision``, by SQL on its index rows?"""
        await session.flush()
        return stored.rid in await self._sql_visible(session, decision.restriction, stored.res_type, [stored.rid])

    async def _verdict(
        self,
        session: StoreSession,
        restriction: Restriction,
        stored: StoredResource | None,
        content: dict[str, Any] | None,
    ) -> bool | None:
        """True/False when decidable without SQL, else None."""
        if isinstance(restriction, Everything):
            return True
        if isinstance(restriction, Nothing):
            return False
        if content is None:  # a deletion version: nothing to show the restricted caller
            return False
        if isinstance(restriction, InCompartment):
            mine = set(restriction.patients)
            return any(p.partition("/")[2] in mine for p in patients_of(self.registry, content))
        if isinstance(restriction, SqlCondition):
            return restriction.check(content) if restriction.check is not None else None
        if isinstance(restriction, ViaSecurityContext):
            return await self._via_security_context(session, content)
        if isinstance(restriction, MatchesQuery):
            return None
        if isinstance(restriction, AllOf | AnyOf):
            results = [await self._verdict(session, p, stored, content) for p in restriction.parts]
            if isinstance(restriction, AllOf):
                return False if False in results else (True if all(results) else None)
            return True if True in results else (False if all(r is False for r in results) else None)
        if isinstance(restriction, Not):
            inner = await self._verdict(session, restriction.part, stored, content)
            return None if inner is None else not inner
        raise TypeError(f"unknown restriction {restriction!r}")  # pragma: no cover

    async def _via_security_context(self, session: StoreSession, content: dict[str, Any]) -> bool:
        context = content.get("securityContext")
        reference = context.get("reference") if isinstance(context, dict) else None
        if not isinstance(reference, str) or reference.count("/") != 1:
            return False
        target_type, target_id = reference.split("/")
        if target_type == "Binary" or not self.registry.is_resource_type(target_type):
            return False
        target = await session.read(target_type, target_id)
        if target is None or target.deleted:
            return False
        return await self.visible(session, self._read_decision(session, target_type), target)

    def _read_decision(self, session: StoreSession, res_type: str) -> Decision:
        caller = session.caller
        from esante.security.policy import Caller

        return self.pdp.decide(caller if isinstance(caller, Caller) else Caller(), Action("read", res_type))

    async def _sql_visible(
        self, session: StoreSession, restriction: Restriction, res_type: str, rids: list[int]
    ) -> set[int]:
        cond = self.to_cond(restriction, res_type)
        text, params = Renderer().render(cond, "r")
        marks = ", ".join("?" * len(rids))
        rows = await session.conn.fetch(
            f"SELECT r.rid FROM resource r WHERE r.is_current AND r.rid IN ({marks}) AND ({text})", [*rids, *params]
        )
        return {int(row[0]) for row in rows}
