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

from esante.fhir.packaged import ensure_packaged
from esante.fhir.store import ResourceStore
from esante.hpd.codes import code_systems
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, Restriction

_PEOPLE = frozenset({"patient", "assistant", "professional", "staff"})


async def ensure_code_systems(store: ResourceStore) -> int:
    """Write the packaged CodeSystems that are missing or differ; returns how many were written."""
    return await ensure_packaged(store, code_systems(), "hpd-code-systems")


class TerminologyRule:
    """Every authenticated person may read and search CodeSystems (the professions, organisation types …)."""

    name = "terminology-read"

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        if request.caller.kind in _PEOPLE and request.letter in ("r", "s") and request.resource_type == "CodeSystem":
            yield Grant(self.name, EVERYTHING)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
