"""Who the professional behind a token is, for the DSP access rule (a bearer-gate check: the rules do no I/O).

For a professional's token, or a system client's token acting for one (IUA ``national_provider_identifier``), one
statement finds their Practitioner — by the token's ``fhirUser`` (``Practitioner/x``), else by the eHealthID in the
directory — and its profession (``Practitioner.qualification`` coded in ``urn:esante:hpd:profession``). They are
recorded in ``caller.attributes`` (``dsp_practitioner``, ``dsp_professions``); a professional who is not in the
directory gets ``""`` and the rule grants them nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.db.engine import Connection
from esante.dsp.access_rule import PRACTITIONER, PROFESSIONS
from esante.hpd.model import EHEALTH_ID_SYSTEM, PROFESSION_SYSTEM
from esante.security.policy import Caller
from esante.security.standing import professional_of_token
from esante.security.tokens import TokenClaims

_BY_ID = "SELECT res_id, content FROM resource WHERE res_type = 'Practitioner' AND res_id = ? AND is_current"
_BY_EHEALTH_ID = (
    "SELECT r.res_id, r.content FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current"
    " WHERE t.res_type = 'Practitioner' AND t.param = 'identifier' AND t.system = ? AND t.code = ?"
    " ORDER BY r.res_id LIMIT 1"
)


def professions_of(practitioner: dict[str, Any]) -> tuple[str, ...]:
    codes: list[str] = []
    for qualification in practitioner.get("qualification", []) or []:
        code = qualification.get("code") if isinstance(qualification, dict) else None
        for coding in (code.get("coding", []) or []) if isinstance(code, dict) else []:
            value = coding.get("code") if isinstance(coding, dict) else None
            if coding.get("system") == PROFESSION_SYSTEM and isinstance(value, str) and value not in codes:
                codes.append(value)
    return tuple(codes)


async def find_practitioner(
    conn: Connection, practitioner_id: str | None, ehealth_id: str | None
) -> tuple[str, tuple[str, ...]] | None:
    """(Practitioner id, professions) of a professional named by id and/or eHealthID; None when unknown."""
    row = None
    if practitioner_id:
        row = await conn.fetchrow(_BY_ID, (practitioner_id,))
    if row is None and ehealth_id:
        row = await conn.fetchrow(_BY_EHEALTH_ID, (EHEALTH_ID_SYSTEM, ehealth_id))
    if row is None or row[1] is None:
        return None
    return str(row[0]), professions_of(orjson.loads(bytes(row[1])))


async def dsp_token_check(claims: TokenClaims, caller: Caller, conn: Connection) -> None:
    """The bearer gate's check (``ResourceServer.add_check``): records the professional for the access rule."""
    who = professional_of_token(claims)
    if who is None:
        return
    found = await find_practitioner(conn, who.practitioner_id, who.ehealth_id)
    caller.attributes[PRACTITIONER] = found[0] if found else ""
    caller.attributes[PROFESSIONS] = found[1] if found else ()
