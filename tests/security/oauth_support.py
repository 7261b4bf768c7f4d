"""A real authorization server for the OAuth tests: the routes of ``oauth_routes`` on a platform whose settings
point at a uvicorn server on a loopback port (in a thread), on both databases; plus the client side a test needs:
its own keys, private_key_jwt assertions signed by the test, PKCE pairs, accounts with a TOTP authenticator.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from esante.config import Settings
from esante.db.engine import Database, create_database
from esante.fhir.definitions import get_registry
from esante.fhir.store import ResourceStore
from esante.security.accounts import totp
from esante.security.accounts.model import Account
from esante.security.accounts.passwords import PasswordHashing
from esante.security.accounts.service import AccountService
from esante.security.audit_trail import Auditor
from esante.security.jwks import jwks_document
from esante.security.keys import KeyRing
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.clients import Registration, build_client, parse_jwks
from esante.security.oauth.routes import oauth_routes
from esante.security.ratelimit import RateLimiter
from esante.security.tokens import TokenClaims, TokenError, verify
from tests.security.accounts_support import FAST, MATRICULE, PASSWORD, add_patient, add_practitioner
from tests.security.helpers import FakeClock

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MiniPlatform:
    """The part of ``esante.app.Platform`` the authorization server uses."""

    settings: Settings
    database: Database
    keyring: KeyRing
    auditor: Auditor | None


@dataclass
class AuthServer:
    """A running authorization server and what a test needs around it."""

    base: str  # http://127.0.0.1:<port>  (= the issuer)
    settings: Settings
    keyring: KeyRing
    database: Database  # the test's own connection to the same database (set-up and checks)
    clock: FakeClock  # the account service's clock (TOTP codes, lockout)

    @property
    def token_url(self) -> str:
        return f"{self.base}/oauth/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.base}/oauth/authorize"

    def verify(self, token: str) -> TokenClaims:
        return verify(self.keyring, token, audience=self.settings.effective_audience, issuer=self.base)


async def whoami(platform: MiniPlatform, request: Request) -> Response:
    """A resource: answers with the verified token's subject (what a resource server would do with it)."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        return JSONResponse({"error": "invalid_token"}, status_code=401)
    try:
        claims = verify(
            platform.keyring,
            header[7:],
            audience=platform.settings.effective_audience,
            issuer=platform.settings.effective_issuer,
        )
    except TokenError as error:
        return JSONResponse({"error": "invalid_token", "reason": error.reason.value}, status_code=401)
    return JSONResponse({"sub": claims.subject, "scope": claims.scope, "caller": claims.to_caller().kind})


@asynccontextmanager
async def running_server(db_url: str, folder: Path, **overrides: Any) -> AsyncIterator[AuthServer]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values: dict[str, Any] = {
        "var_dir": folder,
        "database_url": db_url,
        "host": "127.0.0.1",
        "port": port,
        "base_url": f"{base}/fhir",
        "warm_up": False,
        "audit_enabled": True,
    }
    values.update(overrides)
    settings = Settings(**values)
    clock = FakeClock(time.time())
    server_db = create_database(db_url, pool_size=4)
    keyring = KeyRing.load_or_create(settings)
    auditor = Auditor(ResourceStore(server_db), get_registry()) if settings.audit_enabled else None
    platform = MiniPlatform(settings, server_db, keyring, auditor)
    accounts = AccountService(server_db, settings, clock=clock, hashing=PasswordHashing(FAST))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await server_db.connect()
        try:
            yield
        finally:
            await server_db.close()

    async def jwks(_request: Request) -> Response:
        return JSONResponse(jwks_document(keyring))

    async def me(request: Request) -> Response:
        return await whoami(platform, request)

    routes = [
        *oauth_routes(platform, accounts=accounts, limiter=RateLimiter()),
        Route("/.well-known/jwks.json", jwks),
        Route("/fhir/whoami", me),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test authorization server did not start")
        await asyncio.sleep(0.02)
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        yield AuthServer(base, settings, keyring, database, clock)
    finally:
        await database.close()
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server(db_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await start_server(**settings_overrides)`` → a running :class:`AuthServer` (stopped after the test)."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> AuthServer:
        manager = running_server(db_url, tmp_path / f"var{len(stack)}", **overrides)
        stack.append(manager)
        return await manager.__aenter__()

    yield start
    for manager in reversed(stack):
        await manager.__aexit__(None, None, None)


@pytest.fixture
async def auth(start_server: Callable[..., Any]) -> AuthServer:
    server: AuthServer = await start_server()
    return server


# --- the client side ------------------------------------------------------------------------------------------------


@dataclass
class ClientKeys:
    """A registered client and its private keys (the test signs its own assertions)."""

    client_id: str
    keys: dict[str, RSAKey | ECKey] = field(default_factory=dict)  # kid → private key

    def assertion(
        self,
        audience: str,
        *,
        alg: str | None = None,
        kid: str | None = None,
        jti: str | None = None,
        exp_in: int = 240,
        iss: str | None = None,
        sub: str | None = None,
        key: RSAKey | ECKey | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        kid = kid or next(iter(self.keys))
        signing = key or self.keys[kid]
        alg = alg or ("ES384" if isinstance(signing, ECKey) else "RS384")
        now = int(time.time())
        payload = {
            "iss": iss or self.client_id,
            "sub": sub or self.client_id,
            "aud": audience,
            "exp": now + exp_in,
            "iat": now,
            "jti": jti or str(uuid.uuid4()),
            **(claims or {}),
        }
        protected = {"alg": alg, "kid": kid, "typ": "JWT", **(header or {})}
        return jws.serialize_compact(protected, json.dumps(payload).encode(), signing, algorithms=[alg])

    def auth_params(self, audience: str, **options: Any) -> dict[str, str]:
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(audience, **options)}


async def register(server: AuthServer, registration: Registration) -> None:
    await ClientStore(server.database).register(build_client(registration, int(time.time())))


async def system_client(
    server: AuthServer,
    client_id: str = "lab-1",
    *,
    key_types: tuple[str, ...] = ("EC", "RSA"),
    scopes: str = "system/Observation.cruds system/Patient.rs",
    organization: str | None = "Organization/lab-1",
    **extra: Any,
) -> ClientKeys:
    """A laboratory's software: client_credentials with private_key_jwt (one P-384 key and one RSA 2048 key)."""
    client = ClientKeys(client_id)
    public = []
    for kind in key_types:
        key: RSAKey | ECKey = ECKey.generate_key("P-384") if kind == "EC" else RSAKey.generate_key(2048)
        kid = key.thumbprint()
        client.keys[kid] = key
        public.append({**key.as_dict(private=False), "kid": kid})
    await register(
        server,
        Registration(
            client_id=client_id,
            name=f"Software {client_id}",
            kind=extra.pop("kind", "laboratory"),
            jwks=parse_jwks(json.dumps({"keys": public})),
            scopes=scopes,
            organization=organization,
            **extra,
        ),
    )
    return client


REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the test reads the Location header


async def public_app(
    server: AuthServer,
    client_id: str = "portal",
    scopes: str = "patient/*.rs user/*.rs launch/patient openid fhirUser offline_access",
) -> ClientKeys:
    await register(
        server,
        Registration(
            client_id=client_id, name="Portail patient", kind="app", public=True, redirect_uris=(REDIRECT,),
            scopes=scopes,
        ),
    )  # fmt: skip
    return ClientKeys(client_id)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Person:
    account: Account
    username: str
    secret: str  # the TOTP enrolment secret


async def person(
    server: AuthServer, kind: str, username: str, *, patient_id: str | None = None, practitioner_id: str | None = None,
    ehealth_id: str | None = None, roles: tuple[str, ...] = (), display_name: str | None = None,
) -> Person:  # fmt: skip
    """An active account with a confirmed TOTP authenticator (create → activate → confirm_totp)."""
    service = AccountService(server.database, server.settings, clock=server.clock, hashing=PasswordHashing(FAST))
    if patient_id:
        await add_patient(server.database, patient_id)
    if practitioner_id:
        await add_practitioner(server.database, practitioner_id)
    email = f"{username}@example.lu"
    _account, letter = await service.create(
        kind, username, patient_id=patient_id, practitioner_id=practitioner_id, ehealth_id=ehealth_id, roles=roles,
        matricule=MATRICULE if kind == "patient" else None, email=email, display_name=display_name,
    )  # fmt: skip
    result = await service.activate(username, letter.code, MATRICULE if kind == "patient" else None, email, PASSWORD)
    assert result.enrolment is not None
    secret = result.enrolment.secret
    account = await service.confirm_totp(username, PASSWORD, totp.code_at(secret, server.clock()))
    return Person(account, username, secret)


def next_code(server: AuthServer, who: Person) -> str:
    """A fresh TOTP code: the account clock moves one step (a code is accepted once)."""
    server.clock.advance(totp.INTERVAL)
    return totp.code_at(who.secret, server.clock())


# --- driving the browser side ---------------------------------------------------------------------------------------


_INPUT = re.compile(r'<input type="hidden" name="(?P<name>[a-z_]+)" value="(?P<value>[^"]*)">')


def hidden_fields(html: str) -> dict[str, str]:
    return {m["name"]: unescape(m["value"]) for m in _INPUT.finditer(html)}


def form_action(html: str) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match, html
    return unescape(match[1])


def authorize_params(client: str, challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": REDIRECT,
        "scope": "patient/*.rs launch/patient offline_access",
        "state": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


async def exchange(
    server: AuthServer, http: httpx.AsyncClient, code: str, verifier: str, client_id: str = "portal", **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        **extra,
    }
    return await http.post(server.token_url, data={k: v for k, v in data.items() if v != ""})


def location_params(response: httpx.Response) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    assert response.status_code == 302, (response.status_code, response.text)
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def authorize_as(
    server: AuthServer, http: httpx.AsyncClient, who: Person, client: str = "portal"
) -> dict[str, Any]:
    """Drive the whole authorization code flow as ``who`` would in a browser (login page with password and TOTP,
    consent page, redirect) and exchange the code with its PKCE verifier; returns the token response."""
    verifier, challenge = pkce()
    page = await http.get(server.authorize_url, params=authorize_params(client, challenge))
    login = {**hidden_fields(page.text), "username": who.username, "password": PASSWORD}
    consent = await http.post(form_action(page.text), data={**login, "totp": next_code(server, who)})
    allowed = await http.post(form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"})
    response = await exchange(server, http, location_params(allowed)["code"], verifier, client)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@asynccontextmanager
async def whole_platform(db_url: str, folder: Path) -> AsyncIterator[tuple[str, AuthServer]]:
    """The real application (``create_app``) on loopback: yields its FHIR base URL and an :class:`AuthServer` for the
    authorization server mounted in it (clients, accounts and TOTP codes made on the test's own connection)."""
    from tests.live_server import loopback_settings, serve

    settings = loopback_settings(var_dir=folder, database_url=db_url)
    database = create_database(db_url, pool_size=2)
    await database.connect()
    try:
        with serve(settings) as fhir:
            base = fhir.removesuffix("/fhir")
            yield fhir, AuthServer(base, settings, KeyRing.from_settings(settings), database, FakeClock(time.time()))
    finally:
        await database.close()
