"""Discovery documents, and SMART Backend Services over real HTTP: client_credentials with a private_key_jwt
assertion signed by the test (RS384 and ES384), and every way an assertion can be wrong."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, OctKey

from esante.security.tokens import ROLE_SYSTEM
from tests.security.oauth_support import (
    ASSERTION_TYPE,
    AuthServer,
    ClientKeys,
    system_client,
)


async def test_metadata_documents(auth: AuthServer) -> None:
    async with httpx.AsyncClient() as http:
        rfc8414 = (await http.get(f"{auth.base}/.well-known/oauth-authorization-server")).json()
        smart = (await http.get(f"{auth.base}/.well-known/smart-configuration")).json()
        jwks = (await http.get(rfc8414["jwks_uri"])).json()
    for doc in (rfc8414, smart):
        assert doc["issuer"] == auth.base
        assert doc["token_endpoint"] == f"{auth.base}/oauth/token"
        assert doc["authorization_endpoint"] == f"{auth.base}/oauth/authorize"
        assert doc["introspection_endpoint"] == f"{auth.base}/oauth/introspect"
        assert doc["revocation_endpoint"] == f"{auth.base}/oauth/revoke"
        assert doc["jwks_uri"] == f"{auth.base}/.well-known/jwks.json"
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["response_types_supported"] == ["code"]
        assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "none"]
        assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384", "RS256", "ES256"]
        assert set(doc["grant_types_supported"]) == {"authorization_code", "client_credentials", "refresh_token"}
        assert "system/*.rs" in doc["scopes_supported"] and "patient/*.rs" in doc["scopes_supported"]
    assert {
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-patient",
        "permission-user",
        "permission-v2",
    } <= set(smart["capabilities"])
    assert rfc8414["introspection_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert [key["kid"] for key in jwks["keys"]] == [auth.keyring.signing_key().kid]


async def token_request(server: AuthServer, data: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(server.token_url, data=data)


def credentials(server: AuthServer, client: ClientKeys, scope: str | None = None, **options: Any) -> dict[str, str]:
    data = {"grant_type": "client_credentials", **client.auth_params(server.token_url, **options)}
    if scope is not None:
        data["scope"] = scope
    return data


@pytest.mark.parametrize("key_type", ["EC", "RSA"])
async def test_client_credentials_with_a_signed_assertion(auth: AuthServer, key_type: str) -> None:
    client = await system_client(auth, key_types=(key_type,))
    response = await token_request(auth, credentials(auth, client, "system/Observation.rs"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == auth.settings.token_ttl
    assert body["scope"] == "system/Observation.rs" and "refresh_token" not in body and "patient" not in body
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = auth.verify(body["access_token"])
    assert claims.subject == "lab-1" and claims.client_id == "lab-1" and claims.scope == "system/Observation.rs"
    assert claims.audience == (auth.settings.effective_audience,)
    assert claims.iua is not None and claims.iua.subject_role is not None
    assert (claims.iua.subject_role.system, claims.iua.subject_role.code) == (ROLE_SYSTEM, "system")
    assert claims.iua.subject_organization == "Organization/lab-1" and claims.iua.person_id is None
    assert claims.expires_at - claims.issued_at == auth.settings.token_ttl
    async with httpx.AsyncClient() as http:  # the token works at a resource
        me = await http.get(f"{auth.base}/fhir/whoami", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {"sub": "lab-1", "scope": "system/Observation.rs", "caller": "system"}


async def test_scope_is_narrowed_to_the_registration_and_defaults_to_it(auth: AuthServer) -> None:
    client = await system_client(auth)
    asked = "system/Observation.cruds system/Patient.cruds system/Encounter.rs patient/*.rs"
    body = (await token_request(auth, credentials(auth, client, asked))).json()
    assert body["scope"] == "system/Observation.cruds system/Patient.rs"
    body = (await token_request(auth, credentials(auth, client))).json()
    assert body["scope"] == "system/Observation.cruds system/Patient.rs"
    body = (await token_request(auth, credentials(auth, client, "system/*.rs"))).json()
    assert body["scope"] == "system/Observation.rs system/Patient.rs"
    for nothing in ("system/Encounter.rs", "patient/*.rs"):
        response = await token_request(auth, credentials(auth, client, nothing))
        assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    response = await token_request(auth, credentials(auth, client, "system/Observation.xyz"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_purpose_of_use_may_be_asked(auth: AuthServer) -> None:
    client = await system_client(auth)
    body = (await token_request(auth, {**credentials(auth, client), "purpose_of_use": "PUBHLTH"})).json()
    claims = auth.verify(body["access_token"])
    assert claims.iua is not None and [p.code for p in claims.iua.purpose_of_use] == ["PUBHLTH"]
    response = await token_request(auth, {**credentials(auth, client), "purpose_of_use": "PATRQT"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_a_replayed_assertion_is_refused(auth: AuthServer) -> None:
    client = await system_client(auth)
    data = credentials(auth, client, jti="once-only")
    assert (await token_request(auth, data)).status_code == 200
    replay = await token_request(auth, data)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    assert "replay" in replay.json()["error_description"]
    assert replay.headers["www-authenticate"].startswith("private_key_jwt")
    # the same jti signed anew is a replay too; another client may use the same jti
    again = await token_request(auth, credentials(auth, client, jti="once-only"))
    assert again.status_code == 401
    other = await system_client(auth, "lab-2")
    assert (await token_request(auth, credentials(auth, other, jti="once-only"))).status_code == 200


def _none_alg(client: ClientKeys, audience: str) -> str:
    now = int(time.time())

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": client.client_id, "sub": client.client_id, "aud": audience, "exp": now + 60, "jti": "n1"}
    return f"{b64({'alg': 'none', 'kid': next(iter(client.keys))})}.{b64(claims)}."


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong_aud", "aud"),
        ("issuer_as_aud", "aud"),
        ("expired", "exp"),
        ("too_long", "at most 300 s ahead"),
        ("unknown_kid", "kid is not one of"),
        ("no_kid", "needs the kid"),
        ("alg_none", "'none' is not accepted"),
        ("hs256", "'HS256' is not accepted"),
        ("other_key", "signature does not verify"),
        ("iss_differs", "iss and sub"),
        ("unknown_client", "unknown or suspended client"),
        ("no_jti", "jti"),
        ("rs256_with_ec_key", "signature does not verify"),
        ("wrong_type", "client_assertion_type"),
    ],
)
async def test_bad_assertions_are_refused_with_401(auth: AuthServer, case: str, message: str) -> None:
    client = await system_client(auth)
    ec_kid = next(kid for kid, key in client.keys.items() if isinstance(key, ECKey))
    url = auth.token_url
    options: dict[str, Any] = {
        "wrong_aud": {"claims": {"aud": f"{auth.base}/oauth/other"}},
        "issuer_as_aud": {"claims": {"aud": auth.base}},
        "expired": {"exp_in": -120},
        "too_long": {"exp_in": 3600},
        "unknown_kid": {"kid": ec_kid, "header": {"kid": "not-registered"}},
        "no_kid": {"kid": ec_kid, "header": {"kid": ""}},
        "other_key": {"kid": ec_kid, "key": ECKey.generate_key("P-384")},
        "iss_differs": {"iss": "someone-else"},
        "unknown_client": {"iss": "ghost", "sub": "ghost"},
        "rs256_with_ec_key": {"kid": ec_kid, "alg": "ES256", "key": ECKey.generate_key("P-256")},
    }.get(case, {})
    data = credentials(auth, client, **options)
    if case == "alg_none":
        data["client_assertion"] = _none_alg(client, url)
    elif case == "hs256":
        secret = OctKey.import_key(json.dumps(client.keys[ec_kid].as_dict(private=False)).encode())
        data["client_assertion"] = client.assertion(url, alg="HS256", kid=ec_kid, key=secret)  # type: ignore[arg-type]
    elif case == "no_jti":
        data["client_assertion"] = client.assertion(url, kid=ec_kid, claims={"jti": None})
    elif case == "wrong_type":
        data["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    response = await token_request(auth, data)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client" and message in body["error_description"], body
    assert "invalid_client" in response.headers["www-authenticate"]


async def test_missing_authentication_unknown_grant_and_public_clients(auth: AuthServer) -> None:
    await system_client(auth)
    response = await token_request(auth, {"grant_type": "client_credentials", "client_id": "lab-1"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    response = await token_request(auth, {"grant_type": "password", "username": "u", "password": "p"})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
    async with httpx.AsyncClient() as http:
        as_json = await http.post(auth.token_url, json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_a_client_without_the_grant_or_suspended_is_refused(auth: AuthServer) -> None:
    from esante.security.oauth.client_store import ClientStore

    ehr = await system_client(
        auth, "ehr", kind="hospital", grant_types=("authorization_code",), scopes="user/*.rs",
        redirect_uris=("https://ehr.example.lu/cb",),
    )  # fmt: skip
    response = await token_request(auth, credentials(auth, ehr))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    lab = await system_client(auth)
    await ClientStore(auth.database).suspend("lab-1", int(time.time()))
    response = await token_request(auth, credentials(auth, lab))
    assert response.status_code == 401 and "unknown or suspended" in response.json()["error_description"]
    await ClientStore(auth.database).reactivate("lab-1", int(time.time()))
    assert (await token_request(auth, credentials(auth, lab))).status_code == 200


async def test_the_token_endpoint_is_rate_limited(start_server: Any) -> None:
    server: AuthServer = await start_server(rate_limit_token=3)
    client = await system_client(server)
    statuses = [(await token_request(server, credentials(server, client))).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await token_request(server, credentials(server, client))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "temporarily_unavailable"


def test_assertion_type_constant_matches_rfc7523() -> None:
    assert ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_a_plain_http_public_url_is_refused(start_server: Any) -> None:
    """OAuth over plain http is only allowed on loopback: a deployment whose public URL is http elsewhere is told."""
    server: AuthServer = await start_server(base_url="http://esante.example/fhir")
    client = await system_client(server)
    response = await token_request(server, credentials(server, client))
    assert response.status_code == 400 and response.json()["error"] == "insecure_transport"
    async with httpx.AsyncClient() as http:
        page = await http.get(server.authorize_url, params={"response_type": "code", "client_id": "x"})
    assert page.status_code == 400 and 'data-error="insecure_transport"' in page.text
