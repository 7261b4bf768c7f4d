"""The authorization server's discovery documents. Pure: built from the settings alone.

- ``/.well-known/oauth-authorization-server``: RFC 8414 metadata (IHE IUA ITI-103, "Get Authorization Server
  Metadata"), with the IUA ``access_token_format`` extension;
- ``/.well-known/smart-configuration``: SMART App Launch 2.x (``capabilities`` says what this server supports:
  standalone launch, public and confidential-asymmetric clients, patient / user / system permissions, v2 scopes).

Every endpoint sits under the issuer (``settings.effective_issuer``), so a deployment behind a proxy publishes its
public URLs once ``base_url`` (or ``token_issuer``) is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esante.config import Settings
from esante.security.oauth.clients import ASSERTION_ALGORITHMS
from esante.security.oauth.grants_policy import KNOWN_PURPOSES

GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
AUTH_METHODS = ("private_key_jwt", "none")
SCOPES = (
    "openid",
    "fhirUser",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "patient/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "system/*.cruds",
    "system/*.rs",
)
CAPABILITIES = (
    "launch-standalone",
    "client-public",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
)


@dataclass(frozen=True)
class Endpoints:
    """The server's public URLs."""

    issuer: str
    authorize: str
    token: str
    introspect: str
    revoke: str
    jwks: str
    fhir: str

    @classmethod
    def of(cls, settings: Settings) -> Endpoints:
        issuer = settings.effective_issuer
        return cls(
            issuer=issuer,
            authorize=f"{issuer}/oauth/authorize",
            token=f"{issuer}/oauth/token",
            introspect=f"{issuer}/oauth/introspect",
            revoke=f"{issuer}/oauth/revoke",
            jwks=f"{issuer}/.well-known/jwks.json",
            fhir=settings.effective_audience,
        )


def _common(urls: Endpoints) -> dict[str, Any]:
    return {
        "issuer": urls.issuer,
        "jwks_uri": urls.jwks,
        "authorization_endpoint": urls.authorize,
        "token_endpoint": urls.token,
        "introspection_endpoint": urls.introspect,
        "revocation_endpoint": urls.revoke,
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "scopes_supported": list(SCOPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
    }


def authorization_server_metadata(settings: Settings) -> dict[str, Any]:
    """RFC 8414 / IHE IUA ITI-103."""
    urls = Endpoints.of(settings)
    return {
        **_common(urls),
        "response_modes_supported": ["query"],
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "access_token_format": "ihe-jwt",  # IUA: JWT access tokens with the extensions.ihe_iua claims
        "purpose_of_use_supported": sorted(KNOWN_PURPOSES),
    }


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """SMART App Launch 2.x ``.well-known/smart-configuration``."""
    urls = Endpoints.of(settings)
    return {
        **_common(urls),
        "capabilities": list(CAPABILITIES),
    }
