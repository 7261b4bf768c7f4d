"""Signed tickets: how the authorization request travels from the login page to the consent page without any
server-side session.

A ticket is a JWS signed with the server's current key (the key ring of the access tokens) with its own type
``esante-authz+jwt``: an access token verifier refuses it (``typ`` must be ``at+jwt``) and the ticket reader refuses
access tokens. It lives ``TICKET_TTL`` seconds (5 minutes) and carries:

- ``req``: the authorization request's parameters (client_id, redirect_uri, scope, state, code_challenge, ...) —
  the ticket is bound to them: the login and consent forms send only the ticket, never the parameters, so a
  tampered request cannot be slipped in between the steps;
- ``stage``: ``login`` (issued with the login page) or ``consent`` (issued after a successful login, with the
  account id and the patients it may choose from);
- ``jti``: the consent ticket is single use (its jti goes into the assertion replay table when it is used).

The ticket holds no secret (the request parameters were in the browser's URL already); it is signed, not
encrypted.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from esante.security.keys import ALGORITHMS, KeyRing

TICKET_TYPE = "esante-authz+jwt"
TICKET_TTL = 300
LOGIN = "login"
CONSENT = "consent"


class TicketError(ValueError):
    """An unusable ticket (tampered, expired, of the wrong stage); the message is for the person's browser."""


def issue(keyring: KeyRing, issuer: str, stage: str, request: dict[str, str], now: float | None = None,
          **claims: Any) -> str:  # fmt: skip
    """A ticket for ``stage`` carrying the authorization request ``request`` (and ``claims``)."""
    key = keyring.signing_key()
    issued = int(time.time() if now is None else now)
    payload = {
        **claims,
        "iss": issuer,
        "aud": f"{issuer}/oauth/authorize",
        "iat": issued,
        "exp": issued + TICKET_TTL,
        "jti": str(uuid.uuid4()),
        "stage": stage,
        "req": request,
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": TICKET_TYPE}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, body, key.key, algorithms=[key.alg])


def read(keyring: KeyRing, issuer: str, ticket: str, stage: str, now: float | None = None) -> dict[str, Any]:
    """The ticket's claims if it is ours, unexpired and of ``stage``; else :class:`TicketError`."""
    if not isinstance(ticket, str) or ticket.count(".") != 2 or len(ticket) > 16_000:
        raise TicketError("the sign-in form is incomplete")
    try:
        head = ticket.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError) as error:
        raise TicketError("the sign-in form was altered") from error
    if not isinstance(header, dict) or header.get("typ") != TICKET_TYPE or header.get("alg") not in ALGORITHMS:
        raise TicketError("the sign-in form was altered")
    kid = header.get("kid")
    key = keyring.find(kid) if isinstance(kid, str) else None
    if key is None or key.alg != header["alg"]:
        raise TicketError("the sign-in form was altered or has expired")
    try:
        payload = json.loads(jws.deserialize_compact(ticket, key.key, algorithms=[key.alg]).payload)
    except (JoseError, ValueError) as error:
        raise TicketError("the sign-in form was altered") from error
    current = time.time() if now is None else now
    if (
        not isinstance(payload, dict)
        or payload.get("iss") != issuer
        or payload.get("aud") != f"{issuer}/oauth/authorize"
    ):
        raise TicketError("the sign-in form was altered")
    if not isinstance(payload.get("exp"), int) or current >= payload["exp"]:
        raise TicketError("the sign-in page has expired: go back to the application and start again")
    if payload.get("stage") != stage or not isinstance(payload.get("req"), dict):
        raise TicketError("the sign-in steps were taken out of order: start again from the application")
    return payload
