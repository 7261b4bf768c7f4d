"""The signing key ring: creation, files and permissions, persistence, rotation and the grace period."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from esante.config import Settings
from esante.security.keys import ACTIVE, RETIRED, KeyConfigError, KeyRing, check_token_settings
from esante.security.tokens import Reason, TokenError, mint_for, principal, verify
from tests.security.helpers import FakeClock, ring_in, settings_in


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_one_es256_key_with_private_files(tmp_path: Path) -> None:
    ring = ring_in(tmp_path)
    key = ring.signing_key()
    folder = tmp_path / "keys"
    assert key.alg == "ES256" and key.state == ACTIVE and isinstance(key.key, ECKey)
    assert key.kid == ECKey.import_key(key.public_jwk()).thumbprint()  # RFC 7638 thumbprint of the public key
    assert _mode(folder) == 0o700
    assert _mode(folder / f"{key.kid}.pem") == 0o600
    assert _mode(folder / f"{key.kid}.json") == 0o600
    assert (folder / f"{key.kid}.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    meta = json.loads((folder / f"{key.kid}.json").read_text())
    assert meta["kid"] == key.kid and meta["state"] == "active" and meta["created_at"] == 1_800_000_000
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        f"{key.kid}.json",
        f"{key.kid}.pem",
    ]


def test_default_key_folder_is_under_var_which_git_ignores() -> None:
    assert Settings().key_dir == Path("var") / "keys"
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().split()
    assert "var/" in ignored


def test_keys_persist_across_loads(tmp_path: Path) -> None:
    first = ring_in(tmp_path).signing_key()
    again = ring_in(tmp_path).signing_key()
    assert again.kid == first.kid
    assert again.key.as_dict(private=True) == first.key.as_dict(private=True)


def test_nothing_is_written_before_first_use(tmp_path: Path) -> None:
    KeyRing.from_settings(settings_in(tmp_path))
    assert not (tmp_path / "keys").exists()


def test_rs256_is_supported(tmp_path: Path) -> None:
    ring = ring_in(tmp_path, signing_alg="RS256")
    key = ring.signing_key()
    assert key.alg == "RS256" and isinstance(key.key, RSAKey)
    jwk = ring.jwks()["keys"][0]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and "d" not in jwk


def test_jwks_publishes_only_public_parts(tmp_path: Path) -> None:
    ring = ring_in(tmp_path)
    (jwk,) = ring.jwks()["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert jwk["use"] == "sig" and jwk["kid"] == ring.signing_key().kid


def test_rotation_keeps_old_tokens_valid_until_the_grace_period_ends(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = settings_in(tmp_path, token_ttl=600, token_max_ttl=3600, key_grace_period=7200)
    ring = KeyRing.load_or_create(settings, clock=clock)
    old = ring.signing_key()
    token = mint_for(settings, ring, principal("patient:p1"), now=clock.now)

    new = ring.rotate()
    assert new.kid != old.kid and ring.signing_key().kid == new.kid
    states = {k.kid: k.state for k in ring.all_keys()}
    assert states == {new.kid: ACTIVE, old.kid: RETIRED}
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old.kid, new.kid}
    claims = verify(ring, token, audience=settings.effective_audience, issuer=settings.effective_issuer, now=clock.now)
    assert claims.kid == old.kid
    # new tokens are signed with the new key
    fresh = mint_for(settings, ring, principal("patient:p1"), now=clock.now)
    assert (
        verify(ring, fresh, audience=settings.effective_audience, issuer=settings.effective_issuer, now=clock.now).kid
        == new.kid
    )

    clock.advance(7200 + 1)
    assert {k["kid"] for k in ring.jwks()["keys"]} == {new.kid}
    with pytest.raises(TokenError) as refused:
        verify(ring, token, audience=settings.effective_audience, issuer=settings.effective_issuer, now=clock.now)
    assert refused.value.reason is Reason.UNKNOWN_KID

    # the next rotation deletes the expired key's files
    ring.rotate()
    assert not (tmp_path / "keys" / f"{old.kid}.pem").exists()
    assert not (tmp_path / "keys" / f"{old.kid}.json").exists()
    assert len(ring.all_keys()) == 2


def test_a_rotation_by_another_process_is_seen_without_restart(tmp_path: Path) -> None:
    server = ring_in(tmp_path)
    before = server.signing_key().kid
    operator = ring_in(tmp_path)  # what `esante keys rotate` builds from the same configuration
    rotated = operator.rotate()
    assert server.signing_key().kid == rotated.kid
    assert server.find(before) is not None  # still published


def test_concurrent_first_use_creates_a_single_key(tmp_path: Path) -> None:
    kids: list[str] = []

    def start() -> None:
        kids.append(ring_in(tmp_path).signing_key().kid)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1


def test_rotation_can_switch_algorithm(tmp_path: Path) -> None:
    ring = ring_in(tmp_path)
    key = ring.rotate("RS256")
    assert key.alg == "RS256" and ring.signing_key().kid == key.kid
    assert {k["kty"] for k in ring.jwks()["keys"]} == {"EC", "RSA"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"signing_alg": "HS256"}, "signing_alg"),
        ({"token_max_ttl": 7200, "key_grace_period": 3600}, "key_grace_period"),
        ({"token_ttl": 7200, "token_max_ttl": 3600}, "token_ttl"),
        ({"token_ttl": 0}, "positive"),
    ],
)
def test_unsafe_configuration_is_refused(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(KeyConfigError, match=message):
        check_token_settings(settings_in(tmp_path, **overrides))
    with pytest.raises(KeyConfigError):
        KeyRing.load_or_create(settings_in(tmp_path, **overrides))


def test_a_key_file_not_matching_its_kid_is_refused(tmp_path: Path) -> None:
    ring = ring_in(tmp_path)
    kid = ring.signing_key().kid
    other = ECKey.generate_key("P-256")
    (tmp_path / "keys" / f"{kid}.pem").write_bytes(other.as_pem(private=True))
    with pytest.raises(KeyConfigError, match="does not match"):
        ring_in(tmp_path).signing_key()
