"""The history interaction at instance, type and system level (https://hl7.org/fhir/R4/http.html#history).

``_since``: versions written at or after the instant. ``_at``: versions that were current at some point within the
given (possibly partial) date's range: a version is current from its own lastUpdated until the next version's.
``_type`` (system level): only these resource types. Newest first; ``_count``/``_offset`` paging; deletions are
entries with ``request.method`` DELETE, ``response.status`` 410 Gone and no resource.

Synchronisation (IHE mCSD ITI-91): the Bundle's ``meta.lastUpdated`` is the instant the server began reading. A
version's lastUpdated is taken when it is written, and its transaction commits a little later, so a consumer
asks next for ``_since`` = that instant minus an overlap longer than any write transaction and drops the versions
it already holds (same id and versionId); see docs/hpd-mcsd.md.

Access: the caller's decision filters the versions in SQL (by the resource's current index rows: type, compartment,
search criteria) and then each version on its own content, so an old version that was once in another patient's
compartment is not shown. The total is given to unrestricted callers only: for the others it could count versions
the per-version check removes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from esante.fhir.context import Outcome, RequestContext
from esante.fhir.errors import bad_request, not_found
from esante.fhir.json import raw
from esante.fhir.model import micros_to_instant
from esante.fhir.search.compile import Cond, Renderer
from esante.fhir.service import FhirService, _http_date
from esante.fhir.store import _SELECT_COLUMNS, StoreSession, row_to_stored
from esante.fhir.values import parse_date_range
from esante.security.pdp.decision import Decision
from esante.security.pdp.enforce import forbidden_error
from esante.security.policy import Action

_KNOWN = {"_since", "_at", "_count", "_offset", "_format", "_pretty", "_list", "_sort"}


async def history(
    service: FhirService,
    session: StoreSession,
    ctx: RequestContext,
    query: Sequence[tuple[str, str]],
    res_type: str | None = None,
    res_id: str | None = None,
) -> Outcome:
    """Build a ``history`` Bundle for the instance, type or whole system."""
    if res_type is not None:
        service.check_type(res_type)
    level = "instance" if res_id else "type" if res_type else "system"
    action = Action(f"history-{level}", res_type, res_id)
    access: Cond | None
    decide_for: Callable[[str], Decision | None]
    as_of = micros_to_instant(time.time_ns() // 1000)
    chosen = _types(service, query) if res_type is None else None
    if res_type is not None:
        decision = service.policy.decide(ctx, action)
        access = service.policy.cond(decision)
        decisions = {res_type: decision}
    else:
        types = chosen or service.registry.resource_types
        decisions = service.policy.decide_types(ctx, action, types)
        access = service.policy.types_cond(decisions, some_denied=len(decisions) < len(types))
    decide_for = decisions.get
    counting = [d for d in decisions.values() if d.count_only]
    if counting:
        raise forbidden_error(
            dataclasses.replace(counting[0], reason="history shows content; this caller may only count")
        )
    where: list[str] = []
    params: list[Any] = []
    if res_type is not None:
        where.append("v.res_type = ?")
        params.append(res_type)
    if res_id is not None:
        where.append("v.res_id = ?")
        params.append(res_id)
    link_params: list[tuple[str, str]] = []
    if chosen:
        where.append(f"v.res_type IN ({', '.join('?' * len(chosen))})")
        params.extend(chosen)
        link_params.append(("_type", ",".join(chosen)))
    count = service.default_page_size
    offset = 0
    for name, value in query:
        if name == "_since":
            lo, _hi = _instant(name, value)
            where.append("v.last_updated >= ?")
            params.append(lo)
            link_params.append((name, value))
        elif name == "_at":
            lo, hi = _instant(name, value)
            where.append(
                "v.last_updated <= ? AND NOT EXISTS (SELECT 1 FROM resource n WHERE n.rid = v.rid"
                " AND n.version_id = v.version_id + 1 AND n.last_updated <= ?)"
            )
            params.extend([hi, lo])
            link_params.append((name, value))
        elif name == "_count":
            count = _int(name, value, 0, service.max_page_size)
            link_params.append((name, str(count)))
        elif name == "_offset":
            offset = _int(name, value, 0, 10**9)
        elif name == "_type" and res_type is None:
            continue  # read by _types
        elif name not in _KNOWN and ctx.strict_handling:
            raise bad_request(f"unknown history parameter '{name}'", expression=name)
    if access is not None:
        access_sql, access_params = Renderer().render(access, "v")
        where.append(f"({access_sql})")
        params.extend(access_params)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    await session.flush()
    if res_id is not None:
        assert res_type is not None
        current = await session.read(res_type, res_id)
        if current is None or not await service.policy.visible(session, decisions[res_type], current):
            raise not_found(f"{res_type}/{res_id} is not known")
    total = None
    if access is None:
        total = int(await session.conn.fetchval(f"SELECT COUNT(*) FROM resource v{clause}", params) or 0)
    fetched = await session.conn.fetch(
        f"SELECT {', '.join('v.' + c.strip() for c in _SELECT_COLUMNS.split(','))}, v.method FROM resource v"
        f"{clause} ORDER BY v.last_updated DESC, v.pk DESC LIMIT ? OFFSET ?",
        [*params, count + 1, offset],
    )
    has_next = count > 0 and len(fetched) > count  # _count=0: the total alone, no page to walk
    rows = fetched[:count]
    path = ctx.base_url + "".join(f"/{p}" for p in (res_type, res_id) if p) + "/_history"

    def link(relation: str, at: int) -> dict[str, str]:
        page = [*link_params, *([("_offset", str(at))] if at else [])]
        return {"relation": relation, "url": f"{path}?{urlencode(page)}" if page else path}

    links = [link("self", offset)]
    if has_next:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    entries: list[dict[str, Any]] = []
    touched = []
    versions = [(row_to_stored(row[:7]), row[7]) for row in rows]
    if access is not None:
        shown = {id(s) for s in await service.policy.filter_visible(session, decide_for, [v for v, _ in versions])}
        versions = [(v, m) for v, m in versions if id(v) in shown]
    for stored, method in versions:
        touched.append(stored)
        url = f"{stored.res_type}/{stored.res_id}"
        entry: dict[str, Any] = {"fullUrl": f"{ctx.base_url}/{url}"}
        if stored.content is not None:
            entry["resource"] = raw(stored.content)
        entry["request"] = {"method": method, "url": url if method != "POST" else stored.res_type}
        entry["response"] = {
            "status": "410 Gone" if stored.deleted else ("201 Created" if stored.version_id == 1 else "200 OK"),
            "etag": stored.etag,
            "lastModified": micros_to_instant(stored.last_updated),
        }
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "meta": {"lastUpdated": as_of}, "type": "history"}
    if total is not None:
        bundle["total"] = total
    bundle.update(link=links, entry=entries)
    headers = {"Last-Modified": _http_date(rows[0][4])} if rows else {}
    return Outcome(200, bundle, headers, touched=touched)


def _types(service: FhirService, query: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """``_type`` of a system-level history: the resource types asked for (empty: every type)."""
    chosen: list[str] = []
    for name, value in query:
        if name != "_type":
            continue
        for item in (part.strip() for part in value.split(",")):
            if not service.registry.is_resource_type(item):
                raise bad_request(f"_type: unknown resource type '{item}'", expression="_type")
            if item not in chosen:
                chosen.append(item)
    return tuple(chosen)


def _instant(name: str, value: str) -> tuple[int, int]:
    try:
        return parse_date_range(value)
    except ValueError as exc:
        raise bad_request(f"{name}: '{value}' is not a valid instant ({exc})", expression=name) from exc


def _int(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit():
        raise bad_request(f"{name} must be a non-negative integer, got '{value}'", expression=name)
    return max(low, min(high, int(value)))
