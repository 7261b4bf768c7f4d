"""The blob store for the ASGI app: the same operations, awaited, with the disk and the CPU work in threads.

Typical use by the DSP (ITI-65 then ITI-68)::

    blobs = AsyncBlobStore.from_settings(settings)
    info = await blobs.put(request.stream(), max_bytes=..., expected_size=size, expected_sha1=attachment_hash)
    # ... store the DocumentReference pointing at info.address, in the same request ...
    stream = await blobs.open(address)          # raises BlobNotFound / BlobKeyError / BlobIntegrityError here
    return StreamingResponse(stream, headers={"Content-Length": str(stream.info.size)})
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType

from esante.blobs.backend import DeleteOutcome
from esante.blobs.store import READ_BATCH_SEGMENTS, BlobInfo, BlobReader, BlobStore, BlobWriter
from esante.config import Settings

WRITE_BATCH_BYTES = 1024 * 1024  # bytes gathered (as a list of chunks, never joined) before one thread hop


class AsyncBlobStore:
    """Awaitable front of a :class:`BlobStore` (every blocking call runs in ``asyncio.to_thread``)."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncBlobStore:
        return cls(BlobStore.from_settings(settings))

    async def put(
        self,
        stream: AsyncIterable[bytes] | Iterable[bytes] | bytes,
        *,
        max_bytes: int | None = None,
        expected_size: int | None = None,
        expected_sha1: str | None = None,
    ) -> BlobInfo:
        """Store a stream; size, SHA-1 and SHA-256 computed in the same pass as the encryption.

        ``expected_size``/``expected_sha1`` (hex or base64, as in MHD ``attachment.hash``) are checked before
        anything becomes visible: a mismatch raises :class:`BlobMismatchError` and stores nothing.
        """
        writer: BlobWriter = await asyncio.to_thread(self.store.writer, max_bytes=max_bytes)
        try:
            parts: list[bytes] = []
            gathered = 0
            async for chunk in _aiter(stream):
                parts.append(chunk)
                gathered += len(chunk)
                if gathered >= WRITE_BATCH_BYTES:
                    await asyncio.to_thread(writer.write_many, parts)
                    parts, gathered = [], 0
            if parts:
                await asyncio.to_thread(writer.write_many, parts)
            return await asyncio.to_thread(writer.finish, expected_size=expected_size, expected_sha1=expected_sha1)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(writer.abort))
            raise

    async def open(self, address: str) -> BlobStream:
        """An async iterator of the plaintext (one chunk per segment), after every up-front check passed."""
        reader = await asyncio.to_thread(self.store.open, address)
        return BlobStream(reader)

    async def read_bytes(self, address: str) -> bytes:
        return await asyncio.to_thread(self.store.read_bytes, address)

    async def stat(self, address: str) -> BlobInfo:
        return await asyncio.to_thread(self.store.stat, address)

    async def exists(self, address: str) -> bool:
        return await asyncio.to_thread(self.store.exists, address)

    async def delete(self, address: str, *, min_idle: float = 0.0, last_use: int | None = None) -> DeleteOutcome:
        """Crypto-shred a blob; see :meth:`BlobStore.delete` for ``min_idle`` and ``last_use``."""
        return await asyncio.to_thread(self.store.delete, address, min_idle=min_idle, last_use=last_use)


class BlobStream:
    """Plaintext chunks of one blob for a streaming response; ``info`` gives the size for Content-Length.

    A segment that fails authentication raises :class:`BlobIntegrityError` before its bytes are yielded (the
    response is then cut short; with a Content-Length the client sees an incomplete body, never wrong bytes).
    """

    def __init__(self, reader: BlobReader, batch_segments: int = READ_BATCH_SEGMENTS) -> None:
        self._reader = reader
        self.info = reader.info
        self._batch = batch_segments
        self._ready: deque[bytes] = deque()  # decrypted segments not yet handed out (one batch at most)
        self._done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if not self._ready and not self._done:
            try:
                self._ready.extend(await asyncio.to_thread(self._reader.read_segments, self._batch))
            except BaseException:
                await self.aclose()
                raise
            if not self._ready:
                await self.aclose()
        if not self._ready:
            raise StopAsyncIteration
        return self._ready.popleft()

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            await asyncio.to_thread(self._reader.close)

    async def __aenter__(self) -> BlobStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()


async def _aiter(stream: AsyncIterable[bytes] | Iterable[bytes] | bytes) -> AsyncIterator[bytes]:
    if isinstance(stream, bytes | bytearray | memoryview):
        if stream:
            yield bytes(stream)
        return
    if isinstance(stream, AsyncIterable):
        async for chunk in stream:
            if chunk:
                yield chunk
        return
    for chunk in stream:
        if chunk:
            yield chunk
