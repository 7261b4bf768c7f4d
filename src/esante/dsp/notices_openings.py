"""Telling each person that their DSP was opened and until when they may refuse it (``dsp-opened``).

A DSP is opened in bulk — by the store hook for each new certified identity (a register import writes a million
of them at the session's flush) and by ``esante dsp open-all`` — so the notice is not written in the opening's
transaction, which would make every import pay for a notification per identity. A sweep notifies instead every
DSP still in its refusal window (``pending``, window not over) that has no ``dsp-opened`` notification yet: the
idempotency key ``dsp-opened:Patient/<id>`` is both the "never twice" and the "not yet" (one indexed probe of the
outbox per pending record; pending records are a month of openings, found through the state index). The server
runs it every ``dsp_opening_notice_interval`` seconds (default 60), and ``esante dsp notify-openings`` on demand.

Concurrent sweeps (several server processes) are harmless: the outbox's unique key lets one notification through.
A DSP refused, activated or closed before the sweep reached it gets no notice (the person acted already); a DSP
opened with no window (``dsp_refusal_window_days`` = 0) is active at once and gets none (limit, docs/dsp.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from esante.db.engine import Database
from esante.dsp.context import DspContext
from esante.dsp.notices import OPENED
from esante.fhir.store import ResourceStore
from esante.notify import make_key, notify

log = structlog.get_logger("esante.dsp")

_KEY_PREFIX = make_key(OPENED, "Patient/")  # + the patient id (ids never hold a colon or a percent sign)
_DUE = (
    "SELECT r.patient_id, r.window_ends_at FROM dsp_record r WHERE r.status = 'pending' AND r.window_ends_at > ?"
    " AND r.patient_id > ? AND NOT EXISTS (SELECT 1 FROM notify_outbox o WHERE o.idempotency_key = ? || r.patient_id)"
    " ORDER BY r.patient_id LIMIT ?"
)
_COUNT = (
    "SELECT COUNT(*) FROM dsp_record r WHERE r.status = 'pending' AND r.window_ends_at > ?"
    " AND NOT EXISTS (SELECT 1 FROM notify_outbox o WHERE o.idempotency_key = ? || r.patient_id)"
)


def opened_text(window_ends_at: int) -> str:
    """The stored notification's text (no health data): the opening and the last day to refuse."""
    day = datetime.fromtimestamp(window_ends_at, tz=UTC).strftime("%Y-%m-%d")
    return (
        "A shared care record (DSP) was opened for you. It starts empty and only the professionals you choose, "
        f"those caring for you and, in an emergency, emergency staff may read it. Until {day} you may refuse it "
        "($dsp-refuse); otherwise it becomes active then. You may also activate it now, and close it at any time."
    )


@dataclass(frozen=True)
class OpeningNotices:
    notified: int
    already: int  # notified by a concurrent sweep meanwhile


async def count_due(database: Database, context: DspContext) -> int:
    async with database.read() as conn:
        return int(await conn.fetchval(_COUNT, (context.now(), _KEY_PREFIX)) or 0)


async def notify_openings(
    database: Database,
    store: ResourceStore,
    context: DspContext,
    *,
    batch: int = 500,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> OpeningNotices:
    """Notify every DSP in its refusal window not notified yet, ``batch`` per transaction (at most ``limit``)."""
    notified = already = 0
    after = ""
    while limit is None or notified + already < limit:
        size = batch if limit is None else min(batch, limit - notified - already)
        async with database.read() as conn:
            rows = await conn.fetch(_DUE, (context.now(), after, _KEY_PREFIX, size))
        if not rows:
            break
        async with database.transaction() as conn:
            session = store.session(conn)
            for patient_id, window_ends_at in rows:
                result = await notify(
                    session,
                    recipient=f"Patient/{patient_id}",
                    kind=OPENED,
                    text=opened_text(int(window_ends_at)),
                    key=make_key(OPENED, f"Patient/{patient_id}"),
                )
                notified += result.created
                already += not result.created
        after = str(rows[-1][0])
        if progress is not None:
            progress(len(rows))
        if len(rows) < size:
            break
    return OpeningNotices(notified, already)


class BackgroundOpeningNotices:
    """The server process's sweep: every ``interval`` seconds until stopped."""

    def __init__(self, database: Database, store: ResourceStore, context: DspContext, interval: float) -> None:
        self.database = database
        self.store = store
        self.context = context
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="esante-dsp-opening-notices")

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = await notify_openings(self.database, self.store, self.context)
                if done.notified:
                    log.info("dsp.opening_notices", notified=done.notified)
            except Exception as exc:  # a database hiccup must not end the task: the next sweep catches up
                log.error("dsp.opening_notices_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
