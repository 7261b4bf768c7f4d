"""The right to practise and its cascade: one function changes it, everything that depended on it follows in the
same database transaction (docs/hpd-practise.md).

:func:`change_right_to_practise` is what the register import and the HPD administrators' operations call. In the
caller's transaction it

1. records the new status (``hpd_right_to_practise``) and the change (``hpd_right_to_practise_history``: who, when,
   why, from where);
2. writes the Practitioner (``active`` true iff the right is active, the right-to-practise extension) and, on a
   loss, makes every active PractitionerRole of the professional inactive (remembered in
   ``hpd_practise_held_role``); a restoration makes those roles active again;
3. on a loss, revokes the professional's grants: every refresh token of their accounts, and every access token,
   authorization code and refresh token issued until now (``tokens_valid_after``: the bearer gate, the token
   endpoint and introspection refuse them, and they stay refused after a restoration — the professional signs in
   again). Tokens of system clients acting for the professional (IUA ``national_provider_identifier``) are refused
   the same way;
4. appends the AuditEvent (agent, professional, old and new status, effective date, reason, source) to the
   hash-chained trail.

What is *not* touched: what patients granted the professional (trusted circle, therapeutic relationships, consents:
FHIR resources naming the Practitioner, written by the DSP and CVE services). They stay as they are and stop
working while the right is lost, because every access rule asks :func:`practising_sql` /
``security.pdp.rules.professional.practising`` and the bearer gate refuses the professional's tokens; a restoration
brings them back unchanged.

The checks the security layer runs (``install_practise`` registers them): :func:`practise_standing` (login, consent,
token endpoint, client credentials acting for a professional, operator tokens, introspection) and
:func:`practise_token_check` (the bearer gate of ``/fhir``, on every request).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson

from esante.db.engine import Connection
from esante.fhir.hooks import HookEvent, Pointcut
from esante.fhir.store import StoreSession
from esante.hpd import practise_store as store
from esante.hpd.model import (
    EHEALTH_ID_SYSTEM,
    RIGHT_TO_PRACTISE_URL,
    RightToPractise,
    Status,
    right_to_practise_extension,
    right_to_practise_of,
)
from esante.hpd.practise_audit import practise_event
from esante.hpd.practise_model import (
    REVOKED_CODE,
    REVOKED_MESSAGE,
    Agent,
    PractiseChange,
    PractiseError,
    RecordedRight,
    Source,
    check_effective,
    check_reason,
    check_transition,
    parse_status,
    refusal_code,
    refusal_message,
)
from esante.security.audit_trail import AuditTrail
from esante.security.pdp.rules.professional import RIGHT_TO_PRACTISE
from esante.security.policy import Caller
from esante.security.resource_server import unauthorized
from esante.security.standing import ProfessionalRef, Standing, StandingRefusal, professional_of_token
from esante.security.tokens import TokenClaims

if TYPE_CHECKING:
    from esante.app import Platform

__all__ = [
    "Agent",
    "PractiseChange",
    "PractiseError",
    "Source",
    "Status",
    "change_right_to_practise",
    "has_right_to_practise",
    "install_practise",
    "practise_standing",
    "practise_token_check",
    "practising_sql",
    "recorded_right",
]

try:
    from zoneinfo import ZoneInfo

    _ZONE: Any = ZoneInfo("Europe/Luxembourg")
except Exception:  # no time-zone data: UTC is a day off at most around midnight
    _ZONE = UTC


def today() -> date:
    """The date in Luxembourg (an effective date "today" means the Ministry's today)."""
    return datetime.now(_ZONE).date()


# --- the change ------------------------------------------------------------------------------------------------


async def change_right_to_practise(
    session: StoreSession,
    practitioner_id: str,
    status: Status | str,
    *,
    reason: str,
    source: Source | str,
    agent: Agent,
    effective: str | date | None = None,
    allow_unchanged: bool = False,
    server: str = "esante",
    request_id: str | None = None,
    client_address: str | None = None,
) -> PractiseChange:
    """Set the right to practise of ``Practitioner/practitioner_id`` to ``status`` and cascade, inside ``session``'s
    transaction (see the module docstring). Raises :class:`PractiseError` (400 bad input, 404 unknown Practitioner,
    409 transition the status cannot take) before anything is written.

    ``allow_unchanged`` (the import): a status equal to the recorded one is no error but a no-op (``changed``
    False, nothing written). ``server``, ``request_id``, ``client_address``: for the AuditEvent.
    """
    target = parse_status(status)
    why = check_reason(reason)
    when = check_effective(effective, today())
    origin = Source(source)
    conn = session.conn
    await session.flush()  # what the caller wrote so far is visible to our reads
    await store.lock(conn, practitioner_id)
    writer = session.store.session(conn)  # the HPD's own writer: no API caller (the agent is in the audit)
    stored = await writer.read("Practitioner", practitioner_id)
    if stored is None or stored.deleted or stored.content is None:
        raise PractiseError(404, "unknown_practitioner", f"Practitioner/{practitioner_id} does not exist")
    practitioner: dict[str, Any] = orjson.loads(stored.content)
    ehealth_id = _ehealth_id_of(practitioner)
    recorded = await store.current(conn, practitioner_id)
    previous = recorded.status if recorded is not None else Status.ACTIVE
    if previous is target and allow_unchanged and (recorded is not None or target is Status.ACTIVE):
        return PractiseChange(
            practitioner_id, ehealth_id, previous, target, when, why, origin, agent, session.store.clock.now(), False
        )
    check_transition(practitioner_id, previous, target, recorded.effective if recorded else None)

    now = session.store.clock.now()
    losing = previous is Status.ACTIVE
    cutoff = recorded.tokens_valid_after if recorded is not None else 0
    if losing:
        cutoff = now // 1_000_000 + 1  # token iat has 1 s granularity: this second's grants are refused too
    await store.save(
        conn, RecordedRight(practitioner_id, ehealth_id, target, when, why, now, cutoff)
    )  # first: the storage hooks below read it

    _stamp(practitioner, target, when)
    written = await writer.update(practitioner, stored)
    roles: list[str] = []
    if losing:
        roles = await _hold_roles(writer, practitioner_id, now)
    elif target is Status.ACTIVE:
        roles = await _release_roles(writer, practitioner_id)
    accounts: list[str] = []
    revoked = 0
    if target is not Status.ACTIVE:
        accounts = await store.accounts_of(conn, practitioner_id, ehealth_id)
        revoked = await store.revoke_refresh_tokens(conn, accounts)
    change = PractiseChange(
        practitioner_id,
        ehealth_id,
        previous,
        target,
        when,
        why,
        origin,
        agent,
        written.last_updated,
        True,
        tuple(roles),
        tuple(accounts),
        revoked,
    )
    event = practise_event(change, server=server, request_id=request_id, client_address=client_address)
    audited = await AuditTrail().append(writer, event)
    history_id = await store.add_history(
        conn,
        practitioner_id=practitioner_id,
        ehealth_id=ehealth_id,
        old=previous,
        new=target,
        effective=when,
        reason=why,
        source=origin,
        agent=agent,
        recorded_at=change.recorded_at,
        audit_event=audited.res_id,
    )
    await writer.flush()
    return replace(change, audit_event=audited.res_id, history_id=history_id)


def _ehealth_id_of(practitioner: dict[str, Any]) -> str | None:
    for identifier in practitioner.get("identifier", []) or []:
        if isinstance(identifier, dict) and identifier.get("system") == EHEALTH_ID_SYSTEM:
            value = identifier.get("value")
            if isinstance(value, str) and len(value) == 10 and value.isdigit():
                return value
    return None


def _stamp(practitioner: dict[str, Any], status: Status, effective: str | None) -> None:
    """Write the recorded status on a Practitioner: ``active`` and the right-to-practise extension (status and
    date; the reason stays in the HPD's history and the audit trail, not in a public directory entry)."""
    practitioner["active"] = status is Status.ACTIVE
    others = [
        e
        for e in practitioner.get("extension", []) or []
        if not (isinstance(e, dict) and e.get("url") == RIGHT_TO_PRACTISE_URL)
    ]
    practitioner["extension"] = [*others, right_to_practise_extension(RightToPractise(status, effective))]


async def _hold_roles(writer: StoreSession, practitioner_id: str, now: int) -> list[str]:
    """Make the professional's active roles inactive and remember them for the restoration."""
    await writer.flush()
    changed: list[str] = []
    for role_id in await store.role_ids_of(writer.conn, practitioner_id):
        current = await writer.read("PractitionerRole", role_id)
        if current is None or current.deleted or current.content is None:
            continue
        role: dict[str, Any] = orjson.loads(current.content)
        if role.get("active") is False:
            continue  # inactive for its own reasons: it stays so after a restoration
        role["active"] = False
        await writer.update(role, current)
        changed.append(role_id)
    await store.hold_roles(writer.conn, practitioner_id, changed, now)  # after the writes: see _role_before_write
    return changed


async def _release_roles(writer: StoreSession, practitioner_id: str) -> list[str]:
    """Make the roles a loss held inactive active again (those still naming the professional)."""
    changed: list[str] = []
    for role_id in await store.held_roles(writer.conn, practitioner_id):
        current = await writer.read("PractitionerRole", role_id)
        if current is None or current.deleted or current.content is None:
            continue
        role: dict[str, Any] = orjson.loads(current.content)
        if _practitioner_of(role) != practitioner_id or role.get("active") is not False:
            continue
        role["active"] = True
        await writer.update(role, current)
        changed.append(role_id)
    await store.release_all(writer.conn, practitioner_id)
    return changed


def _practitioner_of(role: dict[str, Any]) -> str | None:
    """The id of the Practitioner a PractitionerRole names (relative or absolute reference)."""
    reference = role.get("practitioner", {}).get("reference") if isinstance(role.get("practitioner"), dict) else None
    if not isinstance(reference, str) or "Practitioner/" not in reference:
        return None
    tail = reference.rsplit("Practitioner/", 1)[1].split("/_history", 1)[0]
    return tail or None


# --- what the rest of the platform asks ---------------------------------------------------------------------------


async def recorded_right(conn: Connection, practitioner_id: str) -> RecordedRight | None:
    """The HPD's record of a professional's right (None: never changed, so active)."""
    return await store.current(conn, practitioner_id)


async def has_right_to_practise(
    conn: Connection, *, practitioner_id: str | None = None, ehealth_id: str | None = None
) -> bool:
    """Whether the professional (by Practitioner id and/or eHealthID) may practise now. Services call it for
    decisions outside a FHIR search (notifications, messaging); inside searches use :func:`practising_sql`."""
    return all(right.active for right in await store.lookup(conn, ehealth_id, practitioner_id))


def practising_sql(practitioner_id_sql: str) -> str:
    """An SQL condition, true when the Practitioner whose id is ``practitioner_id_sql`` (a column or ``?``) may
    practise, for the access rules' ``SqlCondition`` (e.g. the DSP: a trusted-circle Consent grants its
    professional access only while this holds; the Consent itself is never touched)."""
    return (
        "NOT EXISTS (SELECT 1 FROM hpd_right_to_practise hpd_rtp WHERE hpd_rtp.practitioner_id = "
        f"{practitioner_id_sql} AND hpd_rtp.status <> 'active')"
    )


async def practise_standing(
    conn: Connection, who: ProfessionalRef, issued_at: int | None = None
) -> StandingRefusal | None:
    """The security layer's standing check (``security/standing.py``): refused while the right is suspended or
    withdrawn, and for grants issued before its last loss (``issued_at`` < ``tokens_valid_after``)."""
    for right in await store.lookup(conn, who.ehealth_id, who.practitioner_id):
        if not right.active:
            return StandingRefusal(refusal_code(right.status), refusal_message(right.status, right.effective))
        if issued_at is not None and issued_at < right.tokens_valid_after:
            return StandingRefusal(REVOKED_CODE, REVOKED_MESSAGE)
    return None


async def practise_token_check(claims: TokenClaims, caller: Caller, conn: Connection) -> None:
    """The bearer gate's check (``ResourceServer.add_check``): a professional's token, or a system client's token
    acting for one, is refused (401) from the first request after a suspension or withdrawal; otherwise the caller
    is recorded as practising (``right_to_practise``) for the access rules."""
    who = professional_of_token(claims)
    if who is None:
        return
    refused = await practise_standing(conn, who, claims.issued_at)
    if refused is not None:
        issue = "login" if refused.code == REVOKED_CODE else "suspended"
        raise unauthorized(refused.message, issue_code=issue, details_code=refused.code)
    caller.attributes[RIGHT_TO_PRACTISE] = Status.ACTIVE.value


# --- storage hooks: the directory entries keep following the recorded right ----------------------------------------

_PENDING_HOLD = "_hpd_practise_pending_holds"  # StoreSession attribute: roles created during a loss, to hold


async def _practitioner_before_write(event: HookEvent) -> None:
    """A Practitioner written while the HPD has a record for it carries the recorded status (``active``, the
    extension), whoever writes it: the right changes only through :func:`change_right_to_practise`."""
    resource = event.resource
    if resource is None:
        return
    res_id = resource.get("id") if isinstance(resource.get("id"), str) else None
    res_id = res_id or (event.previous.res_id if event.previous is not None else None)
    if not res_id:
        return
    right = await store.current(event.session.conn, res_id)
    if right is None:
        return
    if right_to_practise_of(resource).status is right.status:  # the writer states the recorded status: kept as
        resource["active"] = right.active  # written (its date too), so re-importing the same line changes nothing
        return
    _stamp(resource, right.status, right.effective)


async def _role_before_write(event: HookEvent) -> None:
    """A PractitionerRole of a professional without the right is written inactive; unless its writer made it
    inactive on purpose, it is held, and the restoration makes it active."""
    resource = event.resource
    if resource is None:
        return
    conn = event.session.conn
    role_id = resource.get("id") if isinstance(resource.get("id"), str) else None
    role_id = role_id or (event.previous.res_id if event.previous is not None else None)
    practitioner = _practitioner_of(resource)
    right = await store.current(conn, practitioner) if practitioner else None
    if right is None or right.active:
        return
    assert practitioner is not None
    wanted_active = resource.get("active") is not False
    resource["active"] = False
    if role_id is None:  # a new role with a server id: held once the id exists (_role_created)
        if wanted_active:
            pending: list[dict[str, Any]] = getattr(event.session, _PENDING_HOLD, [])
            pending.append(resource)
            setattr(event.session, _PENDING_HOLD, pending)
        return
    await store.release_role(conn, role_id)
    if wanted_active:
        await store.hold_roles(conn, practitioner, [role_id], event.session.store.clock.now())


async def _role_created(event: HookEvent) -> None:
    pending: list[dict[str, Any]] = getattr(event.session, _PENDING_HOLD, [])
    if not pending or event.stored is None or event.resource is None:
        return
    for index, resource in enumerate(pending):
        if resource is event.resource:
            del pending[index]
            practitioner = _practitioner_of(resource)
            if practitioner:
                await store.hold_roles(
                    event.session.conn, practitioner, [event.stored.res_id], event.stored.last_updated
                )
            return


# --- wiring --------------------------------------------------------------------------------------------------------


def install_practise(platform: Platform) -> None:
    """Plug the right to practise into ``platform``: the administrators' operations, the checks of the security
    layer (bearer gate, login, token endpoint, operator tokens) and the storage hooks. Idempotent."""
    from esante.hpd.practise_operations import practise_operations

    if platform.operations.find("hpd-suspend", "Practitioner", True) is not None:
        return
    for operation in practise_operations():
        platform.operations.register(operation)
    platform.resource_server.add_check(practise_token_check)
    platform.accounts.standing.add(practise_standing)
    hooks = platform.hooks
    hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, _practitioner_before_write, {"Practitioner"})
    hooks.register(Pointcut.STORAGE_PRESTORAGE_UPDATE, _practitioner_before_write, {"Practitioner"})
    hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, _role_before_write, {"PractitionerRole"})
    hooks.register(Pointcut.STORAGE_PRESTORAGE_UPDATE, _role_before_write, {"PractitionerRole"})
    hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, _role_created, {"PractitionerRole"})


def standing_checks() -> Standing:
    """A :class:`~esante.security.standing.Standing` with the HPD's check, for tools that do not build a
    platform (``esante token --as professional:…`` passes it to ``plan_token``)."""
    return Standing([practise_standing])
