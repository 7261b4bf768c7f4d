"""Access tokens: minting, claims, and every attack the verifier must refuse (tokens built by hand here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from esante.config import Settings
from esante.security.keys import KeyRing
from esante.security.tokens import (
    PURPOSE_SYSTEM,
    ROLE_SYSTEM,
    Coding,
    IuaClaims,
    Reason,
    TokenError,
    mint,
    mint_for,
    principal,
    verify,
)
from tests.security.helpers import T0, FakeClock, settings_in

ISS = "https://auth.esante.example"
AUD = "https://esante.example/fhir"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring(tmp_path: Path, clock: FakeClock) -> KeyRing:
    return KeyRing.load_or_create(settings_in(tmp_path), clock=clock)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


def good_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISS,
        "sub": "patient:p1",
        "aud": AUD,
        "exp": int(T0) + 300,
        "iat": int(T0),
        "nbf": int(T0),
        "jti": "j-1",
        "client_id": "app",
        "scope": "patient/*.rs",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(ring: KeyRing, claims: dict[str, Any], **header: Any) -> str:
    """A token signed by the ring's real key, with any claims and header: to test the checks after the signature."""
    key = ring.signing_key()
    protected = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt", **header}
    return jws.serialize_compact(protected, json.dumps(claims).encode(), key.key, algorithms=[protected["alg"]])


def refused(ring: KeyRing, token: str, *, now: float = T0, aud: str = AUD, iss: str = ISS) -> Reason:
    with pytest.raises(TokenError) as error:
        verify(ring, token, audience=aud, issuer=iss, now=now)
    return error.value.reason


def minted(ring: KeyRing, **changes: Any) -> str:
    args: dict[str, Any] = {
        "issuer": ISS,
        "audience": AUD,
        "subject": "professional:2854-1",
        "client_id": "portal",
        "scope": "user/*.cruds openid fhirUser",
        "ttl": 300,
        "now": T0,
        "iua": IuaClaims(
            subject_role=Coding(ROLE_SYSTEM, "professional"),
            purpose_of_use=(Coding(PURPOSE_SYSTEM, "TREAT"),),
            subject_organization="CHL",
            national_provider_identifier="2854-1",
            person_id="p1",
        ),
    }
    args.update(changes)
    return mint(ring, **args)


# --- minting ----------------------------------------------------------------------------------------------------


def test_minted_token_has_every_claim_and_verifies(ring: KeyRing) -> None:
    token = minted(ring)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": ring.signing_key().kid, "typ": "at+jwt"}
    claims = verify(ring, token, audience=AUD, issuer=ISS, now=T0 + 10)
    assert claims.subject == "professional:2854-1" and claims.client_id == "portal"
    assert claims.expires_at == int(T0) + 300 and claims.issued_at == claims.not_before == int(T0)
    assert claims.audience == (AUD,) and claims.jwt_id
    assert claims.scopes.allows("u", "Observation", "user") and claims.scopes.openid
    assert claims.iua is not None and claims.iua.national_provider_identifier == "2854-1"
    raw = claims.claims["extensions"]["ihe_iua"]
    assert raw["subject_role"] == {"system": ROLE_SYSTEM, "code": "professional"}
    assert raw["purpose_of_use"] == {"system": PURPOSE_SYSTEM, "code": "TREAT"}
    assert raw["person_id"] == "p1" and raw["subject_organization"] == "CHL"
    caller = claims.to_caller()
    assert caller.kind == "professional" and caller.purpose_of_use == "TREAT"
    assert caller.attributes["national_provider_identifier"] == "2854-1"


def test_every_token_has_its_own_jti(ring: KeyRing) -> None:
    first = verify(ring, minted(ring), audience=AUD, issuer=ISS, now=T0)
    second = verify(ring, minted(ring), audience=AUD, issuer=ISS, now=T0)
    assert first.jwt_id != second.jwt_id


def test_audience_list_is_accepted(ring: KeyRing) -> None:
    token = minted(ring, audience=[AUD, "https://other.example"])
    assert verify(ring, token, audience=AUD, issuer=ISS, now=T0).audience == (AUD, "https://other.example")


def test_rs256_tokens(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(settings_in(tmp_path, signing_alg="RS256"), clock=FakeClock())
    token = minted(ring)
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == "RS256"
    assert verify(ring, token, audience=AUD, issuer=ISS, now=T0).subject == "professional:2854-1"


def test_a_malformed_scope_is_never_minted(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="invalid scope"):
        minted(ring, scope="patient/Observation.xyz")


@pytest.mark.parametrize(
    ("who", "subject", "role", "claim", "scope"),
    [
        ("patient:p-42", "patient:p-42", "patient", ("person_id", "p-42"), "patient/*.rs"),
        (
            "professional:2854-77",
            "professional:2854-77",
            "professional",
            ("national_provider_identifier", "2854-77"),
            "user/*.cruds",
        ),
        ("staff:alice", "staff:alice", "staff", ("subject_name", "alice"), "user/*.rs"),
    ],
)
def test_cli_principals_map_to_claims(
    tmp_path: Path, who: str, subject: str, role: str, claim: tuple[str, str], scope: str
) -> None:
    settings = settings_in(tmp_path)
    ring = KeyRing.load_or_create(settings)
    claims = verify(
        ring,
        mint_for(settings, ring, principal(who)),
        audience=settings.effective_audience,
        issuer=settings.effective_issuer,
    )
    assert claims.subject == subject and claims.role == role and claims.scope == scope
    assert claims.client_id == "esante-cli"
    assert claims.iua is not None and getattr(claims.iua, claim[0]) == claim[1]


def test_system_principal_has_its_client_id_and_no_person(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    ring = KeyRing.load_or_create(settings)
    token = mint_for(settings, ring, principal("system:lab-feed"), scope="system/Observation.c")
    claims = verify(ring, token, audience=settings.effective_audience, issuer=settings.effective_issuer)
    assert claims.client_id == "lab-feed" and claims.subject == "system:lab-feed"
    assert claims.iua == IuaClaims(subject_role=Coding(ROLE_SYSTEM, "system"))  # no person, no purpose
    caller = claims.to_caller()
    assert caller.kind == "system" and caller.purpose_of_use is None and "person_id" not in caller.attributes
    with_purpose = mint_for(settings, ring, principal("system:lab-feed"), purpose_of_use="HOPERAT")
    assert (
        verify(ring, with_purpose, audience=settings.effective_audience, issuer=settings.effective_issuer)
        .to_caller()
        .purpose_of_use
        == "HOPERAT"
    )


def test_a_token_without_our_role_is_anonymous_to_the_policy(ring: KeyRing) -> None:
    foreign_role = IuaClaims(subject_role=Coding("urn:oid:2.16.756.5.30.1.127.3.10.6", "HCP"))
    for iua in (None, foreign_role):
        claims = verify(ring, minted(ring, iua=iua), audience=AUD, issuer=ISS, now=T0)
        assert claims.role is None and claims.to_caller().kind == "anonymous"


@pytest.mark.parametrize("text", ["patient", "patient:", "doctor:x", "patient:a b", "patient:" + "x" * 65, "staff: "])
def test_bad_principals_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        principal(text)


def test_ttl_above_the_maximum_is_refused(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    ring = KeyRing.load_or_create(settings)
    with pytest.raises(ValueError, match="token_max_ttl"):
        mint_for(settings, ring, principal("patient:p1"), ttl=settings.token_max_ttl + 1)


def test_settings_give_issuer_and_audience() -> None:
    assert Settings().effective_audience == "http://127.0.0.1:8080/fhir"
    assert Settings().effective_issuer == "http://127.0.0.1:8080"
    behind_proxy = Settings(base_url="https://esante.example/fhir/")
    assert behind_proxy.effective_audience == "https://esante.example/fhir"
    assert behind_proxy.effective_issuer == "https://esante.example"
    assert Settings(token_issuer="https://auth.example/").effective_issuer == "https://auth.example"


# --- attacks ----------------------------------------------------------------------------------------------------


def test_alg_none_is_refused(ring: KeyRing) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{segment({'alg': alg, 'typ': 'at+jwt', 'kid': ring.signing_key().kid})}.{segment(good_claims())}."
        assert refused(ring, token) is Reason.UNSIGNED


def test_hs256_signed_with_the_public_key_is_refused(ring: KeyRing) -> None:
    """Algorithm confusion: an HMAC whose secret is the server's public key (which anyone can fetch)."""
    key = ring.signing_key()
    public_pem = key.key.as_pem(private=False)
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)):
        signing_input = f"{segment({'alg': alg, 'typ': 'at+jwt', 'kid': key.kid})}.{segment(good_claims())}"
        mac = hmac.new(public_pem, signing_input.encode(), digest).digest()
        assert refused(ring, f"{signing_input}.{b64(mac)}") is Reason.ALGORITHM
    # the same with the JWKS JSON as secret, and without a kid
    secret = json.dumps(ring.jwks()).encode()
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'at+jwt'})}.{segment(good_claims())}"
    assert refused(ring, f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), 'sha256').digest())}") is (
        Reason.ALGORITHM
    )


@pytest.mark.parametrize("alg", ["ES384", "ES512", "PS256", "RS512", "EdDSA"])
def test_other_algorithms_are_refused(ring: KeyRing, alg: str) -> None:
    token = f"{segment({'alg': alg, 'typ': 'at+jwt', 'kid': ring.signing_key().kid})}.{segment(good_claims())}.AAAA"
    assert refused(ring, token) is Reason.ALGORITHM


def test_unknown_kid_is_refused(ring: KeyRing) -> None:
    intruder = ECKey.generate_key("P-256")
    claims = json.dumps(good_claims()).encode()
    for header in (
        {"alg": "ES256", "typ": "at+jwt", "kid": intruder.thumbprint()},
        {"alg": "ES256", "typ": "at+jwt", "kid": "../../etc/passwd"},
        {"alg": "ES256", "typ": "at+jwt"},  # no kid at all
    ):
        token = jws.serialize_compact(header, claims, intruder, algorithms=["ES256"])
        assert refused(ring, token) is Reason.UNKNOWN_KID
    numeric_kid = f"{segment({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 42})}.{segment(good_claims())}.AAAA"
    assert refused(ring, numeric_kid) is Reason.UNKNOWN_KID


def test_a_foreign_key_using_our_kid_fails_the_signature(ring: KeyRing) -> None:
    intruder = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "at+jwt", "kid": ring.signing_key().kid}
    token = jws.serialize_compact(header, json.dumps(good_claims()).encode(), intruder, algorithms=["ES256"])
    assert refused(ring, token) is Reason.BAD_SIGNATURE


def test_rs256_header_on_an_ec_kid_is_refused(ring: KeyRing) -> None:
    rsa = RSAKey.generate_key(2048)
    header = {"alg": "RS256", "typ": "at+jwt", "kid": ring.signing_key().kid}
    token = jws.serialize_compact(header, json.dumps(good_claims()).encode(), rsa, algorithms=["RS256"])
    assert refused(ring, token) is Reason.KEY_MISMATCH


def test_swapped_payload_is_refused(ring: KeyRing) -> None:
    mine = minted(ring, subject="patient:p1").split(".")
    theirs = minted(ring, subject="patient:p2", scope="patient/*.cruds").split(".")
    assert refused(ring, f"{mine[0]}.{theirs[1]}.{mine[2]}") is Reason.BAD_SIGNATURE
    # a hand-edited payload (scope escalation) with the original signature
    forged = dict(good_claims(), scope="system/*.cruds")
    original = sign(ring, good_claims()).split(".")
    assert refused(ring, f"{original[0]}.{segment(forged)}.{original[2]}") is Reason.BAD_SIGNATURE


def test_tampered_signature_is_refused(ring: KeyRing) -> None:
    head, body, signature = minted(ring).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[5] ^= 0x01
    assert refused(ring, f"{head}.{body}.{b64(bytes(raw))}") is Reason.BAD_SIGNATURE
    assert refused(ring, f"{head}.{body}.") is Reason.BAD_SIGNATURE


def test_tampered_header_is_refused(ring: KeyRing) -> None:
    head, body, signature = minted(ring).split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    header["typ"] = "application/at+jwt"  # still an accepted value: only the signature can tell
    assert refused(ring, f"{segment(header)}.{body}.{signature}") is Reason.BAD_SIGNATURE


def test_expired_token_is_refused(ring: KeyRing) -> None:
    token = minted(ring, ttl=300)
    assert verify(ring, token, audience=AUD, issuer=ISS, now=T0 + 300 + 29).subject  # within the leeway
    assert refused(ring, token, now=T0 + 300 + 30) is Reason.EXPIRED
    assert refused(ring, token, now=T0 + 86_400) is Reason.EXPIRED


def test_not_yet_valid_token_is_refused(ring: KeyRing) -> None:
    future_nbf = sign(ring, good_claims(nbf=int(T0) + 120, exp=int(T0) + 600))
    assert refused(ring, future_nbf) is Reason.NOT_YET_VALID
    assert verify(ring, future_nbf, audience=AUD, issuer=ISS, now=T0 + 100).subject  # within the leeway
    future_iat = sign(ring, good_claims(iat=int(T0) + 120, exp=int(T0) + 600))
    assert refused(ring, future_iat) is Reason.NOT_YET_VALID
    minted_later = minted(ring, now=T0 + 3600)
    assert refused(ring, minted_later) is Reason.NOT_YET_VALID


def test_wrong_audience_is_refused(ring: KeyRing) -> None:
    assert refused(ring, minted(ring), aud="https://other.example/fhir") is Reason.WRONG_AUDIENCE
    assert refused(ring, minted(ring, audience=["https://a.example", "https://b.example"])) is Reason.WRONG_AUDIENCE


def test_wrong_issuer_is_refused(ring: KeyRing) -> None:
    assert refused(ring, minted(ring), iss="https://evil.example") is Reason.WRONG_ISSUER
    assert refused(ring, minted(ring, issuer=ISS + "/")) is Reason.WRONG_ISSUER


@pytest.mark.parametrize("missing", ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope"])
def test_missing_required_claims_are_refused(ring: KeyRing, missing: str) -> None:
    claims = good_claims()
    del claims[missing]
    assert refused(ring, sign(ring, claims)) is Reason.MISSING_CLAIM


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": float("inf")},
        {"nbf": float("nan")},
        {"iat": None, "nbf": None} | {"iat": [1]},
        {"sub": ""},
        {"aud": []},
        {"aud": [AUD, 3]},
        {"scope": ["patient/*.rs"]},
        {"scope": "patient/Observation.sr"},
        {"client_id": 7},
        {"extensions": "iua"},
        {"extensions": {"ihe_iua": {"subject_role": "doctor"}}},
        {"extensions": {"ihe_iua": {"person_id": 12}}},
        {"extensions": {"ihe_iua": {"purpose_of_use": [{"system": "s"}]}}},
    ],
)
def test_invalid_claims_are_refused(ring: KeyRing, changes: dict[str, Any]) -> None:
    claims = good_claims()
    claims.update(changes)
    assert refused(ring, sign(ring, claims)) is Reason.INVALID_CLAIM


def test_an_id_token_is_not_an_access_token(ring: KeyRing) -> None:
    assert refused(ring, sign(ring, good_claims(), typ="JWT")) is Reason.WRONG_TYPE
    no_typ = sign(ring, good_claims())
    head = no_typ.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    del header["typ"]
    key = ring.signing_key()
    assert refused(ring, jws.serialize_compact(header, json.dumps(good_claims()).encode(), key.key)) is (
        Reason.WRONG_TYPE
    )


def test_crit_header_is_refused(ring: KeyRing) -> None:
    token = f"{segment({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'k', 'crit': ['exp']})}.{segment(good_claims())}.AA"
    assert refused(ring, token) is Reason.MALFORMED


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!.??.**", f"{b64(b'[1]')}.e30.AA", "e30.e30.AA"])
def test_malformed_tokens_are_refused(ring: KeyRing, token: str) -> None:
    assert refused(ring, token) in (Reason.MALFORMED, Reason.UNSIGNED)


def test_non_object_payload_is_refused(ring: KeyRing) -> None:
    key = ring.signing_key()
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    token = jws.serialize_compact(header, b"[1, 2]", key.key, algorithms=["ES256"])
    assert refused(ring, token) is Reason.MALFORMED
