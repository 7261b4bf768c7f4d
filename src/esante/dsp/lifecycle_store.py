"""SQL of the DSP records and of the proofs of destruction (both engines, ``?`` placeholders).

Functions take a :class:`Connection`; the use cases (``lifecycle.py``) decide the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from esante.db.engine import Connection, Row
from esante.dsp.lifecycle_model import DspRecord, DspStatus

_COLUMNS = (
    "patient_id, status, opened_at, window_ends_at, updated_at, activated_at, refused_at, closed_at, "
    "retention_until, destroyed_at"
)


def _record(row: Row) -> DspRecord:
    def opt(value: object) -> int | None:
        return None if value is None else int(value)  # type: ignore[call-overload]

    return DspRecord(
        patient_id=str(row[0]),
        status=DspStatus(row[1]),
        opened_at=int(row[2]),
        window_ends_at=int(row[3]),
        updated_at=int(row[4]),
        activated_at=opt(row[5]),
        refused_at=opt(row[6]),
        closed_at=opt(row[7]),
        retention_until=opt(row[8]),
        destroyed_at=opt(row[9]),
    )


def _values(record: DspRecord) -> tuple[object, ...]:
    return (
        record.patient_id,
        record.status.value,
        record.opened_at,
        record.window_ends_at,
        record.updated_at,
        record.activated_at,
        record.refused_at,
        record.closed_at,
        record.retention_until,
        record.destroyed_at,
    )


async def lock(conn: Connection, patient_id: str) -> None:
    """Serialise changes of one DSP until the transaction ends (PostgreSQL: an advisory lock on the patient;
    SQLite write transactions are serial already)."""
    if conn.dialect.is_postgres:
        await conn.fetchval("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"dsp-record:{patient_id}",))


async def get(conn: Connection, patient_id: str) -> DspRecord | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM dsp_record WHERE patient_id = ?", (patient_id,))
    return _record(row) if row else None


async def insert_if_absent(conn: Connection, record: DspRecord) -> bool:
    """Create the record unless the patient has one (whatever its status); True when created."""
    marks = ", ".join("?" * 10)
    count = await conn.execute(
        f"INSERT INTO dsp_record ({_COLUMNS}) VALUES ({marks}) ON CONFLICT (patient_id) DO NOTHING", _values(record)
    )
    return count == 1


async def insert_many_if_absent(conn: Connection, records: Sequence[DspRecord]) -> int:
    """Create the records of patients who have none (one statement, at most ~3,000 records); how many were new."""
    if not records:
        return 0
    rows = ", ".join(f"({', '.join('?' * 10)})" for _ in records)
    params = [value for record in records for value in _values(record)]
    created = await conn.fetch(
        f"INSERT INTO dsp_record ({_COLUMNS}) VALUES {rows} ON CONFLICT (patient_id) DO NOTHING RETURNING patient_id",
        params,
    )
    return len(created)


async def save(conn: Connection, record: DspRecord) -> None:
    await conn.execute(
        "UPDATE dsp_record SET status = ?, opened_at = ?, window_ends_at = ?, updated_at = ?, activated_at = ?, "
        "refused_at = ?, closed_at = ?, retention_until = ?, destroyed_at = ? WHERE patient_id = ?",
        (*_values(record)[1:], record.patient_id),
    )


async def due_for_destruction(conn: Connection, now: int, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT patient_id FROM dsp_record WHERE status = 'closed' AND retention_until <= ? "
        "ORDER BY retention_until, patient_id LIMIT ?",
        (now, limit),
    )
    return [str(row[0]) for row in rows]


async def count_due(conn: Connection, now: int) -> int:
    value = await conn.fetchval(
        "SELECT COUNT(*) FROM dsp_record WHERE status = 'closed' AND retention_until <= ?", (now,)
    )
    return int(value or 0)


async def add_destruction(
    conn: Connection,
    *,
    patient_id: str,
    closed_at: int,
    retention_until: int,
    destroyed_at: int,
    counts: str,
    digest: str,
    audit_event: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO dsp_destruction (patient_id, closed_at, retention_until, destroyed_at, counts, digest, "
        "audit_event) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (patient_id, closed_at, retention_until, destroyed_at, counts, digest, audit_event),
    )


async def destructions(conn: Connection, patient_id: str | None = None) -> list[Row]:
    """Proofs of destruction (all, or one patient's), oldest first."""
    columns = "patient_id, closed_at, retention_until, destroyed_at, counts, digest, audit_event"
    if patient_id is None:
        return await conn.fetch(f"SELECT {columns} FROM dsp_destruction ORDER BY id")
    return await conn.fetch(f"SELECT {columns} FROM dsp_destruction WHERE patient_id = ? ORDER BY id", (patient_id,))
