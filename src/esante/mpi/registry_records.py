"""Reading the certified identities out of the store for the matching engine (index load, duplicates, training).

Keyset pages over the current certified Patients (found through the ``_tag`` token index), so a national register
is streamed, never held as rows at once; the preparation of each page (JSON, traits, normalisation: CPU work) runs
in a worker thread so that a serving process keeps answering while it loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.mpi.matching import Features, RecordError, prepare, record_from_fhir
from esante.mpi.model import LEVEL_SYSTEM, IdentityLevel

PAGE = 5_000


def is_certified(resource: dict[str, Any]) -> bool:
    """A current certified identity that is not merged away."""
    return resource.get("active") is not False and any(
        tag.get("system") == LEVEL_SYSTEM and tag.get("code") == IdentityLevel.CERTIFIED.value
        for tag in resource.get("meta", {}).get("tag", [])
        if isinstance(tag, dict)
    )


def certified_features(res_id: str, content: bytes | str) -> Features | None:
    """The prepared traits of a stored identity if it is certified (None otherwise, or if a trait is unreadable:
    such an identity cannot be matched and is left to identity-vigilance)."""
    resource = orjson.loads(content)
    if not is_certified(resource):
        return None
    try:
        return prepare(record_from_fhir(resource, res_id))
    except RecordError:
        return None


def local_features(res_id: str, content: bytes | str) -> Features | None:
    resource = orjson.loads(content)
    if resource.get("active") is False:
        return None
    try:
        return prepare(record_from_fhir(resource, res_id))
    except RecordError:
        return None


def _prepare_rows(rows: list[tuple[Any, ...]], certified: bool) -> list[Features]:
    read = certified_features if certified else local_features
    prepared = (read(str(r[0]), bytes(r[1])) for r in rows if r[1] is not None)
    return [f for f in prepared if f is not None]


async def iter_certified(
    conn: Connection, page: int = PAGE, level: IdentityLevel = IdentityLevel.CERTIFIED
) -> AsyncIterator[list[Features]]:
    """Pages of prepared identities of ``level`` (active ones), in storage-key order.

    Paged on the tag index's own order (``rid``): each page is one range of ``ix_idx_token_value`` joined to the
    current version by ``ix_resource_current_rid`` — no sort, and no plan that depends on fresh statistics (right
    after a register import the planner has none, and a page keyed on ``res_id`` took seconds).
    """
    last = 0
    while True:
        rows = await conn.fetch(
            "SELECT r.res_id, r.content, t.rid FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current"
            " WHERE t.res_type = 'Patient' AND t.param = '_tag' AND t.system = ? AND t.code = ? AND t.rid > ?"
            " AND NOT r.deleted ORDER BY t.rid LIMIT ?",
            (LEVEL_SYSTEM, level.value, last, page),
        )
        if not rows:
            return
        last = int(rows[-1][2])
        yield await asyncio.to_thread(_prepare_rows, rows, level is IdentityLevel.CERTIFIED)
