"""What the authorization server's routes share: stores, keys, the authlib server, the rate limiter, the auditor."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request

from esante.config import Settings
from esante.security.accounts.model import Account
from esante.security.audit_trail import Auditor
from esante.security.keys import KeyRing
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.grant_store import GrantStore
from esante.security.oauth.metadata import Endpoints
from esante.security.oauth.server import EsanteAuthorizationServer
from esante.security.ratelimit import RateLimiter
from esante.security.standing import ProfessionalRef, StandingRefusal

MAX_FORM_BYTES = 64 * 1024


class Accounts(Protocol):
    """What the authorization server needs from the account service (esante.security.accounts.service)."""

    async def authenticate(
        self, username: str, password: str, totp_code: str | None = None, client_address: str | None = None
    ) -> Account: ...

    async def get(self, account_id: str) -> Account | None: ...

    async def delegations(self, account_id: str) -> builtins.list[str]: ...

    async def standing_refusal(
        self, who: ProfessionalRef | None, issued_at: int | None = None
    ) -> StandingRefusal | None: ...


@dataclass
class OAuthContext:
    settings: Settings
    keyring: KeyRing
    server: EsanteAuthorizationServer
    clients: ClientStore
    grants: GrantStore
    accounts: Accounts
    limiter: RateLimiter
    auditor: Auditor | None
    urls: Endpoints

    async def audit(self, events: list[dict[str, Any]]) -> None:
        """Append the events when the platform audits (a failure propagates: no answer without its record)."""
        if self.auditor is not None and events:
            await self.auditor.record_events(events)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def instant() -> str:
    """Now as a FHIR instant (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FormError(ValueError):
    """A body that is not a readable ``application/x-www-form-urlencoded`` form."""


async def read_form(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as (name, value) pairs, in order, duplicates kept (authlib refuses repeated parameters)."""
    from urllib.parse import parse_qsl

    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError("the body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as error:
        raise FormError("the form is not valid UTF-8 urlencoded data") from error
