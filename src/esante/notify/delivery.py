"""The e-mail delivery worker: takes due outbox rows after their transaction committed and e-mails them.

One run (``esante notify deliver``, or one tick of the server's background task):

1. **claim** (short transaction): up to ``batch`` due ``pending`` rows get a lease (``claimed_until``, a token),
   so other workers — the other server processes, a CLI run — leave them alone; a worker that dies loses its
   lease when it ends and the rows are taken again (delivery is at least once; the ``Message-ID`` stays the same);
2. **resolve** (same transaction): each recipient's address from their account (active, with an e-mail) and
   their choices; rows without an address or whose recipient opted out are closed ``skipped`` with the reason,
   rows older than ``notify_email_max_age`` are closed ``expired``: the stored notification remains;
3. **send** (no transaction open): over one SMTP connection, in a thread;
4. **record** (short transaction): ``sent``; a permanent refusal → ``dead``; a transient failure or an unreachable
   server → tried again after an exponential back-off (``notify_retry_base`` doubling up to
   ``notify_retry_max``), and ``dead`` once ``notify_max_attempts`` attempts failed. An unreachable server ends
   the run (the rest waits for the next one).

A run sends at most ``rate`` e-mails (``notify_rate_per_run``): with the background task's interval it caps the
platform's sending rate, which is what SMTP relays expect of a bulk sender (the CVE reminders).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from esante.db.engine import Database
from esante.notify import outbox
from esante.notify.email import EmailSettings, compose, valid_address
from esante.notify.kinds import KindCatalogue
from esante.notify.model import RetryPolicy
from esante.notify.smtp import SendResult, SmtpConfig, send_all

log = structlog.get_logger("esante.notify")
BATCH = 50  # rows claimed per step of a run


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    expired: int = 0
    lost: int = 0  # rows whose lease ran out before the result was recorded (another worker took them)
    unreachable: bool = False
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead + self.skipped + self.expired

    def add(self, other: DeliveryReport) -> None:
        for name in ("sent", "retried", "dead", "skipped", "expired", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unreachable = self.unreachable or other.unreachable
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


@dataclass(frozen=True)
class DeliveryConfig:
    smtp: SmtpConfig
    email: EmailSettings
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate: int = 200  # e-mails per run at most
    max_age: int = 7 * 86400  # seconds after which a pending e-mail is not sent any more
    email_default: bool = True  # e-mail a recipient who made no choice


class DeliveryWorker:
    """Delivers the outbox's e-mails; ``clock`` gives epoch seconds (tests move it)."""

    def __init__(
        self,
        database: Database,
        config: DeliveryConfig,
        catalogue: KindCatalogue,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.config = config
        self.catalogue = catalogue
        self.clock = clock

    async def run_once(self, progress: Callable[[int], None] | None = None, limit: int | None = None) -> DeliveryReport:
        """One run: until nothing is due, the rate cap is reached or the server is unreachable."""
        report = DeliveryReport()
        budget = self.config.rate if limit is None else min(limit, self.config.rate)
        while budget > 0:
            step = await self._step(min(BATCH, budget))
            report.add(step)
            if progress is not None:
                progress(step.handled)
            budget -= step.sent + step.retried + step.dead
            if step.unreachable or step.handled == 0:
                break
        return report

    async def _step(self, size: int) -> DeliveryReport:
        report = DeliveryReport()
        now = int(self.clock())
        token = str(uuid.uuid4())
        lease = now + int(self.config.smtp.timeout) * (size + 2)
        outgoing: list[tuple[outbox.OutboxRow, str]] = []
        async with self.database.transaction() as conn:
            rows = await outbox.claim(conn, now, size, lease, token)
            if not rows:
                return report
            addresses = await outbox.addresses(conn, (r.recipient for r in rows))
            choices = await outbox.email_choices(conn, (r.recipient for r in rows))
            for row in rows:
                closing = self._closing(row, addresses.get(row.recipient), choices, now)
                if closing is None:
                    address = addresses[row.recipient].email
                    assert address is not None
                    outgoing.append((row, address))
                    continue
                status, reason = closing
                await outbox.finish(conn, row.id, token, status, reason, now, attempted=False)
                setattr(report, status, getattr(report, status) + 1)
                report.reasons[reason] = report.reasons.get(reason, 0) + 1
        if not outgoing:
            return report
        messages = [
            (
                row.id,
                compose(self.catalogue, self.config.email, notification_id=row.id, kind=row.kind, to=address, date=now),
            )
            for row, address in outgoing
        ]
        results = await asyncio.to_thread(send_all, self.config.smtp, messages)
        await self._record(outgoing, results, token, report)
        return report

    def _closing(
        self, row: outbox.OutboxRow, address: outbox.Address | None, choices: dict[tuple[str, str], bool], now: int
    ) -> tuple[str, str] | None:
        """Why this row gets no e-mail ((status, reason)), or None to send it."""
        if now - row.created_at > self.config.max_age:
            return ("expired", "older than notify_email_max_age")
        if not outbox.wants_email(choices, row.recipient, row.kind, self.config.email_default):
            return ("skipped", "opted-out")
        if address is None:
            return ("skipped", "no-account")
        if address.account_status != "active":
            return ("skipped", "account-not-active")
        if address.email is None:
            return ("skipped", "no-email")
        if not valid_address(address.email):
            return ("skipped", "invalid-email")
        if self.catalogue.get(row.kind) is None or not self.catalogue.kinds[row.kind].email:
            return ("skipped", "no-email-text-for-kind")
        return None

    async def _record(
        self,
        outgoing: list[tuple[outbox.OutboxRow, str]],
        results: list[SendResult],
        token: str,
        report: DeliveryReport,
    ) -> None:
        now = int(self.clock())
        retry = self.config.retry
        by_key = {r.key: r for r in results}
        async with self.database.transaction() as conn:
            for row, _address in outgoing:
                result = by_key.get(row.id, SendResult(row.id, "unreachable", "no result"))
                attempts = row.attempts + 1
                if result.outcome == "sent":
                    done = await outbox.finish(conn, row.id, token, "sent", None, now, attempted=True)
                    outcome = "sent"
                elif result.outcome == "refused" or retry.exhausted(attempts):
                    reason = f"{result.outcome}: {result.reason}" if result.reason else result.outcome
                    done = await outbox.finish(conn, row.id, token, "dead", reason, now, attempted=True)
                    outcome = "dead"
                else:
                    reason = f"{result.outcome}: {result.reason}" if result.reason else result.outcome
                    done = await outbox.retry_later(conn, row.id, token, reason, now + retry.delay(attempts))
                    outcome = "retried"
                if not done:
                    report.lost += 1
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)
                if outcome != "sent":
                    why = result.reason or result.outcome
                    report.reasons[why] = report.reasons.get(why, 0) + 1
                log.info("notify.email", notification=row.id, kind=row.kind, outcome=outcome, attempt=attempts)
        report.unreachable = any(r.outcome == "unreachable" for r in results)
        if report.unreachable:
            log.warning("notify.smtp_unreachable", reason=next(r.reason for r in results if r.outcome == "unreachable"))


class BackgroundDelivery:
    """The server process's delivery task: a run every ``interval`` seconds until stopped."""

    def __init__(self, worker: DeliveryWorker, interval: float) -> None:
        self.worker = worker
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="esante-notify-delivery")

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.worker.run_once()
            except Exception as exc:  # a database hiccup must not end the task; the rows wait in the outbox
                log.error("notify.delivery_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def stop(self) -> None:
        """Let the current run finish (its results are recorded), then end."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=self.worker.config.smtp.timeout + 5)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
