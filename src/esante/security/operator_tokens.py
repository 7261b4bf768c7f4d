"""The operator's tokens (``esante token --as ...``): what the platform knows of the principal goes into the token.

The operator holds the signing key, so these tokens skip the authorization server; they still say no more than the
platform's records allow:

- ``system:<client id>``: the client must be registered and active; the scope defaults to its registered scopes and
  may only narrow them (a client never gets more through the CLI than through the token endpoint);
- ``patient:<Patient id>`` / ``professional:<eHealthID>``: when an account exists for that person it must be active,
  and the token is bound to it (``acct``, ``fhirUser``), so suspending the account stops the token; a professional
  must also pass the standing checks (``security/standing.py``: the HPD's right to practise), account or not;
- ``staff:<user>``: the staff account's roles (``--role`` may only pick among them); without an account, the roles
  given with ``--role`` (an operator's token for scripted administration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esante.db.engine import Connection
from esante.security.scopes import ResourceScope, parse_scopes
from esante.security.standing import ProfessionalRef, Standing
from esante.security.tokens import Principal

STAFF_ROLES = ("administrator", "identity-vigilance", "statistician", "hpd-administrator")


class OperatorTokenError(ValueError):
    """The principal cannot get a token (unknown client, inactive account, scope beyond the registration)."""


@dataclass(frozen=True)
class TokenPlan:
    scope: str | None  # None: the role's default
    extra_claims: dict[str, Any] = field(default_factory=dict)


def _covers(allowed: ResourceScope, wanted: ResourceScope) -> bool:
    return (
        allowed.context == wanted.context
        and allowed.resource_type in ("*", wanted.resource_type)
        and wanted.interactions <= allowed.interactions
        and (not allowed.query or allowed.query == wanted.query)
    )


def uncovered_scopes(requested: str, registered: str) -> list[str]:
    """The requested resource scopes no registered scope covers (non-resource scopes must be registered as is)."""
    wanted, allowed = parse_scopes(requested), parse_scopes(registered)
    missing = [s.raw for s in wanted.resources if not any(_covers(a, s) for a in allowed.resources)]
    resource_raws = {s.raw for s in wanted.resources}
    missing += [item for item in wanted.raw if item not in resource_raws and item not in allowed.raw]
    return missing


async def plan_token(
    conn: Connection, who: Principal, scope: str | None, roles: list[str], standing: Standing | None = None
) -> TokenPlan:
    """What the token for ``who`` carries, from the database's accounts and clients.

    ``standing``: the services' checks on professionals (a professional without the right to practise gets no
    token, with or without an account).
    """
    if who.kind == "system":
        row = await conn.fetchrow("SELECT status, scopes FROM oauth_client WHERE client_id = ?", (who.value,))
        if row is None:
            raise OperatorTokenError(f"client {who.value!r} is not registered (esante clients register)")
        if row[0] != "active":
            raise OperatorTokenError(f"client {who.value!r} is {row[0]}")
        registered = str(row[1] or "")
        if scope is None:
            if not registered.strip():
                raise OperatorTokenError(f"client {who.value!r} has no registered scopes")
            return TokenPlan(registered)
        missing = uncovered_scopes(scope, registered)
        if missing:
            raise OperatorTokenError(f"client {who.value!r} is not registered for: {' '.join(missing)}")
        return TokenPlan(scope)
    column = {"patient": "patient_id", "professional": "ehealth_id", "staff": "username"}[who.kind]
    row = await conn.fetchrow(
        f"SELECT id, status, roles, patient_id, practitioner_id FROM account WHERE kind = ? AND {column} = ?"
        " ORDER BY created_at DESC",
        (who.kind, who.value),
    )
    claims: dict[str, Any] = {}
    if row is not None:
        account_id, status, account_roles, patient_id, practitioner_id = row
        if status != "active":
            raise OperatorTokenError(f"the {who.kind} account of {who.value!r} is {status}")
        claims["acct"] = str(account_id)
        if patient_id:
            claims["fhirUser"] = f"Patient/{patient_id}"
        elif practitioner_id:
            claims["fhirUser"] = f"Practitioner/{practitioner_id}"
        if who.kind == "staff":
            held = str(account_roles or "").split()
            extra = [r for r in roles if r not in held]
            if extra:
                raise OperatorTokenError(f"staff account {who.value!r} does not hold the role(s) {', '.join(extra)}")
            claims["roles"] = roles or held
    elif who.kind == "staff":
        unknown = [r for r in roles if r not in STAFF_ROLES]
        if not roles or unknown:
            raise OperatorTokenError(
                f"staff:{who.value} has no account: give its role(s) with --role ({', '.join(STAFF_ROLES)})"
            )
        claims["roles"] = roles
    if roles and who.kind != "staff":
        raise OperatorTokenError("--role is for staff tokens only")
    if who.kind == "professional" and standing is not None:
        practitioner = str(row[4]) if row is not None and row[4] else None
        refused = await standing.refusal(conn, ProfessionalRef(who.value, practitioner))
        if refused is not None:
            raise OperatorTokenError(f"professional {who.value}: {refused.message}")
    return TokenPlan(scope, claims)
