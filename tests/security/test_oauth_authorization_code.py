"""Authorization code + PKCE driven end to end over HTTP: the authorize page, the login form (password + TOTP code
from the enrolment secret), the consent page, the redirect, the code exchange, the token used at a resource; and
every refusal (before and after the redirect URI is trusted, at login, at the token endpoint)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from esante.security.accounts.service import AccountService
from esante.security.oauth.tickets import TICKET_TTL
from esante.security.tokens import PURPOSE_SYSTEM, ROLE_SYSTEM
from tests.security.accounts_support import EHEALTH_ID, FAST, PASSWORD
from tests.security.oauth_support import (
    REDIRECT,
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


async def sign_in(
    server: AuthServer, http: httpx.AsyncClient, params: dict[str, str], who: Person, *, totp: str | None = None
) -> httpx.Response:
    """GET the authorize page and POST the login form; returns the consent page (or the re-rendered login)."""
    page = await http.get(server.authorize_url, params=params)
    assert page.status_code == 200, page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    fields = hidden_fields(page.text)
    assert set(fields) == {"step", "ticket"} and fields["step"] == "login"
    login = {**fields, "username": who.username, "password": PASSWORD, "totp": totp or next_code(server, who)}
    return await http.post(form_action(page.text), data=login)


async def authorize(
    server: AuthServer,
    http: httpx.AsyncClient,
    params: dict[str, str],
    who: Person,
    *,
    decision: str = "allow",
    patient: str | None = None,
) -> dict[str, str]:
    """The whole browser side: returns the parameters of the redirect to the client."""
    consent = await sign_in(server, http, params, who)
    assert consent.status_code == 200 and "Allow" in consent.text, consent.text
    data = {**hidden_fields(consent.text), "decision": decision}
    if patient is not None:
        data["patient"] = patient
    return location_params(await http.post(form_action(consent.text), data=data))


async def lea(server: AuthServer) -> Person:
    return await person(server, "patient", "lea", patient_id="p-lea", display_name="Léa Schmit")


async def test_a_patient_authorizes_a_public_app_end_to_end(auth: AuthServer) -> None:
    await public_app(auth)
    who = await lea(auth)
    verifier, challenge = pkce()
    params = authorize_params("portal", challenge, aud=auth.settings.effective_audience)
    async with httpx.AsyncClient() as http:
        consent = await sign_in(auth, http, params, who)
        assert "Portail patient" in consent.text and "Léa Schmit" in consent.text
        assert "Read and search all data of the selected patient" in consent.text
        assert "Keep access when you are not using it" in consent.text
        fields = hidden_fields(consent.text)
        assert fields["patient"] == "p-lea" and fields["step"] == "consent"  # one patient: no choice to make
        redirect = location_params(await http.post(form_action(consent.text), data={**fields, "decision": "allow"}))
        assert redirect["state"] == params["state"] and len(redirect["code"]) >= 43
        response = await exchange(auth, http, redirect["code"], verifier)
        assert response.status_code == 200, response.text
        body = response.json()
        me = await http.get(f"{auth.base}/fhir/whoami", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert body["token_type"] == "Bearer" and body["patient"] == "p-lea"
    assert body["scope"] == "patient/*.rs launch/patient offline_access" and body["refresh_token"]
    claims = auth.verify(body["access_token"])
    assert claims.subject == who.account.id and claims.claims["acct"] == who.account.id
    assert claims.claims["fhirUser"] == "Patient/p-lea" and claims.client_id == "portal"
    assert claims.iua is not None and claims.iua.subject_role is not None
    assert (claims.iua.subject_role.system, claims.iua.subject_role.code) == (ROLE_SYSTEM, "patient")
    assert [(p.system, p.code) for p in claims.iua.purpose_of_use] == [(PURPOSE_SYSTEM, "PATRQT")]
    assert claims.iua.person_id == "p-lea" and claims.iua.subject_name == "Léa Schmit"
    assert claims.iua.national_provider_identifier is None and "roles" not in claims.claims
    assert me.json() == {"sub": who.account.id, "scope": body["scope"], "caller": "patient"}


async def test_a_professional_gets_user_scopes_and_the_eHealthID(auth: AuthServer) -> None:
    await public_app(auth, "ehr-app", scopes="user/*.cruds patient/*.rs")
    doc = await person(
        auth, "professional", "dr-weber", practitioner_id="pr-1", ehealth_id=EHEALTH_ID, display_name="Dr Weber"
    )
    verifier, challenge = pkce()
    params = authorize_params("ehr-app", challenge, scope="user/Observation.cruds patient/*.rs offline_access")
    async with httpx.AsyncClient() as http:
        consent = await sign_in(auth, http, params, doc)
        assert "Create, read, update, delete and search Observation records you are allowed to see" in consent.text
        assert "patient" not in hidden_fields(consent.text)
        redirect = location_params(
            await http.post(form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"})
        )
        body = (await exchange(auth, http, redirect["code"], verifier, "ehr-app")).json()
    assert body["scope"] == "user/Observation.cruds"  # no patient in context, offline_access not registered
    assert "refresh_token" not in body and "patient" not in body
    claims = auth.verify(body["access_token"])
    assert claims.iua is not None and claims.iua.subject_role is not None
    assert claims.iua.subject_role.code == "professional" and claims.iua.national_provider_identifier == EHEALTH_ID
    assert [p.code for p in claims.iua.purpose_of_use] == ["TREAT"] and claims.iua.person_id is None
    assert claims.claims["fhirUser"] == "Practitioner/pr-1"

    verifier, challenge = pkce()
    params = authorize_params("ehr-app", challenge, scope="user/*.rs", purpose_of_use="ETREAT")
    async with httpx.AsyncClient() as http:
        redirect = await authorize(auth, http, params, doc)
        claims = auth.verify((await exchange(auth, http, redirect["code"], verifier, "ehr-app")).json()["access_token"])
    assert claims.iua is not None and [p.code for p in claims.iua.purpose_of_use] == ["ETREAT"]

    params = authorize_params("ehr-app", pkce()[1], scope="user/*.rs", purpose_of_use="PATRQT")
    async with httpx.AsyncClient() as http:
        consent = await sign_in(auth, http, params, doc)
        refused = await http.post(form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"})
    assert location_params(refused)["error"] == "invalid_request"  # a professional may not claim PATRQT


async def test_staff_tokens_carry_their_roles(auth: AuthServer) -> None:
    await public_app(auth, "stats", scopes="user/*.rs")
    staff = await person(auth, "staff", "anna", roles=("statistician", "administrator"))
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as http:
        redirect = await authorize(auth, http, authorize_params("stats", challenge, scope="user/*.rs"), staff)
        body = (await exchange(auth, http, redirect["code"], verifier, "stats")).json()
    claims = auth.verify(body["access_token"])
    assert sorted(claims.claims["roles"]) == ["administrator", "statistician"] and "fhirUser" not in claims.claims
    assert claims.iua is not None and claims.iua.subject_role is not None
    assert claims.iua.subject_role.code == "staff" and [p.code for p in claims.iua.purpose_of_use] == ["HOPERAT"]


async def test_a_dsp_assistant_chooses_the_patient(auth: AuthServer) -> None:
    await public_app(auth)
    who = await lea(auth)
    other = await person(auth, "patient", "marc", patient_id="p-marc")
    service = AccountService(auth.database, auth.settings, clock=auth.clock)
    await service.add_delegation(who.account.id, "p-marc")
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as http:
        consent = await sign_in(auth, http, authorize_params("portal", challenge), who)
        assert 'name="patient" value="p-lea"' in consent.text and 'name="patient" value="p-marc"' in consent.text
        assert "whom I assist" in consent.text
        fields = hidden_fields(consent.text)
        foreign = await http.post(
            form_action(consent.text), data={**fields, "decision": "allow", "patient": other.account.id}
        )
        assert foreign.status_code == 400  # a patient not offered (and the consent ticket is spent now)
    async with httpx.AsyncClient() as http:
        redirect = await authorize(auth, http, authorize_params("portal", challenge), who, patient="p-marc")
        body = (await exchange(auth, http, redirect["code"], verifier)).json()
    assert body["patient"] == "p-marc"
    claims = auth.verify(body["access_token"])
    assert claims.iua is not None and claims.iua.subject_role is not None
    assert claims.iua.subject_role.code == "assistant" and claims.iua.person_id == "p-marc"
    assert claims.subject == who.account.id and claims.claims["fhirUser"] == "Patient/p-lea"


async def test_refusing_consent_redirects_with_access_denied(auth: AuthServer) -> None:
    await public_app(auth)
    who = await lea(auth)
    params = authorize_params("portal", pkce()[1])
    async with httpx.AsyncClient() as http:
        redirect = await authorize(auth, http, params, who, decision="deny")
    assert redirect["error"] == "access_denied" and redirect["state"] == params["state"] and "code" not in redirect


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_id": "nobody"}, "invalid_client"),
        ({"client_id": None}, "invalid_client"),
        ({"redirect_uri": "http://127.0.0.1:9/elsewhere"}, "invalid_request"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"response_type": "token", "redirect_uri": "https://evil.example/cb"}, "unsupported_response_type"),
    ],
)
async def test_errors_before_the_redirect_uri_is_trusted_are_shown_not_redirected(
    auth: AuthServer, change: dict[str, Any], error: str
) -> None:
    await public_app(auth)
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=authorize_params("portal", pkce()[1], **change))
    assert page.status_code == 400 and "location" not in page.headers
    assert f'data-error="{error}"' in page.text and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "system/*.rs"}, "invalid_scope"),
        ({"scope": "user/Observation.zz"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"aud": "https://other.example/fhir"}, "invalid_request"),
        ({"purpose_of_use": "NOPE"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
async def test_errors_after_the_redirect_uri_is_trusted_go_back_to_the_client(
    auth: AuthServer, change: dict[str, Any], error: str
) -> None:
    await public_app(auth)
    params = authorize_params("portal", pkce()[1], **change)
    async with httpx.AsyncClient() as http:
        response = await http.get(auth.authorize_url, params=params)
    redirect = location_params(response)
    assert redirect["error"] == error and redirect["state"] == params["state"]
    assert "code" not in redirect


async def test_a_suspended_client_cannot_start_an_authorization(auth: AuthServer) -> None:
    from esante.security.oauth.client_store import ClientStore

    await public_app(auth)
    await ClientStore(auth.database).suspend("portal", int(time.time()))
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=authorize_params("portal", pkce()[1]))
    assert page.status_code == 400 and 'data-error="invalid_client"' in page.text


async def test_wrong_verifier_missing_verifier_and_redirect_mismatch_are_refused(auth: AuthServer) -> None:
    await public_app(auth)
    await public_app(auth, "other-app")
    who = await lea(auth)
    cases: list[tuple[dict[str, str], str, str]] = [
        ({"verifier": pkce()[0]}, "invalid_grant", "Code challenge failed"),
        ({"verifier": ""}, "invalid_request", "code_verifier"),
        ({"redirect_uri": "http://127.0.0.1:9/other"}, "invalid_grant", "redirect_uri"),
        ({"client_id": "other-app"}, "invalid_grant", "code"),
    ]
    async with httpx.AsyncClient() as http:
        for change, error, words in cases:
            verifier, challenge = pkce()
            redirect = await authorize(auth, http, authorize_params("portal", challenge), who)
            response = await exchange(
                auth,
                http,
                redirect["code"],
                change.get("verifier", verifier),
                change.get("client_id", "portal"),
                redirect_uri=change.get("redirect_uri", REDIRECT),
            )
            assert response.status_code == 400, (change, response.text)
            assert response.json()["error"] == error and words in response.json()["error_description"], change
            # every refused exchange burns the code: the right verifier does not help afterwards
            again = await exchange(auth, http, redirect["code"], verifier)
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant", change


async def test_a_reused_code_revokes_the_tokens_issued_from_it(auth: AuthServer) -> None:
    await public_app(auth)
    resource_server = await system_client(auth, "rs-1")
    who = await lea(auth)
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as http:
        redirect = await authorize(auth, http, authorize_params("portal", challenge), who)
        first = (await exchange(auth, http, redirect["code"], verifier)).json()
        introspect = {"token": first["access_token"], **resource_server.auth_params(auth.token_url)}
        assert (await http.post(f"{auth.base}/oauth/introspect", data=introspect)).json()["active"] is True
        replay = await exchange(auth, http, redirect["code"], verifier)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert "revoked" in replay.json()["error_description"]
        introspect = {"token": first["access_token"], **resource_server.auth_params(auth.token_url)}
        assert (await http.post(f"{auth.base}/oauth/introspect", data=introspect)).json() == {"active": False}
        refresh = await http.post(
            auth.token_url,
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": "portal"},
        )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_an_expired_code_is_refused(start_server: Any) -> None:
    server: AuthServer = await start_server(auth_code_ttl=1)
    await public_app(server)
    who = await lea(server)
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as http:
        redirect = await authorize(server, http, authorize_params("portal", challenge), who)
        import asyncio

        await asyncio.sleep(2.1)
        response = await exchange(server, http, redirect["code"], verifier)
    assert response.status_code == 400 and "expired" in response.json()["error_description"]


async def test_a_confidential_app_authenticates_with_private_key_jwt(auth: AuthServer) -> None:
    ehr: ClientKeys = await system_client(
        auth, "ehr", kind="hospital", grant_types=("authorization_code",), scopes="user/*.rs",
        redirect_uris=(REDIRECT,),
    )  # fmt: skip
    doc = await person(auth, "professional", "dr-k", practitioner_id="pr-k", ehealth_id=EHEALTH_ID)
    async with httpx.AsyncClient() as http:
        verifier, challenge = pkce()
        redirect = await authorize(auth, http, authorize_params("ehr", challenge, scope="user/*.rs"), doc)
        unauthenticated = await exchange(auth, http, redirect["code"], verifier, "ehr")
        assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"
        verifier, challenge = pkce()
        redirect = await authorize(auth, http, authorize_params("ehr", challenge, scope="user/*.rs"), doc)
        response = await exchange(
            auth, http, redirect["code"], verifier, "", **ehr.auth_params(auth.token_url)
        )  # no client_id: the assertion names the client
    assert response.status_code == 200, response.text
    assert auth.verify(response.json()["access_token"]).client_id == "ehr"


async def test_login_failures_show_the_form_again_and_lock_out(auth: AuthServer) -> None:
    await public_app(auth)
    who = await lea(auth)
    params = authorize_params("portal", pkce()[1])
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=params)
        fields = hidden_fields(page.text)
        attempts = {"username": who.username, "password": "not the password at all", "totp": next_code(auth, who)}
        wrong = await http.post(form_action(page.text), data={**fields, **attempts})
        assert wrong.status_code == 200 and "wrong username, password or authenticator code" in wrong.text
        assert hidden_fields(wrong.text)["ticket"] == fields["ticket"] and 'value="lea"' in wrong.text
        missing = await http.post(form_action(page.text), data={**fields, "username": "lea", "password": PASSWORD})
        assert "enter the code shown by your authenticator" in missing.text
        ok = await http.post(
            form_action(page.text), data={**fields, "username": "lea", "password": PASSWORD, "totp": "000000"}
        )
        assert "wrong username" in ok.text and "Allow" not in ok.text


async def test_login_is_rate_limited_per_address(start_server: Any) -> None:
    server: AuthServer = await start_server(rate_limit_login=2)
    await public_app(server)
    who = await lea(server)
    async with httpx.AsyncClient() as http:
        page = await http.get(server.authorize_url, params=authorize_params("portal", pkce()[1]))
        data = {**hidden_fields(page.text), "username": "lea", "password": "nope nope nope nope"}
        statuses = [(await http.post(form_action(page.text), data=data)).status_code for _ in range(2)]
        limited = await http.post(form_action(page.text), data={**data, "password": PASSWORD,
                                                                  "totp": next_code(server, who)})  # fmt: skip
    assert statuses == [200, 200]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "Too many sign-in attempts" in limited.text and "Allow" not in limited.text


async def test_tickets_cannot_be_forged_replayed_or_swapped(auth: AuthServer) -> None:
    await public_app(auth)
    who = await lea(auth)
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=authorize_params("portal", pkce()[1]))
        fields = hidden_fields(page.text)
        head, body, sig = fields["ticket"].split(".")
        forged = {**fields, "ticket": f"{head}.{body}x.{sig}", "username": "lea", "password": PASSWORD}
        assert (await http.post(auth.authorize_url, data=forged)).status_code == 400
        consent_step = {**fields, "step": "consent", "decision": "allow"}  # a login ticket is not a consent ticket
        assert (await http.post(auth.authorize_url, data=consent_step)).status_code == 400
        consent = await sign_in(auth, http, authorize_params("portal", pkce()[1]), who)
        consent_fields = {**hidden_fields(consent.text), "decision": "allow"}
        first = await http.post(auth.authorize_url, data=consent_fields)
        assert first.status_code == 302
        second = await http.post(auth.authorize_url, data=consent_fields)
        assert second.status_code == 400 and "already submitted" in second.text
        access_token = await http.post(auth.authorize_url, data={"step": "login", "ticket": "a.b.c"})
        assert access_token.status_code == 400
    assert TICKET_TTL == 300


async def test_an_expired_ticket_is_refused(auth: AuthServer) -> None:
    from esante.security.oauth import tickets

    await public_app(auth)
    who = await lea(auth)
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=authorize_params("portal", pkce()[1]))
        request = tickets.read(auth.keyring, auth.base, hidden_fields(page.text)["ticket"], tickets.LOGIN)["req"]
        old = tickets.issue(auth.keyring, auth.base, tickets.LOGIN, request, now=time.time() - TICKET_TTL - 1)
        login = {"step": "login", "ticket": old, "username": who.username, "password": PASSWORD}
        expired = await http.post(auth.authorize_url, data={**login, "totp": next_code(auth, who)})
    assert expired.status_code == 400 and "expired" in expired.text


def test_fast_hashing_profile_is_used() -> None:
    assert FAST.time_cost == 1
