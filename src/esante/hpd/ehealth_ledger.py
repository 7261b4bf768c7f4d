"""The ledger of eHealthIDs (table ``hpd_ehealth_id``): every number the HPD ever assigned, never given twice.

The primary key is the final guard: a number is drawn at random (:func:`~esante.identifiers.ehealth_id.new_ehealth_id`),
checked against the ledger, and recorded in the same transaction as the Practitioner that carries it. A
Practitioner that is later deleted, or whose right to practise is withdrawn, keeps its row: the number stays spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from esante.db.engine import Connection
from esante.identifiers.ehealth_id import new_ehealth_id


async def fresh_ehealth_ids(
    conn: Connection, count: int, *, draw: Callable[[], str] | None = None, avoid: set[str] | None = None
) -> list[str]:
    """``count`` distinct eHealthIDs that the ledger does not hold (nor ``avoid``), checked in one statement per
    round (a collision among 900 million numbers is rare: one round almost always)."""
    draw = draw or _draw
    chosen: list[str] = []
    seen = set(avoid or ())
    while len(chosen) < count:
        candidates: list[str] = []
        for _ in range((count - len(chosen)) * 4):  # a bad draw function cannot loop forever unnoticed
            value = draw()
            if value not in seen:
                seen.add(value)
                candidates.append(value)
            if len(candidates) == count - len(chosen):
                break
        if not candidates:
            raise RuntimeError("could not draw a fresh eHealthID")
        marks = ", ".join("?" * len(candidates))
        taken = {
            str(row[0])
            for row in await conn.fetch(
                f"SELECT ehealth_id FROM hpd_ehealth_id WHERE ehealth_id IN ({marks})", candidates
            )
        }
        chosen.extend(value for value in candidates if value not in taken)
    return chosen


async def record(conn: Connection, assigned: Sequence[tuple[str, str]]) -> None:
    """Spend these (eHealthID, Practitioner id) pairs (a reused number fails the transaction: primary key)."""
    if assigned:
        now = int(time.time())
        await conn.copy_rows(
            "hpd_ehealth_id", ("ehealth_id", "practitioner_id", "assigned_at"), [(e, p, now) for e, p in assigned]
        )


async def assigned_to(conn: Connection, practitioner_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT ehealth_id FROM hpd_ehealth_id WHERE practitioner_id = ? ORDER BY assigned_at", (practitioner_id,)
    )
    return [str(row[0]) for row in rows]


def _draw() -> str:
    """The random source (a module attribute, so that tests can make it repeat a number)."""
    return new_ehealth_id()
