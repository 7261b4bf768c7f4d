"""Who the professional behind a token is, for the CVE access rule (a bearer-gate check: rules do no I/O).

For a professional's token, or a system client's token acting for one (IUA ``national_provider_identifier``), one
indexed statement finds their Practitioner (by the token's ``fhirUser``, else the eHealthID; shared with the DSP's
check of the same request: ``hpd/practitioner_lookup.py``) and records in ``caller.attributes``:

- ``cve_practitioner``: the Practitioner id (``""`` when the professional is not in the directory);
- ``cve_vaccinator``: whether they may vaccinate (consent.py ``is_vaccinator``: a vaccinating profession, or the
  trained-vaccinator qualification in force).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from esante.cve.consent import is_vaccinator
from esante.db.engine import Connection
from esante.hpd.practitioner_lookup import practitioner_for_request
from esante.security.policy import Caller
from esante.security.standing import professional_of_token
from esante.security.tokens import TokenClaims

__all__ = ["PRACTITIONER", "VACCINATOR", "cve_token_check"]

PRACTITIONER = "cve_practitioner"
VACCINATOR = "cve_vaccinator"


def cve_token_check(
    professions: frozenset[str],
) -> Callable[[TokenClaims, Caller, Connection], Awaitable[None]]:
    """The bearer gate's check (``ResourceServer.add_check``) for these vaccinating professions."""

    async def check(claims: TokenClaims, caller: Caller, conn: Connection) -> None:
        who = professional_of_token(claims)
        if who is None:
            return
        found = await practitioner_for_request(conn, caller, who.practitioner_id, who.ehealth_id)
        today = datetime.now(UTC).date()
        caller.attributes[PRACTITIONER] = found[0] if found else ""
        caller.attributes[VACCINATOR] = found is not None and is_vaccinator(found[1], professions, today)

    return check
