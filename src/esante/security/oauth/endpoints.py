"""Introspection (RFC 7662, IHE ITI-102) and revocation (RFC 7009) endpoints for authlib."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from esante.security.oauth.integration import AuthlibClient

if TYPE_CHECKING:
    from esante.security.oauth.server import EsanteAuthorizationServer

# --- introspection and revocation ---------------------------------------------------------------------------------


@dataclass
class InspectedToken:
    """A token found by introspection or revocation (active or not)."""

    kind: str  # access_token | refresh_token
    client_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    active: bool = True
    jti: str | None = None
    expires_at: int = 0
    family: str | None = None

    def check_client(self, client: AuthlibClient) -> bool:
        return client.client_id == self.client_id

    def is_expired(self) -> bool:
        return False  # decided when it was looked up (``active``)

    def is_revoked(self) -> bool:
        return not self.active


class Introspection(IntrospectionEndpoint):
    """RFC 7662 / IHE ITI-102: any registered client authenticated with private_key_jwt may ask; an inactive token
    (expired, badly signed, revoked, account or client no longer active) yields only ``{"active": false}``."""

    CLIENT_AUTH_METHODS = ["private_key_jwt"]
    server: EsanteAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> InspectedToken | None:
        return self.server.inspect(token_string, token_type_hint, check_activity=True)

    def check_permission(self, token: InspectedToken, client: AuthlibClient, request: OAuth2Request) -> bool:
        return True  # the caller holds the token already; introspection only adds whether it is still active

    def introspect_token(self, token: InspectedToken) -> dict[str, Any]:
        return {"active": True, **token.payload}


class Revocation(RevocationEndpoint):
    """RFC 7009: a client revokes its own access token (jti listed until exp) or refresh token (whole family).
    Unknown, expired or malformed tokens get 200 as well."""

    CLIENT_AUTH_METHODS = ["private_key_jwt", "none"]
    server: EsanteAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> InspectedToken | None:
        return self.server.inspect(token_string, token_type_hint, check_activity=False)

    def revoke_token(self, token: InspectedToken, request: OAuth2Request) -> None:
        now = self.server.now()
        if token.kind == "refresh_token" and token.family:
            self.server.bridge(self.server.grants.revoke_family, token.family, now)
        elif token.jti:
            self.server.bridge(self.server.grants.revoke_access, token.jti, max(token.expires_at, now))
