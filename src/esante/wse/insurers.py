"""The funds as Organizations in the store (fixed ids ``wse-insurer-<code>``), written before each affiliation
import, so that every Coverage's ``payor`` reference resolves. Unchanged content is not written again;
concurrent starts (several workers) serialise on an advisory lock."""

from __future__ import annotations

from typing import Any

import orjson

from esante.fhir.store import ResourceStore
from esante.wse.model import InsurerTable


async def ensure_insurers(store: ResourceStore, insurers: InsurerTable) -> int:
    """Write the register's and the national funds' Organizations that are missing or differ; returns how many."""
    written = 0
    async with store.database.transaction() as conn:
        session = store.session(conn)
        await session.lock_condition("Organization", "wse-insurers")
        for packaged in insurers.organizations():
            resource: dict[str, Any] = orjson.loads(orjson.dumps(packaged))
            res_id = resource.pop("id")
            current = await session.read("Organization", res_id)
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
