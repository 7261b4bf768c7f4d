"""Who the professional behind a token is, for the CVE access rule (a bearer-gate check: rules do no I/O).

For a professional's token, or a system client's token acting for one (IUA ``national_provider_identifier``), one
indexed statement finds their Practitioner (by the token's ``fhirUser``, the id the DSP's check already found,
else the eHealthID) and records in ``caller.attributes``:

- ``cve_practitioner``: the Practitioner id (``""`` when the professional is not in the directory);
- ``cve_vaccinator``: whether they may vaccinate (consent.py ``is_vaccinator``: a vaccinating profession, or the
  trained-vaccinator qualification in force).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson

from esante.cve.consent import is_vaccinator
from esante.db.engine import Connection
from esante.hpd.model import EHEALTH_ID_SYSTEM
from esante.security.policy import Caller
from esante.security.standing import professional_of_token
from esante.security.tokens import TokenClaims

__all__ = ["PRACTITIONER", "VACCINATOR", "cve_token_check", "practitioner_content"]

PRACTITIONER = "cve_practitioner"
VACCINATOR = "cve_vaccinator"
_DSP_PRACTITIONER = "dsp_practitioner"  # recorded by the DSP's check when it ran first (same lookup)

_BY_ID = "SELECT res_id, content FROM resource WHERE res_type = 'Practitioner' AND res_id = ? AND is_current"
_BY_EHEALTH_ID = (
    "SELECT r.res_id, r.content FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current"
    " WHERE t.res_type = 'Practitioner' AND t.param = 'identifier' AND t.system = ? AND t.code = ?"
    " ORDER BY r.res_id LIMIT 1"
)


async def practitioner_content(
    conn: Connection, practitioner_id: str | None, ehealth_id: str | None
) -> tuple[str, dict[str, object]] | None:
    """(id, content) of the current Practitioner named by id or eHealthID; None when unknown or deleted."""
    row = await conn.fetchrow(_BY_ID, (practitioner_id,)) if practitioner_id else None
    if (row is None or row[1] is None) and ehealth_id:
        row = await conn.fetchrow(_BY_EHEALTH_ID, (EHEALTH_ID_SYSTEM, ehealth_id))
    if row is None or row[1] is None:
        return None
    content = orjson.loads(bytes(row[1]))
    return str(row[0]), content if isinstance(content, dict) else {}


def cve_token_check(
    professions: frozenset[str],
) -> Callable[[TokenClaims, Caller, Connection], Awaitable[None]]:
    """The bearer gate's check (``ResourceServer.add_check``) for these vaccinating professions."""

    async def check(claims: TokenClaims, caller: Caller, conn: Connection) -> None:
        who = professional_of_token(claims)
        if who is None:
            return
        known = caller.attributes.get(_DSP_PRACTITIONER)
        practitioner_id = who.practitioner_id or (known if isinstance(known, str) and known else None)
        found = await practitioner_content(conn, practitioner_id, who.ehealth_id)
        today = datetime.now(UTC).date()
        caller.attributes[PRACTITIONER] = found[0] if found else ""
        caller.attributes[VACCINATOR] = found is not None and is_vaccinator(found[1], professions, today)

    return check
