"""The master keys that wrap the blobs' data keys, from configuration (never from the repository).

Sources, merged (a key id given twice must carry the same material):

- ``blob_keys`` (environment ``ESANTE_BLOB_KEYS``): ``kid:base64key`` entries separated by commas;
- ``blob_keys_file`` (``ESANTE_BLOB_KEYS_FILE``): a file of the same entries, one per line, ``#`` comments;
  refused when group or others can read it (as ssh refuses a private key).

Each key is 32 random bytes (AES-256), base64. ``blob_active_key`` names the one that wraps new data keys; the
others only unwrap — that is how a rotation proceeds: add a key, make it active, ``esante blobs rotate-key``,
then remove the old one. With a single key configured it is the active one.

With nothing configured (the zero-set-up embedded default) a key is generated once into
``<var_dir>/keys/blob-master.keys`` (mode 0600), beside the signing keys and outside the blob folder; the ring says
so (:attr:`MasterKeyRing.generated`) and ``esante blobs status`` warns. Production configures its own keys,
kept apart from the data and its backups (docs/blob-store.md).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from esante.blobs.cipher import KEY_SIZE, key_check_value
from esante.blobs.errors import BlobConfigError
from esante.blobs.format import is_kid
from esante.config import Settings

GENERATED_FILE = "blob-master.keys"


@dataclass(frozen=True)
class MasterKey:
    kid: str
    material: bytes = field(repr=False)

    @property
    def kcv(self) -> str:
        return key_check_value(self.material)


@dataclass(frozen=True)
class MasterKeyRing:
    """The configured master keys; ``active`` wraps, all of them unwrap."""

    keys: dict[str, MasterKey]
    active_kid: str
    origin: str  # where the keys came from, for messages (never the material)
    generated: bool = False

    @property
    def active(self) -> MasterKey:
        return self.keys[self.active_kid]

    def get(self, kid: str) -> MasterKey | None:
        return self.keys.get(kid)

    @classmethod
    def of(cls, *keys: MasterKey, active: str | None = None) -> MasterKeyRing:
        """A ring built in code (tests, benchmarks)."""
        ring = {key.kid: key for key in keys}
        return cls(ring, active or keys[0].kid, "code")

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterKeyRing:
        """The configured ring; :class:`BlobConfigError` names what is wrong (never a key's material)."""
        entries: list[MasterKey] = []
        origins: list[str] = []
        if settings.blob_keys:
            entries += parse_keys(settings.blob_keys, "blob_keys")
            origins.append("blob_keys")
        if settings.blob_keys_file is not None:
            entries += read_keys_file(settings.blob_keys_file)
            origins.append(f"blob_keys_file {settings.blob_keys_file}")
        generated = False
        if not entries:
            path = settings.key_dir / GENERATED_FILE
            entries = read_keys_file(ensure_generated_file(path))
            origins.append(f"generated file {path}")
            generated = True
        keys: dict[str, MasterKey] = {}
        for key in entries:
            known = keys.get(key.kid)
            if known is not None and known.material != key.material:
                raise BlobConfigError(f"master key {key.kid!r} is configured twice with different material")
            keys[key.kid] = key
        active = settings.blob_active_key
        if not active:
            if len(keys) > 1:
                raise BlobConfigError(
                    f"{len(keys)} master keys configured ({', '.join(sorted(keys))}): "
                    "set blob_active_key to the one that wraps new blobs"
                )
            active = next(iter(keys))
        if active not in keys:
            raise BlobConfigError(f"blob_active_key {active!r} is not among the configured keys ({', '.join(keys)})")
        return cls(keys, active, " + ".join(origins), generated)


def parse_keys(text: str, origin: str) -> list[MasterKey]:
    """``kid:base64`` entries separated by commas or new lines; blank lines and ``#`` comments are ignored."""
    keys: list[MasterKey] = []
    for number, line in enumerate(text.replace(",", "\n").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        kid, encoded = kid.strip(), encoded.strip()
        if not sep or not is_kid(kid):
            raise BlobConfigError(f"{origin}: entry {number} is not 'kid:base64key' with a kid of [A-Za-z0-9._-]")
        try:
            urlsafe = "-" in encoded or "_" in encoded
            material = base64.b64decode(encoded, altchars=b"-_" if urlsafe else None, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BlobConfigError(f"{origin}: key {kid!r} is not base64") from error
        if len(material) != KEY_SIZE:
            raise BlobConfigError(f"{origin}: key {kid!r} is {len(material)} bytes, an AES-256 key is {KEY_SIZE}")
        keys.append(MasterKey(kid, material))
    return keys


def read_keys_file(path: Path) -> list[MasterKey]:
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BlobConfigError(f"blob keys file {path} is accessible to group or others: chmod 600 it")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BlobConfigError(f"blob keys file {path} cannot be read: {error.strerror}") from error
    keys = parse_keys(text, str(path))
    if not keys:
        raise BlobConfigError(f"blob keys file {path} holds no key")
    return keys


def new_key_entry(kid: str) -> str:
    """A fresh ``kid:base64`` entry (32 bytes from the operating system's CSPRNG)."""
    if not is_kid(kid):
        raise BlobConfigError("a key id is 1-64 characters among letters, digits, '.', '_' and '-'")
    return f"{kid}:{base64.b64encode(os.urandom(KEY_SIZE)).decode('ascii')}"


def ensure_generated_file(path: Path) -> Path:
    """Create the development key file once (0600, atomically; concurrent processes agree on one key)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kid = time.strftime("generated-%Y%m%d", time.gmtime())
    body = (
        "# Generated by eSanté because no blob master key was configured (development default).\n"
        "# Production: keep master keys outside var_dir and its backups (docs/blob-store.md).\n"
        f"{new_key_entry(kid)}\n"
    ).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process won the race: its key is the one
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path
