"""``esante notify …`` against a real database and a real SMTP server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esante.cli import app
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from esante.notify import make_key, outbox
from tests.live_server import free_port
from tests.notify.support import add_account, create_notification, smtp_server


async def _seed(url: str, patients: int) -> list[str]:
    upgrade(url)
    database = create_database(url, pool_size=1)
    await database.connect()
    try:
        ids = []
        for i in range(patients):
            await add_account(database, f"a{i}", patient=f"p{i}", email=f"p{i}@example.lu")
            created = await create_notification(
                database, recipient=f"Patient/p{i}", kind="cve-reminder", text="MMR dose 2", key=make_key("k", i)
            )
            ids.append(created.id)
        return ids
    finally:
        await database.close()


async def _statuses(url: str) -> dict[str, int]:
    database = create_database(url, pool_size=1)
    await database.connect()
    try:
        async with database.read() as conn:
            return await outbox.counts(conn)
    finally:
        await database.close()


def _env(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("ESANTE_NOTIFY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ESANTE_NOTIFY_SMTP_PORT", str(port))
    monkeypatch.setenv("ESANTE_NOTIFY_SMTP_SECURITY", "none")
    monkeypatch.setenv("ESANTE_NOTIFY_SMTP_TIMEOUT", "5")


def test_deliver_status_requeue(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_seed(db_url, 3))
    runner = CliRunner()
    port = free_port()
    _env(monkeypatch, port)
    monkeypatch.setenv("ESANTE_NOTIFY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("ESANTE_NOTIFY_RETRY_BASE", "1")
    down = runner.invoke(app, ["notify", "deliver", "--db", db_url])
    assert down.exit_code == 2 and "unreachable" in down.output and "retry later 3" in down.output
    asyncio.run(asyncio.sleep(2.1))  # the back-off (1 s, whole seconds) has passed: the second failure is the last
    dead = runner.invoke(app, ["notify", "deliver", "--db", db_url])
    assert dead.exit_code == 2 and "dead 3" in dead.output
    status = runner.invoke(app, ["notify", "status", "--dead", "--db", db_url])
    assert status.exit_code == 0 and "dead" in status.output and "cve-reminder" in status.output
    assert "p0@example.lu" not in status.output, "no address in the operator's listing"
    requeued = runner.invoke(app, ["notify", "requeue", "--db", db_url])
    assert requeued.exit_code == 0 and "3 e-mail(s) queued again" in requeued.output
    with smtp_server(port) as server:
        sent = runner.invoke(app, ["notify", "deliver", "--limit", "2", "--db", db_url])
        assert sent.exit_code == 0 and "sent 2" in sent.output, sent.output
        rest = runner.invoke(app, ["notify", "deliver", "--db", db_url])
        assert rest.exit_code == 0 and "sent 1" in rest.output
        assert len(server.wait_for(3)) == 3
    assert asyncio.run(_statuses(db_url))["sent"] == 3


def test_preferences_and_refusals(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_seed(db_url, 1))
    runner = CliRunner()
    off = runner.invoke(app, ["notify", "preferences", "Patient/p0", "--email", "off", "--db", db_url])
    assert off.exit_code == 0, off.output
    assert "off" in off.output and "yes" in off.output
    kind_on = runner.invoke(
        app, ["notify", "preferences", "Patient/p0", "--kind", "cve-reminder", "--email", "on", "--db", db_url]
    )
    assert kind_on.exit_code == 0 and "yes" in kind_on.output
    for args, words in (
        (["notify", "preferences", "Device/x"], "recipient must be"),
        (["notify", "preferences", "Patient/p0", "--kind", "nope"], "unknown kind"),
        (["notify", "preferences", "Patient/p0", "--email", "maybe"], "on, off or default"),
        (["notify", "requeue", "--status", "sent"], "--status must be"),
    ):
        result = runner.invoke(app, [*args, "--db", db_url])
        assert result.exit_code == 2 and words in result.output, (args, result.output)
    no_host = runner.invoke(app, ["notify", "deliver", "--db", db_url])
    assert no_host.exit_code == 2 and "notify_smtp_host" in no_host.output
    with smtp_server() as server:
        _env(monkeypatch, server.port)
        sent = runner.invoke(app, ["notify", "deliver", "--db", db_url])
        assert "sent 1" in sent.output, "the kind's own choice wins over 'off' for every kind"
        checked = runner.invoke(app, ["notify", "test-email", "--to", "ops@example.lu"])
        assert checked.exit_code == 0 and "sent through 127.0.0.1" in checked.output
        assert {r.recipients[0] for r in server.wait_for(2)} == {"p0@example.lu", "ops@example.lu"}
    monkeypatch.setenv("ESANTE_NOTIFY_SMTP_PASSWORD", "hunter2-secret")
    shown = runner.invoke(app, ["config", "--db", db_url])
    assert "hunter2-secret" not in shown.output and "notify_smtp_password = ***" in shown.output
