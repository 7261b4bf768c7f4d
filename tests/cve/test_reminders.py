"""The reminders job on SQLite and PostgreSQL, with the packaged Luxembourg schedule and a real SMTP server on
loopback (aiosmtpd) receiving what the notification service's delivery worker sends.

Day of the runs: 2026-05-11 (the CVE's clock fixed). The patients:

- ``infant`` born 2026-03-01 (10 weeks), no dose yet, authorised a paediatrician (so they have a CVE), an account
  with an e-mail: the 2-month doses are due; MenB (recommended at 3 months, 2026-06-01) not yet within the 14 days;
- ``toddler`` born 2025-04-01 (13 months), infant series done, MMR given the day before the run: MMR is not named;
- ``no-account``: like the infant, without an account: the notification is stored, no e-mail;
- ``not-due``: born 2026-03-01, every 2-month dose given on 2026-05-01: nothing due;
- ``deceased``: like the infant, deceased: nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from esante.app import Platform, build_platform
from esante.cli import app
from esante.config import Settings
from esante.cve.consent import build_authorisation
from esante.cve.context import cve_context
from esante.cve.forecast import patient_forecast
from esante.cve.reminders import ReminderJob
from esante.db.migrate import upgrade
from esante.notify import outbox
from esante.notify.delivery import DeliveryWorker
from esante.notify.kinds import catalogue
from esante.notify.settings import delivery_config
from tests.cve.record_support import immunization
from tests.notify.support import SmtpServer, add_account, smtp_server

TODAY = date(2026, 5, 11)
HEXAVALENT, PCV20, ROTAVIRUS, MENB, MMR = "146", "216", "122", "163", "03"
VACCINE_WORDS = ("DTaP", "Hib", "Polio", "Pneumococcal", "Rotavirus", "HepB", "MMR", "Meningococcal", "dose")


@dataclass
class World:
    platform: Platform
    smtp: SmtpServer

    @property
    def database(self) -> Any:
        return self.platform.database

    def job(self, **options: Any) -> ReminderJob:
        return ReminderJob(self.platform.store, cve_context(self.platform), batch=2, **options)

    async def deliver(self) -> None:
        settings = self.platform.settings
        worker = DeliveryWorker(self.database, delivery_config(settings), catalogue())
        await worker.run_once()

    async def write(self, *resources: dict[str, Any]) -> list[str]:
        """Resources written as the platform's own writer (the CVE's hooks check and fill the Immunizations)."""
        ids = []
        async with self.database.transaction() as conn:
            session = self.platform.store.session(conn)
            for resource in resources:
                if "id" in resource:
                    stored = await session.create(resource, res_id=resource["id"])
                else:
                    stored = await session.create(resource, client_id=False)
                ids.append(stored.res_id)
            await session.flush()
        return ids

    async def communications(self, patient_id: str) -> list[dict[str, Any]]:
        async with self.database.read() as conn:
            rows = await conn.fetch(
                "SELECT r.content FROM resource r JOIN idx_reference p ON p.rid = r.rid AND p.param = 'recipient'"
                " AND p.target_id = ? WHERE r.res_type = 'Communication' AND r.is_current ORDER BY r.rid",
                (patient_id,),
            )
        return [orjson.loads(bytes(r[0])) for r in rows]

    async def sql(self, text: str, *params: Any) -> list[Any]:
        async with self.database.read() as conn:
            return list(await conn.fetch(text, params))


def _settings(db_url: str, folder: Path, port: int) -> Settings:
    return Settings(
        var_dir=folder,
        database_url=db_url,
        db_pool_size=3,
        cve_schedule="lu",
        cve_dsp_sync_interval=0,
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=port,
        notify_smtp_security="none",
        notify_smtp_timeout=5,
    )


@asynccontextmanager
async def world(db_url: str, folder: Path, today: date = TODAY) -> AsyncIterator[World]:
    with smtp_server() as smtp:
        platform = build_platform(_settings(db_url, folder, smtp.port))
        set_today(platform, today)
        await platform.database.connect()
        try:
            yield World(platform, smtp)
        finally:
            if platform.auditor is not None:
                await platform.auditor.close()
            await platform.database.close()


def set_today(platform: Platform, today: date) -> None:
    fixed = datetime(today.year, today.month, today.day, 9, tzinfo=UTC).timestamp()
    cve_context(platform).clock = lambda: fixed


def patient(pid: str, birth: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": "female", **extra}


def dose(pid: str, cvx: str, day: str) -> dict[str, Any]:
    return immunization(pid, "historical", cvx=cvx, day=day, lot=None, expiry=None, performer=None)


def authorisation(pid: str) -> dict[str, Any]:
    """The paediatrician's authorisation: what makes a newborn without any dose a patient with a CVE."""
    return build_authorisation(pid, "paediatrician", f"Patient/{pid}", datetime(2026, 3, 2, tzinfo=UTC), None)


async def seed(w: World) -> None:
    await w.write(
        patient("infant", "2026-03-01"),
        patient("toddler", "2025-04-01"),
        patient("no-account", "2026-03-01"),
        patient("not-due", "2026-03-01"),
        patient("deceased", "2026-03-01", deceasedDateTime="2026-04-01"),
    )
    await w.write(authorisation("infant"), authorisation("no-account"), authorisation("deceased"))
    toddler = [dose("toddler", c, d) for d in ("2025-06-01", "2025-08-01", "2026-03-01") for c in (HEXAVALENT, PCV20)]
    toddler += [dose("toddler", ROTAVIRUS, "2025-06-01"), dose("toddler", ROTAVIRUS, "2025-08-01")]
    toddler += [dose("toddler", MENB, d) for d in ("2025-07-01", "2025-09-01", "2026-04-01")]
    toddler += [dose("toddler", MMR, "2026-05-10")]
    not_due = [dose("not-due", c, "2026-05-01") for c in (HEXAVALENT, PCV20, ROTAVIRUS, MENB)]
    await w.write(*toddler, *not_due)
    await add_account(w.database, "acct-infant", patient="infant", email="parent@example.lu")
    await add_account(w.database, "acct-toddler", patient="toddler", email="toddler.parent@example.lu")
    await add_account(w.database, "acct-not-due", patient="not-due", email="other@example.lu")
    await add_account(w.database, "acct-deceased", patient="deceased", email="gone@example.lu")


async def test_due_doses_are_reminded_once_with_one_email_without_health_data(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w:
        await seed(w)
        report = await w.job().run()
        assert report.patients == 5  # every patient with a CVE: records or an authorisation
        assert report.skipped == 1 and report.reasons == {"deceased or inactive": 1}
        assert report.notifications == 3  # infant, toddler, no-account
        (infant,) = await w.communications("infant")
        text = infant["payload"][0]["contentString"]
        for group in ("DTaP/Tdap/Td", "Hib", "Polio", "Pneumococcal", "Rotavirus"):
            assert f"- {group}, dose 1" in text, text
        assert "Meningococcal B" not in text  # recommended 2026-06-01: more than 14 days away
        assert infant["category"][0]["coding"][0]["code"] == "cve-reminder"
        assert infant["recipient"] == [{"reference": "Patient/infant"}]
        (toddler,) = await w.communications("toddler")
        assert "MMR" not in toddler["payload"][0]["contentString"]  # given yesterday
        assert await w.communications("not-due") == []
        assert await w.communications("deceased") == []
        (stored_only,) = await w.communications("no-account")
        assert "DTaP/Tdap/Td" in stored_only["payload"][0]["contentString"]

        await w.deliver()
        received = w.smtp.wait_for(2)
        assert sorted(r.recipients[0] for r in received) == ["parent@example.lu", "toddler.parent@example.lu"]
        body = received[0].message.get_body(("plain",))
        assert body is not None
        content = body.get_content()
        assert "vaccination" in content.lower()
        assert not any(word in content for word in VACCINE_WORDS), content  # no health data in an e-mail
        async with w.database.read() as conn:
            statuses = await outbox.counts(conn)
        assert statuses["sent"] == 2 and statuses["skipped"] == 1  # no-account: stored only

        again = await w.job().run()
        assert again.notifications == 0 and again.reminded == 0 and again.already == report.reminded
        await w.deliver()
        await asyncio.sleep(0.3)
        assert len(w.smtp.mailbox.messages) == 2
        assert len(await w.communications("infant")) == 1
        keys = await w.sql("SELECT dose_key, notification_id FROM cve_reminder WHERE patient_id = ?", "infant")
        assert len(keys) == text.count("\n- ")  # one row per dose the notification names
        assert {str(k[1]) for k in keys} == {infant["id"]}
        assert any(str(k[0]).startswith("DTaP/Tdap/Td|Standard|1|") for k in keys)


async def test_dose_given_is_not_reminded_and_the_next_one_is_in_its_time(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w:
        await seed(w)
        await w.job().run()
        first = await w.communications("infant")
        # the 2-month doses are given on the day; two weeks later MenB's reminding day has come, nothing else
        await w.write(*(dose("infant", c, "2026-05-11") for c in (HEXAVALENT, PCV20, ROTAVIRUS)))
        set_today(w.platform, date(2026, 5, 25))
        report = await w.job().run()
        assert report.notifications == 2  # infant: MenB; no-account: MenB (its 2-month doses are still reminded)
        after = await w.communications("infant")
        assert len(after) == 2
        newest = after[-1]["payload"][0]["contentString"]
        assert "Meningococcal B, dose 1" in newest
        assert "DTaP" not in newest and "Polio" not in newest  # given: not named, not again
        assert after[0]["id"] == first[0]["id"]
        # the 4-month doses (recommended 2026-07-01) come 14 days before
        set_today(w.platform, date(2026, 6, 17))
        await w.job().run()
        latest = (await w.communications("infant"))[-1]["payload"][0]["contentString"]
        assert "DTaP/Tdap/Td, dose 2" in latest and "Meningococcal B" not in latest  # MenB: reminded already


async def test_not_due_and_limits(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w:
        await seed(w)
        forecast = await _forecast(w, "not-due")
        assert forecast == []  # the premise: nothing is due for this patient today
        report = await w.job().run(limit=2)  # ids in order: deceased, infant
        assert report.patients == 2 and report.notifications == 1
        report = await w.job(workers=2).run()  # the rest, forecast in two processes
        assert report.notifications == 2
        assert len(await w.communications("infant")) == 1
        assert await w.communications("not-due") == []


async def _forecast(w: World, pid: str) -> list[str]:
    async with w.database.read() as conn:
        result = await patient_forecast(cve_context(w.platform), w.platform.store.session(conn), pid)
    assert result is not None
    return [d.vaccine_group for d in result.due]


async def test_concurrent_runs_remind_each_dose_once(db_url: str, tmp_path: Path) -> None:
    async with world(db_url, tmp_path) as w:
        await seed(w)
        reports = await asyncio.gather(*(w.job().run() for _ in range(3)))
        assert sum(r.notifications for r in reports) == 3
        for pid in ("infant", "toddler", "no-account"):
            assert len(await w.communications(pid)) == 1
        rows = await w.sql("SELECT COUNT(*), COUNT(DISTINCT notification_id) FROM cve_reminder")
        assert int(rows[0][1]) == 3 and int(rows[0][0]) == sum(r.reminded for r in reports)


def test_cli_runs_the_job_and_refuses_bad_options(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(db_url)

    async def prepare() -> None:
        async with world(db_url, tmp_path) as w:
            await seed(w)

    asyncio.run(prepare())
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ESANTE_CVE_SCHEDULE", "lu")
    monkeypatch.setenv("ESANTE_CVE_DSP_SYNC_INTERVAL", "0")
    runner = CliRunner()
    bad = runner.invoke(app, ["cve", "reminders", "--db", db_url, "--date", "11/05/2026"])
    assert bad.exit_code == 2 and "--date" in bad.output
    bad = runner.invoke(app, ["cve", "reminders", "--db", db_url, "--limit", "0"])
    assert bad.exit_code == 2
    done = runner.invoke(app, ["cve", "reminders", "--db", db_url, "--date", TODAY.isoformat()])
    assert done.exit_code == 0, done.output
    assert "3 notifications, 5 patients" in done.output
    again = runner.invoke(app, ["cve", "reminders", "--db", db_url, "--date", TODAY.isoformat()])
    assert again.exit_code == 0 and "0 notifications, 5 patients" in again.output


def test_the_server_task_is_off_by_default_and_runs_when_set(tmp_path: Path) -> None:
    from esante.cve.reminders_background import BackgroundReminders

    off = build_platform(Settings(var_dir=tmp_path / "a", cve_dsp_sync_interval=0))
    assert not any(isinstance(getattr(t, "__self__", None), BackgroundReminders) for t in off.shutdown)
    on = build_platform(Settings(var_dir=tmp_path / "b", cve_dsp_sync_interval=0, cve_reminders_interval_hours=24))
    tasks = [getattr(t, "__self__", None) for t in on.shutdown]
    assert any(isinstance(t, BackgroundReminders) and t.interval == 24 * 3600 for t in tasks)
