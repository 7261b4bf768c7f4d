"""The funds as Organizations in the store (fixed ids ``wse-insurer-<code>``), written before each affiliation
import, so that every Coverage's ``payor`` reference resolves. Unchanged content is not written again;
concurrent starts (several workers) serialise on an advisory lock."""

from __future__ import annotations

from esante.fhir.packaged import ensure_packaged
from esante.fhir.store import ResourceStore
from esante.wse.model import InsurerTable


async def ensure_insurers(store: ResourceStore, insurers: InsurerTable) -> int:
    """Write the register's and the national funds' Organizations that are missing or differ; returns how many."""
    return await ensure_packaged(store, insurers.organizations(), "wse-insurers")
