"""SQL of the right to practise (both engines, ``?`` placeholders): the current status, its history, the roles it
holds inactive, and what the cascade touches beside the FHIR store (the professional's accounts and refresh tokens).

Functions take a :class:`Connection`; the use case (``hpd/practise.py``) decides the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from esante.db.engine import Connection, Row
from esante.hpd.model import Status
from esante.hpd.practise_model import Agent, RecordedRight, Source

_COLUMNS = "practitioner_id, ehealth_id, status, effective, reason, changed_at, tokens_valid_after"


def _right(row: Row) -> RecordedRight:
    return RecordedRight(
        practitioner_id=str(row[0]),
        ehealth_id=str(row[1]) if row[1] is not None else None,
        status=Status(row[2]),
        effective=row[3],
        reason=row[4],
        changed_at=int(row[5]),
        tokens_valid_after=int(row[6]),
    )


async def lock(conn: Connection, practitioner_id: str) -> None:
    """Serialise changes of one professional's right until the transaction ends (PostgreSQL: an advisory lock on
    the id; SQLite write transactions are serial already): the second of two concurrent changes sees the first."""
    if conn.dialect.is_postgres:
        await conn.fetchval(
            "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"hpd-practise:{practitioner_id}",)
        )


async def current(conn: Connection, practitioner_id: str) -> RecordedRight | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM hpd_right_to_practise WHERE practitioner_id = ?", (practitioner_id,)
    )
    return _right(row) if row else None


async def lookup(conn: Connection, ehealth_id: str | None, practitioner_id: str | None) -> list[RecordedRight]:
    """The recorded rights of a professional named by eHealthID and/or Practitioner id (one indexed probe each)."""
    if ehealth_id and practitioner_id:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM hpd_right_to_practise WHERE ehealth_id = ? "
            f"UNION SELECT {_COLUMNS} FROM hpd_right_to_practise WHERE practitioner_id = ?",
            (ehealth_id, practitioner_id),
        )
    elif ehealth_id:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM hpd_right_to_practise WHERE ehealth_id = ?", (ehealth_id,))
    elif practitioner_id:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM hpd_right_to_practise WHERE practitioner_id = ?", (practitioner_id,)
        )
    else:
        return []
    return [_right(row) for row in rows]


async def save(conn: Connection, right: RecordedRight) -> None:
    """Insert or replace the current status of ``right.practitioner_id``."""
    await conn.execute(
        f"INSERT INTO hpd_right_to_practise ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (practitioner_id) DO UPDATE SET ehealth_id = excluded.ehealth_id, status = excluded.status, "
        "effective = excluded.effective, reason = excluded.reason, changed_at = excluded.changed_at, "
        "tokens_valid_after = excluded.tokens_valid_after",
        (
            right.practitioner_id,
            right.ehealth_id,
            right.status.value,
            right.effective,
            right.reason,
            right.changed_at,
            right.tokens_valid_after,
        ),
    )


async def add_history(
    conn: Connection,
    *,
    practitioner_id: str,
    ehealth_id: str | None,
    old: Status,
    new: Status,
    effective: str,
    reason: str,
    source: Source,
    agent: Agent,
    recorded_at: int,
    audit_event: str | None,
) -> int:
    value = await conn.fetchval(
        "INSERT INTO hpd_right_to_practise_history (practitioner_id, ehealth_id, old_status, new_status, effective, "
        "reason, source, agent_kind, agent_id, agent_display, recorded_at, audit_event) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            practitioner_id,
            ehealth_id,
            old.value,
            new.value,
            effective,
            reason,
            source.value,
            agent.kind,
            agent.id[:255],
            (agent.display or "")[:255] or None,
            recorded_at,
            audit_event,
        ),
    )
    return int(value)


async def history(conn: Connection, practitioner_id: str) -> list[dict[str, object]]:
    """Every change of one professional's right, oldest first."""
    rows = await conn.fetch(
        "SELECT id, old_status, new_status, effective, reason, source, agent_kind, agent_id, agent_display, "
        "recorded_at, audit_event FROM hpd_right_to_practise_history WHERE practitioner_id = ? ORDER BY id",
        (practitioner_id,),
    )
    names = (
        "id",
        "old_status",
        "new_status",
        "effective",
        "reason",
        "source",
        "agent_kind",
        "agent_id",
        "agent_display",
        "recorded_at",
        "audit_event",
    )
    return [dict(zip(names, row, strict=True)) for row in rows]


# --- roles held inactive -----------------------------------------------------------------------------------------


async def hold_roles(conn: Connection, practitioner_id: str, role_ids: Sequence[str], now: int) -> None:
    for role_id in role_ids:
        await conn.execute(
            "INSERT INTO hpd_practise_held_role (practitioner_id, role_id, held_at) VALUES (?, ?, ?) "
            "ON CONFLICT (practitioner_id, role_id) DO NOTHING",
            (practitioner_id, role_id, now),
        )


async def release_role(conn: Connection, role_id: str) -> None:
    """Forget a held role (someone made it inactive on purpose, or it moved to another practitioner)."""
    await conn.execute("DELETE FROM hpd_practise_held_role WHERE role_id = ?", (role_id,))


async def held_roles(conn: Connection, practitioner_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT role_id FROM hpd_practise_held_role WHERE practitioner_id = ? ORDER BY role_id", (practitioner_id,)
    )
    return [str(row[0]) for row in rows]


async def release_all(conn: Connection, practitioner_id: str) -> None:
    await conn.execute("DELETE FROM hpd_practise_held_role WHERE practitioner_id = ?", (practitioner_id,))


async def role_ids_of(conn: Connection, practitioner_id: str) -> list[str]:
    """The current PractitionerRoles whose ``practitioner`` is this Practitioner (the search index)."""
    rows = await conn.fetch(
        "SELECT DISTINCT r.res_id FROM idx_reference x JOIN resource r ON r.rid = x.rid AND r.is_current "
        "AND NOT r.deleted WHERE x.res_type = 'PractitionerRole' AND x.param = 'practitioner' "
        "AND x.target_type = 'Practitioner' AND x.target_id = ? ORDER BY r.res_id",
        (practitioner_id,),
    )
    return [str(row[0]) for row in rows]


# --- the professional's accounts ---------------------------------------------------------------------------------


async def accounts_of(conn: Connection, practitioner_id: str, ehealth_id: str | None) -> list[str]:
    """The professional's accounts that are not closed (linked by Practitioner id or by eHealthID)."""
    rows = await conn.fetch(
        "SELECT id FROM account WHERE kind = 'professional' AND status <> 'closed' "
        "AND (practitioner_id = ? OR ehealth_id = ?) ORDER BY id",
        (practitioner_id, ehealth_id or ""),
    )
    return [str(row[0]) for row in rows]


async def revoke_refresh_tokens(conn: Connection, account_ids: Sequence[str]) -> int:
    """Revoke every refresh token of these accounts (they stay revoked after a restoration)."""
    total = 0
    for account_id in account_ids:
        total += await conn.execute(
            "UPDATE oauth_refresh_token SET revoked = TRUE WHERE account_id = ? AND NOT revoked", (account_id,)
        )
    return total
