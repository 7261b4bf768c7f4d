"""The MPI's record of its identity decisions: one FHIR ``Provenance`` per decision. Pure (builds dicts, no I/O).

Every change of a cross-reference — the engine's automatic link, an identity-vigilance agent's link, unlink, merge
or unmerge — is written in the same transaction as the Patient versions it produces, as a Provenance that:

- ``target``: the versioned references of every Patient version the decision wrote (``Patient/x/_history/n``);
- ``recorded``: when;
- ``activity``: one code of :data:`ACTIVITY_SYSTEM` (:class:`Activity`);
- ``agent``: who decided — the agent's account (``who.identifier`` ``urn:esante:account|<id>``, display name) or
  the MPI engine (``who.identifier`` ``urn:esante:mpi-engine|<parameter version>``);
- ``entity``: the identities the decision was about, with their role (``source`` = the certified identity linked
  to or the survivor of a merge; ``removal`` = the link that was undone; ``revision`` = a re-pointed identity);
- ``reason``: the agent's text (``reason.text``), ``extension`` :data:`PROBABILITY_URL` for the engine's score;
- ``extension`` :data:`REVIEW_TASK_URL` (valueReference): the review Task the decision closes, if any (R4's
  Provenance has no ``basedOn``; R5's does, and a conversion maps the extension onto it).

The yearly identity-vigilance report counts these by activity, so they must be written for every decision, and
nothing else writes this activity system.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

ACTIVITY_SYSTEM = "urn:esante:mpi-activity"
ACCOUNT_SYSTEM = "urn:esante:account"
ENGINE_SYSTEM = "urn:esante:mpi-engine"
PROBABILITY_URL = "urn:esante:mpi-match-probability"
REVIEW_TASK_URL = "urn:esante:mpi-review-task"
PARTICIPANT_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


class Activity(StrEnum):
    AUTO_LINK = "auto-link"  # the engine linked a local identity above the auto-link threshold
    LINK = "link"  # an agent linked a local identity to a certified one (or moved its link)
    UNLINK = "unlink"  # an agent removed a local identity's link (back to provisional)
    MERGE = "merge"  # two identities of one domain (or two certified ones) merged into a survivor
    UNMERGE = "unmerge"  # a merge undone


def engine_agent(parameter_version: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": PARTICIPANT_SYSTEM, "code": "assembler"}]},
        "who": {"identifier": {"system": ENGINE_SYSTEM, "value": parameter_version}, "display": "eSanté MPI engine"},
    }


def person_agent(account_id: str, display: str | None = None) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": {"system": ACCOUNT_SYSTEM, "value": account_id}}
    if display:
        who["display"] = display
    return {"type": {"coding": [{"system": PARTICIPANT_SYSTEM, "code": "author"}]}, "who": who}


def decision_provenance(
    activity: Activity,
    targets: Iterable[str],
    recorded: str,
    agent: dict[str, Any],
    *,
    entities: Iterable[tuple[str, str]] = (),
    reason: str | None = None,
    probability: float | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """A Provenance for one decision. ``targets``: versioned references written; ``entities``: (role, reference)."""
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": ref} for ref in targets],
        "recorded": recorded,
        "activity": {"coding": [{"system": ACTIVITY_SYSTEM, "code": activity.value}]},
        "agent": [agent],
    }
    entity = [{"role": role, "what": {"reference": ref}} for role, ref in entities]
    if entity:
        resource["entity"] = entity
    if reason:
        resource["reason"] = [{"text": reason}]
    extension: list[dict[str, Any]] = []
    if probability is not None:
        extension.append({"url": PROBABILITY_URL, "valueDecimal": round(probability, 6)})
    if task:
        extension.append({"url": REVIEW_TASK_URL, "valueReference": {"reference": task}})
    if extension:
        resource["extension"] = extension
    return resource
