"""The server's own reminders run, when ``cve_reminders_interval_hours`` > 0 (off by default).

Why off by default: a reminders run reads every CVE and may notify tens of thousands of people; when it runs is an
operator's decision (a daily timer running ``esante cve reminders`` at night is the expected set-up, where its
progress and exit code are seen). Setting the interval makes every server process start a task that runs the job
every N hours (the first run one minute after start-up). On PostgreSQL the processes take turns: a run holds a
session advisory lock and a process that cannot take it skips its turn; the job is idempotent anyway (a dose is
never reminded twice), so the lock only saves the work.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

from esante.cve.context import CveContext
from esante.cve.reminders import ReminderJob
from esante.db.engine import Database

if TYPE_CHECKING:
    from esante.app import Platform

__all__ = ["BackgroundReminders", "install_reminders"]

log = structlog.get_logger("esante.cve.reminders")
_LOCK_KEY = 0x63766572656D  # "cverem": the PostgreSQL advisory lock of a reminders run


class BackgroundReminders:
    """Runs ``job`` every ``interval`` seconds (first after ``first_delay``) until stopped."""

    def __init__(self, job: ReminderJob, database: Database, interval: float, first_delay: float = 60.0) -> None:
        self.job = job
        self.database = database
        self.interval = interval
        self.first_delay = first_delay
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="esante-cve-reminders")

    async def _loop(self) -> None:
        delay = self.first_delay
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if self._stop.is_set():
                return
            try:
                await self.run_once()
            except Exception as exc:  # a failed run is retried at the next interval; nothing half-done is lost
                log.error("cve.reminders_failed", error=type(exc).__name__)
            delay = self.interval

    async def run_once(self) -> bool:
        """One run unless another process holds the turn (PostgreSQL); whether it ran."""
        if not self.database.dialect.is_postgres:
            await self.job.run()
            self.runs += 1
            return True
        async with self.database.read() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock(?)", (_LOCK_KEY,)):
                return False
            try:
                await self.job.run()
                self.runs += 1
            finally:
                await conn.fetchval("SELECT pg_advisory_unlock(?)", (_LOCK_KEY,))
        return True

    async def stop(self) -> None:
        """End the task; a run in progress is cancelled (its committed batches stay, the rest is done next time)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def install_reminders(platform: Platform, context: CveContext) -> BackgroundReminders | None:
    """The server's reminders task when ``cve_reminders_interval_hours`` > 0 (off by default)."""
    settings = platform.settings
    hours = settings.cve_reminders_interval_hours
    if hours <= 0:
        return None
    job = ReminderJob(
        platform.store,
        context,
        batch=max(1, settings.cve_reminders_batch),
        lead_days=settings.cve_reminders_lead_days,
    )
    background = BackgroundReminders(job, platform.database, hours * 3600.0)

    async def start() -> None:
        background.start()

    platform.startup.append(start)
    platform.shutdown.append(background.stop)
    return background
