"""WSE use counters for the statistics bulletin: uses per day, caller kind and operation — counts only.

Each answered check adds one to an in-memory counter of its process; a background task adds the counters to
``wse_usage`` every ``wse_usage_flush_seconds`` (one UPSERT per counter: ``uses = uses + n``) and at shutdown. Two
thousand checks a second incrementing one row in their own transactions would queue on that row's lock; this
keeps the hot path free of it. The price: a process killed without shutting down loses the uses of its last
interval (the audit trail still holds every one of them). Nothing about the persons checked is kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from esante.db.engine import Connection, Database

log = structlog.get_logger("esante.wse")
LUXEMBOURG = ZoneInfo("Europe/Luxembourg")
CALLER_KINDS = ("pharmacy", "laboratory", "cgdis")
OPERATIONS = ("eligibility", "prescriber")

_UPSERT = (
    "INSERT INTO wse_usage (day, caller_kind, operation, uses) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (day, caller_kind, operation) DO UPDATE SET uses = wse_usage.uses + excluded.uses"
)


def today_lu() -> str:
    return datetime.now(LUXEMBOURG).date().isoformat()


class UsageCounter:
    """The process's uses not yet written, and the task that writes them."""

    def __init__(self, database: Database, interval: float = 1.0) -> None:
        self.database = database
        self.interval = interval
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None

    def add(self, caller_kind: str, operation: str) -> None:
        self._counts[(today_lu(), caller_kind, operation)] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> int:
        """Write the pending counts (returns how many uses); on failure they are kept for the next attempt."""
        if not self._counts:
            return 0
        pending, self._counts = self._counts, Counter()
        rows = [(day, kind, operation, n) for (day, kind, operation), n in sorted(pending.items())]
        try:
            async with self.database.transaction() as conn:
                await conn.executemany(_UPSERT, rows)
        except Exception:
            self._counts.update(pending)
            raise
        return sum(pending.values())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("wse.usage_flush_failed", error_type=type(exc).__name__)
            if not self._counts:
                return  # started again by the next use

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.flush()


@dataclass(frozen=True)
class UsageRow:
    day: str
    caller_kind: str
    operation: str
    uses: int


async def usage_of_month(conn: Connection, month: str) -> list[UsageRow]:
    """Every counter row of ``month`` (``YYYY-MM``), by day, caller kind and operation."""
    rows = await conn.fetch(
        "SELECT day, caller_kind, operation, uses FROM wse_usage WHERE day >= ? AND day <= ? "
        "ORDER BY day, caller_kind, operation",
        (f"{month}-01", f"{month}-31"),
    )
    return [UsageRow(str(d), str(k), str(o), int(u)) for d, k, o, u in rows]


def month_totals(rows: Sequence[UsageRow]) -> dict[tuple[str, str], int]:
    """(caller kind, operation) → uses in the month, every kind and operation present (zeros included)."""
    totals = {(kind, operation): 0 for kind in CALLER_KINDS for operation in OPERATIONS}
    for row in rows:
        totals[(row.caller_kind, row.operation)] = totals.get((row.caller_kind, row.operation), 0) + row.uses
    return totals
