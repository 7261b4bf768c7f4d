"""The public directory search: ``GET /fhir/PractitionerRole/$hpd-directory?name=&profession=&specialty=&locality=``.

Patients (and the software that embeds the search) find professionals without logging in, as on the agency's
public directory. The answer is a FHIR ``searchset`` Bundle: the matching PractitionerRoles, with their
Practitioner, Location and Organization included, each cut down to its public elements (:mod:`public_view`).

* **Policy**: the operation has no access token to check, but it still goes through the decision point: the
  :class:`PublicDirectoryRule` grants this operation (and no plain FHIR interaction) on the four types it returns,
  to anyone; every rule's vetoes apply, and the conditions of the decisions enter the SQL (the search itself, its
  chains, its total) and the checks of the included resources. A caller who sends a token is checked like on any
  other request (a bad token is a 401) and their scopes apply.
* **Brake**: callers without a token are limited to ``rate_limit_directory`` searches a minute per network address
  (429 with ``Retry-After``); the count lives in this worker (a reverse proxy should limit too).
* **Audit**: like every FHIR request, each search leaves a BALP AuditEvent (requestor *anonymous* without a
  token) naming the query and the resources returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from esante.db.engine import Connection
from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import FhirError, Issue, bad_request
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.search.compile import FALSE, AllCond, AnyCond, ColumnCond, Cond, NotCond, Pred, where_clause
from esante.fhir.search.execute import execute_search
from esante.fhir.service import FhirService
from esante.hpd.public_query import PAGING, DirectoryQuery, parse_directory_query
from esante.hpd.public_view import PUBLIC_TYPES, public_view
from esante.security.pdp.decision import AccessRequest, Decision, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction
from esante.security.policy import Action
from esante.security.ratelimit import RateLimiter

if TYPE_CHECKING:
    from esante.app import Platform

OPERATION = "hpd-directory"
MATCHED = "PractitionerRole"
NAME_LOOKUP_LIMIT = 2000  # roles a name may match before the search chains instead of listing them


def directory_action(resource_type: str) -> Action:
    """What the operation does with each type it reads, as the decision point sees it."""
    return Action("operation", resource_type, None, OPERATION)


class PublicDirectoryRule:
    """Anyone, with or without a token, may search the public directory through ``$hpd-directory`` (read only,
    the four types the search returns; the operation returns their public elements only)."""

    name = "public-directory-search"
    serves_anonymous = True

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        action = request.action
        if (
            action.interaction == "operation"
            and action.operation == OPERATION
            and request.letter == "s"
            and request.resource_type in PUBLIC_TYPES
        ):
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()


def _code_checks() -> tuple[Any, Any]:
    """Checks of profession and specialty codes against the HPD's code system (None when it is not installed)."""
    try:
        from esante.hpd.codes import professions

        table = professions()
    except (ImportError, OSError):  # pragma: no cover - the code system ships with the package
        return None, None

    def profession(code: str) -> str | None:
        concept = table.get(code)
        if concept is None or concept.parent is not None:
            return f"unknown profession code {code!r} (see CodeSystem {table.url})"
        return None

    def specialty(code: str) -> str | None:
        concept = table.get(code)
        if concept is None or concept.parent is None:
            return f"unknown specialty code {code!r} (see CodeSystem {table.url})"
        return None

    return profession, specialty


def _parameters(call: OperationCall) -> list[tuple[str, str]]:
    """GET: the query as sent; POST: a Parameters resource of ``valueString``/``valueCode``/``valueInteger``."""
    if call.method == "GET":
        return list(call.query)
    body = call.parameters
    if body.get("resourceType") != "Parameters":
        raise bad_request("POST $hpd-directory takes a Parameters resource", expression="Parameters")
    pairs: list[tuple[str, str]] = []
    for i, parameter in enumerate(body.get("parameter") or []):
        values = [v for k, v in parameter.items() if k.startswith("value")] if isinstance(parameter, dict) else []
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or len(values) != 1 or not isinstance(values[0], str | int):
            raise bad_request(
                "each parameter needs a name and one valueString, valueCode or valueInteger",
                expression=f"Parameters.parameter[{i}]",
            )
        pairs.append((name, str(values[0])))
    return pairs


@dataclass
class PublicDirectory:
    """The ``$hpd-directory`` handler."""

    service: FhirService
    limiter: RateLimiter
    per_minute: int

    async def __call__(self, call: OperationCall) -> Outcome:
        ctx = call.ctx
        self._brake(ctx)
        profession, specialty = _code_checks()
        query = parse_directory_query(_parameters(call), check_profession=profession, check_specialty=specialty)
        policy = self.service.policy
        decisions = {
            t: policy.decide(ctx, directory_action(t), t, letter="s", required=t == MATCHED) for t in PUBLIC_TYPES
        }
        strict = dataclasses.replace(ctx, strict_handling=True)
        session = call.session
        await session.flush()
        await session.plan_searches_per_execution()
        named = await self._named(session.conn, strict, query, decisions["Practitioner"]) if query.name else None
        request = self.service.parse(strict, MATCHED, query.search(chain_name=named is None))
        if named is not None:
            request.filters.append(_roles_in(named))
        request.filters += self._extra_conditions(strict, query)
        request.filters = policy.secure_filters(ctx, request.filters, via=directory_action(MATCHED))
        result = await execute_search(session.conn, request, access=policy.cond(decisions[MATCHED]))
        included = await policy.filter_visible(session, lambda t: _allowed(decisions.get(t)), result.included)
        return self._bundle(ctx, query, result.matches, included, result.total, result.has_next)

    async def _named(
        self, conn: Connection, ctx: RequestContext, query: DirectoryQuery, decision: Decision
    ) -> list[int] | None:
        """The roles of the practitioners the name matches (every word in one of their names), looked up first.

        A word inside names (``%mull%``) is no index range and PostgreSQL cannot tell how few names it matches: as a
        chain, or even as a list of practitioner ids, it scanned every role (0.3-0.5 s over 25,000 roles). The
        roles' own keys make the page a few index look-ups. None beyond ``NAME_LOOKUP_LIMIT`` roles (a very
        common word): the search then chains."""
        if not decision.allowed:
            return []
        conds = list(self.service.parse(ctx, "Practitioner", query.practitioner_search()).filters)
        access = self.service.policy.cond(decision)
        if access is not None:
            conds.append(access)
        where, params = where_clause(("Practitioner",), conds)
        rows = await conn.fetch(
            "SELECT x.rid FROM idx_reference x WHERE x.res_type = 'PractitionerRole' AND x.param = 'practitioner'"
            f" AND x.target_type = 'Practitioner' AND x.target_id IN (SELECT r.res_id FROM resource r WHERE {where})"
            " LIMIT ?",
            [*params, NAME_LOOKUP_LIMIT + 1],
        )
        rids = sorted({int(row[0]) for row in rows})
        return None if len(rows) > NAME_LOOKUP_LIMIT else rids

    def _brake(self, ctx: RequestContext) -> None:
        if ctx.caller.kind != "anonymous":
            return
        wait = self.limiter.hit("public-directory", ctx.client_address or "unknown", self.per_minute)
        if wait is not None:
            seconds = str(int(wait))
            raise FhirError(
                429,
                [Issue("throttled", f"too many directory searches from this address; try again in {seconds} s")],
                {"Retry-After": seconds},
            )

    def _extra_conditions(self, ctx: RequestContext, query: DirectoryQuery) -> list[Cond]:
        """The locality (any of its alternatives) and the exclusions (none of them), as search conditions."""
        conds: list[Cond] = []
        alternatives = [self._all(ctx, q) for q in query.locality_alternatives()]
        if alternatives:
            conds.append(AnyCond(tuple(alternatives)))
        today = datetime.now(UTC).date()
        conds += [NotCond(self._all(ctx, q)) for q in query.exclusions(today)]
        return conds

    def _all(self, ctx: RequestContext, search: Sequence[tuple[str, str]]) -> Cond:
        return AllCond(tuple(self.service.parse(ctx, MATCHED, search).filters))

    def _bundle(
        self,
        ctx: RequestContext,
        query: DirectoryQuery,
        matches: list[StoredResource],
        included: list[StoredResource],
        total: int | None,
        has_next: bool,
    ) -> Outcome:
        path = f"{ctx.base_url}/{MATCHED}/${OPERATION}"

        def link(relation: str, offset: int) -> dict[str, str]:
            params = [*query.echo, ("_count", str(query.count)), *([("_offset", str(offset))] if offset else [])]
            return {"relation": relation, "url": f"{path}?{urlencode(params)}"}

        links = [link("self", query.offset)]
        if has_next:
            links.append(link("next", query.offset + query.count))
        if query.offset > 0:
            links.append(link("previous", max(0, query.offset - query.count)))
        entries = [
            {
                "fullUrl": f"{ctx.base_url}/{stored.res_type}/{stored.res_id}",
                "resource": public_view(orjson.loads(stored.content or b"{}")),
                "search": {"mode": mode},
            }
            for stored, mode in [*((m, "match") for m in matches), *((i, "include") for i in included)]
        ]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        if total is not None:
            bundle["total"] = total
        bundle["link"] = links
        bundle["entry"] = entries
        return Outcome(200, bundle, {}, touched=[*matches, *included])


def _roles_in(rids: list[int]) -> Cond:
    """The roles ``rids`` (internal keys the name look-up found)."""
    if not rids:
        return ColumnCond(FALSE)
    return ColumnCond(Pred(f"{{x}}.rid IN ({', '.join('?' * len(rids))})", tuple(rids)))


def _allowed(decision: Decision | None) -> Decision | None:
    return decision if decision is not None and decision.allowed else None


def install_public_directory(platform: Platform) -> None:
    """Register the operation and the rule that opens it; its brake counts per worker."""
    platform.policy.add_rule(PublicDirectoryRule())
    handler = PublicDirectory(platform.service, RateLimiter(), platform.settings.rate_limit_directory)
    platform.operations.register(
        OperationDefinition(
            name=OPERATION,
            handler=handler,
            type_level=True,
            resource_types=frozenset({MATCHED}),
            public=True,
            documentation="Public directory search (name, profession, specialty, locality): public elements only, "
            f"no login needed; paging with {' and '.join(PAGING)}. See docs/hpd-mcsd.md.",
        )
    )
