"""``esante mpi report --year Y``: the yearly identity-vigilance report from the store's history and audit trail.

A year of MPI activity is written with a controlled store clock (identities of each level in two domains, every
kind of decision in the year and around it, review Tasks with known opening and closing times, certified import
AuditEvents with known counts, identity-feed writes refused over the real API), then every figure is checked —
through the function and through the CLI against the database URL, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from esante.app import Platform, build_platform, create_app
from esante.cli import app as cli
from esante.config import Settings
from esante.fhir.model import StoredResource
from esante.fhir.values import parse_date_range
from esante.mpi.certified_import import CertifiedImporter, ImportResult, Rejection, import_event
from esante.mpi.domains import DomainStore
from esante.mpi.model import MATRICULE_SYSTEM
from esante.mpi.provenance import Activity, decision_provenance, engine_agent, person_agent
from esante.mpi.report import charts
from esante.mpi.report.collect import collect
from esante.mpi.report.figures import Figures, YearError, check_year, compute, median_hours, parse_year
from esante.mpi.report.run import run_report
from esante.mpi.review import COLLISION, REASON_SYSTEM, REVIEW_CODE, SUSPECTED_DUPLICATE, TASK_SYSTEM, UNCERTAIN_LINK
from tests.api.helpers import FHIR_JSON, outcome
from tests.auth import bearer, register_client

HOSPITAL = "urn:oid:1.3.182.3.1.1.7.2"
LAB = "urn:oid:1.3.182.3.1.1.9.2"
CERTIFIED = ["2015123101725", "2014082601689", "1974091186700"]
YEAR = 2025


def micros(text: str) -> int:
    return parse_date_range(text)[0]


class FakeClock:
    """The store's clock, set by the test: every write happens when the test says (strictly increasing)."""

    def __init__(self) -> None:
        self.at = 0

    def set(self, text: str) -> None:
        self.at = micros(text)

    def now(self) -> int:
        self.at += 1
        return self.at - 1


def _clock(platform: Platform) -> FakeClock:
    clock = FakeClock()
    platform.store.clock = clock  # type: ignore[assignment]
    return clock


def _local(system: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        "name": [{"family": "Schmit", "given": ["Léa"]}],
        **extra,
    }


def _closed(status: str, end: str | None = None) -> dict[str, Any]:
    return {"status": status, **({"executionPeriod": {"end": end}} if end else {})}


class Writer:
    """Writes through the store (hooks included, as the MPI's own writers do) at the clock's time."""

    def __init__(self, platform: Platform, clock: FakeClock) -> None:
        self.platform = platform
        self.clock = clock

    async def create(self, resource: dict[str, Any], when: str) -> StoredResource:
        self.clock.set(when)
        async with self.platform.database.transaction() as conn:
            session = self.platform.store.session(conn)
            stored = await session.create(resource, client_id=False)
            await session.flush()
        return stored

    async def update(self, stored: StoredResource, change: dict[str, Any], when: str) -> StoredResource:
        self.clock.set(when)
        async with self.platform.database.transaction() as conn:
            session = self.platform.store.session(conn)
            current = await session.read(stored.res_type, stored.res_id)
            assert current is not None and current.content is not None
            body = {**orjson.loads(current.content), **change}
            for key in [k for k, v in change.items() if v is None]:
                del body[key]
            written = await session.update(body, current)
            await session.flush()
        return written

    async def delete(self, stored: StoredResource, when: str) -> None:
        self.clock.set(when)
        async with self.platform.database.transaction() as conn:
            session = self.platform.store.session(conn)
            current = await session.read(stored.res_type, stored.res_id)
            assert current is not None
            await session.delete(current)
            await session.flush()


def _task(reason: str, authored: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": REVIEW_CODE}]},
        "reasonCode": {"coding": [{"system": REASON_SYSTEM, "code": reason}]},
        "authoredOn": authored,
        **extra,
    }


def _decision(activity: Activity, recorded: str, agent: str | None = None) -> dict[str, Any]:
    who = person_agent(agent, "Agent") if agent else engine_agent("v1")
    return decision_provenance(activity, ["Patient/x/_history/1"], recorded, who)


def _import(read: int, rejected: int, recorded: str) -> dict[str, Any]:
    result = ImportResult(read=read, created=read - rejected, rejected=[Rejection(i, "bad") for i in range(rejected)])
    return {**import_event(result, "register.ndjson", "ops", Settings()), "recorded": recorded}


async def seed_year(platform: Platform, http: httpx.AsyncClient) -> dict[str, StoredResource]:
    """The year 2025 (and a little of 2024 and 2026 around it). Returns some identities and Tasks by name."""
    clock = _clock(platform)
    w = Writer(platform, clock)
    await register_client(platform.database, "chl-his", "system/Patient.cruds")
    domains = DomainStore(platform.database)
    await domains.register(HOSPITAL, "CHL", source_client_id="chl-his")
    await domains.register(LAB, "Laboratoire", source_client_id="lab-lis")

    clock.set("2025-01-10T08:00:00Z")
    register = [(n, _local(MATRICULE_SYSTEM, m)) for n, m in enumerate(CERTIFIED, 1)]
    done = await CertifiedImporter(platform.store).run(register)
    assert done.created == 3
    async with platform.database.read() as conn:
        certified = [str(r[0]) for r in await conn.fetch("SELECT res_id FROM resource WHERE res_type = 'Patient'")]
    seealso = [{"other": {"reference": f"Patient/{certified[0]}"}, "type": "seealso"}]

    p: dict[str, StoredResource] = {}
    p["H1"] = await w.create(_local(HOSPITAL, "H1"), "2025-02-01T09:00:00Z")
    p["H2"] = await w.create(_local(HOSPITAL, "H2", link=seealso), "2025-02-01T09:01:00Z")
    p["L1"] = await w.create(_local(LAB, "L1"), "2025-02-01T09:02:00Z")
    p["L2"] = await w.create(_local(LAB, "L2", link=seealso), "2025-02-01T09:03:00Z")
    p["H3"] = await w.create(_local(HOSPITAL, "H3"), "2025-02-01T09:04:00Z")  # validated only in 2026
    p["H4"] = await w.create(_local(HOSPITAL, "H4"), "2025-02-01T09:05:00Z")  # deleted in 2026
    p["H5"] = await w.create(_local(HOSPITAL, "H5"), "2025-02-01T09:06:00Z")
    await w.delete(p["H5"], "2025-05-01T00:00:00Z")  # deleted within the year: not counted
    p["H6"] = await w.create(_local(HOSPITAL, "H6"), "2025-02-01T09:07:00Z")
    merged = [{"other": {"reference": f"Patient/{p['H1'].res_id}"}, "type": "replaced-by"}]
    await w.update(p["H6"], {"active": False, "link": merged}, "2025-06-15T10:00:00Z")  # merged into H1
    await w.create({"resourceType": "Patient", "name": [{"family": "Demo"}]}, "2025-03-01T00:00:00Z")  # untagged

    for activity, recorded, agent in [
        (Activity.AUTO_LINK, "2025-03-03T10:00:00Z", None),
        (Activity.AUTO_LINK, "2025-03-20T10:00:00Z", None),
        (Activity.AUTO_LINK, "2025-04-02T10:00:00Z", None),
        (Activity.LINK, "2025-05-05T10:00:00Z", "acc-1"),
        (Activity.UNLINK, "2025-05-06T10:00:00Z", "acc-2"),
        (Activity.MERGE, "2025-06-15T10:00:00Z", "acc-1"),
        (Activity.MERGE, "2025-06-16T10:00:00Z", "acc-1"),
        (Activity.UNMERGE, "2025-07-01T10:00:00Z", "acc-1"),
        (Activity.AUTO_LINK, "2024-12-31T23:59:59Z", None),  # the year before
        (Activity.MERGE, "2026-01-01T00:00:00Z", "acc-1"),  # the year after
    ]:
        await w.create(_decision(activity, recorded, agent), recorded)
    other = {**_decision(Activity.LINK, "2025-05-05T10:00:00Z", "acc-3"), "activity": {"text": "document signed"}}
    await w.create(other, "2025-05-05T10:00:00Z")  # a Provenance that is no identity decision

    # reviews: T1 10 h, T2 24 h, T3 2 h, T5 744 h (opened in 2024), T7 48 h (reopened once) → median 24 h
    t1 = await w.create(_task(UNCERTAIN_LINK, "2025-02-01T00:00:00Z"), "2025-02-01T00:00:00Z")
    await w.update(t1, _closed("completed", "2025-02-01T10:00:00Z"), "2025-02-02T00:00:00Z")
    t2 = await w.create(_task(COLLISION, "2025-03-01T00:00:00Z"), "2025-03-01T00:00:00Z")
    await w.update(t2, {"status": "rejected"}, "2025-03-02T00:00:00Z")
    t3 = await w.create(_task(SUSPECTED_DUPLICATE, "2025-04-01T00:00:00Z"), "2025-04-01T00:00:00Z")
    await w.update(t3, _closed("cancelled", "2025-04-01T02:00:00Z"), "2025-04-03T00:00:00Z")
    p["T4"] = await w.create(_task(UNCERTAIN_LINK, "2025-11-01T00:00:00Z"), "2025-11-01T00:00:00Z")  # closed 2026
    t5 = await w.create(_task(UNCERTAIN_LINK, "2024-12-01T00:00:00Z"), "2024-12-01T00:00:00Z")
    await w.update(t5, _closed("completed", "2025-01-01T00:00:00Z"), "2025-01-01T00:00:01Z")
    await w.create(_task(COLLISION, "2025-06-01T00:00:00Z"), "2025-06-01T00:00:00Z")  # T6, still open
    t7 = await w.create(_task(UNCERTAIN_LINK, "2025-07-01T00:00:00Z"), "2025-07-01T00:00:00Z")
    await w.update(t7, {"status": "completed"}, "2025-07-01T04:00:00Z")
    await w.update(t7, {"status": "requested"}, "2025-07-02T00:00:00Z")
    await w.update(t7, {"status": "completed"}, "2025-07-03T00:00:00Z")
    t8 = await w.create(_task(COLLISION, "2025-08-01T00:00:00Z"), "2025-08-01T00:00:00Z")
    await w.update(t8, {"status": "entered-in-error"}, "2025-08-01T01:00:00Z")  # not a review after all
    not_review = {**_task(UNCERTAIN_LINK, "2025-08-01T00:00:00Z"), "code": {"text": "call the patient"}}
    await w.create(not_review, "2025-08-01T00:00:00Z")

    # certified imports: 150 lines read in 2025, 5 rejected (and one import of 2024)
    assert platform.auditor is not None
    await platform.auditor.record_events(
        [
            _import(100, 3, "2025-01-10T08:00:00Z"),
            _import(50, 2, "2025-06-30T08:00:00Z"),
            _import(10, 10, "2024-06-30T08:00:00Z"),
        ]
    )
    # identity-feed writes over the API: two refused with 400 in 2025, one 403 (not a trait problem), one 400 of 2026
    chl = {**FHIR_JSON, **bearer(platform.settings, "system:chl-his", "system/Patient.cruds")}

    async def feed(resource: dict[str, Any]) -> httpx.Response:
        ident = resource["identifier"][0]
        url = f"/fhir/Patient?identifier={quote(ident['system'] + '|' + ident['value'])}"
        return await http.put(url, json=resource, headers=chl)

    clock.set("2025-08-01T10:00:00Z")
    outcome(await feed(_local("urn:oid:1.3.182.3.1.1.99.2", "X1")), 400)  # unregistered domain
    two = _local(HOSPITAL, "H9", identifier=[{"system": HOSPITAL, "value": "H9"}, {"system": LAB, "value": "L9"}])
    outcome(await feed(two), 400)  # two domains
    outcome(await feed(_local(LAB, "L9")), 403)  # not the lab's source
    return p


async def seed_later(platform: Platform, http: httpx.AsyncClient, p: dict[str, StoredResource]) -> None:
    """Writes of 2026: they must not change the report of 2025."""
    clock = platform.store.clock
    assert isinstance(clock, FakeClock)
    w = Writer(platform, clock)
    async with platform.database.read() as conn:
        certified = str(await conn.fetchval("SELECT res_id FROM resource WHERE res_type = 'Patient' ORDER BY rid"))
    seealso = [{"other": {"reference": f"Patient/{certified}"}, "type": "seealso"}]
    await w.update(p["H3"], {"link": seealso}, "2026-01-01T00:00:00Z")
    await w.delete(p["H4"], "2026-01-02T00:00:00Z")
    await w.create(_local(HOSPITAL, "H7"), "2026-01-03T00:00:00Z")
    await w.update(p["T4"], {"status": "completed"}, "2026-01-10T00:00:00Z")
    clock.set("2026-02-01T10:00:00Z")
    chl = {**FHIR_JSON, **bearer(platform.settings, "system:chl-his", "system/Patient.cruds")}
    url = f"/fhir/Patient?identifier={quote('urn:oid:1.3.182.3.1.1.99.2|X2')}"
    outcome(await http.put(url, json=_local("urn:oid:1.3.182.3.1.1.99.2", "X2"), headers=chl), 400)


def assert_2025(f: Figures) -> None:
    assert f.year == YEAR
    assert f.identities_by_level == {"certified": 3, "validated": 2, "provisional": 4}
    assert f.identities_by_domain == {
        "CHL": {"certified": 0, "validated": 1, "provisional": 3},
        "Laboratoire": {"certified": 0, "validated": 1, "provisional": 1},
        MATRICULE_SYSTEM: {"certified": 3, "validated": 0, "provisional": 0},
    }
    assert (f.identities_total, f.merged_identities, f.untagged_patients) == (9, 1, 1)
    assert f.decisions == {"auto-link": 3, "link": 1, "unlink": 1, "merge": 2, "unmerge": 1}
    assert f.decisions_by_agent_kind["auto-link"] == {"engine": 3, "agent": 0, "other": 0}
    assert f.decisions_by_agent_kind["merge"] == {"engine": 0, "agent": 2, "other": 0}
    assert f.deciding_agents == 2
    assert f.reviews_opened == {UNCERTAIN_LINK: 3, COLLISION: 2, SUSPECTED_DUPLICATE: 1}
    assert f.reviews_closed == {UNCERTAIN_LINK: 3, COLLISION: 1, SUSPECTED_DUPLICATE: 1}
    assert f.reviews_closed_by_outcome == {"completed": 3, "rejected": 1, "cancelled": 1}
    assert f.reviews_open_at_end == 2
    assert f.median_review_hours == 24.0
    assert f.median_review_hours_by_reason == {UNCERTAIN_LINK: 48.0, COLLISION: 24.0, SUSPECTED_DUPLICATE: 2.0}
    assert (f.imports, f.import_lines_read, f.import_lines_rejected) == (2, 150, 5)
    assert f.rejection_rate == pytest.approx(5 / 150)
    assert f.refused_identity_writes == 2
    assert f.monthly["auto-links"] == [0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert f.monthly["merges"] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]
    assert f.monthly["reviews-opened"] == [0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0]
    assert f.monthly["reviews-closed"] == [1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]


def _csv(text: str) -> dict[tuple[str, str], str]:
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["metric", "breakdown", "value"]
    return {(metric, breakdown): value for metric, breakdown, value in table[1:]}


async def test_every_figure_of_a_year(platform: Platform, client: httpx.AsyncClient, tmp_path: Path) -> None:
    p = await seed_year(platform, client)
    assert platform.auditor is not None
    await platform.auditor.flush()
    before = compute(await collect(platform.database, YEAR))
    assert_2025(before)

    await seed_later(platform, client, p)
    stages: list[str] = []
    files = await run_report(platform, YEAR, tmp_path / "out", "ops", lambda stage, _d, _t: stages.append(stage))
    assert_2025(files.figures)
    assert {**vars(files.figures), "generated": ""} == {**vars(before), "generated": ""}, "later writes change nothing"
    assert {"identities", "decisions", "reviews", "audit trail"} <= set(stages)

    later = compute(await collect(platform.database, 2026))
    assert later.identities_by_level == {"certified": 3, "validated": 3, "provisional": 3}  # H3 linked, H4 gone, H7
    assert later.decisions["merge"] == 1 and later.refused_identity_writes == 1
    assert later.reviews_closed == {UNCERTAIN_LINK: 1, COLLISION: 0, SUSPECTED_DUPLICATE: 0}
    assert later.median_review_hours == 70 * 24.0  # T4: Nov 1 → Jan 10

    html = files.html.read_text(encoding="utf-8")
    assert html.count("<svg") == 3 and "<script" not in html
    assert "<title>Identities by level, end of 2025</title>" in html
    assert html.count('class="series"') == 4  # auto-links, reviews opened, reviews closed, merges
    assert "3.33 %" in html and "Laboratoire" in html
    rows = _csv(files.csv.read_text(encoding="utf-8"))
    assert rows[("identities", "level=certified")] == "3"
    assert rows[("identities", "domain=CHL;level=provisional")] == "3"
    assert rows[("decisions", "activity=unlink")] == "1"
    assert rows[("reviews_closed", "outcome=rejected")] == "1"
    assert rows[("median_review_hours", "total")] == "24"
    assert float(rows[("rejection_rate", "certified_imports")]) == pytest.approx(0.033333)
    assert rows[("refused_identity_writes", "http_400")] == "2"
    assert rows[("monthly:auto-links", "month=2025-03")] == "2"

    async with platform.database.read() as conn:
        rows_ = await conn.fetch("SELECT content FROM resource WHERE res_type = 'AuditEvent' AND is_current")
    runs = [e for e in (orjson.loads(bytes(r[0])) for r in rows_) if e["type"]["code"] == "110106"]
    assert len(runs) == 1
    assert runs[0]["agent"][0]["who"]["identifier"]["value"] == "ops"
    assert {"type": "year", "valueString": "2025"} in runs[0]["entity"][0]["detail"]


async def test_an_empty_year_gives_zeros(platform: Platform, tmp_path: Path) -> None:
    files = await run_report(platform, 2010, tmp_path / "empty")
    f = files.figures
    assert f.identities_total == 0 and set(f.identities_by_level.values()) == {0} and f.identities_by_domain == {}
    assert set(f.decisions.values()) == {0} and f.reviews_opened_total == f.reviews_closed_total == 0
    assert f.median_review_hours is None and f.rejection_rate is None and f.refused_identity_writes == 0
    assert all(counts == [0] * 12 for counts in f.monthly.values())
    html = files.html.read_text(encoding="utf-8")
    assert html.count("<svg") == 3 and "n/a" in html
    rows = _csv(files.csv.read_text(encoding="utf-8"))
    assert rows[("identities", "total")] == "0" and rows[("median_review_hours", "total")] == ""
    assert rows[("rejection_rate", "certified_imports")] == ""


def test_years_refused() -> None:
    today = datetime(2026, 12, 2, tzinfo=UTC)
    assert check_year(2026, today) == 2026 and check_year(1970, today) == 1970
    for year in (99999, 2027, 1969, -5):
        with pytest.raises(YearError, match="out of range"):
            check_year(year, today)
    assert parse_year(" 2025 ", today) == 2025
    for text in ("last", "2025.5", "", "20 25"):
        with pytest.raises(YearError, match="is not a year"):
            parse_year(text, today)
    with pytest.raises(YearError, match="year 99999 is out of range"):
        parse_year("99999", today)


def test_median_and_charts_are_pure() -> None:
    hour = 3_600_000_000
    assert median_hours([]) is None and median_hours([hour, 3 * hour]) == 2.0
    bars = charts.bar_chart("Levels <by> domain", ["a&b", "c"], [3, 0])
    assert bars.startswith("<svg") and "a&amp;b" in bars and "&lt;by&gt;" in bars and bars.count("<rect") == 2
    assert [charts.nice_max(v) for v in (0, 1, 3, 7, 130, 1_200_345)] == [1, 1, 3, 8, 150, 1_500_000]
    assert charts.axis_steps(130) == (50, 3) and charts.axis_steps(0) == (1, 1)
    lines = charts.line_chart("m", ["Jan", "Feb"], {"x": [1, 2], "y": [0, 0]})
    assert lines.count("<polyline") == 2 and "<desc>x: Jan 1, Feb 2; y: Jan 0, Feb 0</desc>" in lines


def test_cli_report(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)

    async def seed() -> None:
        platform = build_platform(Settings(var_dir=tmp_path / "var", database_url=db_url, warm_up=False))
        await platform.database.connect()
        await register_client(platform.database)
        app = create_app(platform.settings, platform)
        headers = bearer(platform.settings)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as http:
                await seed_year(platform, http)
        finally:
            assert platform.auditor is not None
            await platform.auditor.close()
            await platform.database.close()

    asyncio.run(seed())
    runner = CliRunner()
    done = runner.invoke(cli, ["mpi", "report", "--year", str(YEAR), "--db", db_url])
    assert done.exit_code == 0, done.output
    folder = tmp_path / f"mpi-report-{YEAR}"
    assert str(folder / "report.html") in done.output or "report.html" in done.output
    rows = _csv((folder / "report.csv").read_text(encoding="utf-8"))
    assert rows[("identities", "level=validated")] == "2" and rows[("reviews_opened", "total")] == "6"
    assert rows[("certified_import_lines", "rejected")] == "5" and rows[("refused_identity_writes", "http_400")] == "2"
    assert (folder / "report.html").read_text(encoding="utf-8").count("<svg") == 3

    elsewhere = runner.invoke(cli, ["mpi", "report", "--year", "2010", "--out", str(tmp_path / "x"), "--db", db_url])
    assert elsewhere.exit_code == 0, elsewhere.output
    assert _csv((tmp_path / "x" / "report.csv").read_text())[("identities", "total")] == "0"

    text = runner.invoke(cli, ["mpi", "report", "--year", "last", "--db", db_url])
    assert text.exit_code == 2 and "'last' is not a year" in text.output
    huge = runner.invoke(cli, ["mpi", "report", "--year", "99999", "--db", db_url])
    assert huge.exit_code == 2 and "year 99999 is out of range" in huge.output
    (tmp_path / "file").write_text("")
    clash = runner.invoke(cli, ["mpi", "report", "--year", "2010", "--out", str(tmp_path / "file"), "--db", db_url])
    assert clash.exit_code == 2 and "is not a directory" in clash.output


async def test_decisions_taken_over_the_api_are_counted(
    platform: Platform, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The contract end to end: an agent's link (closing a review), unlink and certified merge through the
    identity-vigilance operations are what the report of the current year counts."""
    from esante.fhir.model import micros_to_instant
    from esante.mpi.feed import Candidate
    from esante.mpi.review import review_task
    from tests.mpi.test_vigilance import _agent, _decide, _world

    await _world(platform)
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        h3 = await session.read("Patient", "h3")
        assert h3 is not None
        opened = micros_to_instant(platform.store.clock.now())
        await session.create(review_task(h3, [Candidate("lea", 0.7, "review", "probable", {})], opened), res_id="t1")
        await session.flush()
    agent = await _agent(platform)
    for op, values in [
        ("mpi-link", {"local": "h3", "target": "lea", "task": "Task/t1", "reason": "same person"}),
        ("mpi-unlink", {"local": "h3", "reason": "not the same person"}),
        ("mpi-merge", {"source": "twin", "target": "lea", "reason": "register duplicate"}),
    ]:
        done = await _decide(client, agent, op, **values)
        assert done.status_code == 200, done.text
    f = (await run_report(platform, datetime.now(UTC).year, tmp_path / "now")).figures
    assert f.decisions == {"auto-link": 0, "link": 1, "unlink": 1, "merge": 1, "unmerge": 0}
    assert f.decisions_by_agent_kind["merge"] == {"engine": 0, "agent": 1, "other": 0} and f.deciding_agents == 1
    assert f.reviews_opened[UNCERTAIN_LINK] == 1 and f.reviews_closed[UNCERTAIN_LINK] == 1
    assert f.reviews_closed_by_outcome["completed"] == 1 and f.reviews_open_at_end == 0
    assert f.median_review_hours is not None and 0 <= f.median_review_hours < 1
    assert sum(f.monthly["merges"]) == 1 and sum(f.monthly["reviews-closed"]) == 1
    # the register's duplicate merged away; every local identity of it re-pointed to the survivor
    assert f.identities_by_level == {"certified": 1, "validated": 3, "provisional": 2} and f.merged_identities == 1
