"""The identity-vigilance review queue: FHIR Tasks (code ``identity-review``) the agency's cell works through.

A Task says why it was opened (``reasonCode`` of :data:`REASON_SYSTEM`: ``uncertain-link`` — a local identity
scored in the review band; ``collision`` — it scored above the auto-link threshold against two or more certified
identities; ``suspected-duplicate`` — two certified identities found alike by ``esante mpi find-duplicates``), names
the identity under review (``focus`` and ``for``) and, as ``input``, each candidate certified identity with
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
REASON_SYSTEM = "urn:esante:mpi-review-reason"
UNCERTAIN_LINK = "uncertain-link"
COLLISION = "collision"
SUSPECTED_DUPLICATE = "suspected-duplicate"


def review_task(
    local: StoredResource, candidates: list[Candidate], authored: str, reason: str = UNCERTAIN_LINK
) -> dict[str, Any]:
    reference = {"reference": f"Patient/{local.res_id}"}
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": REVIEW_CODE, "display": "Identity-vigilance review"}]},
        "description": _DESCRIPTIONS[reason],
        "reasonCode": {"coding": [{"system": REASON_SYSTEM, "code": reason}]},
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


_DESCRIPTIONS = {
    UNCERTAIN_LINK: "Uncertain link between a local identity and certified identities",
    COLLISION: "A local identity matches several certified identities",
    SUSPECTED_DUPLICATE: "Two certified identities that may be the same person",
}


async def open_review(
    session: StoreSession, local: StoredResource, candidates: list[Candidate], reason: str = UNCERTAIN_LINK
) -> StoredResource:
    """Open a review Task for ``local`` in ``session``'s transaction."""
    task = review_task(local, candidates, micros_to_instant(local.last_updated), reason)
    return await session.create(task, client_id=False)
