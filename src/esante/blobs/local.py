"""The default backend: a folder on local disk (``blob_dir``), one directory per blob, sharded.

Layout::

    <blob_dir>/store.json                         the store record (addressing key, wrapped)
    <blob_dir>/objects/ab/cd/<address>/data       the encrypted data object (written once, never modified)
    <blob_dir>/objects/ab/cd/<address>/key        the key record (replaced atomically by a rotation)
    <blob_dir>/tmp/                               writes in progress, deletions in progress

Two shard levels of 256 keep ~220 blobs per leaf directory at the national 14.6 M documents.

A put writes ``data`` and ``key`` into a fresh directory under ``tmp/``, fsyncs both and the directory, then
renames the directory to its address: the rename is atomic and fails when a directory already sits there, which
makes "create if absent" one system call — two processes putting the same bytes race harmlessly, one wins, the
other sees the blob and discards its copy. The pair (data, key) therefore always appears and disappears together.

Rotation and deletion lock the blob's directory (``flock``), so a key record being replaced is never resurrected
in a blob being destroyed, and a put's "it already exists" (which refreshes the data object's mtime) and a
deletion's "unused for min_idle seconds" never interleave.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from esante.blobs.backend import DeleteOutcome
from esante.blobs.errors import BlobIntegrityError, BlobNotFound
from esante.blobs.format import is_address

DATA = "data"
KEY = "key"
META = "store.json"
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def _fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path | str, data: bytes, *, dir_fd: int | None = None) -> None:
    """Write a small file completely and fsync it (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_file(name: str, dir_fd: int) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


class LocalDiskBackend:
    """Sharded directories under ``root`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        for folder in (self.root, self.objects, self.tmp):
            folder.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalDiskBackend({str(self.root)!r})"

    # --- paths ----------------------------------------------------------------------------------------------------

    def path_of(self, address: str) -> Path:
        if not is_address(address):
            raise ValueError("a blob address is 64 lowercase hexadecimal digits")
        return self.objects / address[:2] / address[2:4] / address

    def _ensure_dir(self, path: Path) -> None:
        """Create the missing shard levels, each made durable in its parent."""
        missing: list[Path] = []
        while not path.is_dir():
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=_DIR_MODE)
            _fsync_dir(folder.parent)

    @contextlib.contextmanager
    def _locked(self, address: str) -> Iterator[int | None]:
        """An exclusive lock on the blob's directory; yields its fd, or None when there is no blob there."""
        path = self.path_of(address)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                still_there = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                still_there = False  # deleted (renamed away) while we waited for the lock
            yield fd if still_there else None
        finally:
            os.close(fd)  # releases the lock

    # --- writing --------------------------------------------------------------------------------------------------

    def begin(self) -> LocalPendingBlob:
        path = self.tmp / f"put-{os.getpid()}-{secrets.token_hex(8)}"
        path.mkdir(mode=_DIR_MODE)
        return LocalPendingBlob(self, path)

    # --- reading --------------------------------------------------------------------------------------------------

    def exists(self, address: str) -> bool:
        return self.path_of(address).is_dir()

    def _open_dir(self, address: str) -> int:
        try:
            return os.open(self.path_of(address), os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError) as error:
            raise BlobNotFound(address) from error

    def _missing(self, address: str, fd: int, what: str) -> BlobNotFound | BlobIntegrityError:
        """A file missing from the directory we hold: damage if that directory is still the blob, else the blob
        was destroyed (or replaced) while we looked."""
        try:
            linked = os.stat(self.path_of(address)).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            linked = False
        return BlobIntegrityError(address, f"its {what} is missing") if linked else BlobNotFound(address)

    def _still_there(self, address: str, fd: int) -> None:
        """BlobNotFound unless the directory we hold is still the blob at ``address``.

        A destruction renames the directory away before it zeroes the key record in place: a reader that opened the
        directory just before could read a record being zeroed (seen as "not JSON" by the interleaved put/read/delete
        test). Checked after the reads, the directory still standing at the address proves that the zeroing had not
        begun when they ended; otherwise the blob was destroyed meanwhile and is reported gone, never damaged.
        """
        try:
            linked = os.stat(self.path_of(address)).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            linked = False
        if not linked:
            raise BlobNotFound(address)

    def read_key(self, address: str) -> bytes:
        fd = self._open_dir(address)
        try:
            record = _read_file(KEY, fd)
            self._still_there(address, fd)
            return record
        except FileNotFoundError as error:
            raise self._missing(address, fd, "key record") from error
        finally:
            os.close(fd)

    def open_blob(self, address: str) -> tuple[bytes, BinaryIO]:
        """Key record and data object from one and the same directory: a blob destroyed and stored again while
        we open it can never pair one instance's key with the other's data."""
        fd = self._open_dir(address)
        try:
            try:
                record = _read_file(KEY, fd)
            except FileNotFoundError as error:
                raise self._missing(address, fd, "key record") from error
            try:
                data = os.open(DATA, os.O_RDONLY, dir_fd=fd)
            except FileNotFoundError as error:
                raise self._missing(address, fd, "data object") from error
            try:
                self._still_there(address, fd)
            except BlobNotFound:
                os.close(data)
                raise
            return record, os.fdopen(data, "rb")
        finally:
            os.close(fd)

    def addresses(self) -> Iterator[str]:
        for first in _sorted_dirs(self.objects):
            for second in _sorted_dirs(first):
                for leaf in _sorted_dirs(second):
                    if is_address(leaf.name):
                        yield leaf.name

    def is_empty(self) -> bool:
        return next(self.addresses(), None) is None

    # --- changing existing blobs ----------------------------------------------------------------------------------

    def replace_key(self, address: str, expected: bytes, record: bytes) -> bool:
        with self._locked(address) as fd:
            if fd is None:
                return False
            try:
                current = _read_file(KEY, fd)
            except FileNotFoundError:
                return False
            if current != expected:
                return False
            _write_file(KEY + ".tmp", record, dir_fd=fd)
            os.rename(KEY + ".tmp", KEY, src_dir_fd=fd, dst_dir_fd=fd)
            return True

    def touch(self, address: str) -> int | None:
        """The use stamp is the data object's mtime in nanoseconds, set explicitly and strictly increasing (file
        system clocks tick in milliseconds: two puts in the same tick must still get different stamps)."""
        with self._locked(address) as fd:
            if fd is None:
                return None
            try:
                current = os.stat(DATA, dir_fd=fd).st_mtime_ns
                stamp = max(time.time_ns(), current + 1)
                os.utime(DATA, ns=(stamp, stamp), dir_fd=fd)
            except FileNotFoundError:
                return None
            return stamp

    def delete(self, address: str, min_idle: float = 0.0, last_use: int | None = None) -> DeleteOutcome:
        """Crypto-shredding: the directory leaves the namespace at once (one rename), then the key record is
        overwritten with zeros, synced and unlinked, then the data object goes."""
        path = self.path_of(address)
        with self._locked(address) as fd:
            if fd is None:
                return DeleteOutcome.ABSENT
            if min_idle > 0 or last_use is not None:
                with contextlib.suppress(FileNotFoundError):
                    stamp = os.stat(DATA, dir_fd=fd).st_mtime_ns
                    if last_use is not None and stamp != last_use:
                        return DeleteOutcome.RECENTLY_USED
                    if time.time_ns() - stamp < min_idle * 1e9:
                        return DeleteOutcome.RECENTLY_USED
            doomed = self.tmp / f"del-{secrets.token_hex(8)}"
            os.rename(path, doomed)
            _fsync_dir(path.parent)
            _shred(doomed)
            _fsync_dir(self.tmp)
            return DeleteOutcome.DELETED

    # --- the store record -----------------------------------------------------------------------------------------

    def read_meta(self) -> bytes | None:
        try:
            return (self.root / META).read_bytes()
        except FileNotFoundError:
            return None

    def create_meta(self, record: bytes) -> bytes:
        tmp = self.root / f".{META}.{os.getpid()}.{secrets.token_hex(4)}"
        _write_file(tmp, record)
        try:
            os.link(tmp, self.root / META)  # atomic create-if-absent
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        _fsync_dir(self.root)
        return (self.root / META).read_bytes()

    def replace_meta(self, expected: bytes, record: bytes) -> bool:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if self.read_meta() != expected:
                return False
            _write_file(META + ".tmp", record, dir_fd=fd)
            os.rename(META + ".tmp", META, src_dir_fd=fd, dst_dir_fd=fd)
            os.fsync(fd)
            return True
        finally:
            os.close(fd)

    # --- housekeeping ---------------------------------------------------------------------------------------------

    def stale_pending(self, older_than: float) -> list[str]:
        """Interrupted puts untouched for ``older_than`` seconds, and interrupted destructions (``del-…``, doomed
        anyway: a minute is enough to be sure no deletion is still working on it)."""
        now = time.time()
        stale = []
        for entry in sorted(os.scandir(self.tmp), key=lambda e: e.name):
            newest = entry.stat(follow_symlinks=False).st_mtime
            with contextlib.suppress(OSError):
                newest = max(newest, os.stat(os.path.join(entry.path, DATA)).st_mtime)
            limit = min(older_than, 60.0) if entry.name.startswith("del-") else older_than
            if newest < now - limit:
                stale.append(entry.name)
        return stale

    def remove_stale_pending(self, older_than: float) -> int:
        names = self.stale_pending(older_than)
        for name in names:
            _shred(self.tmp / name)
        return len(names)

    def sync(self) -> None:
        os.sync()


class LocalPendingBlob:
    """A put in progress: ``tmp/put-…/data`` being appended to; committed by renaming the directory."""

    def __init__(self, backend: LocalDiskBackend, path: Path) -> None:
        self.backend = backend
        self.path = path
        fd = os.open(path / DATA, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self._sealed = False
        self._done = False
        self.stamp = 0

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError("write after commit or abort")
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]

    def _seal(self, key_record: bytes) -> None:
        """Make data and key record durable inside the pending directory (once)."""
        if self._file is not None:
            self.stamp = time.time_ns()  # the first use stamp, set before the blob becomes visible
            os.utime(self._file.fileno(), ns=(self.stamp, self.stamp))
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        _write_file(self.path / KEY, key_record)
        _fsync_dir(self.path)
        self._sealed = True

    def commit(self, address: str, key_record: bytes, *, replace: bool = False) -> bool:
        if self._done:
            raise RuntimeError("pending blob already committed or aborted")
        self._seal(key_record)
        target = self.backend.path_of(address)
        self.backend._ensure_dir(target.parent)
        try:
            os.rename(self.path, target)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if not replace:
                return False
            self._replace(address, target)
        _fsync_dir(target.parent)
        self._done = True
        return True

    def _replace(self, address: str, target: Path) -> None:
        with self.backend._locked(address) as fd:
            if fd is not None:
                doomed = self.backend.tmp / f"del-{secrets.token_hex(8)}"
                os.rename(target, doomed)
            else:
                doomed = None
            try:
                os.rename(self.path, target)
            except OSError as error:
                # another put of the same bytes filled the gap between the two renames: its blob stands
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                shutil.rmtree(self.path, ignore_errors=True)
        if doomed is not None:
            _shred(doomed)

    def abort(self) -> None:
        if self._done:
            return
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self.path, ignore_errors=True)
        self._done = True


def _sorted_dirs(folder: Path) -> list[Path]:
    try:
        entries = [Path(entry.path) for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    return sorted(entries)


def _shred(folder: Path) -> None:
    """Destroy a blob directory that is already out of the namespace: key record zeroed, synced, unlinked first.

    Zeroing is best effort (journaling, copy-on-write file systems and SSDs may keep old blocks); what makes the
    destruction final is that no copy of the wrapped data key remains — see docs/blob-store.md for backups.
    """
    key = folder / KEY
    with contextlib.suppress(FileNotFoundError):
        size = key.stat().st_size
        fd = os.open(key, os.O_WRONLY)
        try:
            os.write(fd, b"\0" * size)
            os.fsync(fd)
        finally:
            os.close(fd)
        key.unlink()
    shutil.rmtree(folder, ignore_errors=True)
