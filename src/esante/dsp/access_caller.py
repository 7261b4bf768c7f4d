"""Who the professional behind a token is, for the DSP access rule (a bearer-gate check: the rules do no I/O).

For a professional's token, or a system client's token acting for one (IUA ``national_provider_identifier``), one
statement finds their Practitioner — by the token's ``fhirUser`` (``Practitioner/x``), else by the eHealthID in the
directory, read once per request for every service's check (``hpd/practitioner_lookup.py``) — and its profession
(``Practitioner.qualification`` coded in ``urn:esante:hpd:profession``); a second
one their PractitionerRoles and which kinds of grant they hold in force for some patient (one indexed probe per
kind). They are recorded in ``caller.attributes`` (``dsp_practitioner``, ``dsp_professions``, ``dsp_roles``,
``dsp_kinds``): the rule leaves out of its SQL the ways in the professional does not have (a professional in nobody's
trusted circle pays nothing for it; only one blocked by someone pays for the block). A professional who is not in
the directory gets ``""`` and the rule grants them nothing. Nothing is kept across requests: a grant given or
revoked acts on the next request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from esante.db.engine import Connection
from esante.dsp.access_rule import KINDS, PRACTITIONER, PROFESSIONS, ROLES
from esante.dsp.context import DspContext
from esante.dsp.grants_model import Kind
from esante.hpd.model import EHEALTH_ID_SYSTEM, PROFESSION_SYSTEM
from esante.hpd.practitioner_lookup import practitioner_content, practitioner_for_request
from esante.security.policy import Caller
from esante.security.standing import professional_of_token
from esante.security.tokens import TokenClaims


def professions_of(practitioner: dict[str, Any]) -> tuple[str, ...]:
    codes: list[str] = []
    for qualification in practitioner.get("qualification", []) or []:
        code = qualification.get("code") if isinstance(qualification, dict) else None
        for coding in (code.get("coding", []) or []) if isinstance(code, dict) else []:
            value = coding.get("code") if isinstance(coding, dict) else None
            if coding.get("system") == PROFESSION_SYSTEM and isinstance(value, str) and value not in codes:
                codes.append(value)
    return tuple(codes)


def human_name(resource: dict[str, Any]) -> str | None:
    """``Given Family`` of a resource's first name (its ``text`` when it has one)."""
    for name in resource.get("name", []) or []:
        if not isinstance(name, dict):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return str(name["text"]).strip()
        given = " ".join(g for g in name.get("given", []) or [] if isinstance(g, str))
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        text = f"{given} {family}".strip()
        if text:
            return text
    return None


def practitioner_identity(practitioner: dict[str, Any]) -> tuple[str | None, str | None]:
    """(name, eHealthID) of a Practitioner, as the access log names the professional."""
    ehealth_id = next(
        (
            str(i["value"])
            for i in practitioner.get("identifier", []) or []
            if isinstance(i, dict) and i.get("system") == EHEALTH_ID_SYSTEM and isinstance(i.get("value"), str)
        ),
        None,
    )
    return human_name(practitioner), ehealth_id


async def find_practitioner(
    conn: Connection, practitioner_id: str | None, ehealth_id: str | None
) -> tuple[str, tuple[str, ...]] | None:
    """(Practitioner id, professions) of a professional named by id and/or eHealthID; None when unknown."""
    found = await practitioner_content(conn, practitioner_id, ehealth_id)
    return (found[0], professions_of(found[1])) if found is not None else None


def _held_sql() -> str:
    """The professional's PractitionerRoles and the grant kinds they hold in force, in one statement."""
    kinds = " UNION ALL ".join(
        f"SELECT 'kind', '{kind.value}' WHERE EXISTS (SELECT 1 FROM dsp_grant g WHERE g.practitioner_id = ?"
        f" AND g.kind = '{kind.value}' AND g.status = 'active' AND (g.ends_at IS NULL OR g.ends_at > ?))"
        for kind in HELD
    )
    return (
        "SELECT 'role', r.res_id FROM idx_reference t JOIN resource r ON r.rid = t.rid AND r.is_current"
        " WHERE t.res_type = 'PractitionerRole' AND t.param = 'practitioner' AND t.target_type = 'Practitioner'"
        f" AND t.target_id = ? UNION ALL {kinds}"
    )


HELD = (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP, Kind.EMERGENCY, Kind.BLOCK)
_HELD_SQL = _held_sql()

IDENTITY = "dsp_practitioner_identity"  # caller attribute: (name, eHealthID) of their Practitioner

TokenCheck = Callable[[TokenClaims, Caller, Connection], Awaitable[None]]


async def professional_attributes(
    conn: Connection,
    context: DspContext,
    practitioner_id: str | None,
    ehealth_id: str | None,
    caller: Caller | None = None,
) -> dict[str, Any]:
    """The caller attributes the access rule reads, for the professional named by id and/or eHealthID (and their
    name and eHealthID, with which the access log names them: read here, where the Practitioner is read anyway)."""
    found = (
        await practitioner_for_request(conn, caller, practitioner_id, ehealth_id)
        if caller is not None
        else await practitioner_content(conn, practitioner_id, ehealth_id)
    )
    if not found:
        return {PRACTITIONER: "", PROFESSIONS: ()}
    now = context.now()
    params: list[object] = [found[0]]
    for _ in HELD:
        params += [found[0], now]
    rows = await conn.fetch(_HELD_SQL, params)
    return {
        PRACTITIONER: found[0],
        PROFESSIONS: professions_of(found[1]),
        ROLES: tuple(str(r[1]) for r in rows if r[0] == "role"),
        KINDS: tuple(str(r[1]) for r in rows if r[0] == "kind"),
        IDENTITY: practitioner_identity(found[1]),
    }


def dsp_token_check(context: DspContext) -> TokenCheck:
    """The bearer gate's check (``ResourceServer.add_check``): records the professional for the access rule."""

    async def check(claims: TokenClaims, caller: Caller, conn: Connection) -> None:
        who = professional_of_token(claims)
        if who is not None:
            caller.attributes.update(
                await professional_attributes(conn, context, who.practitioner_id, who.ehealth_id, caller)
            )

    return check
