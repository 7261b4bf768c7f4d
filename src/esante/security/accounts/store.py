"""SQL for the ``account`` and ``account_delegation`` tables (both engines, ``?`` placeholders).

Functions take a :class:`Connection` so the service decides the transaction. Reads of people-facing data return
:class:`model.Account`, which has no secret; the hashes and the TOTP secret are read only through
:func:`read_secrets`, for the service's checks. Times are epoch seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from esante.db.engine import Connection, Row
from esante.security.accounts.model import Account, AccountKind, AccountStatus, StaffRole

_ACCOUNT_COLUMNS = (
    "id, kind, username, status, display_name, patient_id, practitioner_id, ehealth_id, roles, matricule, email, "
    "mobile, totp_enabled, failed_logins, locked_until, tokens_valid_after, created_at, updated_at"
)


@dataclass(frozen=True)
class AccountSecrets:
    """What the service needs to check a person's proofs; never leaves the service."""

    password_hash: str | None
    totp_secret: str | None
    totp_enabled: bool
    totp_last_counter: int | None
    activation_code_hash: str | None
    activation_expires: int | None
    reset_code_hash: str | None
    reset_expires: int | None


def _account(row: Row) -> Account:
    roles = tuple(StaffRole(r) for r in (row[8] or "").split() if r)
    return Account(
        id=row[0],
        kind=AccountKind(row[1]),
        username=row[2],
        status=AccountStatus(row[3]),
        display_name=row[4],
        patient_id=row[5],
        practitioner_id=row[6],
        ehealth_id=row[7],
        roles=roles,
        matricule=row[9],
        email=row[10],
        mobile=row[11],
        totp_enabled=bool(row[12]),
        failed_logins=int(row[13]),
        locked_until=None if row[14] is None else int(row[14]),
        tokens_valid_after=int(row[15]),
        created_at=int(row[16]),
        updated_at=int(row[17]),
    )


def _for_update(conn: Connection) -> str:
    """PostgreSQL row lock for read-modify-write (SQLite write transactions are already serial)."""
    return " FOR UPDATE" if conn.dialect.is_postgres else ""


async def insert_account(
    conn: Connection, account: Account, *, activation_code_hash: str, activation_expires: int
) -> None:
    await conn.execute(
        "INSERT INTO account (id, kind, username, status, display_name, patient_id, practitioner_id, ehealth_id, "
        "roles, matricule, email, mobile, totp_enabled, failed_logins, tokens_valid_after, activation_code_hash, "
        "activation_expires, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, 0, 0, ?, ?, ?, ?)",
        (
            account.id,
            account.kind.value,
            account.username,
            account.status.value,
            account.display_name,
            account.patient_id,
            account.practitioner_id,
            account.ehealth_id,
            " ".join(role.value for role in account.roles),
            account.matricule,
            account.email,
            account.mobile,
            activation_code_hash,
            activation_expires,
            account.created_at,
            account.updated_at,
        ),
    )


async def get_account(conn: Connection, account_id: str, *, lock: bool = False) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE id = ?" + (_for_update(conn) if lock else ""), (account_id,)
    )
    return _account(row) if row else None


async def find_by_username(conn: Connection, username: str, *, lock: bool = False) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM account WHERE username = ?" + (_for_update(conn) if lock else ""),
        (username,),
    )
    return _account(row) if row else None


async def list_accounts(
    conn: Connection, *, kind: AccountKind | None = None, status: AccountStatus | None = None, limit: int, offset: int
) -> list[Account]:
    where: list[str] = []
    params: list[Any] = []
    if kind is not None:
        where.append("kind = ?")
        params.append(kind.value)
    if status is not None:
        where.append("status = ?")
        params.append(status.value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM account{clause} ORDER BY created_at, username LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [_account(row) for row in rows]


async def username_taken(conn: Connection, username: str) -> bool:
    return await conn.fetchval("SELECT 1 FROM account WHERE username = ?", (username,)) is not None


async def open_account_for(conn: Connection, column: str, value: str) -> str | None:
    """The id of a not-closed account whose ``column`` (patient_id or ehealth_id) is ``value``."""
    if column not in ("patient_id", "ehealth_id"):
        raise ValueError(column)
    return await conn.fetchval(f"SELECT id FROM account WHERE {column} = ? AND status <> 'closed'", (value,))


async def read_secrets(conn: Connection, account_id: str) -> AccountSecrets | None:
    row = await conn.fetchrow(
        "SELECT password_hash, totp_secret, totp_enabled, totp_last_counter, activation_code_hash, "
        "activation_expires, reset_code_hash, reset_expires FROM account WHERE id = ?",
        (account_id,),
    )
    if row is None:
        return None
    return AccountSecrets(
        password_hash=row[0],
        totp_secret=row[1],
        totp_enabled=bool(row[2]),
        totp_last_counter=None if row[3] is None else int(row[3]),
        activation_code_hash=row[4],
        activation_expires=None if row[5] is None else int(row[5]),
        reset_code_hash=row[6],
        reset_expires=None if row[7] is None else int(row[7]),
    )


# Columns the service may change with update_account (a fixed set: the names are interpolated into SQL).
_UPDATABLE = frozenset(
    {
        "status",
        "password_hash",
        "totp_secret",
        "totp_enabled",
        "totp_last_counter",
        "activation_code_hash",
        "activation_expires",
        "reset_code_hash",
        "reset_expires",
        "failed_logins",
        "locked_until",
        "tokens_valid_after",
    }
)


async def update_account(conn: Connection, account_id: str, now: int, **values: Any) -> None:
    """Set the given columns (and ``updated_at``) of one account."""
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in values)
    await conn.execute(
        f"UPDATE account SET {assignments}, updated_at = ? WHERE id = ?", (*values.values(), now, account_id)
    )


async def claim_totp_counter(conn: Connection, account_id: str, counter: int, now: int) -> bool:
    """Record ``counter`` as used unless it (or a later one) already was: False means the code was replayed."""
    changed = await conn.execute(
        "UPDATE account SET totp_last_counter = ?, updated_at = ? WHERE id = ? "
        "AND (totp_last_counter IS NULL OR totp_last_counter < ?)",
        (counter, now, account_id, counter),
    )
    return changed == 1


async def revoke_refresh_tokens(conn: Connection, account_id: str) -> int:
    """Revoke every refresh token of the account (the authorization server refuses revoked ones)."""
    return await conn.execute(
        "UPDATE oauth_refresh_token SET revoked = TRUE WHERE account_id = ? AND NOT revoked", (account_id,)
    )


async def resource_exists(conn: Connection, res_type: str, res_id: str) -> bool:
    """True when the FHIR store has a current, not deleted ``res_type/res_id``."""
    value = await conn.fetchval(
        "SELECT 1 FROM resource WHERE res_type = ? AND res_id = ? AND is_current AND NOT deleted", (res_type, res_id)
    )
    return value is not None


# ---------------------------------------------------------------- delegations (DSP assistants)
async def active_delegations(conn: Connection, account_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT patient_id FROM account_delegation WHERE account_id = ? AND revoked_at IS NULL ORDER BY patient_id",
        (account_id,),
    )
    return [row[0] for row in rows]


async def add_delegation(conn: Connection, account_id: str, patient_id: str, now: int) -> None:
    await conn.execute(
        "INSERT INTO account_delegation (account_id, patient_id, created_at) VALUES (?, ?, ?)",
        (account_id, patient_id, now),
    )


async def revoke_delegations(conn: Connection, account_id: str, patient_ids: Sequence[str] | None, now: int) -> int:
    """Revoke the account's active delegations for ``patient_ids`` (all of them when None); the rows stay."""
    if patient_ids is None:
        return await conn.execute(
            "UPDATE account_delegation SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL",
            (now, account_id),
        )
    total = 0
    for patient_id in patient_ids:
        total += await conn.execute(
            "UPDATE account_delegation SET revoked_at = ? WHERE account_id = ? AND patient_id = ? "
            "AND revoked_at IS NULL",
            (now, account_id, patient_id),
        )
    return total
