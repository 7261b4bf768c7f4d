"""Time-based one-time passwords (RFC 6238) for the second factor, with pyotp.

Authenticator apps only support the defaults reliably: SHA-1, 6 digits, 30-second steps. One step of clock drift
is tolerated either way. :func:`verify_totp` returns the time-step counter the code belongs to; the caller stores
it (``account.totp_last_counter``) and refuses any code whose counter is not newer, so an observed code cannot be
replayed within its validity window.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass

import pyotp
import segno

ISSUER = "eSanté"
DIGITS = 6
INTERVAL = 30
DRIFT_STEPS = 1


@dataclass(frozen=True)
class TotpEnrolment:
    """What a person needs to set up their authenticator app."""

    secret: str  # base32, shown for manual entry
    uri: str  # otpauth://totp/...
    qr_svg: str  # the URI as a QR code, an SVG document


def new_secret() -> str:
    """A fresh 160-bit secret in base32 (32 characters)."""
    return pyotp.random_base32()


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL, digest=hashlib.sha1, issuer=ISSUER)


def enrolment(secret: str, account_name: str) -> TotpEnrolment:
    uri = _totp(secret).provisioning_uri(name=account_name, issuer_name=ISSUER)
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, title="eSanté: second factor")
    return TotpEnrolment(secret=secret, uri=uri, qr_svg=buffer.getvalue().decode("utf-8"))


def code_at(secret: str, when: float) -> str:
    """The code an authenticator shows at ``when`` (epoch seconds); for tests and tools."""
    return _totp(secret).at(int(when))


def verify_totp(secret: str, code: str, now: float, last_counter: int | None = None) -> int | None:
    """The time-step counter ``code`` is valid for (within ±1 step of ``now``) and newer than ``last_counter``.

    ``None`` when the code is wrong, malformed, too old or already used. Each candidate is compared in constant
    time.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = _totp(secret)
    current = int(now) // INTERVAL
    found: int | None = None
    for counter in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code) and found is None:
            found = counter
    if found is None or (last_counter is not None and found <= last_counter):
        return None
    return found
