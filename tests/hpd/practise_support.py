"""The right-to-practise tests' world: the real application on loopback (uvicorn) with the HPD's right to practise
installed, on both databases, and what the tests do around it — directory entries written over the API, a
professional's account with a TOTP authenticator, the OAuth sign-in a browser would do, an HPD administrator's
token, the AuditEvents of the trail.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from esante.app import Platform, build_platform
from esante.db.engine import Database, create_database
from esante.hpd.model import EHEALTH_ID_SYSTEM
from esante.hpd.practise import install_practise
from esante.identifiers.ehealth_id import make_ehealth_id
from esante.security.accounts import totp
from esante.security.accounts.passwords import PasswordHashing
from esante.security.accounts.service import AccountService
from esante.security.keys import KeyRing
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.live_server import loopback_settings, serve
from tests.security.accounts_support import FAST, PASSWORD
from tests.security.helpers import FakeClock
from tests.security.oauth_support import (
    AuthServer,
    Person,
    authorize_params,
    exchange,
    form_action,
    hidden_fields,
    location_params,
    next_code,
    pkce,
    public_app,
)

APP = "pro-app"
APP_SCOPE = "user/*.rs offline_access"
ADMIN_SCOPE = "user/Practitioner.rus user/PractitionerRole.rs user/AuditEvent.rs"


@dataclass
class World:
    fhir: str  # the FHIR base URL
    server: AuthServer  # the authorization server mounted in the app (clients, accounts, TOTP codes)
    platform: Platform
    database: Database  # the test's own connection

    @property
    def settings(self) -> Any:
        return self.server.settings

    def system(self) -> dict[str, str]:
        """The all-rights establishment software (writes the directory entries)."""
        return {"Authorization": f"Bearer {token(self.settings, f'system:{TEST_CLIENT}', ALL_RIGHTS)}"}

    def staff(self, user: str, *roles: str, scope: str = ADMIN_SCOPE) -> dict[str, str]:
        value = token(self.settings, f"staff:{user}", scope, extra_claims={"roles": list(roles)})
        return {"Authorization": f"Bearer {value}"}

    def admin(self) -> dict[str, str]:
        return self.staff("hpd-admin-1", "hpd-administrator")


@asynccontextmanager
async def practise_world(db_url: str, folder: Path) -> AsyncIterator[World]:
    """The application with the right to practise installed; its account service on a movable clock (TOTP codes)
    and a fast password hash."""
    settings = loopback_settings(var_dir=folder, database_url=db_url, audit_enabled=True)
    platform = build_platform(settings)
    install_practise(platform)  # idempotent: the HPD plugin may have installed it already
    clock = FakeClock(time.time())
    platform.accounts.clock = clock
    platform.accounts.hashing = PasswordHashing(FAST)
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        await register_client(database)
        with serve(settings, platform) as fhir:
            base = fhir.removesuffix("/fhir")
            server = AuthServer(base, settings, KeyRing.from_settings(settings), database, clock)
            await public_app(server, APP, APP_SCOPE)
            yield World(fhir, server, platform, database)
    finally:
        await database.close()


def ehealth_id(n: int) -> str:
    return make_ehealth_id(f"{285_000_000 + n:09d}")


async def put(world: World, http: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{world.fhir}/{resource['resourceType']}/{resource['id']}"
    response = await http.put(url, json=resource, headers=world.system())
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


async def directory_entry(world: World, http: httpx.AsyncClient, practitioner: str, ehid: str) -> None:
    """Practitioner ``practitioner`` (with its eHealthID), an active role and a role inactive for its own reasons."""
    await put(
        world,
        http,
        {
            "resourceType": "Practitioner",
            "id": practitioner,
            "active": True,
            "identifier": [{"system": EHEALTH_ID_SYSTEM, "value": ehid}],
            "name": [{"family": f"Doc-{practitioner}", "given": ["Anne"]}],
        },
    )
    for suffix, active in (("a", True), ("b", False)):
        await put(
            world,
            http,
            {
                "resourceType": "PractitionerRole",
                "id": f"{practitioner}-role-{suffix}",
                "active": active,
                "practitioner": {"reference": f"Practitioner/{practitioner}"},
            },
        )


async def professional(world: World, username: str, practitioner: str, ehid: str) -> Person:
    """An active professional account (created, activated, TOTP confirmed) for an existing Practitioner."""
    service = AccountService(world.database, world.settings, clock=world.server.clock, hashing=PasswordHashing(FAST))
    email = f"{username}@example.lu"
    _account, letter = await service.create(
        "professional", username, practitioner_id=practitioner, ehealth_id=ehid, email=email, display_name=username
    )
    result = await service.activate(username, letter.code, None, email, PASSWORD)
    assert result.enrolment is not None
    secret = result.enrolment.secret
    account = await service.confirm_totp(username, PASSWORD, totp.code_at(secret, world.server.clock()))
    return Person(account, username, secret)


async def sign_in(world: World, http: httpx.AsyncClient, who: Person) -> httpx.Response:
    """The browser's sign-in: the login page (password, TOTP); returns the page the login post answers with."""
    _verifier, challenge = pkce()
    page = await http.get(world.server.authorize_url, params=authorize_params(APP, challenge, scope=APP_SCOPE))
    assert page.status_code == 200, page.text
    login = {**hidden_fields(page.text), "username": who.username, "password": PASSWORD}
    return await http.post(form_action(page.text), data={**login, "totp": next_code(world.server, who)})


async def sign_in_tokens(world: World, http: httpx.AsyncClient, who: Person) -> dict[str, Any]:
    """The whole authorization code flow (login, consent, code exchange with PKCE): the token response."""
    verifier, challenge = pkce()
    page = await http.get(world.server.authorize_url, params=authorize_params(APP, challenge, scope=APP_SCOPE))
    login = {**hidden_fields(page.text), "username": who.username, "password": PASSWORD}
    consent = await http.post(form_action(page.text), data={**login, "totp": next_code(world.server, who)})
    assert "decision" in consent.text, consent.text
    allowed = await http.post(form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"})
    response = await exchange(world.server, http, location_params(allowed)["code"], verifier, APP)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def parameters(reason: str | None = "disciplinary decision 2026/17", effective: str | None = None) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    if reason is not None:
        items.append({"name": "reason", "valueString": reason})
    if effective is not None:
        items.append({"name": "effective", "valueDate": effective})
    return {"resourceType": "Parameters", "parameter": items}


def value(answer: dict[str, Any], name: str) -> Any:
    values = [next(v for k, v in p.items() if k.startswith("value")) for p in answer["parameter"] if p["name"] == name]
    return values[0] if len(values) == 1 else values


async def audit_events(world: World, http: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    """The AuditEvents of the trail (read as an HPD administrator may), newest first."""
    response = await http.get(
        f"{world.fhir}/AuditEvent", params={"_count": "1000", "_sort": "-_lastUpdated", **query}, headers=world.admin()
    )
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


def query_of(event: dict[str, Any]) -> str:
    """The request a REST AuditEvent names (its BALP query entity, decoded)."""
    for entity in event.get("entity", []):
        if "query" in entity:
            return base64.b64decode(entity["query"]).decode()
    return ""


def detail(event: dict[str, Any], name: str) -> str | None:
    for entity in event.get("entity", []):
        for item in entity.get("detail", []):
            if item.get("type") == name:
                return str(item.get("valueString"))
    return None


async def practise_rows(world: World) -> tuple[int, int]:
    """(rows of hpd_right_to_practise, rows of its history)."""
    async with world.database.read() as conn:
        current = await conn.fetchval("SELECT COUNT(*) FROM hpd_right_to_practise")
        history = await conn.fetchval("SELECT COUNT(*) FROM hpd_right_to_practise_history")
    return int(current), int(history)
