"""One-time codes printed on letters (account activation, password reset).

Sixteen characters from an alphabet without look-alikes (no 0/O, 1/I/L, no U), printed in groups of four:
``K7QM-3XWD-R9TB-HF2N`` — about 78 bits, so guessing is hopeless even without the lockout. Only the SHA-256 of the
normalised code is stored (CHAR(64)); a stolen database does not give usable codes, and a slow hash is not needed
for a random secret of that size. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
LENGTH = 16
GROUP = 4


def new_code() -> str:
    """A fresh code, formatted for printing (``XXXX-XXXX-XXXX-XXXX``)."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize_code(text: str) -> str:
    """What a person typed, without case, dashes or spaces (``k7qm 3xwd-r9tb…`` = ``K7QM3XWDR9TB…``)."""
    return "".join(ch for ch in text.upper() if ch not in " -\t")


def hash_code(text: str) -> str:
    """The stored form: hex SHA-256 of the normalised code (64 characters)."""
    return hashlib.sha256(normalize_code(text).encode("utf-8")).hexdigest()


def code_matches(text: str, stored_hash: str | None) -> bool:
    """Constant-time check of a typed code against a stored hash (always False when nothing is stored)."""
    typed = hash_code(text)
    return hmac.compare_digest(typed, stored_hash or "0" * 64) and stored_hash is not None
