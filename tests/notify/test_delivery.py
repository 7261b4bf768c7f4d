"""E-mail delivery through a real SMTP server on loopback (aiosmtpd), on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from esante.config import Settings
from esante.db.engine import Database
from esante.notify import make_key, outbox
from esante.notify.delivery import DeliveryConfig, DeliveryWorker
from esante.notify.email import EmailSettings
from esante.notify.kinds import catalogue
from esante.notify.model import RetryPolicy
from esante.notify.settings import NotifySettingsError, delivery_config
from esante.notify.smtp import SmtpConfig
from tests.live_server import free_port
from tests.notify.support import Clock, SmtpServer, add_account, create_notification, smtp_server, tls_options

TEXT = "New document: discharge letter, cardiology, CHL (DocumentReference/d1)"


def _config(port: int, **changes: object) -> DeliveryConfig:
    values: dict[str, object] = {
        "smtp": SmtpConfig("127.0.0.1", port, security="none", timeout=5),
        "email": EmailSettings("eSante <no-reply@esante.lu>", "https://www.esante.lu/portal", ("fr", "de", "en")),
        "retry": RetryPolicy(max_attempts=3, base_seconds=60, max_seconds=600),
        "rate": 200,
    }
    values.update(changes)
    return DeliveryConfig(**values)  # type: ignore[arg-type]


def _worker(database: Database, config: DeliveryConfig, clock: Clock) -> DeliveryWorker:
    return DeliveryWorker(database, config, catalogue(), clock=clock)


async def _notify(database: Database, clock: Clock, patient: str = "p1", key: str | None = None) -> str:
    created = await create_notification(
        database,
        clock=clock,
        recipient=f"Patient/{patient}",
        kind="dsp-new-document",
        text=TEXT,
        key=key or make_key("dsp-new-document", f"Patient/{patient}", "DocumentReference/d1"),
        about=["DocumentReference/d1"],
    )
    return created.id


async def _status(database: Database, row_id: str) -> dict[str, object]:
    async with database.read() as conn:
        row = await outbox.row(conn, row_id)
    assert row is not None
    return row


async def _wait(server: SmtpServer, count: int) -> list[object]:
    return await asyncio.to_thread(server.wait_for, count)


async def test_the_email_arrives_with_its_headers_and_no_health_data(database: Database) -> None:
    clock = Clock()
    await add_account(database, "acct-p1", patient="p1", email="lea.muller@example.lu")
    row_id = await _notify(database, clock)
    with smtp_server() as server:
        report = await _worker(database, _config(server.port), clock).run_once()
        assert (report.sent, report.retried, report.dead) == (1, 0, 0)
        [received] = await _wait(server, 1)
    message = received.message  # type: ignore[attr-defined]
    assert received.recipients == ["lea.muller@example.lu"]  # type: ignore[attr-defined]
    assert received.sender == "no-reply@esante.lu"  # type: ignore[attr-defined]
    assert message["From"] == "eSante <no-reply@esante.lu>"
    assert message["To"] == "lea.muller@example.lu"
    assert message["Subject"].startswith("Nouveau document dans votre DSP")
    assert message["Message-ID"] == f"<{row_id}@esante.lu>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Esante-Notification-Kind"] == "dsp-new-document"
    body = message.get_content()
    assert "https://www.esante.lu/portal" in body
    assert "neues Dokument" in body and "new document" in body
    for secret in ("discharge", "cardiology", "CHL", "DocumentReference", "d1", "p1", "Muller"):
        assert secret not in body and secret not in message["Subject"]
    row = await _status(database, row_id)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"] is not None
    again = await _worker(database, _config(server.port), clock).run_once()
    assert again.handled == 0, "a sent e-mail is never sent again"


async def test_recipients_without_an_address_or_who_opted_out_get_only_the_stored_notification(
    database: Database,
) -> None:
    clock = Clock()
    await add_account(database, "a2", patient="p2", email=None)
    await add_account(database, "a3", patient="p3", email="p3@example.lu", status="suspended")
    await add_account(database, "a4", patient="p4", email="p4@example.lu")
    await add_account(database, "a5", patient="p5", email="not an address")
    await add_account(database, "a6", patient="p6", email="p6@example.lu")
    await add_account(database, "a7", patient="p7", email="p7@example.lu")
    async with database.transaction() as conn:
        await outbox.set_choice(conn, "Patient/p4", "*", False, 0)
        await outbox.set_choice(conn, "Patient/p6", "dsp-new-document", False, 0)  # this kind only
        await outbox.set_choice(conn, "Patient/p7", "*", False, 0)
        await outbox.set_choice(conn, "Patient/p7", "dsp-new-document", True, 0)  # the kind's choice wins
    ids = {p: await _notify(database, clock, p) for p in ("p1", "p2", "p3", "p4", "p5", "p6", "p7")}
    with smtp_server() as server:
        report = await _worker(database, _config(server.port), clock).run_once()
        received = await _wait(server, 1)
    assert report.sent == 1 and report.skipped == 6
    assert [r.recipients for r in received] == [["p7@example.lu"]]  # type: ignore[attr-defined]
    reasons = {p: (await _status(database, i))["reason"] for p, i in ids.items()}
    assert reasons == {
        "p1": "no-account",
        "p2": "no-email",
        "p3": "account-not-active",
        "p4": "opted-out",
        "p5": "invalid-email",
        "p6": "opted-out",
        "p7": None,
    }


async def test_smtp_down_is_retried_with_back_off_then_dead_lettered(database: Database) -> None:
    clock = Clock()
    await add_account(database, "acct-p1", patient="p1", email="p1@example.lu")
    row_id = await _notify(database, clock)
    port = free_port()  # nothing listens there
    worker = _worker(database, _config(port), clock)
    first = await worker.run_once()
    assert first.unreachable and first.retried == 1
    row = await _status(database, row_id)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert row["next_attempt_at"] == int(clock.now) + 60
    assert "ConnectionRefusedError" in str(row["reason"])
    assert (await worker.run_once()).handled == 0, "not due before its back-off"
    clock.advance(60)
    assert (await worker.run_once()).retried == 1
    assert (await _status(database, row_id))["next_attempt_at"] == int(clock.now) + 120
    clock.advance(120)
    last = await worker.run_once()
    assert last.dead == 1
    row = await _status(database, row_id)
    assert row["status"] == "dead" and row["attempts"] == 3
    # the relay is fixed: the operator queues the dead letters again and they go out
    with smtp_server(port) as server:
        async with database.transaction() as conn:
            assert await outbox.requeue(conn, int(clock.now)) == 1
        assert (await _worker(database, _config(port), clock).run_once()).sent == 1
        assert len(await _wait(server, 1)) == 1


async def test_the_server_comes_back_before_the_last_attempt(database: Database) -> None:
    clock = Clock()
    await add_account(database, "acct-p1", patient="p1", email="p1@example.lu")
    row_id = await _notify(database, clock)
    port = free_port()
    assert (await _worker(database, _config(port), clock).run_once()).retried == 1
    clock.advance(60)
    with smtp_server(port) as server:
        assert (await _worker(database, _config(port), clock).run_once()).sent == 1
        assert len(await _wait(server, 1)) == 1
    row = await _status(database, row_id)
    assert row["status"] == "sent" and row["attempts"] == 2


async def test_a_permanent_refusal_is_dead_at_once_a_temporary_one_retried(database: Database) -> None:
    clock = Clock()
    await add_account(database, "a1", patient="p1", email="p1@example.lu")
    await add_account(database, "a2", patient="p2", email="p2@example.lu")
    await add_account(database, "a3", patient="p3", email="p3@example.lu")
    ids = [await _notify(database, clock, p) for p in ("p1", "p2", "p3")]
    with smtp_server() as server:
        server.mailbox.rcpt_answers = ["550 5.1.1 mailbox unknown", "451 4.7.1 greylisted, try later"]
        report = await _worker(database, _config(server.port), clock).run_once()
        assert (report.sent, report.dead, report.retried) == (1, 1, 1)
        assert len(await _wait(server, 1)) == 1
    rows = {str(row["status"]): row for row in [await _status(database, i) for i in ids]}
    assert sorted(rows) == ["dead", "pending", "sent"]
    assert "550" in str(rows["dead"]["reason"])
    assert "451" in str(rows["pending"]["reason"]) and rows["pending"]["attempts"] == 1


async def test_a_run_sends_at_most_its_rate_and_stale_notifications_expire(database: Database) -> None:
    clock = Clock()
    for i in range(5):
        await add_account(database, f"a{i}", patient=f"p{i}", email=f"p{i}@example.lu")
    stale = await _notify(database, clock, "p0")
    clock.advance(8 * 86400)
    for i in range(1, 5):
        await _notify(database, clock, f"p{i}")
    with smtp_server() as server:
        worker = _worker(database, _config(server.port, rate=3), clock)
        first = await worker.run_once()
        assert (first.sent, first.expired) == (3, 1)
        second = await worker.run_once()
        assert second.sent == 1
        assert len(await _wait(server, 4)) == 4
    row = await _status(database, stale)
    assert row["status"] == "expired" and row["attempts"] == 0


async def test_two_workers_never_send_the_same_email(database: Database) -> None:
    clock = Clock()
    for i in range(30):
        await add_account(database, f"a{i}", patient=f"p{i}", email=f"p{i}@example.lu")
        await _notify(database, clock, f"p{i}")
    with smtp_server() as server:
        workers = [_worker(database, _config(server.port), clock) for _ in range(3)]
        reports = await asyncio.gather(*(w.run_once() for w in workers))
        assert sum(r.sent for r in reports) == 30
        received = await _wait(server, 30)
        await asyncio.sleep(0.3)
    addresses = [r.recipients[0] for r in received]  # type: ignore[attr-defined]
    assert len(addresses) == 30 and len(set(addresses)) == 30


async def test_starttls_and_login(database: Database, tmp_path: Path) -> None:
    clock = Clock()
    await add_account(database, "acct-p1", patient="p1", email="p1@example.lu")
    await _notify(database, clock)
    cert = tmp_path / "smtp.crt"
    with smtp_server(**tls_options(tmp_path, "relay-user", "s3cret")) as server:
        wrong = SmtpConfig("127.0.0.1", server.port, "starttls", "relay-user", "wrong", 5, str(cert))
        refused = await _worker(database, _config(server.port, smtp=wrong), clock).run_once()
        assert refused.unreachable and refused.retried == 1
        untrusted = SmtpConfig("127.0.0.1", server.port, "starttls", "relay-user", "s3cret", 5)
        clock.advance(60)
        assert (await _worker(database, _config(server.port, smtp=untrusted), clock).run_once()).unreachable
        good = SmtpConfig("127.0.0.1", server.port, "starttls", "relay-user", "s3cret", 5, str(cert))
        clock.advance(120)
        assert (await _worker(database, _config(server.port, smtp=good), clock).run_once()).sent == 1
        assert len(await _wait(server, 1)) == 1


def test_settings_are_checked_naming_the_setting() -> None:
    with pytest.raises(NotifySettingsError, match="notify_smtp_host"):
        delivery_config(Settings())
    with pytest.raises(NotifySettingsError, match="notify_smtp_security"):
        delivery_config(Settings(notify_smtp_host="mail", notify_smtp_security="ssl3"))
    with pytest.raises(NotifySettingsError, match="notify_from_address"):
        delivery_config(Settings(notify_smtp_host="mail", notify_from_address="nobody"))
    with pytest.raises(NotifySettingsError, match="notify_max_attempts"):
        delivery_config(Settings(notify_smtp_host="mail", notify_max_attempts=0))
    config = delivery_config(Settings(notify_smtp_host="mail", base_url="https://api.esante.lu/fhir"))
    assert config.email.portal_url == "https://api.esante.lu"
