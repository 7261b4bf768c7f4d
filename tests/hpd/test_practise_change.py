"""``change_right_to_practise`` as the register import calls it (inside its own transaction, no HTTP), and what the
rest of the platform asks of the HPD: ``has_right_to_practise``, ``practising_sql``, the access rules' veto, the
login check. Both databases."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import orjson
import pytest

from esante.app import Platform
from esante.fhir.store import StoreSession
from esante.hpd.model import EHEALTH_ID_SYSTEM, Status
from esante.hpd.practise import (
    Agent,
    PractiseError,
    Source,
    change_right_to_practise,
    has_right_to_practise,
    install_practise,
    practising_sql,
    recorded_right,
)
from esante.hpd.practise_model import TRANSITIONS, check_effective
from esante.hpd.practise_store import history
from esante.security.accounts.model import AuthenticationError
from esante.security.accounts.passwords import PasswordHashing
from esante.security.accounts.service import AccountService
from esante.security.audit_trail import AuditTrail
from esante.security.pdp.decision import AccessRequest
from esante.security.pdp.restrictions import EVERYTHING
from esante.security.pdp.rules.professional import ProfessionalRule, practising
from esante.security.policy import Action, Caller
from tests.hpd.practise_support import ehealth_id
from tests.security.accounts_support import FAST, PASSWORD, current_code
from tests.security.helpers import FakeClock

OPERATOR = Agent("import-operator", "operator", "register import 2026-12-03.csv")


async def _write(session: StoreSession, resource: dict[str, Any]) -> None:
    await session.create(dict(resource), res_id=resource["id"])


async def _directory(platform: Platform, practitioner: str, ehid: str | None = None) -> None:
    async with platform.database.transaction() as conn:
        session = platform.store.session(conn)
        identifiers = [{"system": EHEALTH_ID_SYSTEM, "value": ehid}] if ehid else []
        await _write(session, {"resourceType": "Practitioner", "id": practitioner, "identifier": identifiers})
        await _write(
            session,
            {
                "resourceType": "PractitionerRole",
                "id": f"{practitioner}-r",
                "active": True,
                "practitioner": {"reference": f"Practitioner/{practitioner}"},
            },
        )
        await session.flush()


async def _read(platform: Platform, res_type: str, res_id: str) -> dict[str, Any]:
    async with platform.database.read() as conn:
        stored = await platform.store.session(conn).read(res_type, res_id)
    assert stored is not None and stored.content is not None
    body: dict[str, Any] = orjson.loads(stored.content)
    return body


@pytest.fixture
async def hpd(platform: Platform) -> Platform:
    install_practise(platform)
    return platform


async def test_the_import_changes_a_right_in_its_own_transaction(hpd: Platform) -> None:
    ehid = ehealth_id(21)
    await _directory(hpd, "p21", ehid)
    async with hpd.database.transaction() as conn:
        session = hpd.store.session(conn)
        change = await change_right_to_practise(
            session, "p21", "suspended", reason="register: suspended", source="import", agent=OPERATOR
        )
        assert change.changed and change.previous is Status.ACTIVE and change.status is Status.SUSPENDED
        assert change.ehealth_id == ehid and change.roles == ("p21-r",) and change.effective == _today()
        # the same status again, as a re-imported register states it: no error, nothing written
        same = await change_right_to_practise(
            session, "p21", Status.SUSPENDED, reason="register", source=Source.IMPORT, agent=OPERATOR,
            allow_unchanged=True,
        )  # fmt: skip
        assert not same.changed and same.audit_event is None
    async with hpd.database.read() as conn:
        right = await recorded_right(conn, "p21")
        assert right is not None and right.status is Status.SUSPENDED and right.reason == "register: suspended"
        rows = await history(conn, "p21")
        assert [(r["old_status"], r["new_status"], r["source"], r["agent_id"]) for r in rows] == [
            ("active", "suspended", "import", "import-operator")
        ]
        assert rows[0]["audit_event"] == change.audit_event
        assert not await has_right_to_practise(conn, practitioner_id="p21")
        assert not await has_right_to_practise(conn, ehealth_id=ehid)
        assert await has_right_to_practise(conn, practitioner_id="someone-else")
    assert (await _read(hpd, "Practitioner", "p21"))["active"] is False
    assert (await _read(hpd, "PractitionerRole", "p21-r"))["active"] is False
    event = await _read(hpd, "AuditEvent", str(change.audit_event))
    assert event["agent"][0]["who"]["identifier"] == {"system": "urn:esante:agent:operator", "value": "import-operator"}
    verified = await AuditTrail().verify(hpd.database)
    assert verified.ok, verified.reason  # the event is in the hash chain


async def test_a_failed_transaction_leaves_no_trace(hpd: Platform) -> None:
    await _directory(hpd, "p22", ehealth_id(22))
    with pytest.raises(RuntimeError):
        async with hpd.database.transaction() as conn:
            await change_right_to_practise(
                hpd.store.session(conn), "p22", "withdrawn", reason="r", source="import", agent=OPERATOR
            )
            raise RuntimeError("the import failed later in the same transaction")
    async with hpd.database.read() as conn:
        assert await recorded_right(conn, "p22") is None and await history(conn, "p22") == []
        assert await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'AuditEvent'") == 0
    assert (await _read(hpd, "PractitionerRole", "p22-r"))["active"] is True


@pytest.mark.parametrize(
    ("practitioner", "status", "reason", "code"),
    [
        ("missing", "withdrawn", "r", "unknown_practitioner"),
        ("p23", "struck-off", "r", "invalid_status"),
        ("p23", "withdrawn", "", "missing_reason"),
        ("p23", "active", "r", "not_lost"),
    ],
)
async def test_refusals(hpd: Platform, practitioner: str, status: str, reason: str, code: str) -> None:
    await _directory(hpd, "p23")
    async with hpd.database.transaction() as conn:
        with pytest.raises(PractiseError) as raised:
            await change_right_to_practise(
                hpd.store.session(conn), practitioner, status, reason=reason, source="import", agent=OPERATOR
            )
    assert raised.value.code == code


async def test_concurrent_changes_of_one_right_are_serialised(hpd: Platform) -> None:
    await _directory(hpd, "p24", ehealth_id(24))

    async def withdraw() -> str:
        try:
            async with hpd.database.transaction() as conn:
                await change_right_to_practise(
                    hpd.store.session(conn), "p24", "withdrawn", reason="r", source="administrator", agent=OPERATOR
                )
                await asyncio.sleep(0.05)  # hold the transaction open while the other one waits
            return "done"
        except PractiseError as error:
            return error.code

    assert sorted(await asyncio.gather(withdraw(), withdraw())) == ["already_withdrawn", "done"]
    async with hpd.database.read() as conn:
        assert len(await history(conn, "p24")) == 1


async def test_practising_sql_filters_in_the_database(hpd: Platform) -> None:
    for name in ("p25", "p26"):
        await _directory(hpd, name)
    async with hpd.database.transaction() as conn:
        await change_right_to_practise(
            hpd.store.session(conn), "p26", "withdrawn", reason="r", source="import", agent=OPERATOR
        )
    async with hpd.database.read() as conn:
        rows = await conn.fetch(
            "SELECT res_id FROM resource WHERE res_type = 'Practitioner' AND is_current AND "
            + practising_sql("res_id")
            + " ORDER BY res_id"
        )
        assert [r[0] for r in rows] == ["p25"]
        assert await conn.fetchval("SELECT 1 WHERE " + practising_sql("?"), ("p26",)) is None


def test_the_access_rules_see_a_professional_without_the_right_as_having_no_right() -> None:
    rule = ProfessionalRule()
    read = Action("read", "Practitioner")
    ok = Caller("professional", "x", ("user/*.rs",), attributes={"right_to_practise": "active"})
    lost = Caller("professional", "x", ("user/*.rs",), attributes={"right_to_practise": "withdrawn"})
    acting = Caller("system", "lab", ("system/*.rs",), attributes={"right_to_practise": "suspended"})
    assert practising(ok) and not practising(lost) and not practising(acting)
    assert practising(Caller("professional"))  # not looked at by the HPD (no HPD): the gate decides
    assert list(rule.grants(AccessRequest(ok, read, "r", "Practitioner")))
    assert not list(rule.grants(AccessRequest(lost, read, "r", "Practitioner")))
    assert list(rule.vetoes(AccessRequest(lost, read, "r", "Practitioner"))) == [EVERYTHING]
    assert list(rule.vetoes(AccessRequest(acting, read, "r", "Observation"))) == [EVERYTHING]
    assert not list(rule.vetoes(AccessRequest(ok, read, "r", "Practitioner")))


async def test_login_is_refused_without_counting_a_failure(hpd: Platform) -> None:
    ehid = ehealth_id(27)
    await _directory(hpd, "p27", ehid)
    clock = FakeClock(1_800_000_000)
    accounts = AccountService(
        hpd.database, hpd.settings, clock=clock, hashing=PasswordHashing(FAST), standing=hpd.accounts.standing
    )
    account, letter = await accounts.create(
        "professional", "p27.doc", practitioner_id="p27", ehealth_id=ehid, email="p27@example.lu"
    )
    enrolment = (await accounts.activate("p27.doc", letter.code, None, "p27@example.lu", PASSWORD)).enrolment
    assert enrolment is not None
    await accounts.confirm_totp("p27.doc", PASSWORD, current_code(enrolment.secret, clock))
    async with hpd.database.transaction() as conn:
        await change_right_to_practise(
            hpd.store.session(conn), "p27", "suspended", reason="r", source="import", agent=OPERATOR,
            effective=date(2026, 11, 30),
        )  # fmt: skip
    clock.advance(30)
    with pytest.raises(AuthenticationError) as refused:
        await accounts.authenticate("p27.doc", PASSWORD, current_code(enrolment.secret, clock))
    assert refused.value.code == "right_to_practise_suspended"
    assert "suspended since 2026-11-30" in refused.value.message
    after = await accounts.get(account.id)
    assert after is not None and after.failed_logins == 0 and after.status.value == "active"


def test_transitions_and_dates() -> None:
    assert TRANSITIONS[Status.WITHDRAWN] == frozenset({Status.ACTIVE})
    today = date(2026, 12, 3)
    assert check_effective(None, today) == "2026-12-03"
    assert check_effective("2026-01-31", today) == "2026-01-31"
    for bad in ("2026-12-04", "31/01/2026", "2026-13-01", "1899-12-31"):
        with pytest.raises(PractiseError):
            check_effective(bad, today)


def _today() -> str:
    from esante.hpd.practise import today

    return today().isoformat()


async def test_the_import_flow_is_idempotent(hpd: Platform) -> None:
    """As ``esante hpd import`` does it: the line's Practitioner is written with the register's status, then the
    change is made in the same transaction; importing the same line again writes nothing new."""
    from esante.hpd.model import RightToPractise, right_to_practise_extension

    ehid = ehealth_id(28)
    await _directory(hpd, "p28", ehid)

    async def import_line(status: Status, when: str) -> tuple[bool, int]:
        async with hpd.database.transaction() as conn:
            session = hpd.store.session(conn)
            stored = await session.read("Practitioner", "p28")
            assert stored is not None and stored.content is not None
            old = orjson.loads(stored.content)
            body = {k: v for k, v in old.items() if k not in ("meta", "extension", "active")}
            body["extension"] = [right_to_practise_extension(RightToPractise(status, when))]
            body["active"] = status is Status.ACTIVE
            if {k: v for k, v in body.items() if k != "id"} != {
                k: v for k, v in old.items() if k not in ("meta", "id")
            }:
                await session.update(body, stored)
            change = await change_right_to_practise(
                session, "p28", status, reason="register", source="import", agent=OPERATOR, effective=when,
                allow_unchanged=True,
            )  # fmt: skip
            await session.flush()
            version = await conn.fetchval(
                "SELECT version_id FROM resource WHERE res_type = 'Practitioner' AND res_id = 'p28' AND is_current"
            )
        return change.changed, int(version)

    changed, version = await import_line(Status.WITHDRAWN, "2026-11-02")
    assert changed
    assert await import_line(Status.WITHDRAWN, "2026-11-02") == (False, version)  # the same line again
    restored, version = await import_line(Status.ACTIVE, "2026-11-20")
    assert restored
    assert await import_line(Status.ACTIVE, "2026-11-20") == (False, version)
    practitioner = await _read(hpd, "Practitioner", "p28")
    assert practitioner["active"] is True
    assert practitioner["extension"] == [right_to_practise_extension(RightToPractise(Status.ACTIVE, "2026-11-20"))]
    assert (await _read(hpd, "PractitionerRole", "p28-r"))["active"] is True
