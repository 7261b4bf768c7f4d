"""OAuth clients: the registry's model and the validation of a registration. Pure: no I/O (files are read by the
caller and handed over as text or bytes).

Two families of clients:

- **system clients** — establishment software (``hospital``, ``laboratory``, ``pharmacy``, ``gp-software``,
  ``cve``, ``cgdis``): SMART Backend Services, ``client_credentials`` with a ``private_key_jwt`` assertion signed by
  a key of their registered JWKS, ``system/*`` scopes. They may also log people in (``authorization_code``, with
  their redirect URIs), still authenticating with ``private_key_jwt``.
- **apps** (``app``) — user-facing SMART apps and the patient portal: ``authorization_code`` + PKCE (S256), public
  (``token_endpoint_auth_method: none``) or confidential (``private_key_jwt``); ``patient/*`` and ``user/*`` scopes.

A client's registered scopes are the most it may ever be granted; what one request gets is narrowed further by the
account that logs in (see ``grants_policy``). Keys: RSA of at least 2048 bits, or EC on P-256 / P-384, public
parts only; each published with a ``kid`` (the RFC 7638 thumbprint when the file gives none).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from esante.security.scopes import ResourceScope, ScopeError, parse_scopes


class ClientKind(StrEnum):
    HOSPITAL = "hospital"
    LABORATORY = "laboratory"
    PHARMACY = "pharmacy"
    GP_SOFTWARE = "gp-software"
    CVE = "cve"
    CGDIS = "cgdis"
    APP = "app"

    @property
    def is_system(self) -> bool:
        """Establishment software (may use client_credentials); ``app`` is the only user-facing kind."""
        return self is not ClientKind.APP


class ClientStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


PRIVATE_KEY_JWT = "private_key_jwt"
NONE = "none"
AUTH_METHODS = (PRIVATE_KEY_JWT, NONE)
CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"
GRANT_TYPES = (CLIENT_CREDENTIALS, AUTHORIZATION_CODE, REFRESH_TOKEN)
# Client assertion algorithms (SMART Backend Services: RS384 and ES384 required, RS256 / ES256 accepted).
ASSERTION_ALGORITHMS = ("RS384", "ES384", "RS256", "ES256")
_ALGS_BY_KEY = {"RSA": ("RS384", "RS256"), "P-256": ("ES256",), "P-384": ("ES384",)}
MIN_RSA_BITS = 2048
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_USER_FLAGS = {"openid", "fhirUser", "profile", "launch", "offline_access", "online_access"}
MAX_KEYS = 10


class ClientError(ValueError):
    """A refused registration or client operation; the message names the problem (one line)."""


@dataclass(frozen=True)
class OAuthClient:
    """One registered client (the ``oauth_client`` row)."""

    client_id: str
    name: str
    kind: ClientKind
    status: ClientStatus = ClientStatus.ACTIVE
    public: bool = False
    auth_method: str = PRIVATE_KEY_JWT
    jwks: dict[str, Any] | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    scopes: str = ""
    organization: str | None = None
    tokens_valid_after: int = 0
    created_at: int = 0
    updated_at: int = 0

    @property
    def active(self) -> bool:
        return self.status is ClientStatus.ACTIVE

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    @property
    def subject_organization(self) -> str:
        """The IUA ``subject_organization`` of the client's own tokens: its organization, else its name."""
        return self.organization or self.name

    def key_ids(self) -> tuple[str, ...]:
        return tuple(str(k.get("kid")) for k in (self.jwks or {}).get("keys", []))


@dataclass(frozen=True)
class Registration:
    """What an operator asks to register (``esante clients register``), before validation."""

    client_id: str
    name: str
    kind: str
    jwks: dict[str, Any] | None = None
    redirect_uris: tuple[str, ...] = ()
    public: bool = False
    scopes: str = ""
    grant_types: tuple[str, ...] = ()
    organization: str | None = None


# --- keys ---------------------------------------------------------------------------------------------------------


def _check_jwk(jwk: Any, position: int) -> dict[str, Any]:
    """One public JWK, checked (type, size or curve, no private part, alg/use coherent) and given a kid."""
    where = f"key #{position + 1}"
    if not isinstance(jwk, dict):
        raise ClientError(f"{where} is not a JSON object")
    if any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise ClientError(f"{where} holds private key material: register the public key only")
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            with warnings.catch_warnings():  # joserfc warns on small keys: we refuse them below, with a message
                warnings.simplefilter("ignore")
                key: RSAKey | ECKey = RSAKey.import_key(jwk)
            bits = key.raw_value.key_size
            if bits < MIN_RSA_BITS:
                raise ClientError(f"{where}: RSA keys need at least {MIN_RSA_BITS} bits (got {bits})")
            family = "RSA"
        elif kty == "EC":
            if jwk.get("crv") not in ("P-256", "P-384"):
                raise ClientError(f"{where}: EC keys must be on P-256 or P-384 (got {jwk.get('crv')!r})")
            key = ECKey.import_key(jwk)
            family = str(jwk["crv"])
        else:
            raise ClientError(f"{where}: key type {kty!r} is not accepted (RSA ≥ {MIN_RSA_BITS} bits, EC P-256/P-384)")
    except (JoseError, ValueError, TypeError, KeyError) as error:
        if isinstance(error, ClientError):
            raise
        raise ClientError(f"{where} is not a valid {kty} public key ({error})") from error
    alg = jwk.get("alg")
    if alg is not None and alg not in _ALGS_BY_KEY[family]:
        raise ClientError(f"{where}: alg {alg!r} does not fit a {family} key (use {', '.join(_ALGS_BY_KEY[family])})")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise ClientError(f"{where}: use must be 'sig' (client assertions are signatures), not {use!r}")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 128):
        raise ClientError(f"{where}: kid must be a non-empty string of at most 128 characters")
    public = dict(key.as_dict(private=False))
    public["kid"] = kid or key.thumbprint()
    for name in ("alg", "use"):
        if name in jwk:
            public[name] = jwk[name]
    return public


def parse_jwks(text: str) -> dict[str, Any]:
    """A JWKS (``{"keys": [...]}``) or a single JWK, as JSON text → the checked public JWKS."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ClientError(f"the JWKS is not JSON ({error.args[0]})") from error
    if isinstance(data, dict) and "keys" in data:
        keys = data["keys"]
    elif isinstance(data, dict) and "kty" in data:
        keys = [data]
    else:
        raise ClientError('the JWKS must be {"keys": [...]} or a single JWK')
    if not isinstance(keys, list) or not keys:
        raise ClientError("the JWKS holds no key")
    if len(keys) > MAX_KEYS:
        raise ClientError(f"the JWKS holds {len(keys)} keys (at most {MAX_KEYS})")
    checked = [_check_jwk(jwk, i) for i, jwk in enumerate(keys)]
    kids = [k["kid"] for k in checked]
    if len(set(kids)) != len(kids):
        raise ClientError("two keys of the JWKS share a kid")
    return {"keys": checked}


def jwks_from_pem(data: bytes) -> dict[str, Any]:
    """A PEM public key (SubjectPublicKeyInfo or PKCS#1 RSA) → a one-key JWKS whose kid is its RFC 7638 thumbprint."""
    if b"PRIVATE KEY" in data:
        raise ClientError("the file holds a private key: register the public key only")
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise ClientError("the file is not a PEM public key") from error
    if isinstance(public, rsa.RSAPublicKey):
        with warnings.catch_warnings():  # a small key is refused by parse_jwks below, with a message
            warnings.simplefilter("ignore")
            key: RSAKey | ECKey = RSAKey.import_key(public)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key = ECKey.import_key(public)
    else:
        raise ClientError(f"key type {type(public).__name__} is not accepted (RSA or EC P-256/P-384)")
    return parse_jwks(json.dumps(dict(key.as_dict(private=False))))


# --- registration -------------------------------------------------------------------------------------------------


def _check_redirect_uri(uri: str) -> str:
    """Absolute, no fragment; https, http on loopback only (RFC 8252 §7.3), or a private-use scheme (§7.1)."""
    try:
        parts = urlsplit(uri)
    except ValueError as error:
        raise ClientError(f"redirect URI {uri!r} is not a URI") from error
    if not parts.scheme or parts.fragment or " " in uri or len(uri) > 2000:
        raise ClientError(f"redirect URI {uri!r} must be absolute, without fragment nor spaces")
    if parts.scheme == "https":
        if not parts.hostname:
            raise ClientError(f"redirect URI {uri!r} has no host")
    elif parts.scheme == "http":
        if parts.hostname not in _LOOPBACK:
            raise ClientError(f"redirect URI {uri!r}: plain http is only allowed on the loopback interface")
    elif "." not in parts.scheme:
        raise ClientError(f"redirect URI {uri!r}: use https, http on loopback, or a private-use scheme (com.example:)")
    return uri


def _check_scopes(scopes: str, grant_types: tuple[str, ...]) -> str:
    try:
        parsed = parse_scopes(scopes)
    except ScopeError as error:
        raise ClientError(str(error)) from error
    if not parsed.raw:
        raise ClientError("a client needs at least one scope (--scope)")
    for item in parsed.raw:
        context = item.partition("/")[0]
        if context == "system":
            if CLIENT_CREDENTIALS not in grant_types:
                raise ClientError(f"scope {item!r}: system/ scopes need the client_credentials grant")
        elif context in ("patient", "user") or item in _USER_FLAGS or item.startswith("launch/"):
            if AUTHORIZATION_CODE not in grant_types:
                raise ClientError(f"scope {item!r}: patient/, user/ and launch scopes need authorization_code")
        else:
            raise ClientError(f"unknown scope {item!r}")
    return " ".join(parsed.raw)


def _default_grants(kind: ClientKind, public: bool, redirect_uris: tuple[str, ...]) -> tuple[str, ...]:
    if redirect_uris or public or not kind.is_system:
        return (AUTHORIZATION_CODE, REFRESH_TOKEN)
    return (CLIENT_CREDENTIALS,)


def build_client(registration: Registration, now: int) -> OAuthClient:
    """Validate a registration; return the client to store, or raise :class:`ClientError` naming the problem."""
    reg = registration
    if not _CLIENT_ID.match(reg.client_id or ""):
        raise ClientError(f"client id {reg.client_id!r} must be 1-128 characters of A-Z a-z 0-9 . _ -")
    name = (reg.name or "").strip()
    if not name or len(name) > 255:
        raise ClientError("the name must be 1-255 characters")
    try:
        kind = ClientKind(reg.kind)
    except ValueError as error:
        choices = ", ".join(k.value for k in ClientKind)
        raise ClientError(f"kind {reg.kind!r} is not one of {choices}") from error
    organization = (reg.organization or "").strip() or None
    if organization is not None and len(organization) > 255:
        raise ClientError("the organization must be at most 255 characters")
    redirect_uris = tuple(dict.fromkeys(_check_redirect_uri(u) for u in reg.redirect_uris))
    grants = tuple(dict.fromkeys(reg.grant_types)) or _default_grants(kind, reg.public, redirect_uris)
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise ClientError(f"grant {grant!r} is not one of {', '.join(GRANT_TYPES)}")
    if REFRESH_TOKEN in grants and AUTHORIZATION_CODE not in grants:
        raise ClientError("refresh_token is only issued with authorization_code")
    if AUTHORIZATION_CODE in grants and not redirect_uris:
        raise ClientError("authorization_code needs at least one redirect URI (--redirect-uri)")
    if reg.public:
        if reg.jwks is not None:
            raise ClientError("a public client has no keys: drop --jwks/--public-key or --public")
        if CLIENT_CREDENTIALS in grants:
            raise ClientError("a public client cannot use client_credentials (no way to authenticate it)")
        auth_method = NONE
    else:
        if reg.jwks is None:
            raise ClientError("a confidential client needs its public keys (--jwks FILE or --public-key FILE)")
        auth_method = PRIVATE_KEY_JWT
    if CLIENT_CREDENTIALS in grants and not kind.is_system:
        raise ClientError("client_credentials is for establishment software, not for kind 'app'")
    if redirect_uris and AUTHORIZATION_CODE not in grants:
        raise ClientError("redirect URIs are only used by the authorization_code grant")
    scopes = _check_scopes(reg.scopes, grants)
    return OAuthClient(
        client_id=reg.client_id,
        name=name,
        kind=kind,
        status=ClientStatus.ACTIVE,
        public=reg.public,
        auth_method=auth_method,
        jwks=reg.jwks,
        redirect_uris=redirect_uris,
        grant_types=grants,
        scopes=scopes,
        organization=organization,
        tokens_valid_after=0,
        created_at=now,
        updated_at=now,
    )


def resource_scopes(client: OAuthClient) -> tuple[ResourceScope, ...]:
    """The client's registered resource scopes, parsed (registration guarantees they parse)."""
    return parse_scopes(client.scopes).resources
