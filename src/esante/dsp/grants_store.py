"""SQL of ``dsp_grant``: the grants' index, derived from the DSP Consents in their own transaction, and the look-ups
the operations make (both engines, ``?`` placeholders)."""

from __future__ import annotations

from dataclasses import dataclass

from esante.db.engine import Connection
from esante.dsp.grants_model import GrantRow, Kind


async def put(conn: Connection, rid: int, row: GrantRow) -> None:
    """Insert or replace the row of the Consent ``rid``."""
    await conn.execute(
        "INSERT INTO dsp_grant (rid, consent_id, patient_id, kind, practitioner_id, status, starts_at, ends_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rid) DO UPDATE SET consent_id = excluded.consent_id, "
        "patient_id = excluded.patient_id, kind = excluded.kind, practitioner_id = excluded.practitioner_id, "
        "status = excluded.status, starts_at = excluded.starts_at, ends_at = excluded.ends_at",
        (
            rid,
            row.consent_id,
            row.patient_id,
            row.kind.value,
            row.practitioner_id,
            "active" if row.active else "inactive",
            row.starts_at,
            row.ends_at,
        ),
    )


async def remove(conn: Connection, rid: int) -> None:
    await conn.execute("DELETE FROM dsp_grant WHERE rid = ?", (rid,))


@dataclass(frozen=True)
class Held:
    consent_id: str
    kind: Kind
    practitioner_id: str | None
    starts_at: int | None
    ends_at: int | None


async def active(
    conn: Connection, patient_id: str, kind: Kind, now: int, practitioner_id: str | None = None
) -> list[Held]:
    """The patient's grants of ``kind`` in force at ``now`` (for one professional when named)."""
    sql = (
        "SELECT consent_id, kind, practitioner_id, starts_at, ends_at FROM dsp_grant WHERE patient_id = ? AND kind = ?"
        " AND status = 'active' AND (ends_at IS NULL OR ends_at > ?)"
    )
    params: list[object] = [patient_id, kind.value, now]
    if practitioner_id is not None:
        sql += " AND practitioner_id = ?"
        params.append(practitioner_id)
    rows = await conn.fetch(sql + " ORDER BY rid", params)
    return [
        Held(str(r[0]), Kind(r[1]), r[2], None if r[3] is None else int(r[3]), None if r[4] is None else int(r[4]))
        for r in rows
    ]


async def consent_ids(conn: Connection, patient_id: str) -> list[str]:
    rows = await conn.fetch("SELECT consent_id FROM dsp_grant WHERE patient_id = ? ORDER BY rid", (patient_id,))
    return [str(r[0]) for r in rows]
