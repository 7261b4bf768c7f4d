"""SQL of the notifications' outbox (``notify_outbox``) and e-mail choices (``notify_preference``); both engines.

Functions take a :class:`Connection`: the caller decides the transaction (a notification's row is written in the
transaction of the service that notifies; the delivery worker's claims and results in short ones of its own).
Times are epoch seconds.

Statuses of a row: ``pending`` (to be e-mailed when ``next_attempt_at`` is due), ``sent``, ``skipped`` (no e-mail
to send: no account or address, opted out; ``reason`` says which), ``dead`` (given up after the last attempt or
refused for good by the SMTP server), ``expired`` (still pending after ``notify_email_max_age``: the stored
notification is the record, a stale e-mail is not sent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from esante.db.engine import Connection

STATUSES = ("pending", "sent", "skipped", "dead", "expired")
ALL_KINDS = "*"


@dataclass(frozen=True)
class OutboxRow:
    id: str
    kind: str
    recipient: str
    created_at: int
    attempts: int


@dataclass(frozen=True)
class Address:
    """What the accounts say about a recipient's e-mail."""

    email: str | None
    account_status: str | None  # None: no account


async def insert(conn: Connection, row_id: str, key: str, kind: str, recipient: str, now: int) -> bool:
    """The row for a new notification; False when ``key`` exists already (nothing written).

    ``ON CONFLICT DO NOTHING`` on the unique key: a concurrent transaction with the same key waits for the first
    one's outcome (PostgreSQL) and then writes nothing, without failing its own transaction.
    """
    count = await conn.execute(
        "INSERT INTO notify_outbox (id, idempotency_key, kind, recipient, created_at, status, attempts, "
        "next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?) ON CONFLICT (idempotency_key) DO NOTHING",
        (row_id, key, kind, recipient, now, now),
    )
    return count == 1


async def id_for_key(conn: Connection, key: str) -> str | None:
    value = await conn.fetchval("SELECT id FROM notify_outbox WHERE idempotency_key = ?", (key,))
    return None if value is None else str(value)


async def claim(conn: Connection, now: int, limit: int, lease_until: int, token: str) -> list[OutboxRow]:
    """Take up to ``limit`` due rows for one delivery run (a lease: another worker skips them until it ends).

    PostgreSQL skips rows another worker is claiming at the same moment (``SKIP LOCKED``); SQLite's write
    transactions are serial already.
    """
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.is_postgres else ""
    rows = await conn.fetch(
        "UPDATE notify_outbox SET claimed_until = ?, claim_token = ? WHERE id IN ("
        "SELECT id FROM notify_outbox WHERE status = 'pending' AND next_attempt_at <= ? "
        "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, created_at, id LIMIT ?"
        f"{lock}) RETURNING id, kind, recipient, created_at, attempts",
        (lease_until, token, now, now, limit),
    )
    found = [OutboxRow(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]
    return sorted(found, key=lambda r: (r.created_at, r.id))


async def addresses(conn: Connection, recipients: Iterable[str]) -> dict[str, Address]:
    """The e-mail of each recipient's account (an active account with an address wins over the others)."""
    patients = sorted({r.removeprefix("Patient/") for r in recipients if r.startswith("Patient/")})
    practitioners = sorted({r.removeprefix("Practitioner/") for r in recipients if r.startswith("Practitioner/")})
    found: dict[str, Address] = {}
    for column, kind, prefix, ids in (
        ("patient_id", "patient", "Patient/", patients),
        ("practitioner_id", "professional", "Practitioner/", practitioners),
    ):
        for chunk in _chunks(ids, 500):
            marks = ", ".join("?" for _ in chunk)
            rows = await conn.fetch(
                f"SELECT {column}, status, email FROM account WHERE kind = ? AND {column} IN ({marks})",
                (kind, *chunk),
            )
            for person, status, email in rows:
                candidate = Address(str(email).strip() if email and str(email).strip() else None, str(status))
                key = f"{prefix}{person}"
                if _better(candidate, found.get(key)):
                    found[key] = candidate
    return found


def _better(candidate: Address, current: Address | None) -> bool:
    def rank(a: Address) -> tuple[bool, bool]:
        return (a.account_status == "active", a.email is not None)

    return current is None or rank(candidate) > rank(current)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def email_choices(conn: Connection, recipients: Iterable[str]) -> dict[tuple[str, str], bool]:
    """Every stored choice of these recipients: (recipient, kind or '*') → e-mail wanted."""
    wanted = sorted(set(recipients))
    choices: dict[tuple[str, str], bool] = {}
    for chunk in _chunks(wanted, 500):
        marks = ", ".join("?" for _ in chunk)
        rows = await conn.fetch(
            f"SELECT recipient, kind, email FROM notify_preference WHERE recipient IN ({marks})", tuple(chunk)
        )
        for recipient, kind, email in rows:
            choices[(str(recipient), str(kind))] = bool(email)
    return choices


def wants_email(choices: dict[tuple[str, str], bool], recipient: str, kind: str, default: bool) -> bool:
    """A choice for the kind wins over the choice for every kind, which wins over the platform's default."""
    if (recipient, kind) in choices:
        return choices[(recipient, kind)]
    return choices.get((recipient, ALL_KINDS), default)


async def set_choice(conn: Connection, recipient: str, kind: str, email: bool | None, now: int) -> None:
    """Record a recipient's choice for ``kind`` ('*': every kind); None removes it (back to the default)."""
    await conn.execute("DELETE FROM notify_preference WHERE recipient = ? AND kind = ?", (recipient, kind))
    if email is not None:
        await conn.execute(
            "INSERT INTO notify_preference (recipient, kind, email, updated_at) VALUES (?, ?, ?, ?)",
            (recipient, kind, email, now),
        )


async def finish(
    conn: Connection, row_id: str, token: str, status: str, reason: str | None, now: int, *, attempted: bool
) -> bool:
    """Close a claimed row (sent, skipped, dead, expired); False when the lease was lost meanwhile."""
    count = await conn.execute(
        "UPDATE notify_outbox SET status = ?, reason = ?, attempts = attempts + ?, sent_at = ?, "
        "claimed_until = NULL, claim_token = NULL WHERE id = ? AND claim_token = ?",
        (status, reason, 1 if attempted else 0, now if status == "sent" else None, row_id, token),
    )
    return count == 1


async def retry_later(conn: Connection, row_id: str, token: str, reason: str, next_attempt_at: int) -> bool:
    """A failed attempt to be tried again at ``next_attempt_at``."""
    count = await conn.execute(
        "UPDATE notify_outbox SET reason = ?, attempts = attempts + 1, next_attempt_at = ?, claimed_until = NULL, "
        "claim_token = NULL WHERE id = ? AND claim_token = ?",
        (reason, next_attempt_at, row_id, token),
    )
    return count == 1


async def release(conn: Connection, row_ids: Sequence[str], token: str) -> None:
    """Give back claimed rows untouched (the run's cap or a stop came first)."""
    for row_id in row_ids:
        await conn.execute(
            "UPDATE notify_outbox SET claimed_until = NULL, claim_token = NULL WHERE id = ? AND claim_token = ?",
            (row_id, token),
        )


async def counts(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status, COUNT(*) FROM notify_outbox GROUP BY status")
    found = {status: 0 for status in STATUSES}
    found.update({str(status): int(n) for status, n in rows})
    return found


async def requeue(conn: Connection, now: int, row_ids: Sequence[str] = (), status: str = "dead") -> int:
    """Put ``status`` rows (all, or those of ``row_ids``) back in the queue with their attempts reset."""
    where = "status = ?"
    params: list[Any] = ["pending", now, status]
    if row_ids:
        where += f" AND id IN ({', '.join('?' for _ in row_ids)})"
        params.extend(row_ids)
    return await conn.execute(
        "UPDATE notify_outbox SET status = ?, attempts = 0, next_attempt_at = ?, reason = NULL, "
        f"claimed_until = NULL, claim_token = NULL WHERE {where}",
        tuple(params),
    )


async def row(conn: Connection, row_id: str) -> dict[str, Any] | None:
    found = await conn.fetchrow(
        "SELECT id, kind, recipient, created_at, status, reason, attempts, next_attempt_at, sent_at "
        "FROM notify_outbox WHERE id = ?",
        (row_id,),
    )
    if found is None:
        return None
    names = ("id", "kind", "recipient", "created_at", "status", "reason", "attempts", "next_attempt_at", "sent_at")
    return dict(zip(names, found, strict=True))
