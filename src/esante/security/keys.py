"""The authorization server's signing keys: a key ring on disk under ``<var_dir>/keys/``.

Each key is two files named after its ``kid`` (the RFC 7638 JWK thumbprint of its public part):

- ``<kid>.pem``: the private key, PKCS#8 PEM, mode 0600;
- ``<kid>.json``: its metadata (algorithm, creation time, state ``active`` or ``retired``, retirement time).

The newest active key signs. Rotation creates a new active key and retires the previous ones; a retired key keeps
being published in the JWKS (so tokens it signed keep verifying) for ``key_grace_period`` seconds, which must be at
least ``token_max_ttl`` so that no token outlives its key. Expired keys are deleted at the next rotation.

Every process (server workers, the CLI) reads the same folder; creation and rotation hold an exclusive lock on
``keys/.lock`` and write files atomically, and a ring reloads itself when the folder changes, so a rotation made
with ``esante keys rotate`` is picked up by a running server without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, RSAKey

from esante.config import Settings

ALGORITHMS = ("ES256", "RS256")
RSA_KEY_BITS = 3072
ACTIVE = "active"
RETIRED = "retired"

Clock = Callable[[], float]


class KeyConfigError(ValueError):
    """The key or token configuration is unusable (unknown algorithm, grace period shorter than a token)."""


@dataclass(frozen=True)
class SigningKey:
    """One key of the ring with its metadata."""

    kid: str
    alg: str
    serial: int  # creation order within the ring (newest = highest)
    created_at: int  # epoch seconds
    state: str  # active | retired
    retired_at: int | None
    key: ECKey | RSAKey

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK as published in the JWKS."""
        return dict(self.key.as_dict(private=False, kid=self.kid, alg=self.alg, use="sig"))

    def expires_at(self, grace_period: int) -> int | None:
        """When a retired key stops being published (None while active)."""
        return None if self.retired_at is None else self.retired_at + grace_period


def check_token_settings(settings: Settings) -> None:
    """Refuse configurations under which a valid token could outlive its key or be signed with a bad algorithm."""
    if settings.signing_alg not in ALGORITHMS:
        raise KeyConfigError(f"signing_alg must be one of {', '.join(ALGORITHMS)}, not {settings.signing_alg!r}")
    if settings.token_ttl <= 0 or settings.token_max_ttl <= 0:
        raise KeyConfigError("token_ttl and token_max_ttl must be positive")
    if settings.token_ttl > settings.token_max_ttl:
        raise KeyConfigError(f"token_ttl ({settings.token_ttl}) exceeds token_max_ttl ({settings.token_max_ttl})")
    if settings.key_grace_period < settings.token_max_ttl:
        raise KeyConfigError(
            f"key_grace_period ({settings.key_grace_period} s) must be at least token_max_ttl "
            f"({settings.token_max_ttl} s): a retired key must outlive every token it signed"
        )


def generate_key(alg: str) -> ECKey | RSAKey:
    """A new private key for ``alg`` (ES256 → P-256, RS256 → RSA 3072)."""
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "RS256":
        return RSAKey.generate_key(RSA_KEY_BITS)
    raise KeyConfigError(f"unsupported signing algorithm {alg!r} (use {' or '.join(ALGORITHMS)})")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 (never world- or group-readable, even briefly)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class KeyRing:
    """The signing keys of one platform (see the module docstring). Nothing touches the disk until first use."""

    def __init__(
        self,
        directory: Path,
        *,
        alg: str = "ES256",
        grace_period: int = 172800,
        clock: Clock = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.alg = alg
        self.grace_period = grace_period
        self.clock = clock
        self._keys: list[SigningKey] = []
        self._stamp: int | None = None  # folder mtime when last loaded
        self._loaded_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = time.time) -> KeyRing:
        """A lazy ring on the configured folder (no file is read or created yet)."""
        check_token_settings(settings)
        return cls(settings.key_dir, alg=settings.signing_alg, grace_period=settings.key_grace_period, clock=clock)

    @classmethod
    def load_or_create(cls, settings: Settings, clock: Clock = time.time) -> KeyRing:
        """The configured ring, with a first active key created if there is none."""
        ring = cls.from_settings(settings, clock)
        ring.ensure()
        return ring

    # --- reading -------------------------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Load the folder if it changed; create the first active key if none is active."""
        self._refresh()
        if not any(key.state == ACTIVE for key in self._keys):
            with self._locked():
                self._load()
                if not any(key.state == ACTIVE for key in self._keys):
                    self._create(self.alg)
                    self._load()

    def all_keys(self) -> list[SigningKey]:
        """Every key on disk, newest first (including retired keys past their grace period)."""
        self._refresh()
        return list(self._keys)

    def signing_key(self) -> SigningKey:
        """The newest active key (created on first use)."""
        self.ensure()
        return next(key for key in self._keys if key.state == ACTIVE)

    def is_published(self, key: SigningKey) -> bool:
        """Active, or retired less than ``grace_period`` seconds ago."""
        expires = key.expires_at(self.grace_period)
        return expires is None or self.clock() < expires

    def verification_keys(self) -> dict[str, SigningKey]:
        """The keys tokens may be verified with, by kid: active and retired-but-not-expired ones."""
        self.ensure()
        return {key.kid: key for key in self._keys if self.is_published(key)}

    def find(self, kid: str) -> SigningKey | None:
        """The published key ``kid``, if any (an unknown kid rereads the folder, at most once a second)."""
        found = self.verification_keys().get(kid)
        if found is None and time.monotonic() - self._loaded_at > 1.0:
            self._load()
            found = self.verification_keys().get(kid)
        return found

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set (RFC 7517) of the published public keys."""
        return {"keys": [key.public_jwk() for key in self.verification_keys().values()]}

    # --- changing ------------------------------------------------------------------------------------------------

    def rotate(self, alg: str | None = None) -> SigningKey:
        """Create a new active key (``alg`` or the configured one); retire the active ones; delete expired ones."""
        with self._locked():
            self._load()
            now = int(self.clock())
            for key in self._keys:
                if key.state == ACTIVE:
                    self._write_meta(replace(key, state=RETIRED, retired_at=now))
                elif not self.is_published(key):
                    self._delete(key.kid)
            kid = self._create(alg or self.alg)
            self._load()
        return next(key for key in self._keys if key.kid == kid)

    # --- files ---------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _create(self, alg: str) -> str:
        key = generate_key(alg)
        kid = key.thumbprint()
        pem = key.as_pem(private=True)
        _write_private(self.directory / f"{kid}.pem", pem)
        serial = max((k.serial for k in self._keys), default=0) + 1
        meta = SigningKey(kid, alg, serial, int(self.clock()), ACTIVE, None, key)
        self._write_meta(meta)
        return kid

    def _write_meta(self, key: SigningKey) -> None:
        meta = {
            "kid": key.kid,
            "alg": key.alg,
            "serial": key.serial,
            "created_at": key.created_at,
            "state": key.state,
            "retired_at": key.retired_at,
        }
        _write_private(self.directory / f"{key.kid}.json", json.dumps(meta, indent=2).encode() + b"\n")

    def _delete(self, kid: str) -> None:
        for suffix in (".json", ".pem"):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{kid}{suffix}").unlink()

    def _stamp_now(self) -> int | None:
        try:
            return self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _refresh(self) -> None:
        if self._stamp is None or self._stamp != self._stamp_now():
            self._load()

    def _load(self) -> None:
        self._stamp = self._stamp_now()
        loaded: list[SigningKey] = []
        if self._stamp is not None:
            for meta_path in self.directory.glob("*.json"):
                pem_path = meta_path.with_suffix(".pem")
                if not pem_path.exists():
                    continue
                meta = json.loads(meta_path.read_text())
                key = self._import(meta["alg"], pem_path.read_bytes())
                if key.thumbprint() != meta["kid"] or meta_path.stem != meta["kid"]:
                    raise KeyConfigError(f"key file {pem_path} does not match its kid {meta['kid']}")
                loaded.append(
                    SigningKey(
                        meta["kid"],
                        meta["alg"],
                        int(meta["serial"]),
                        int(meta["created_at"]),
                        meta["state"],
                        meta["retired_at"],
                        key,
                    )
                )
        loaded.sort(key=lambda k: k.serial, reverse=True)
        self._keys = loaded
        self._loaded_at = time.monotonic()

    @staticmethod
    def _import(alg: str, pem: bytes) -> ECKey | RSAKey:
        if alg == "ES256":
            return ECKey.import_key(pem)
        if alg == "RS256":
            return RSAKey.import_key(pem)
        raise KeyConfigError(f"unsupported key algorithm {alg!r} in the key folder")
