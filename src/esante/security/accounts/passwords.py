"""Password hashing (argon2id) and the password policy.

Hashes are PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``): the parameters travel with each hash, so
raising them later only needs :meth:`PasswordHashing.needs_rehash` at the next successful login. The default
parameters are RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from esante.security.accounts.model import AccountError


@dataclass(frozen=True)
class Argon2Parameters:
    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4
    hash_len: int = 32
    salt_len: int = 16


class PasswordHashing:
    """argon2id hashing with explicit parameters, plus a dummy hash so unknown users cost the same time."""

    def __init__(self, parameters: Argon2Parameters | None = None) -> None:
        self.parameters = parameters or Argon2Parameters()
        p = self.parameters
        self._hasher = PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_cost,
            parallelism=p.parallelism,
            hash_len=p.hash_len,
            salt_len=p.salt_len,
            type=Type.ID,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash still costs one verification (against the dummy)."""
        if stored_hash is None:
            self._verify(self.dummy_hash, password)
            return False
        return self._verify(stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters (or another argon2 variant) than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    @property
    def dummy_hash(self) -> str:
        """A hash of a random secret nobody knows: verified in place of a missing account's hash."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(24))
        return self._dummy

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


# Passwords found at the top of every breach list (a short built-in list: the length rule does most of the work).
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123123123123",
        "111111111111",
        "000000000000",
        "abcdefghijkl",
        "qwertyuiopas",
        "qwertyuiop123",
        "qwertzuiop123",
        "azertyuiop123",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "motdepasse123",
        "motdepasse1234",
        "passwort1234",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "administrator",
        "administrateur",
        "changeme1234",
        "luxembourg123",
        "luxembourg2024",
        "luxembourg2025",
        "luxembourg2026",
        "esante123456",
        "esante2026!!",
        "123456789abc",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "aaaaaaaaaaaa",
        "trustno1trustno1",
        "football1234",
        "sunshine1234",
        "princess1234",
    }
)


def check_password_policy(
    password: str, *, min_length: int, personal: tuple[str | None, ...] = (), max_length: int = 1024
) -> None:
    """Raise ``AccountError("weak_password", …)`` naming the first rule ``password`` breaks.

    ``personal`` holds what identifies the person (username, matricule, e-mail): the password may not be one of
    them. Length counts characters, not bytes; there are no composition rules (NIST SP 800-63B).
    """
    if len(password) < min_length:
        raise AccountError("weak_password", f"the password must have at least {min_length} characters")
    if len(password) > max_length:
        raise AccountError("weak_password", f"the password may have at most {max_length} characters")
    folded = password.strip().casefold()
    if len(set(folded)) < 4:
        raise AccountError("weak_password", "the password repeats too few different characters")
    for value in personal:
        if value and value.strip().casefold() in (folded, folded.replace(" ", "")):
            raise AccountError("weak_password", "the password may not be your username, matricule or e-mail")
        if value and "@" in value and value.split("@", 1)[0].casefold() == folded:
            raise AccountError("weak_password", "the password may not be your username, matricule or e-mail")
    if folded in COMMON_PASSWORDS:
        raise AccountError("weak_password", "this password is among the most common ones; choose another")
