"""The MPI's vocabulary: identifier systems, identity levels, identifier domains. Pure data.

Every identity is a FHIR Patient of the store:

- a **certified** identity comes from the national register (RNPP/CCSS, ``esante mpi import --certified``); it
  carries the matricule (``urn:oid:1.3.182.4.4``) and the eSanté patient identifier the MPI assigned
  (``urn:oid:1.3.182.2.4.2``);
- a **local** identity comes from an establishment's feed (PIXm ITI-104, HL7 v2 ADT) with the establishment's
  identifier (one domain per establishment, ``urn:oid:1.3.182.3.1.1.<n>.2``); it is **provisional** until it is
  linked to a certified identity (``Patient.link``, type ``seealso``), then **validated** — by the matching
  engine above the auto-link threshold, or by an identity-vigilance agent.

The level is written as a ``meta.tag`` of the system :data:`LEVEL_SYSTEM`, so it is searchable
(``Patient?_tag=urn:esante:identity-level|certified``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MATRICULE_SYSTEM = "urn:oid:1.3.182.4.4"
ESANTE_ID_SYSTEM = "urn:oid:1.3.182.2.4.2"
LOCAL_DOMAIN_PREFIX = "urn:oid:1.3.182.3.1.1."
LEVEL_SYSTEM = "urn:esante:identity-level"
FLAG_SYSTEM = "urn:esante:identity-flag"  # e.g. old-matricule: the 11-digit form, to be replaced
NATIONAL_SYSTEMS = (MATRICULE_SYSTEM, ESANTE_ID_SYSTEM)


class IdentityLevel(StrEnum):
    PROVISIONAL = "provisional"  # a local identity not linked (yet) to a certified one
    VALIDATED = "validated"  # a local identity linked to a certified one
    CERTIFIED = "certified"  # from the national register


@dataclass(frozen=True)
class Domain:
    """An identifier domain: the OID system of one establishment's patient identifiers, and its one source.

    ``source_client_id`` is the OAuth client (establishment software) allowed to feed identities of this domain;
    the national domains have no feed source (the register is imported by the operator).
    """

    system: str  # urn:oid:...
    name: str
    organization: str | None = None
    source_client_id: str | None = None
    national: bool = False
    created_at: int = 0


NATIONAL_DOMAINS = (
    Domain(MATRICULE_SYSTEM, "Matricule (numéro d'identification national, RNPP)", national=True),
    Domain(ESANTE_ID_SYSTEM, "Identifiant patient eSanté (MPI)", national=True),
)


def level_tag(level: IdentityLevel) -> dict[str, str]:
    return {"system": LEVEL_SYSTEM, "code": level.value}
