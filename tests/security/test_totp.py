"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step, counters for single use) and the letters' one-time codes."""

from __future__ import annotations

import base64
import re
import urllib.parse

import pytest

from esante.security.accounts import codes, totp

# RFC 6238 appendix B, SHA-1 seed "12345678901234567890" (8-digit values; we show the last 6)
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")]


@pytest.mark.parametrize(("when", "expected"), RFC_VECTORS)
def test_rfc6238_vectors(when: int, expected: str) -> None:
    assert totp.code_at(RFC_SECRET, when) == expected
    assert totp.verify_totp(RFC_SECRET, expected, when) == when // 30


def test_one_step_of_drift_either_way_and_no_more() -> None:
    now = 1_800_000_015
    secret = totp.new_secret()
    for offset, ok in ((-60, False), (-30, True), (0, True), (30, True), (60, False)):
        code = totp.code_at(secret, now + offset)
        assert (totp.verify_totp(secret, code, now) is not None) is ok, offset


def test_a_used_counter_or_an_older_one_is_refused() -> None:
    now = 1_800_000_015
    secret = totp.new_secret()
    code = totp.code_at(secret, now)
    counter = totp.verify_totp(secret, code, now)
    assert counter == now // 30
    assert totp.verify_totp(secret, code, now, last_counter=counter) is None  # replay
    assert totp.verify_totp(secret, code, now + 20, last_counter=counter) is None  # still in the window
    previous = totp.code_at(secret, now - 30)
    assert totp.verify_totp(secret, previous, now, last_counter=counter) is None  # older than the last used
    later = totp.code_at(secret, now + 30)
    assert totp.verify_totp(secret, later, now + 30, last_counter=counter) == counter + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert totp.verify_totp(totp.new_secret(), code, 1_800_000_000) is None


def test_enrolment_uri_and_qr() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32 and base64.b32decode(secret)
    assert secret != totp.new_secret()
    enrolment = totp.enrolment(secret, "jean.dupont")
    parsed = urllib.parse.urlparse(enrolment.uri)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert urllib.parse.unquote(parsed.path) == "/eSanté:jean.dupont"
    assert query["secret"] == [secret] and query["issuer"] == ["eSanté"]
    assert enrolment.qr_svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in enrolment.qr_svg
    assert enrolment.qr_svg.rstrip().endswith("</svg>") and "<path" in enrolment.qr_svg


# ---------------------------------------------------------------- one-time letter codes
def test_codes_are_grouped_from_the_unambiguous_alphabet() -> None:
    seen = {codes.new_code() for _ in range(200)}
    assert len(seen) == 200
    for code in seen:
        assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", code)
        assert not set(code.replace("-", "")) & set("01ILOU")


def test_codes_are_stored_as_sha256_and_compared_after_normalisation() -> None:
    code = codes.new_code()
    stored = codes.hash_code(code)
    assert len(stored) == 64 and re.fullmatch(r"[0-9a-f]{64}", stored) and code not in stored
    assert codes.code_matches(code, stored)
    assert codes.code_matches(code.lower().replace("-", " "), stored)
    assert codes.code_matches(" " + code.replace("-", "") + " ", stored)
    other = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert not codes.code_matches(other, stored)
    assert not codes.code_matches(code, None)
    assert not codes.code_matches("", stored)
