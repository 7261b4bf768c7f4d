"""The DSP-consent queue (table ``cve_dsp_sync``): one row per patient whose vaccination-history document may need
filing, and what happened last time. SQL only; the same statements on SQLite and PostgreSQL.

- ``request`` upserts the row as ``pending`` in the transaction of every change of the patient's record or of
  their DSP-sharing consent (a store hook: it commits or rolls back with the change). ``requested_at`` (epoch
  microseconds) is bumped each time: the worker records its outcome only if no newer change arrived meanwhile
  (compare-and-set), so a change made while the document was being filed is never lost.
- ``claim`` gives a worker a lease on due rows (``pending``, or ``waiting`` for a DSP to open, whose next attempt
  is due); on PostgreSQL ``FOR UPDATE SKIP LOCKED`` so the workers of several processes never take the same row.
- ``finish`` records the outcome: ``filed`` (the document is current in the DSP), ``waiting`` (the DSP is not open
  yet or is closed: tried again at ``next_attempt_at``), ``not-filed`` (refused for good: no DSP, a refused or
  destroyed one, an identity the DSP does not know), ``stopped`` (no consent in force), or ``pending`` again
  with a back-off after a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from esante.db.engine import Connection

__all__ = [
    "QueueRow",
    "any_due",
    "claim",
    "counts",
    "due_count",
    "finish",
    "release",
    "request",
    "request_all",
    "state",
]

STATUSES = ("pending", "waiting", "filed", "not-filed", "stopped")
_COLUMNS = "patient_id, status, reason, requested_at, attempts, document_id, content_hash, filed_at, next_attempt_at"


@dataclass(frozen=True)
class QueueRow:
    patient_id: str
    status: str
    reason: str | None
    requested_at: int
    attempts: int
    document_id: str | None
    content_hash: str | None
    filed_at: int | None
    next_attempt_at: int


def _row(raw: Sequence[object]) -> QueueRow:
    return QueueRow(
        str(raw[0]),
        str(raw[1]),
        None if raw[2] is None else str(raw[2]),
        int(raw[3]),  # type: ignore[call-overload]
        int(raw[4]),  # type: ignore[call-overload]
        None if raw[5] is None else str(raw[5]),
        None if raw[6] is None else str(raw[6]),
        None if raw[7] is None else int(raw[7]),  # type: ignore[call-overload]
        int(raw[8]),  # type: ignore[call-overload]
    )


async def request(conn: Connection, patient_id: str, now_micros: int) -> None:
    """Queue ``patient_id`` (their record or consent changed in this transaction)."""
    now = now_micros // 1_000_000
    await conn.execute(
        "INSERT INTO cve_dsp_sync (patient_id, status, requested_at, attempts, next_attempt_at, updated_at)"
        " VALUES (?, 'pending', ?, 0, ?, ?) ON CONFLICT (patient_id) DO UPDATE SET status = 'pending',"
        " reason = NULL, requested_at = excluded.requested_at, attempts = 0,"
        " next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at",
        (patient_id, now_micros, now, now),
    )


async def request_all(conn: Connection, patient_ids: Sequence[str], now_micros: int) -> None:
    for patient_id in patient_ids:
        await request(conn, patient_id, now_micros)


async def claim(conn: Connection, now: int, size: int, lease: int, token: str) -> list[QueueRow]:
    """Lease up to ``size`` due rows to the worker holding ``token`` until ``lease`` (epoch seconds)."""
    lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.is_postgres else ""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM cve_dsp_sync WHERE status IN ('pending', 'waiting') AND next_attempt_at <= ?"
        f" AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_attempt_at, patient_id LIMIT ?{lock}",
        (now, now, size),
    )
    claimed = [_row(r) for r in rows]
    for row in claimed:
        await conn.execute(
            "UPDATE cve_dsp_sync SET claimed_until = ?, claim_token = ? WHERE patient_id = ?",
            (lease, token, row.patient_id),
        )
    return claimed


async def finish(
    conn: Connection,
    row: QueueRow,
    token: str,
    now: int,
    status: str,
    reason: str | None = None,
    *,
    document_id: str | None = None,
    content_hash: str | None = None,
    filed: bool = False,
    next_attempt_at: int | None = None,
    failed: bool = False,
) -> bool:
    """Record the outcome of ``row``'s claim; False (the lease only is released) when a newer change arrived."""
    assert status in STATUSES
    done = await conn.execute(
        "UPDATE cve_dsp_sync SET status = ?, reason = ?, attempts = ?, next_attempt_at = ?, claimed_until = NULL,"
        " claim_token = NULL, document_id = COALESCE(?, document_id), content_hash = COALESCE(?, content_hash),"
        " filed_at = CASE WHEN ? THEN ? ELSE filed_at END, updated_at = ?"
        " WHERE patient_id = ? AND claim_token = ? AND requested_at = ?",
        (
            status,
            reason,
            row.attempts + 1 if failed else 0,
            next_attempt_at if next_attempt_at is not None else now,
            document_id,
            content_hash,
            filed,
            now,
            now,
            row.patient_id,
            token,
            row.requested_at,
        ),
    )
    if not done:
        await release(conn, row.patient_id, token)
    return bool(done)


async def release(conn: Connection, patient_id: str, token: str) -> None:
    await conn.execute(
        "UPDATE cve_dsp_sync SET claimed_until = NULL, claim_token = NULL WHERE patient_id = ? AND claim_token = ?",
        (patient_id, token),
    )


async def state(conn: Connection, patient_id: str) -> QueueRow | None:
    raw = await conn.fetchrow(f"SELECT {_COLUMNS} FROM cve_dsp_sync WHERE patient_id = ?", (patient_id,))
    return _row(raw) if raw is not None else None


async def counts(conn: Connection) -> dict[str, int]:
    found = {status: 0 for status in STATUSES}
    for raw in await conn.fetch("SELECT status, COUNT(*) FROM cve_dsp_sync GROUP BY status"):
        found[str(raw[0])] = int(raw[1])
    return found


async def any_due(conn: Connection, now: int) -> bool:
    """Whether a row is due and not leased (one indexed probe)."""
    row = await conn.fetchrow(
        "SELECT 1 FROM cve_dsp_sync WHERE status IN ('pending', 'waiting') AND next_attempt_at <= ?"
        " AND (claimed_until IS NULL OR claimed_until < ?) LIMIT 1",
        (now, now),
    )
    return row is not None


async def due_count(conn: Connection, now: int) -> int:
    value = await conn.fetchval(
        "SELECT COUNT(*) FROM cve_dsp_sync WHERE status IN ('pending', 'waiting') AND next_attempt_at <= ?", (now,)
    )
    return int(value or 0)
