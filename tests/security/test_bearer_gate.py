"""The resource server's gate over real HTTP (uvicorn on loopback, both databases): every attack on the access
token is a 401 with an RFC 6750 challenge and an OperationOutcome, audited, and no data in the answer; the logs
carry the request id and never the token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from esante import logs
from esante.config import Settings
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from esante.security.keys import KeyRing
from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
from tests.live_server import loopback_settings, serve


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def claims_for(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.effective_issuer,
        "sub": f"system:{TEST_CLIENT}",
        "aud": settings.effective_audience,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": f"j-{time.monotonic_ns()}",
        "client_id": TEST_CLIENT,
        "scope": ALL_RIGHTS,
        "extensions": {"ihe_iua": {"subject_role": {"system": "urn:esante:subject-role", "code": "system"}}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(ring: KeyRing, claims: dict[str, Any], **header: Any) -> str:
    key = ring.signing_key()
    protected = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **header}
    return jws.serialize_compact(protected, json.dumps(claims).encode(), key.key, algorithms=[protected["alg"]])


def attacks(settings: Settings, ring: KeyRing) -> dict[str, str]:
    now = int(time.time())
    key = ring.signing_key()
    good = signed(ring, claims_for(settings))
    head, _body, signature = good.split(".")
    hs_input = f"{segment({'alg': 'HS256', 'typ': 'at+jwt', 'kid': key.kid})}.{segment(claims_for(settings))}"
    hs_mac = hmac.new(key.key.as_pem(private=False), hs_input.encode(), hashlib.sha256).digest()
    intruder = ECKey.generate_key("P-256")
    foreign = jws.serialize_compact(
        {"alg": "ES256", "typ": "at+jwt", "kid": intruder.thumbprint()},
        json.dumps(claims_for(settings)).encode(),
        intruder,
        algorithms=["ES256"],
    )
    return {
        "expired": signed(ring, claims_for(settings, exp=now - 120, iat=now - 600, nbf=now - 600)),
        "not yet valid": signed(ring, claims_for(settings, nbf=now + 600, iat=now + 600, exp=now + 900)),
        "wrong audience": signed(ring, claims_for(settings, aud="https://elsewhere.example/fhir")),
        "wrong issuer": signed(ring, claims_for(settings, iss="https://evil.example")),
        "alg none": f"{segment({'alg': 'none', 'typ': 'at+jwt', 'kid': key.kid})}.{segment(claims_for(settings))}.",
        "HS256 with the public key": f"{hs_input}.{b64(hs_mac)}",
        "unknown kid": foreign,
        "tampered payload": f"{head}.{segment(claims_for(settings, scope='system/*.cruds', sub='root'))}.{signature}",
        "unregistered client": signed(ring, claims_for(settings, client_id="nobody", sub="system:nobody")),
        "garbage": "not-a-token",
    }


async def _register(settings: Settings) -> None:
    upgrade(settings.effective_database_url)
    database = create_database(settings.effective_database_url, pool_size=1)
    await database.connect()
    try:
        await register_client(database)
    finally:
        await database.close()


def test_every_token_attack_is_a_401(db_url: str, tmp_path: Path) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    asyncio.run(_register(settings))
    ring = KeyRing.load_or_create(settings)
    good = signed(ring, claims_for(settings))
    with serve(settings) as base, httpx.Client(timeout=30) as http:
        assert http.get(f"{base}/Patient", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        missing = http.get(f"{base}/Patient")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="esante"'
        assert missing.json()["issue"][0]["code"] == "login"
        wrong_scheme = http.get(f"{base}/Patient", headers={"Authorization": f"Basic {good}"})
        assert wrong_scheme.status_code == 401 and 'error="invalid_request"' in wrong_scheme.headers["www-authenticate"]
        failures = []
        for name, forged in attacks(settings, ring).items():
            response = http.get(f"{base}/Patient", headers={"Authorization": f"Bearer {forged}"})
            challenge = response.headers.get("www-authenticate", "")
            body = response.json()
            if response.status_code != 401 or 'error="invalid_token"' not in challenge:
                failures.append(f"{name}: {response.status_code} {challenge}")
            elif body["resourceType"] != "OperationOutcome" or forged in response.text:
                failures.append(f"{name}: body {body}")
        assert not failures, failures
        # the CapabilityStatement stays public (SMART clients read it first) and names the OAuth endpoints
        metadata = http.get(f"{base}/metadata").json()
        security = metadata["rest"][0]["security"]
        uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
        assert uris["token"].endswith("/oauth/token") and uris["authorize"].endswith("/oauth/authorize")
        assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"


def test_refusals_are_audited_and_logs_hold_no_token(db_url: str, tmp_path: Path) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    asyncio.run(_register(settings))
    expired_token = token(settings, f"system:{TEST_CLIENT}", ALL_RIGHTS, ttl=1, now=time.time() - 3600)
    stream = io.StringIO()
    with serve(settings) as base, httpx.Client(timeout=30) as http:
        logs.configure("info", stream)
        refused = http.get(
            f"{base}/Patient", headers={"Authorization": f"Bearer {expired_token}", "X-Request-Id": "req-7"}
        )
        assert refused.status_code == 401 and refused.json()["issue"][0]["code"] == "expired"
        auth = {"Authorization": f"Bearer {token(settings, f'system:{TEST_CLIENT}', ALL_RIGHTS)}"}
        trail = http.get(f"{base}/AuditEvent?outcome=4&_count=50", headers=auth).json()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line.get("event") == "token.refused" and line.get("request_id") == "req-7" for line in lines), lines
    assert expired_token not in stream.getvalue()
    assert expired_token.split(".")[2] not in stream.getvalue()
    anonymous = [
        e["resource"]
        for e in trail["entry"]
        if any(x.get("what", {}).get("identifier", {}).get("value") == "req-7" for x in e["resource"]["entity"])
    ]
    assert len(anonymous) == 1 and anonymous[0]["outcomeDesc"] == "HTTP 401"


@pytest.mark.parametrize("field", ["token", "password", "Authorization", "client_assertion", "code"])
def test_the_log_redacts_secret_fields(field: str) -> None:
    stream = io.StringIO()
    logs.configure("info", stream)
    import structlog

    structlog.get_logger("t").info("something", **{field: "s3cr3t"}, account_id="a-1")
    line = json.loads(stream.getvalue())
    assert line[field] == logs.REDACTED and line["account_id"] == "a-1" and "s3cr3t" not in stream.getvalue()


def test_tokens_signed_before_a_key_rotation_keep_working_until_they_expire(db_url: str, tmp_path: Path) -> None:
    settings = loopback_settings(var_dir=tmp_path, database_url=db_url)
    asyncio.run(_register(settings))
    old = token(settings, f"system:{TEST_CLIENT}", ALL_RIGHTS)
    with serve(settings) as base, httpx.Client(timeout=30) as http:
        assert http.get(f"{base}/Patient", headers={"Authorization": f"Bearer {old}"}).status_code == 200
        ring = KeyRing.load_or_create(settings)
        retired = ring.signing_key().kid
        new_kid = ring.rotate().kid  # as `esante keys rotate` does, while the server runs
        new = token(settings, f"system:{TEST_CLIENT}", ALL_RIGHTS)
        assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "==").decode())["kid"] == new_kid != retired
        for value in (old, new):
            assert http.get(f"{base}/Patient", headers={"Authorization": f"Bearer {value}"}).status_code == 200
        published = {
            key["kid"] for key in http.get(f"{base.removesuffix('/fhir')}/.well-known/jwks.json").json()["keys"]
        }
        assert {retired, new_kid} <= published
