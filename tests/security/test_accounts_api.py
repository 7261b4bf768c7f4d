"""The account HTTP endpoints (activation, TOTP confirmation, password reset) on both databases."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from esante.db.engine import Database, create_database
from esante.security.accounts import totp
from esante.security.accounts.api import account_routes
from esante.security.accounts.model import AccountStatus
from esante.security.accounts.service import AccountService
from tests.security.accounts_support import MATRICULE, PASSWORD, add_patient, service_for
from tests.security.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def accounts(database: Database, clock: FakeClock) -> AccountService:
    await add_patient(database, "pat-1")
    return service_for(database, clock, rate_limit_login=1000)


@asynccontextmanager
async def client_for(service: AccountService, address: str = "192.0.2.10") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Starlette(routes=account_routes(service)), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def http(accounts: AccountService) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(accounts) as client:
        yield client


async def new_letter(accounts: AccountService) -> str:
    _account, letter = await accounts.create(
        "patient", "alice", patient_id="pat-1", matricule=MATRICULE, email="alice@example.lu"
    )
    return letter.code


def activation(letter_code: str, **changes: Any) -> dict[str, Any]:
    body = {
        "username": "alice",
        "code": letter_code,
        "matricule": MATRICULE,
        "email_or_mobile": "alice@example.lu",
        "password": PASSWORD,
    }
    body.update(changes)
    return body


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
    issue: dict[str, Any] = body["issue"][0]
    return issue


async def test_activation_confirmation_and_reset_over_http(
    http: httpx.AsyncClient, accounts: AccountService, clock: FakeClock
) -> None:
    code = await new_letter(accounts)
    response = await http.post("/account/activate", json=activation(code))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["next"] == "confirm_totp" and body["account"]["status"] == "inactive"
    assert set(body["totp"]) == {"secret", "otpauth_uri", "qr_svg"} and body["totp"]["qr_svg"].startswith("<svg")
    secret = body["totp"]["secret"]
    assert PASSWORD not in response.text and code not in response.text

    wrong = await http.post(
        "/account/activate/totp", json={"username": "alice", "password": PASSWORD, "totp_code": "12345"}
    )
    issue = outcome(wrong, 401)
    assert issue["details"]["coding"][0]["code"] == "invalid_credentials"
    confirmed = await http.post(
        "/account/activate/totp",
        json={"username": "alice", "password": PASSWORD, "totp_code": totp.code_at(secret, clock())},
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {"account": {**body["account"], "status": "active"}, "next": "login"}

    clock.advance(30)
    account = await accounts.find_by_username("alice")
    assert account is not None and account.status is AccountStatus.ACTIVE
    letter = await accounts.issue_reset_code(account.id)
    reset = {
        "username": "alice",
        "code": letter.code,
        "matricule": MATRICULE,
        "password": "another long passphrase",
        "totp_code": totp.code_at(secret, clock()),
    }
    missing_totp = await http.post("/account/password-reset", json={**reset, "totp_code": None})
    assert outcome(missing_totp, 400)["details"]["coding"][0]["code"] == "reset_failed"
    done = await http.post("/account/password-reset", json=reset)
    assert done.status_code == 200, done.text
    assert done.json()["next"] == "login"
    clock.advance(30)
    logged = await accounts.authenticate("alice", "another long passphrase", totp.code_at(secret, clock()))
    assert logged.id == account.id


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b"[1, 2]", {"content-type": "application/json"}, 400, "JSON object"),
        (b'{"username": "alice"}', {"content-type": "text/plain"}, 415, "application/json"),
        (b"{" + b'"a": "' + b"x" * 20000 + b'"}', {"content-type": "application/json"}, 413, "exceeds"),
    ],
)
async def test_malformed_bodies(
    http: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    assert (
        message
        in outcome(await http.post("/account/activate", content=content, headers=headers), status)["diagnostics"]
    )


async def test_missing_fields_and_wrong_types_are_named(http: httpx.AsyncClient, accounts: AccountService) -> None:
    code = await new_letter(accounts)
    body = activation(code)
    del body["password"]
    issue = outcome(await http.post("/account/activate", json=body), 400)
    assert issue["code"] == "required" and issue["expression"] == ["password"]
    issue = outcome(await http.post("/account/activate", json=activation(code, code=1234)), 400)
    assert issue["code"] == "structure" and issue["expression"] == ["code"] and "string" in issue["diagnostics"]
    issue = outcome(await http.post("/account/activate", json=activation(code, username="  ")), 400)
    assert issue["expression"] == ["username"]
    # nothing was changed by the refused requests
    account = await accounts.find_by_username("alice")
    assert account is not None and account.failed_logins == 0 and account.status is AccountStatus.INACTIVE


async def test_bad_codes_get_one_generic_answer(http: httpx.AsyncClient, accounts: AccountService) -> None:
    code = await new_letter(accounts)
    answers = [
        await http.post("/account/activate", json=activation("AAAA-BBBB-CCCC-DDDD")),
        await http.post("/account/activate", json=activation(code, matricule="2015123101725")),
        await http.post("/account/activate", json=activation(code, email_or_mobile="x@example.lu")),
        await http.post("/account/activate", json=activation(code, username="nobody")),
    ]
    issues = [outcome(answer, 400) for answer in answers]
    assert len({(i["diagnostics"], i["details"]["coding"][0]["code"]) for i in issues}) == 1
    assert issues[0]["details"]["coding"][0]["code"] == "activation_failed"
    weak = outcome(await http.post("/account/activate", json=activation(code, password="tooshort")), 400)
    assert weak["details"]["coding"][0]["code"] == "weak_password" and "12 characters" in weak["diagnostics"]


async def test_expired_code(http: httpx.AsyncClient, accounts: AccountService, clock: FakeClock) -> None:
    code = await new_letter(accounts)
    clock.advance(accounts.settings.activation_code_ttl + 1)
    issue = outcome(await http.post("/account/activate", json=activation(code)), 400)
    assert issue["code"] == "expired" and "new letter" in issue["diagnostics"]


async def test_rate_limit_per_address(database: Database, clock: FakeClock) -> None:
    limited = service_for(database, clock, rate_limit_login=3)
    body = activation("AAAA-BBBB-CCCC-DDDD")
    async with client_for(limited, "192.0.2.20") as http:
        for _ in range(3):
            outcome(await http.post("/account/activate", json=body), 400)
        throttled = await http.post("/account/activate/totp", json={"username": "x"})
        issue = outcome(throttled, 429)
        assert issue["code"] == "throttled" and 1 <= int(throttled.headers["retry-after"]) <= 60
    async with client_for(limited, "192.0.2.21") as other:  # another address has its own budget
        outcome(await other.post("/account/activate", json=body), 400)


# ---------------------------------------------------------------- a real server on loopback
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(db_url: str) -> Iterator[str]:
    """The account routes under uvicorn on a loopback port (its own database connection and event loop)."""
    from esante.config import Settings

    database = create_database(db_url, pool_size=2)
    service = AccountService(database, Settings(database_url=db_url, rate_limit_login=5))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await database.connect()
        try:
            yield
        finally:
            await database.close()

    port = _free_port()
    app = Starlette(routes=account_routes(service), lifespan=lifespan)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_brute_force_is_throttled_over_real_http(served: str) -> None:
    body = activation("AAAA-BBBB-CCCC-DDDD")
    with httpx.Client(base_url=served, timeout=10) as client:
        statuses = [client.post("/account/activate", json=body).status_code for _ in range(7)]
        throttled = client.post("/account/password-reset", json={})
    assert statuses == [400] * 5 + [429] * 2
    assert throttled.status_code == 429 and throttled.headers["retry-after"].isdigit()
    assert throttled.json()["issue"][0]["code"] == "throttled"
