"""Resources the platform ships as package data and keeps in the store (code systems, value sets, search
parameters, the insurers' Organizations …), so the API serves exactly what the running code applies.

Each has a fixed id. :func:`ensure_packaged` writes those missing or different in one transaction and nothing for
those unchanged, so every start (and every worker starting beside another, serialised by an advisory lock on
PostgreSQL) leaves one version per real change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from esante.fhir.store import ResourceStore


async def ensure_packaged(store: ResourceStore, packaged: Iterable[dict[str, Any]], lock: str) -> int:
    """Write the packaged resources (each with ``resourceType`` and ``id``) that are missing, deleted or differ;
    returns how many were written. ``lock`` names the set (writers of the same set wait for each other)."""
    written = 0
    async with store.database.transaction() as conn:
        session = store.session(conn)
        await session.lock_condition("packaged", lock)
        for item in packaged:
            resource: dict[str, Any] = orjson.loads(orjson.dumps(item))  # a copy the store may stamp
            res_type, res_id = resource["resourceType"], resource.pop("id")
            current = await session.read(res_type, res_id)
            if current is None:
                await session.create(resource, res_id=res_id)
            elif current.deleted or current.content is None:
                await session.update(resource, current)
            else:
                stored = orjson.loads(current.content)
                stored.pop("id", None)
                stored.pop("meta", None)
                if stored == resource:
                    continue
                await session.update(resource, current)
            written += 1
    return written
