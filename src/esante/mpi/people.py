"""A person in the MPI: a certified identity and the local identities linked to it (or one unlinked identity).

Resolved through the FHIR service, so the caller's policy applies to every Patient read.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.fhir.context import RequestContext
from esante.fhir.model import StoredResource
from esante.fhir.service import FhirService
from esante.fhir.store import StoreSession
from esante.mpi.model import LEVEL_SYSTEM, IdentityLevel

_MAX_HOPS = 5  # replaced-by chains longer than this are an error of the data, not followed further


def _json(stored: StoredResource) -> dict[str, Any]:
    assert stored.content is not None
    content: dict[str, Any] = orjson.loads(stored.content)
    return content


def level_of(resource: dict[str, Any]) -> IdentityLevel | None:
    for tag in resource.get("meta", {}).get("tag", []):
        if tag.get("system") == LEVEL_SYSTEM:
            try:
                return IdentityLevel(tag.get("code"))
            except ValueError:
                return None
    return None


def _linked(resource: dict[str, Any], link_type: str) -> str | None:
    for link in resource.get("link", []):
        reference = link.get("other", {}).get("reference", "")
        if link.get("type") == link_type and reference.startswith("Patient/"):
            return str(reference.removeprefix("Patient/"))
    return None


async def _search(
    service: FhirService, session: StoreSession, ctx: RequestContext, query: list[tuple[str, str]]
) -> list[StoredResource]:
    outcome = await service.search(session, ctx, "Patient", [*query, ("_count", "1000"), ("_total", "none")])
    return [s for s in outcome.touched or [] if s.res_type == "Patient"]


async def _survivor(
    service: FhirService, session: StoreSession, ctx: RequestContext, current: StoredResource
) -> StoredResource:
    """A merged identity leads to its survivor (``link`` replaced-by, followed a few hops at most)."""
    for _ in range(_MAX_HOPS):
        survivor = _linked(_json(current), "replaced-by")
        if survivor is None:
            break
        replaced = await _search(service, session, ctx, [("_id", survivor)])
        if not replaced:
            break
        current = replaced[0]
    return current


async def person_of(
    service: FhirService, session: StoreSession, ctx: RequestContext, system: str, value: str
) -> list[StoredResource]:
    """Every Patient of the person identified by ``system|value`` (certified first), or [] when unknown."""
    found = await _search(service, session, ctx, [("identifier", f"{system}|{value}")])
    if not found:
        return []
    current = await _survivor(service, session, ctx, found[0])
    resource = _json(current)
    anchor = current if level_of(resource) is IdentityLevel.CERTIFIED else None
    if anchor is None:
        certified = _linked(resource, "seealso")
        if certified is None:
            return [current]
        anchored = await _search(service, session, ctx, [("_id", certified)])
        if not anchored:
            return [current]
        # a link to a certified identity merged since (a feed's write racing the merge) leads to its survivor
        anchor = await _survivor(service, session, ctx, anchored[0])
    locals_ = await _search(service, session, ctx, [("link", f"Patient/{anchor.res_id}"), ("active:not", "false")])
    return [anchor, *(p for p in locals_ if p.res_id != anchor.res_id)]
