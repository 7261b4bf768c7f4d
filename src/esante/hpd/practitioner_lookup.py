"""The current Practitioner of a professional named by id and/or eHealthID: one indexed statement, once a request.

The bearer gate's checks of several services (the DSP's, the CVE's) each need the professional's Practitioner
(profession, qualifications, name). They used to read it each: two identical statements on every request of a
professional. :func:`practitioner_for_request` reads it once and keeps it in the request's ``caller.attributes``
(a fresh dict per request, so nothing outlives the request: a Practitioner changed in the directory acts on the
next request, as before).

By id first (the token's ``fhirUser``), else by eHealthID in the directory's identifier index; a deleted
Practitioner is not found.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.db.engine import Connection
from esante.hpd.model import EHEALTH_ID_SYSTEM
from esante.security.policy import Caller

__all__ = ["practitioner_content", "practitioner_for_request"]

_BY_ID = "SELECT res_id, content FROM resource WHERE res_type = 'Practitioner' AND res_id = ? AND is_current"
_BY_EHEALTH_ID = (
    "SELECT r.res_id, r.content FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current"
    " WHERE t.res_type = 'Practitioner' AND t.param = 'identifier' AND t.system = ? AND t.code = ?"
    " ORDER BY r.res_id LIMIT 1"
)
_MEMO = "hpd_practitioner_lookups"  # caller attribute: {(id, eHealthID): (id, content) | None} of this request

Found = tuple[str, dict[str, Any]] | None


async def practitioner_content(conn: Connection, practitioner_id: str | None, ehealth_id: str | None) -> Found:
    """(id, content) of the current Practitioner named by id, else by eHealthID; None when unknown or deleted."""
    row = await conn.fetchrow(_BY_ID, (practitioner_id,)) if practitioner_id else None
    if (row is None or row[1] is None) and ehealth_id:
        row = await conn.fetchrow(_BY_EHEALTH_ID, (EHEALTH_ID_SYSTEM, ehealth_id))
    if row is None or row[1] is None:
        return None
    content = orjson.loads(bytes(row[1]))
    return str(row[0]), content if isinstance(content, dict) else {}


async def practitioner_for_request(
    conn: Connection, caller: Caller, practitioner_id: str | None, ehealth_id: str | None
) -> Found:
    """:func:`practitioner_content`, read at most once per request and professional (the answer is shared by the
    checks of one request; callers must not change the returned content)."""
    memo: dict[tuple[str | None, str | None], Found] = caller.attributes.setdefault(_MEMO, {})
    key = (practitioner_id, ehealth_id)
    if key not in memo:
        memo[key] = await practitioner_content(conn, practitioner_id, ehealth_id)
    return memo[key]
