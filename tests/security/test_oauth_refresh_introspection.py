"""Refresh tokens (rotation, reuse detection, narrowing), introspection (ITI-102) and revocation (RFC 7009), over
HTTP on both databases."""

from __future__ import annotations

import time
from typing import Any

import httpx

from esante.security.accounts.service import AccountService
from esante.security.oauth.client_store import ClientStore
from esante.security.tokens import mint
from tests.security.accounts_support import PASSWORD
from tests.security.oauth_support import (
    AuthServer,
    ClientKeys,
    Person,
    authorize_params,
    exchange,
    form_action,
    hidden_fields,
    location_params,
    next_code,
    person,
    pkce,
    public_app,
    system_client,
)


async def tokens_for(
    server: AuthServer, http: httpx.AsyncClient, who: Person, scope: str = "patient/*.rs launch/patient offline_access"
) -> dict[str, Any]:
    verifier, challenge = pkce()
    page = await http.get(server.authorize_url, params=authorize_params("portal", challenge, scope=scope))
    login = {**hidden_fields(page.text), "username": who.username, "password": PASSWORD, "totp": next_code(server, who)}
    consent = await http.post(form_action(page.text), data=login)
    redirect = location_params(
        await http.post(form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"})
    )
    response = await exchange(server, http, redirect["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(http: httpx.AsyncClient, server: AuthServer, token: str, **extra: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "portal", **extra}
    return await http.post(server.token_url, data=data)


class Introspector:
    """A resource server's view: introspection with private_key_jwt."""

    def __init__(self, server: AuthServer, client: ClientKeys) -> None:
        self.server, self.client = server, client

    async def __call__(self, http: httpx.AsyncClient, token: str, **extra: str) -> dict[str, Any]:
        data = {"token": token, **self.client.auth_params(self.server.token_url), **extra}
        response = await http.post(f"{self.server.base}/oauth/introspect", data=data)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body: dict[str, Any] = response.json()
        return body


async def setup(server: AuthServer) -> tuple[Person, Introspector]:
    await public_app(server)
    who = await person(server, "patient", "lea", patient_id="p-lea")
    return who, Introspector(server, await system_client(server, "rs-1"))


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(auth: AuthServer) -> None:
    who, introspect = await setup(auth)
    async with httpx.AsyncClient() as http:
        first = await tokens_for(auth, http, who)
        second = (await refresh(http, auth, first["refresh_token"])).json()
        assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
        assert second["scope"] == first["scope"] and second["patient"] == "p-lea"
        assert auth.verify(second["access_token"]).subject == who.account.id
        third = (await refresh(http, auth, second["refresh_token"])).json()
        assert (await introspect(http, third["access_token"]))["active"] is True
        # the stolen (already used) first refresh token comes back: the whole family dies
        reused = await refresh(http, auth, first["refresh_token"])
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        assert "family is revoked" in reused.json()["error_description"]
        assert (await refresh(http, auth, third["refresh_token"])).json()["error"] == "invalid_grant"
        for token in (first["access_token"], second["access_token"], third["access_token"]):
            assert await introspect(http, token) == {"active": False}
        assert await introspect(http, third["refresh_token"]) == {"active": False}


async def test_refresh_may_narrow_the_scope_never_widen_it(auth: AuthServer) -> None:
    who, _ = await setup(auth)
    async with httpx.AsyncClient() as http:
        first = await tokens_for(auth, http, who)
        narrow = (await refresh(http, auth, first["refresh_token"], scope="patient/*.rs")).json()
        assert narrow["scope"] == "patient/*.rs" and auth.verify(narrow["access_token"]).scope == "patient/*.rs"
        full = (await refresh(http, auth, narrow["refresh_token"])).json()
        assert full["scope"] == first["scope"]  # the authorization itself keeps its scope
        wider = await refresh(http, auth, full["refresh_token"], scope="patient/*.cruds")
        assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


async def test_refresh_tokens_need_offline_access_and_the_same_client(auth: AuthServer) -> None:
    who, _ = await setup(auth)
    await public_app(auth, "other-app")
    async with httpx.AsyncClient() as http:
        online = await tokens_for(auth, http, who, scope="patient/*.rs")
        assert "refresh_token" not in online
        body = await tokens_for(auth, http, who)
        other = await refresh(http, auth, body["refresh_token"], client_id="other-app")
        assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
        assert (await refresh(http, auth, body["refresh_token"])).status_code == 200  # not burnt by the other client
        unknown = await refresh(http, auth, "no-such-token")
        assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"


async def test_an_expired_refresh_token_is_refused(start_server: Any) -> None:
    server: AuthServer = await start_server(refresh_token_ttl=1)
    who, _ = await setup(server)
    async with httpx.AsyncClient() as http:
        body = await tokens_for(server, http, who)
        import asyncio

        await asyncio.sleep(2.1)
        response = await refresh(http, server, body["refresh_token"])
    assert response.status_code == 400 and "expired" in response.json()["error_description"]


async def test_introspection_answers_with_the_claims_of_an_active_token_only(auth: AuthServer) -> None:
    who, introspect = await setup(auth)
    async with httpx.AsyncClient() as http:
        body = await tokens_for(auth, http, who)
        active = await introspect(http, body["access_token"])
        assert active["active"] is True and active["sub"] == who.account.id and active["client_id"] == "portal"
        assert active["scope"] == body["scope"] and active["token_type"] == "Bearer"
        assert active["iss"] == auth.base and active["aud"] == auth.settings.effective_audience
        assert active["extensions"]["ihe_iua"]["person_id"] == "p-lea"
        assert active["exp"] > time.time() and active["jti"] == auth.verify(body["access_token"]).jwt_id
        as_refresh = await introspect(http, body["refresh_token"], token_type_hint="refresh_token")
        assert as_refresh["active"] is True and as_refresh["token_type"] == "refresh_token"
        assert as_refresh["sub"] == who.account.id and as_refresh["scope"] == body["scope"]
        assert (await introspect(http, body["refresh_token"]))["active"] is True  # found without the hint too

        head, payload, signature = body["access_token"].split(".")
        tampered = f"{head}.{payload[:-2]}AA.{signature}"
        expired = mint(
            auth.keyring, issuer=auth.base, audience=auth.settings.effective_audience, subject="x",
            client_id="portal", scope="patient/*.rs", ttl=60, now=time.time() - 3600,
        )  # fmt: skip
        elsewhere = mint(
            auth.keyring, issuer="https://other.example", audience=auth.settings.effective_audience, subject="x",
            client_id="portal", scope="patient/*.rs", ttl=60,
        )  # fmt: skip
        for token in (tampered, expired, elsewhere, "garbage", "a.b.c", ""):
            assert await introspect(http, token) == {"active": False}, token

        unauthenticated = await http.post(f"{auth.base}/oauth/introspect", data={"token": body["access_token"]})
        assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"
        public = await http.post(
            f"{auth.base}/oauth/introspect", data={"token": body["access_token"], "client_id": "portal"}
        )
        assert public.status_code == 401  # a public client cannot introspect
        rs = introspect.client
        own_url = rs.auth_params(f"{auth.base}/oauth/introspect")  # aud = the introspection endpoint is fine too
        ok = await http.post(f"{auth.base}/oauth/introspect", data={"token": body["access_token"], **own_url})
        assert ok.json()["active"] is True
        no_token = await http.post(f"{auth.base}/oauth/introspect", data=rs.auth_params(auth.token_url))
        assert no_token.status_code == 400 and no_token.json()["error"] == "invalid_request"


async def test_tokens_of_a_suspended_account_or_client_are_inactive(auth: AuthServer) -> None:
    who, introspect = await setup(auth)
    lab = await system_client(auth, "lab-1")
    async with httpx.AsyncClient() as http:
        person_tokens = await tokens_for(auth, http, who)
        data = {"grant_type": "client_credentials", **lab.auth_params(auth.token_url)}
        system_token = (await http.post(auth.token_url, data=data)).json()["access_token"]
        assert (await introspect(http, system_token))["active"] is True

        await ClientStore(auth.database).suspend("lab-1", int(time.time()))
        assert await introspect(http, system_token) == {"active": False}
        await ClientStore(auth.database).reactivate("lab-1", int(time.time()))
        assert await introspect(http, system_token) == {"active": False}  # issued before the suspension

        service = AccountService(auth.database, auth.settings, clock=auth.clock)
        await service.suspend(who.account.id)
        assert await introspect(http, person_tokens["access_token"]) == {"active": False}
        assert await introspect(http, person_tokens["refresh_token"]) == {"active": False}
        response = await refresh(http, auth, person_tokens["refresh_token"])
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_revocation_of_access_and_refresh_tokens(auth: AuthServer) -> None:
    who, introspect = await setup(auth)
    revoke_url = f"{auth.base}/oauth/revoke"
    async with httpx.AsyncClient() as http:
        body = await tokens_for(auth, http, who)
        response = await http.post(revoke_url, data={"token": body["access_token"], "client_id": "portal"})
        assert response.status_code == 200 and response.json() == {}
        assert await introspect(http, body["access_token"]) == {"active": False}
        assert (await introspect(http, body["refresh_token"]))["active"] is True  # only the access token

        await http.post(
            revoke_url,
            data={"token": body["refresh_token"], "token_type_hint": "refresh_token", "client_id": "portal"},
        )
        assert (await refresh(http, auth, body["refresh_token"])).json()["error"] == "invalid_grant"

        second = await tokens_for(auth, http, who)
        fresh = (await refresh(http, auth, second["refresh_token"])).json()
        await http.post(revoke_url, data={"token": fresh["refresh_token"], "client_id": "portal"})
        assert await introspect(http, fresh["access_token"]) == {"active": False}  # the family's access tokens too

        for unknown in ("no-such-token", "a.b.c"):
            response = await http.post(revoke_url, data={"token": unknown, "client_id": "portal"})
            assert response.status_code == 200
        third = await tokens_for(auth, http, who)
        await public_app(auth, "other-app")
        foreign = await http.post(revoke_url, data={"token": third["access_token"], "client_id": "other-app"})
        assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant"
        assert (await introspect(http, third["access_token"]))["active"] is True
        anonymous = await http.post(revoke_url, data={"token": third["access_token"]})
        assert anonymous.status_code == 401
        lab = await system_client(auth, "lab-1")
        token = (
            await http.post(
                auth.token_url, data={"grant_type": "client_credentials", **lab.auth_params(auth.token_url)}
            )
        ).json()["access_token"]
        revoked = await http.post(revoke_url, data={"token": token, **lab.auth_params(revoke_url)})
        assert revoked.status_code == 200 and await introspect(http, token) == {"active": False}


async def test_an_assistant_loses_access_when_the_delegation_is_withdrawn(auth: AuthServer) -> None:
    who, introspect = await setup(auth)
    await person(auth, "patient", "marc", patient_id="p-marc")
    service = AccountService(auth.database, auth.settings, clock=auth.clock)
    await service.add_delegation(who.account.id, "p-marc")
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=authorize_params("portal", challenge))
        login = {**hidden_fields(page.text), "username": "lea", "password": PASSWORD, "totp": next_code(auth, who)}
        consent = await http.post(form_action(page.text), data=login)
        choice = {**hidden_fields(consent.text), "decision": "allow", "patient": "p-marc"}
        redirect = location_params(await http.post(form_action(consent.text), data=choice))
        body = (await exchange(auth, http, redirect["code"], verifier)).json()
        assert body["patient"] == "p-marc" and (await introspect(http, body["access_token"]))["active"] is True
        await service.revoke_delegation(who.account.id, "p-marc")
        assert await introspect(http, body["access_token"]) == {"active": False}
        assert await introspect(http, body["refresh_token"]) == {"active": False}
        response = await refresh(http, auth, body["refresh_token"])
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
