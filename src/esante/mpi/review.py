"""The identity-vigilance review queue: FHIR Tasks (code ``identity-review``) the agency's cell works through.

A Task names the local identity (``focus`` and ``for``) and, as ``input``, each candidate certified identity with
its match probability, grade and the per-field agreement (family name, given names, birth date, …) so that the
agent sees the traits side by side. Tasks are ordinary resources: searchable (``Task?code=…identity-review&
status=requested``), readable by identity-vigilance agents, audited like any access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esante.fhir.model import StoredResource, micros_to_instant
from esante.fhir.store import StoreSession

if TYPE_CHECKING:
    from esante.mpi.feed import Candidate

TASK_SYSTEM = "urn:esante:mpi-task"
REVIEW_CODE = "identity-review"
SCORE_URL = "urn:esante:mpi-match-probability"
GRADE_URL = "urn:esante:mpi-match-grade"
AGREEMENT_URL = "urn:esante:mpi-field-agreement"


def review_task(local: StoredResource, candidates: list[Candidate], authored: str) -> dict[str, Any]:
    reference = {"reference": f"Patient/{local.res_id}"}
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": REVIEW_CODE, "display": "Identity-vigilance review"}]},
        "description": "Uncertain link between a local identity and certified identities",
        "focus": reference,
        "for": reference,
        "authoredOn": authored,
        "input": [
            {
                "type": {"text": "candidate"},
                "valueReference": {"reference": f"Patient/{candidate.patient_id}"},
                "extension": [
                    {"url": SCORE_URL, "valueDecimal": round(candidate.probability, 6)},
                    {"url": GRADE_URL, "valueCode": candidate.grade},
                    *(
                        [
                            {
                                "url": AGREEMENT_URL,
                                "extension": [
                                    {"url": f, "valueCode": level} for f, level in candidate.agreement.items()
                                ],
                            }
                        ]
                        if candidate.agreement
                        else []
                    ),
                ],
            }
            for candidate in candidates
        ],
    }


async def open_review(session: StoreSession, local: StoredResource, candidates: list[Candidate]) -> StoredResource:
    """Open a review Task for ``local`` in ``session``'s transaction."""
    task = review_task(local, candidates, micros_to_instant(local.last_updated))
    return await session.create(task, client_id=False)
