"""The establishments' notices of merges and unmerges: one FHIR ``Communication`` per affected domain. Pure.

An establishment must learn that identities of its domain now belong to another person (or to their own again):
its records filed under them may have to follow. A merge or unmerge that merges, re-points or points back a local
identity of an establishment domain writes, in the same transaction, for each such domain:

- ``status`` completed, ``sent`` the decision's time;
- ``category`` ``urn:esante:mpi-notice|merge`` (or ``unmerge``);
- ``identifier``: the domain's system and the decision's Provenance id (one notice per domain and decision), so the
  establishment's client finds its notices with ``Communication?identifier=<domain system>|`` (its token needs
  ``system/Communication.rs``, best narrowed to ``system/Communication.rs?identifier=<domain system>|``);
- ``recipient``: the domain's organization (a reference when it is one, else its name as ``display``);
- ``about``: the Patients concerned; ``payload.contentString``: which local identifiers are now which person.

No traits (names, birth dates) are written: identifiers and references only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from esante.mpi.model import Domain

NOTICE_SYSTEM = "urn:esante:mpi-notice"
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class NoticeLine:
    """One local identity of the domain and what it is now (``now``: a sentence, e.g. "belongs to …")."""

    patient: str  # Patient/<id>
    identifier: str  # the domain's identifier value
    now: str


def recipient(domain: Domain) -> dict[str, Any]:
    organization = (domain.organization or "").strip()
    if _REFERENCE.match(organization):
        return {"reference": organization}
    return {"display": organization or domain.name}


def notice(
    kind: str, domain: Domain, lines: list[NoticeLine], about: list[str], headline: str, sent: str, decision_id: str
) -> dict[str, Any]:
    """The Communication telling ``domain`` what a merge (``kind`` merge|unmerge) changed for its identities."""
    text = "\n".join([headline, *(f"{domain.system}|{line.identifier} ({line.patient}) {line.now}" for line in lines)])
    references = list(dict.fromkeys([*(line.patient for line in lines), *about]))
    return {
        "resourceType": "Communication",
        "identifier": [{"system": domain.system, "value": decision_id}],
        "status": "completed",
        "category": [{"coding": [{"system": NOTICE_SYSTEM, "code": kind}]}],
        "priority": "urgent",
        "about": [{"reference": reference} for reference in references],
        "recipient": [recipient(domain)],
        "sender": {"display": "eSanté MPI (identity-vigilance)"},
        "sent": sent,
        "payload": [{"contentString": text}],
    }
