"""AuditEvents of the authorization server — pure builders (no I/O); the routes append them with
``Auditor.record_events``.

- :func:`token_request_event`: one per token request, granted or refused, shaped like IHE BALP's
  ``IHE.IUA.71`` (ITI-71 Get Access Token): type DCM 110114 *User Authentication*, subtype ``ITI-71``, action E,
  outcome 0 or 4; agents *client* (110150 Application, with its network address), *auth-server*
  (``AuthzOauthService``) and, when known, the *user* (IRCP); entity *token-request* (type 2, role 24 Query) whose
  ``query`` is the request, base64, with every secret replaced by ``REDACTED``; on success entity
  *token-response* (role 13 Security Resource) naming the access token's ``jti`` with its scope and lifetime.
- :func:`login_event`: one per login attempt on the authorization page: DCM 110114 with subtype DCM 110122
  *Login*, outcome 0 or 4 with the refusal's reason code in ``outcomeDesc``. Never the password nor the TOTP code.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from esante.security.audit import ACCOUNT_KIND, ACT_REASON, DCM, ENTITY_TYPE, OBJECT_ROLE, PARTICIPATION, SOURCE_TYPE

IUA_71_PROFILE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.IUA.71"
IHE_EVENT_TYPE = "urn:ihe:event-type-code"
USER_AGENT_TYPES = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
ACCOUNT_SYSTEM = "urn:esante:account"
USERNAME_SYSTEM = "urn:esante:username"
CLIENT_SYSTEM = "urn:esante:oauth-client"
REDACTED = "REDACTED"
# Form fields that are secrets (or bearer credentials): never written to the audit trail.
SECRET_FIELDS = frozenset(
    {
        "code",
        "code_verifier",
        "client_assertion",
        "client_secret",
        "assertion",
        "refresh_token",
        "password",
        "token",
        "totp",
        "totp_code",
        "ticket",
        "subject_token",
        "actor_token",
    }
)


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


@dataclass(frozen=True)
class AuditUser:
    """The person (or system) a token was requested for, when known."""

    account_id: str | None = None  # None for a system client's own token
    kind: str | None = None  # the account kind (patient, professional, staff) or "system"
    subject_role: str | None = None  # IUA role (patient, assistant, professional, staff, system)
    display: str | None = None
    person_id: str | None = None  # the patient in context
    purpose_of_use: str | None = None


@dataclass(frozen=True)
class TokenRequestAudit:
    """One token request as the token endpoint saw it."""

    recorded: str  # FHIR instant
    endpoint: str  # the token endpoint URL
    issuer: str  # the authorization server (observer)
    form: Sequence[tuple[str, str]]  # the request's parameters as sent (redacted here)
    client_address: str | None
    client_id: str | None
    outcome_ok: bool
    error: str | None = None  # OAuth error code of a refusal
    error_description: str | None = None
    user: AuditUser | None = None
    jti: str | None = None  # the access token issued
    scope: str | None = None
    expires_in: int | None = None


def redact(form: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters with every secret's value replaced by ``REDACTED`` (names and order kept)."""
    return [(name, REDACTED if name in SECRET_FIELDS else value) for name, value in form]


def _client_agent(client_id: str | None, address: str | None) -> dict[str, Any]:
    who: dict[str, Any] = (
        {"identifier": {"system": CLIENT_SYSTEM, "value": client_id}} if client_id else {"display": "unknown client"}
    )
    return {
        "type": {"coding": [_coding(DCM, "110150", "Application")]},
        "who": who,
        "requestor": False,
        "network": {"address": address or "unknown", "type": "2"},
    }


def _server_agent(issuer: str) -> dict[str, Any]:
    return {
        "type": {"coding": [_coding(USER_AGENT_TYPES, "AuthzOauthService", "OAuth Authorization Server")]},
        "who": {"display": issuer},
        "requestor": False,
        "network": {"address": issuer, "type": "5"},
    }


def _user_agent(user: AuditUser) -> dict[str, Any]:
    who: dict[str, Any] = {}
    if user.account_id:
        who["identifier"] = {"system": ACCOUNT_SYSTEM, "value": user.account_id}
    if user.display:
        who["display"] = user.display
    agent: dict[str, Any] = {
        "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
        "who": who or {"display": user.kind or "unknown"},
        "requestor": True,
    }
    roles = []
    if user.kind:
        roles.append({"coding": [_coding(ACCOUNT_KIND, user.kind)]})
    if user.subject_role and user.subject_role != user.kind:
        roles.append({"coding": [_coding("urn:esante:subject-role", user.subject_role)]})
    if roles:
        agent["role"] = roles
    if user.purpose_of_use:
        agent["purposeOfUse"] = [{"coding": [_coding(ACT_REASON, user.purpose_of_use)]}]
    return agent


def _source(issuer: str) -> dict[str, Any]:
    return {
        "site": issuer,
        "observer": {"display": issuer},
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }


def token_request_event(audit: TokenRequestAudit) -> dict[str, Any]:
    """The IHE.IUA.71 AuditEvent of one token request (granted or refused)."""
    raw = f"POST {audit.endpoint}\n\n{urlencode(redact(audit.form))}"
    entities: list[dict[str, Any]] = [
        {
            "type": _coding(ENTITY_TYPE, "2", "System Object"),
            "role": _coding(OBJECT_ROLE, "24", "Query"),
            "query": base64.b64encode(raw.encode("utf-8")).decode("ascii"),
        }
    ]
    if audit.outcome_ok and audit.jti:
        detail = []
        if audit.scope is not None:
            detail.append({"type": "scope", "valueString": audit.scope})
        if audit.expires_in is not None:
            detail.append({"type": "expires_in", "valueString": str(audit.expires_in)})
        if audit.user is not None and audit.user.person_id:
            detail.append({"type": "patient", "valueString": audit.user.person_id})
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "13", "Security Resource"),
                "what": {"identifier": {"value": audit.jti}},
                "detail": detail,
            }
        )
    agents = [_client_agent(audit.client_id, audit.client_address), _server_agent(audit.issuer)]
    if audit.user is not None:
        agents.append(_user_agent(audit.user))
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {"profile": [IUA_71_PROFILE]},
        "type": _coding(DCM, "110114", "User Authentication"),
        "subtype": [_coding(IHE_EVENT_TYPE, "ITI-71", "Get Access Token")],
        "action": "E",
        "recorded": audit.recorded,
        "outcome": "0" if audit.outcome_ok else "4",
        "agent": agents,
        "source": _source(audit.issuer),
        "entity": entities,
    }
    if not audit.outcome_ok:
        event["outcomeDesc"] = audit.error or "refused"
        if audit.error_description:
            event["outcomeDesc"] += f": {audit.error_description}"
    return event


@dataclass(frozen=True)
class LoginAudit:
    """One login attempt on the authorization page."""

    recorded: str
    issuer: str
    username: str
    client_address: str | None
    client_id: str | None  # the application the person was signing in to
    outcome_ok: bool
    reason: str | None = None  # the AuthenticationError code of a refusal (invalid_credentials, locked, ...)
    account_id: str | None = None
    account_kind: str | None = None


def login_event(audit: LoginAudit) -> dict[str, Any]:
    """DCM 110114 User Authentication / 110122 Login AuditEvent (no password, no TOTP code)."""
    who: dict[str, Any] = (
        {"identifier": {"system": ACCOUNT_SYSTEM, "value": audit.account_id}, "display": audit.username}
        if audit.account_id
        else {"identifier": {"system": USERNAME_SYSTEM, "value": audit.username}}
    )
    user: dict[str, Any] = {
        "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
        "who": who,
        "requestor": True,
        "network": {"address": audit.client_address or "unknown", "type": "2"},
    }
    if audit.account_kind:
        user["role"] = [{"coding": [_coding(ACCOUNT_KIND, audit.account_kind)]}]
    agents = [user, _server_agent(audit.issuer)]
    if audit.client_id:
        agents.append(
            {
                "type": {"coding": [_coding(DCM, "110150", "Application")]},
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": audit.client_id}},
                "requestor": False,
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _coding(DCM, "110114", "User Authentication"),
        "subtype": [_coding(DCM, "110122", "Login")],
        "action": "E",
        "recorded": audit.recorded,
        "outcome": "0" if audit.outcome_ok else "4",
        "agent": agents,
        "source": _source(audit.issuer),
    }
    if not audit.outcome_ok:
        event["outcomeDesc"] = audit.reason or "refused"
    return event
