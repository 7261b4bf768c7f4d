"""IHE PIXm ITI-83, ``Patient/$ihe-pix``: the identifiers a person is known by in other domains.

Input: ``sourceIdentifier`` (``system|value``, exactly one) and ``targetSystem`` (0..*). The person is the certified
identity the source identity is (or is linked to) with every local identity linked to it; merged identities
(``active = false``, ``link`` replaced-by) lead to their survivor. Output: a Parameters with one ``targetIdentifier``
per identifier of the person in the requested domains (all domains when none is asked; never the source identifier
itself) and one ``targetId`` per Patient resource of the person that holds them.

Errors, as ITI-83 prescribes: an unknown source domain 400 (``sourceIdentifier Assigning Authority not found``), a
known domain without that identifier 404 (``sourceIdentifier Patient Identifier not found``), an unknown target
domain 403 (``targetSystem not found``). Every read goes through the policy (the caller needs to read Patient).
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue
from esante.fhir.model import StoredResource
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.service import FhirService
from esante.mpi.domains import DomainStore
from esante.mpi.parameters import token, values
from esante.mpi.people import person_of


def _failure(status: int, code: str, text: str) -> FhirError:
    return FhirError(status, [Issue(code, text)])


class PixQuery:
    def __init__(self, service: FhirService, domains: DomainStore) -> None:
        self.service = service
        self.domains = domains

    async def __call__(self, call: OperationCall) -> Outcome:
        sources = values(call.parameters, "sourceIdentifier")
        if len(sources) != 1:
            raise _failure(400, "invalid", "exactly one sourceIdentifier (system|value) is required")
        system, value = token(sources[0], "sourceIdentifier")
        if await self.domains.get(system, call.session.conn) is None:
            raise _failure(400, "code-invalid", "sourceIdentifier Assigning Authority not found")
        targets = [str(t) for t in values(call.parameters, "targetSystem")]
        for target in targets:
            if await self.domains.get(target, call.session.conn) is None:
                raise _failure(403, "code-invalid", "targetSystem not found")
        people = await person_of(self.service, call.session, call.ctx, system, value)
        if not people:
            raise _failure(404, "not-found", "sourceIdentifier Patient Identifier not found")
        parameter: list[dict[str, Any]] = []
        shown: list[StoredResource] = []
        for stored in people:
            assert stored.content is not None
            resource = orjson.loads(stored.content)
            wanted = [
                ident
                for ident in resource.get("identifier", [])
                if (not targets or ident.get("system") in targets)
                and (ident.get("system"), ident.get("value")) != (system, value)
            ]
            if not wanted:
                continue
            shown.append(stored)
            parameter += [{"name": "targetIdentifier", "valueIdentifier": ident} for ident in wanted]
            parameter.append({"name": "targetId", "valueReference": {"reference": f"Patient/{stored.res_id}"}})
        return Outcome(200, {"resourceType": "Parameters", "parameter": parameter}, touched=shown or people)


def pix_operation(service: FhirService, domains: DomainStore) -> OperationDefinition:
    return OperationDefinition(
        name="ihe-pix",
        handler=PixQuery(service, domains),
        type_level=True,
        resource_types=frozenset({"Patient"}),
        requires="r",
        documentation="IHE PIXm ITI-83: the identifiers of a patient in other identifier domains.",
    )
