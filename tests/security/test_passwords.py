"""argon2id hashing (parameters, rehash, dummy hash) and the password policy."""

from __future__ import annotations

import pytest

from esante.security.accounts.model import AccountError
from esante.security.accounts.passwords import Argon2Parameters, PasswordHashing, check_password_policy
from tests.security.accounts_support import FAST


def test_default_profile_is_argon2id_with_the_documented_parameters() -> None:
    hashing = PasswordHashing()
    stored = hashing.hash("a long enough passphrase")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hashing.verify(stored, "a long enough passphrase")
    assert not hashing.verify(stored, "a long enough passphrasf")


def test_salted_hashes_differ_and_never_contain_the_password() -> None:
    hashing = PasswordHashing(FAST)
    first, second = hashing.hash("same password here"), hashing.hash("same password here")
    assert first != second and "same password" not in first
    assert hashing.verify(first, "same password here") and hashing.verify(second, "same password here")


def test_missing_or_garbage_hash_never_verifies() -> None:
    hashing = PasswordHashing(FAST)
    assert not hashing.verify(None, "anything at all")
    assert hashing.dummy_hash.startswith("$argon2id$")
    assert not hashing.verify("not a hash", "anything at all")
    assert not hashing.verify("$argon2id$v=19$m=1024,t=1,p=1$bad$bad", "anything at all")


def test_changed_parameters_need_a_rehash() -> None:
    old = PasswordHashing(FAST)
    stored = old.hash("a long enough passphrase")
    assert not old.needs_rehash(stored)
    stronger = PasswordHashing(Argon2Parameters(time_cost=2, memory_cost=2048, parallelism=1))
    assert stronger.needs_rehash(stored)
    assert stronger.verify(stored, "a long enough passphrase")  # old hashes still verify
    assert stronger.needs_rehash("$2b$12$bcrypt-style-hash")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1!", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "too few different characters"),
        ("abababababababab", "too few different characters"),
        ("Password1234", "most common"),
        ("jean.dupont@example.lu", "username, matricule or e-mail"),
        ("JEAN.DUPONT42", "username, matricule or e-mail"),
        ("1982080285657", "username, matricule or e-mail"),
        ("jean.dupont.42", None),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_policy(password: str, message: str | None) -> None:
    personal = ("jean.dupont42", "1982080285657", "jean.dupont@example.lu")
    if message is None:
        check_password_policy(password, min_length=12, personal=personal)
        return
    with pytest.raises(AccountError, match=message) as raised:
        check_password_policy(password, min_length=12, personal=personal)
    assert raised.value.code == "weak_password"


def test_local_part_of_the_email_is_refused_and_length_follows_the_setting() -> None:
    with pytest.raises(AccountError, match="e-mail"):
        check_password_policy("marie-claire.weber", min_length=12, personal=(None, None, "marie-claire.weber@post.lu"))
    check_password_policy("a quiet garden", min_length=12)
    with pytest.raises(AccountError, match="at least 20"):
        check_password_policy("a quiet garden", min_length=20)
