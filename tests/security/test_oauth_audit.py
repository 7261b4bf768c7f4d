"""The authorization server's audit: an IHE.IUA.71 AuditEvent per token request (granted or refused, secrets
redacted) and a DCM 110122 Login event per login attempt — built by pure functions, and written by the running
server into the hash-chained trail."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from esante.db.engine import Database
from esante.fhir.definitions import get_registry
from esante.fhir.store import ResourceStore
from esante.fhir.validation import validate_resource
from esante.security.audit_auth import (
    IUA_71_PROFILE,
    REDACTED,
    AuditUser,
    LoginAudit,
    TokenRequestAudit,
    login_event,
    redact,
    token_request_event,
)
from esante.security.audit_trail import Auditor, AuditTrail
from tests.security.accounts_support import PASSWORD
from tests.security.oauth_support import (
    AuthServer,
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

DCM = "http://dicom.nema.org/resources/ontology/DCM"


def agent_types(event: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["type"]["coding"][0]["system"], a["type"]["coding"][0]["code"]) for a in event["agent"]]


def query_text(event: dict[str, Any]) -> str:
    (request,) = [e for e in event["entity"] if e["role"]["code"] == "24"]
    return base64.b64decode(request["query"]).decode()


def test_a_granted_token_request_has_the_iua_71_shape() -> None:
    form = [
        ("grant_type", "authorization_code"),
        ("code", "the-code"),
        ("code_verifier", "the-verifier"),
        ("redirect_uri", "https://app.example/cb"),
        ("client_id", "portal"),
    ]
    event = token_request_event(
        TokenRequestAudit(
            recorded="2026-12-02T10:00:00.000Z",
            endpoint="https://as.example/oauth/token",
            issuer="https://as.example",
            form=form,
            client_address="192.0.2.7",
            client_id="portal",
            outcome_ok=True,
            user=AuditUser("acc-1", "patient", "assistant", "Léa", "p-2", "PATRQT"),
            jti="jti-1",
            scope="patient/*.rs",
            expires_in=3600,
        )
    )
    validate_resource(event, expected_type="AuditEvent")
    assert event["meta"]["profile"] == [IUA_71_PROFILE]
    assert event["type"] == {"system": DCM, "code": "110114", "display": "User Authentication"}
    assert [(c["system"], c["code"]) for c in event["subtype"]] == [("urn:ihe:event-type-code", "ITI-71")]
    assert event["action"] == "E" and event["outcome"] == "0" and "outcomeDesc" not in event
    assert agent_types(event) == [
        (DCM, "110150"),
        ("https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes", "AuthzOauthService"),
        ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
    ]
    client, server, user = event["agent"]
    assert client["network"] == {"address": "192.0.2.7", "type": "2"}
    assert client["who"]["identifier"]["value"] == "portal" and client["requestor"] is False
    assert server["network"]["address"] == "https://as.example"
    assert user["who"]["identifier"]["value"] == "acc-1" and user["requestor"] is True and "network" not in user
    assert user["purposeOfUse"][0]["coding"][0]["code"] == "PATRQT"
    request, response = event["entity"]
    assert (request["type"]["code"], request["role"]["code"]) == ("2", "24") and "what" not in request
    text = query_text(event)
    assert text.startswith("POST https://as.example/oauth/token")
    assert "code=REDACTED" in text and "code_verifier=REDACTED" in text and "the-code" not in text
    assert "redirect_uri=https%3A%2F%2Fapp.example%2Fcb" in text and "client_id=portal" in text
    assert (response["type"]["code"], response["role"]["code"]) == ("2", "13")
    assert response["what"] == {"identifier": {"value": "jti-1"}}
    assert {d["type"]: d["valueString"] for d in response["detail"]} == {
        "scope": "patient/*.rs",
        "expires_in": "3600",
        "patient": "p-2",
    }


def test_a_refused_token_request_says_why_and_names_no_token() -> None:
    event = token_request_event(
        TokenRequestAudit(
            recorded="2026-12-02T10:00:00.000Z",
            endpoint="https://as.example/oauth/token",
            issuer="https://as.example",
            form=[("grant_type", "client_credentials"), ("client_assertion", "eyJ.secret.sig")],
            client_address=None,
            client_id=None,
            outcome_ok=False,
            error="invalid_client",
            error_description="this assertion was used before (jti replay)",
        )
    )
    validate_resource(event, expected_type="AuditEvent")
    assert event["outcome"] == "4" and event["outcomeDesc"].startswith("invalid_client: this assertion")
    assert len(event["agent"]) == 2 and len(event["entity"]) == 1
    assert event["agent"][0]["who"] == {"display": "unknown client"}
    assert "eyJ.secret.sig" not in query_text(event)


def test_every_secret_is_redacted() -> None:
    secrets = ["code", "code_verifier", "client_assertion", "refresh_token", "password", "token", "client_secret"]
    redacted = dict(redact([(name, "s3cr3t") for name in secrets] + [("scope", "patient/*.rs")]))
    assert all(redacted[name] == REDACTED for name in secrets) and redacted["scope"] == "patient/*.rs"


def test_login_events() -> None:
    failed = login_event(
        LoginAudit("2026-12-02T10:00:00.000Z", "https://as.example", "lea", "192.0.2.7", "portal", False,
                   reason="invalid_credentials"),
    )  # fmt: skip
    validate_resource(failed, expected_type="AuditEvent")
    assert failed["type"]["code"] == "110114" and failed["subtype"] == [
        {"system": DCM, "code": "110122", "display": "Login"}
    ]
    assert failed["outcome"] == "4" and failed["outcomeDesc"] == "invalid_credentials"
    assert failed["agent"][0]["who"]["identifier"] == {"system": "urn:esante:username", "value": "lea"}
    ok = login_event(
        LoginAudit("2026-12-02T10:00:00.000Z", "https://as.example", "lea", None, None, True, account_id="acc-1",
                   account_kind="patient"),
    )  # fmt: skip
    validate_resource(ok, expected_type="AuditEvent")
    assert ok["outcome"] == "0" and "outcomeDesc" not in ok
    assert ok["agent"][0]["who"]["identifier"]["value"] == "acc-1"


async def stored_events(database: Database) -> list[dict[str, Any]]:
    """The AuditEvents in the store, after chaining what the server journaled (as any reader of the trail does)."""
    await Auditor(ResourceStore(database), get_registry()).flush()
    async with database.read() as conn:
        rows = await conn.fetch("SELECT content FROM resource WHERE res_type = 'AuditEvent' ORDER BY rid")
    return [json.loads(bytes(row[0]) if not isinstance(row[0], str) else row[0]) for row in rows]


def of_subtype(events: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [e for e in events if e["subtype"][0]["code"] == code]


async def test_the_server_audits_every_token_request(auth: AuthServer) -> None:
    lab = await system_client(auth)
    data = {"grant_type": "client_credentials", **lab.auth_params(auth.token_url, jti="j-1")}
    async with httpx.AsyncClient() as http:
        granted = (await http.post(auth.token_url, data=data)).json()
        replay = await http.post(auth.token_url, data=data)
        garbage = await http.post(auth.token_url, data={"grant_type": "client_credentials"})
    assert replay.status_code == 401 and garbage.status_code == 401
    events = of_subtype(await stored_events(auth.database), "ITI-71")
    assert [e["outcome"] for e in events] == ["0", "4", "4"]
    ok, replayed, anonymous = events
    for event in events:
        assert agent_types(event)[:2] == [
            (DCM, "110150"),
            ("https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes", "AuthzOauthService"),
        ]
        assert event["agent"][0]["network"]["address"] == "127.0.0.1"
        assert data["client_assertion"] not in json.dumps(event)
    assert "client_assertion=REDACTED" in query_text(ok) and "grant_type=client_credentials" in query_text(ok)
    (response,) = [e for e in ok["entity"] if e["role"]["code"] == "13"]
    assert response["what"]["identifier"]["value"] == auth.verify(granted["access_token"]).jwt_id
    assert ok["agent"][0]["who"]["identifier"]["value"] == "lab-1" and len(ok["agent"]) == 2
    assert replayed["outcomeDesc"].startswith("invalid_client") and "replay" in replayed["outcomeDesc"]
    assert replayed["agent"][0]["who"]["identifier"]["value"] == "lab-1"  # the client it claimed to be
    assert all(e["role"]["code"] != "13" for e in replayed["entity"])
    assert anonymous["agent"][0]["who"] == {"display": "unknown client"}
    assert (await AuditTrail().verify(auth.database)).ok


async def test_the_server_audits_logins_and_the_code_exchange(auth: AuthServer) -> None:
    await public_app(auth)
    who = await person(auth, "patient", "lea", patient_id="p-lea")
    verifier, challenge = pkce()
    async with httpx.AsyncClient() as http:
        page = await http.get(auth.authorize_url, params=authorize_params("portal", challenge))
        fields = hidden_fields(page.text)
        await http.post(auth.authorize_url, data={**fields, "username": "lea", "password": "wrong password here"})
        consent = await http.post(
            form_action(page.text),
            data={**fields, "username": "lea", "password": PASSWORD, "totp": next_code(auth, who)},
        )
        redirect = location_params(
            await http.post(form_action(consent.text), data={**hidden_fields(consent.text), "decision": "allow"})
        )
        body = (await exchange(auth, http, redirect["code"], verifier)).json()
    events = await stored_events(auth.database)
    logins = of_subtype(events, "110122")
    assert [(e["outcome"], e.get("outcomeDesc")) for e in logins] == [("4", "invalid_credentials"), ("0", None)]
    assert logins[1]["agent"][0]["who"]["identifier"]["value"] == who.account.id
    assert logins[0]["agent"][2]["who"]["identifier"]["value"] == "portal"
    for login in logins:
        assert PASSWORD not in json.dumps(login) and "wrong password here" not in json.dumps(login)
    (token,) = of_subtype(events, "ITI-71")
    assert token["outcome"] == "0"
    user = token["agent"][2]
    assert user["who"]["identifier"]["value"] == who.account.id
    assert [r["coding"][0]["code"] for r in user["role"]] == ["patient"]
    text = query_text(token)
    assert "code=REDACTED" in text and "code_verifier=REDACTED" in text
    assert redirect["code"] not in json.dumps(token) and verifier not in json.dumps(token)
    (response,) = [e for e in token["entity"] if e["role"]["code"] == "13"]
    assert response["what"]["identifier"]["value"] == auth.verify(body["access_token"]).jwt_id
    assert (await AuditTrail().verify(auth.database)).ok
