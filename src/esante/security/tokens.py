"""Access tokens: JWTs (RFC 9068 profile, ``typ: at+jwt``) signed with the key ring's current key.

Claims: ``iss sub aud exp iat nbf jti client_id scope`` (all required on verification) and, when the subject is a
person, the IHE IUA extension claims under ``extensions.ihe_iua`` (``subject_name``, ``subject_organization``,
``subject_organization_id``, ``subject_role`` and ``purpose_of_use`` as Codings, ``home_community_id``,
``national_provider_identifier``, ``person_id``).

:func:`verify` checks, in this order, and raises :class:`TokenError` with the first failing reason: the compact
structure, the header (``alg`` must be ES256 or RS256: ``none`` and HS* are refused before any key is looked at;
``typ`` must be ``at+jwt``; no ``crit``), the ``kid`` (a published key of the ring whose algorithm matches the
header), the signature, the required claims and their types, the issuer, the audience, then the time window
(``exp``, ``nbf`` and ``iat`` with a small leeway for clock skew).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError

from esante.config import Settings
from esante.security.keys import ALGORITHMS, KeyRing
from esante.security.policy import Caller
from esante.security.scopes import ScopeError, ScopeSet, parse_scopes

TOKEN_TYPE = "at+jwt"
DEFAULT_LEEWAY = 30  # seconds of clock skew tolerated on exp, nbf and iat
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope")
# The code system of ``subject_role``: the platform's account kinds (see security/policy.py, Caller.kind).
ROLE_SYSTEM = "urn:esante:subject-role"
ROLES = ("patient", "professional", "assistant", "staff", "system")
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CLI_CLIENT_ID = "esante-cli"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NAME = re.compile(r"^[^\s]{1,256}$")


class Reason(StrEnum):
    """Why a token was refused (stable codes for logs, audit and tests)."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"  # alg "none"
    ALGORITHM = "algorithm_not_allowed"  # anything but ES256 / RS256 (HS256 confusion attacks land here)
    WRONG_TYPE = "wrong_type"  # typ is not at+jwt (e.g. an ID token)
    UNKNOWN_KID = "unknown_kid"  # no kid, or not a published key (never issued, or retired past its grace period)
    KEY_MISMATCH = "key_algorithm_mismatch"  # header alg differs from the kid's algorithm
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"  # nbf or iat in the future beyond the leeway


class TokenError(Exception):
    """A refused token: ``reason`` is a :class:`Reason`, the message a human explanation (no token content)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out

    @classmethod
    def from_json(cls, value: Any, name: str) -> Coding:
        if not isinstance(value, dict):
            raise TokenError(Reason.INVALID_CLAIM, f"{name} must be a Coding object")
        system, code, display = value.get("system"), value.get("code"), value.get("display")
        if not isinstance(system, str) or not isinstance(code, str) or not system or not code:
            raise TokenError(Reason.INVALID_CLAIM, f"{name} needs a string system and code")
        if display is not None and not isinstance(display, str):
            raise TokenError(Reason.INVALID_CLAIM, f"{name}.display must be a string")
        return cls(system, code, display)


_IUA_STRINGS = (
    "subject_name",
    "subject_organization",
    "subject_organization_id",
    "home_community_id",
    "national_provider_identifier",
    "person_id",
)


@dataclass(frozen=True)
class IuaClaims:
    """The IHE IUA JWT extension (``extensions.ihe_iua``)."""

    subject_name: str | None = None
    subject_organization: str | None = None
    subject_organization_id: str | None = None
    subject_role: Coding | None = None
    purpose_of_use: tuple[Coding, ...] = ()
    home_community_id: str | None = None
    national_provider_identifier: str | None = None  # the professional's eHealthID
    person_id: str | None = None  # the patient the access is about

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _IUA_STRINGS if getattr(self, name)}
        if self.subject_role is not None:
            out["subject_role"] = self.subject_role.to_json()
        if len(self.purpose_of_use) == 1:
            out["purpose_of_use"] = self.purpose_of_use[0].to_json()
        elif self.purpose_of_use:
            out["purpose_of_use"] = [c.to_json() for c in self.purpose_of_use]
        return out

    @classmethod
    def from_json(cls, value: Any) -> IuaClaims:
        if not isinstance(value, dict):
            raise TokenError(Reason.INVALID_CLAIM, "extensions.ihe_iua must be an object")
        strings: dict[str, str | None] = {}
        for name in _IUA_STRINGS:
            item = value.get(name)
            if item is not None and not isinstance(item, str):
                raise TokenError(Reason.INVALID_CLAIM, f"ihe_iua.{name} must be a string")
            strings[name] = item
        role = value.get("subject_role")
        purposes = value.get("purpose_of_use")
        purpose_list = [] if purposes is None else purposes if isinstance(purposes, list) else [purposes]
        return cls(
            subject_role=None if role is None else Coding.from_json(role, "ihe_iua.subject_role"),
            purpose_of_use=tuple(Coding.from_json(p, "ihe_iua.purpose_of_use") for p in purpose_list),
            **strings,
        )


@dataclass(frozen=True)
class TokenClaims:
    """A verified access token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    expires_at: int
    issued_at: int
    not_before: int
    jwt_id: str
    client_id: str
    scope: str
    scopes: ScopeSet
    kid: str
    iua: IuaClaims | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)  # the full payload, for claims not modelled here

    @property
    def role(self) -> str | None:
        """The platform role from ``ihe_iua.subject_role`` (patient, professional, ...), if coded by us."""
        role = self.iua.subject_role if self.iua else None
        if role is not None and role.system == ROLE_SYSTEM and role.code in ROLES:
            return role.code
        return None

    def to_caller(self) -> Caller:
        """The policy seam's view of this token (kind from the IUA role, else anonymous; subject = ``sub``).

        Platform claims beside the IUA ones: ``acct`` (the account the token was issued to), ``fhirUser``
        (``Patient/x`` or ``Practitioner/x``) and ``roles`` (staff roles, RFC 9068 §2.2.3.1).
        """
        iua = self.iua or IuaClaims()
        attributes: dict[str, Any] = {
            "client_id": self.client_id,
            "jti": self.jwt_id,
            "exp": self.expires_at,
            "iat": self.issued_at,
        }
        for name in (
            "person_id",
            "national_provider_identifier",
            "subject_organization",
            "subject_organization_id",
            "subject_name",
        ):
            if getattr(iua, name):
                attributes[name] = getattr(iua, name)
        if iua.subject_role is not None:
            attributes["subject_role"] = iua.subject_role.to_json()
        account = self.claims.get("acct")
        if isinstance(account, str) and account:
            attributes["account_id"] = account
        fhir_user = self.claims.get("fhirUser")
        if isinstance(fhir_user, str) and fhir_user:
            attributes["fhir_user"] = fhir_user
        roles = self.claims.get("roles")
        if isinstance(roles, list):
            attributes["roles"] = tuple(r for r in roles if isinstance(r, str))
        return Caller(
            kind=self.role or "anonymous",
            subject=self.subject,
            scopes=self.scopes.raw,
            purpose_of_use=iua.purpose_of_use[0].code if iua.purpose_of_use else None,
            attributes=attributes,
        )


# --- minting -----------------------------------------------------------------------------------------------------


def mint(
    keyring: KeyRing,
    *,
    issuer: str,
    audience: str | list[str],
    subject: str,
    client_id: str,
    scope: str,
    ttl: int,
    iua: IuaClaims | None = None,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS access token signed with the ring's current key (header ``kid``, ``typ: at+jwt``)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    parse_scopes(scope)  # never mint a token whose scope would fail verification
    key = keyring.signing_key()
    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = dict(extra_claims or {})
    payload.update(
        {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "exp": issued + ttl,
            "iat": issued,
            "nbf": issued,
            "jti": str(uuid.uuid4()),
            "client_id": client_id,
            "scope": scope,
        }
    )
    if iua is not None:
        extensions = dict(payload.get("extensions") or {})
        extensions["ihe_iua"] = iua.to_json()
        payload["extensions"] = extensions
    header = {"alg": key.alg, "kid": key.kid, "typ": TOKEN_TYPE}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, body, key.key, algorithms=[key.alg])


@dataclass(frozen=True)
class Principal:
    """Who a CLI-minted token speaks for: ``kind:value`` (see :func:`principal`)."""

    kind: str  # patient | professional | system | staff
    value: str

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.value}"


DEFAULT_SCOPES = {
    "patient": "patient/*.rs",
    "professional": "user/*.cruds",
    "staff": "user/*.rs",
    "system": "system/*.cruds",
}
DEFAULT_PURPOSE = {"patient": "PATRQT", "professional": "TREAT", "staff": "HOPERAT"}


def principal(text: str) -> Principal:
    """Parse ``patient:<Patient id> | professional:<eHealthID> | system:<client id> | staff:<user>``."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in DEFAULT_SCOPES:
        raise ValueError(
            f"expected patient:<id>, professional:<eHealthID>, system:<client id> or staff:<user>, not {text!r}"
        )
    pattern = _FHIR_ID if kind == "patient" else _NAME
    if not pattern.match(value):
        what = "a FHIR id ([A-Za-z0-9-.], ≤ 64)" if kind == "patient" else "a non-empty value without spaces"
        raise ValueError(f"{kind}: needs {what}, got {value!r}")
    return Principal(kind, value)


def claims_for(who: Principal, purpose_of_use: str | None = None) -> tuple[str, IuaClaims | None]:
    """The client_id and IUA claims of a CLI token (mapping documented in docs/security.md)."""
    role = Coding(ROLE_SYSTEM, who.kind)
    purpose = purpose_of_use or DEFAULT_PURPOSE.get(who.kind)
    purposes = (Coding(PURPOSE_SYSTEM, purpose),) if purpose else ()
    if who.kind == "system":
        return who.value, IuaClaims(subject_role=role, purpose_of_use=purposes)
    iua = IuaClaims(
        subject_role=role,
        purpose_of_use=purposes,
        person_id=who.value if who.kind == "patient" else None,
        national_provider_identifier=who.value if who.kind == "professional" else None,
        subject_name=who.value if who.kind == "staff" else None,
    )
    return CLI_CLIENT_ID, iua


def mint_for(
    settings: Settings,
    keyring: KeyRing,
    who: Principal,
    *,
    scope: str | None = None,
    ttl: int | None = None,
    audience: str | None = None,
    purpose_of_use: str | None = None,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A token for ``who`` with the server's issuer, audience and lifetime limits (the CLI's ``esante token``)."""
    lifetime = settings.token_ttl if ttl is None else ttl
    if lifetime <= 0 or lifetime > settings.token_max_ttl:
        raise ValueError(f"ttl must be between 1 and token_max_ttl ({settings.token_max_ttl}) seconds")
    client_id, iua = claims_for(who, purpose_of_use)
    return mint(
        keyring,
        issuer=settings.effective_issuer,
        audience=audience or settings.effective_audience,
        subject=who.subject,
        client_id=client_id,
        scope=scope if scope is not None else DEFAULT_SCOPES[who.kind],
        ttl=lifetime,
        iua=iua,
        now=now,
        extra_claims=extra_claims,
    )


# --- verification ------------------------------------------------------------------------------------------------


def _b64json(segment: str, what: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise TokenError(Reason.MALFORMED, f"the {what} is not base64url JSON") from error


def _header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or token.count(".") != 2:
        raise TokenError(Reason.MALFORMED, "not a compact JWS (three dot-separated parts)")
    header = _b64json(token.split(".", 1)[0], "header")
    if not isinstance(header, dict):
        raise TokenError(Reason.MALFORMED, "the header is not a JSON object")
    return header


def _number(claims: Mapping[str, Any], name: str) -> int:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError(Reason.INVALID_CLAIM, f"{name} must be a NumericDate")
    return int(value)


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise TokenError(Reason.INVALID_CLAIM, f"{name} must be a non-empty string")
    return value


def verify(
    keyring: KeyRing,
    token: str,
    *,
    audience: str,
    issuer: str,
    now: float | None = None,
    leeway: int = DEFAULT_LEEWAY,
) -> TokenClaims:
    """Verify an access token for ``audience`` from ``issuer``; raise :class:`TokenError` on any failure."""
    header = _header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise TokenError(Reason.UNSIGNED, "unsigned tokens (alg none) are refused")
    if alg not in ALGORITHMS:
        raise TokenError(Reason.ALGORITHM, f"algorithm {alg!r} is not allowed (only {', '.join(ALGORITHMS)})")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in (TOKEN_TYPE, "application/" + TOKEN_TYPE):
        raise TokenError(Reason.WRONG_TYPE, f"typ must be {TOKEN_TYPE}")
    if "crit" in header:
        raise TokenError(Reason.MALFORMED, "critical header extensions are not supported")
    kid = header.get("kid")
    key = keyring.find(kid) if isinstance(kid, str) and kid else None
    if key is None:
        raise TokenError(Reason.UNKNOWN_KID, "the kid is not one of the server's published keys")
    if key.alg != alg:
        raise TokenError(Reason.KEY_MISMATCH, f"key {kid} signs with {key.alg}, not {alg}")
    try:
        signed = jws.deserialize_compact(token, key.key, algorithms=[alg])
    except BadSignatureError as error:
        raise TokenError(Reason.BAD_SIGNATURE, "the signature does not verify") from error
    except JoseError as error:
        raise TokenError(Reason.MALFORMED, f"unreadable JWS ({error.error})") from error
    try:
        claims = json.loads(signed.payload)
    except ValueError as error:
        raise TokenError(Reason.MALFORMED, "the payload is not JSON") from error
    if not isinstance(claims, dict):
        raise TokenError(Reason.MALFORMED, "the payload is not a JSON object")

    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise TokenError(Reason.MISSING_CLAIM, f"missing claim(s): {', '.join(missing)}")
    expires, issued, not_before = _number(claims, "exp"), _number(claims, "iat"), _number(claims, "nbf")
    subject, jwt_id, client_id = _string(claims, "sub"), _string(claims, "jti"), _string(claims, "client_id")
    token_issuer = _string(claims, "iss")
    aud = claims["aud"]
    audiences = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else None
    if not audiences or not all(isinstance(a, str) and a for a in audiences):
        raise TokenError(Reason.INVALID_CLAIM, "aud must be a string or a list of strings")
    scope = claims["scope"]
    if not isinstance(scope, str):
        raise TokenError(Reason.INVALID_CLAIM, "scope must be a space-separated string")
    try:
        scopes = parse_scopes(scope)
    except ScopeError as error:
        raise TokenError(Reason.INVALID_CLAIM, str(error)) from error
    extensions = claims.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise TokenError(Reason.INVALID_CLAIM, "extensions must be an object")
    iua = IuaClaims.from_json(extensions["ihe_iua"]) if extensions and "ihe_iua" in extensions else None

    if token_issuer != issuer:
        raise TokenError(Reason.WRONG_ISSUER, "the token was issued by another authorization server")
    if audience not in audiences:
        raise TokenError(Reason.WRONG_AUDIENCE, "the token is not meant for this server")
    current = time.time() if now is None else now
    if current >= expires + leeway:
        raise TokenError(Reason.EXPIRED, "the token has expired")
    if not_before > current + leeway:
        raise TokenError(Reason.NOT_YET_VALID, "the token is not valid yet (nbf)")
    if issued > current + leeway:
        raise TokenError(Reason.NOT_YET_VALID, "the token was issued in the future (iat)")
    return TokenClaims(
        issuer=token_issuer,
        subject=subject,
        audience=audiences,
        expires_at=expires,
        issued_at=issued,
        not_before=not_before,
        jwt_id=jwt_id,
        client_id=client_id,
        scope=scope,
        scopes=scopes,
        kid=key.kid,
        iua=iua,
        claims=claims,
    )
