"""The HPD's code systems as FHIR resources in the store, and who may read them.

The packaged CodeSystems (``data/professions.json``, ``data/organization-types.json``) are written into the store
under fixed ids (``CodeSystem/hpd-profession``, ``CodeSystem/hpd-organization-type``) when the server starts and
before every directory import, so that ``GET /fhir/CodeSystem?url=urn:esante:hpd:profession`` always serves the
version the running code validates against. Unchanged content is not written again (no new version); a changed
package (a new release) writes a new version. Concurrent starts (several workers) serialise on an advisory lock.

Terminology is public: every authenticated person may read and search CodeSystems (system clients through their
scopes, as for any type).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from esante.fhir.store import ResourceStore
from esante.hpd.codes import code_systems
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction

_PEOPLE = frozenset({"patient", "assistant", "professional", "staff"})


async def ensure_code_systems(store: ResourceStore) -> int:
    """Write the packaged CodeSystems that are missing or differ; returns how many were written."""
    written = 0
    async with store.database.transaction() as conn:
        session = store.session(conn)
        await session.lock_condition("CodeSystem", "hpd-code-systems")
        for packaged in code_systems():
            resource: dict[str, Any] = orjson.loads(orjson.dumps(packaged))
            res_id = resource.pop("id")
            current = await session.read("CodeSystem", res_id)
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


class TerminologyRule:
    """Every authenticated person may read and search CodeSystems (the professions, organisation types …)."""

    name = "terminology-read"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if request.caller.kind in _PEOPLE and request.letter in ("r", "s") and request.resource_type == "CodeSystem":
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
