"""Search test helpers: a store filled through ResourceStore, and one-call search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from esante.db.engine import Database
from esante.fhir.definitions import get_registry
from esante.fhir.model import StoredResource
from esante.fhir.search.execute import SearchResult, execute_search
from esante.fhir.search.parse import SearchRequest, parse_search
from esante.fhir.store import ResourceStore

BASE = "http://example.org/fhir"
Query = str | Sequence[tuple[str, str]]


class SearchKit:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.store = ResourceStore(database)
        self.registry = get_registry()

    async def add(self, *resources: dict[str, Any]) -> list[StoredResource]:
        out = []
        async with self.database.transaction() as conn:
            session = self.store.session(conn)
            for resource in resources:
                out.append(await session.create(dict(resource), res_id=resource.get("id")))
            await session.flush()
        return out

    async def update(self, resource: dict[str, Any]) -> None:
        async with self.database.transaction() as conn:
            session = self.store.session(conn)
            current = await session.read(resource["resourceType"], resource["id"])
            assert current is not None
            await session.update(dict(resource), current)
            await session.flush()

    async def delete(self, res_type: str, res_id: str) -> None:
        async with self.database.transaction() as conn:
            session = self.store.session(conn)
            current = await session.read(res_type, res_id)
            assert current is not None
            await session.delete(current)
            await session.flush()

    def parse(self, res_type: str | None, query: str | Sequence[tuple[str, str]], **kw: Any) -> SearchRequest:
        pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query)
        kw.setdefault("base_url", BASE)
        return parse_search(res_type, pairs, self.registry, **kw)

    async def search(
        self,
        res_type: str | None,
        query: str | Sequence[tuple[str, str]] = "",
        *,
        compartment: tuple[str, str] | None = None,
        **kw: Any,
    ) -> SearchResult:
        request = self.parse(res_type, query, **kw)
        async with self.database.read() as conn:
            return await execute_search(conn, request, compartment=compartment)

    async def ids(self, res_type: str | None, query: Query = "", **kw: Any) -> list[str]:
        result = await self.search(res_type, query, **kw)
        return [m.res_id for m in result.matches]

    async def idset(self, res_type: str | None, query: Query = "", **kw: Any) -> set[str]:
        kw.setdefault("default_count", 1000)
        return set(await self.ids(res_type, query, **kw))
