"""The async API as the DSP will use it: a request body streamed into the store, a blob streamed out as the
response (ITI-68 style), over a real uvicorn server on loopback. Errors known before the first byte become a
status; damage found mid-stream cuts the response short, never sends a wrong byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from esante.blobs import (
    AsyncBlobStore,
    BlobIntegrityError,
    BlobMismatchError,
    BlobNotFound,
    BlobStore,
    BlobTooLargeError,
)
from tests.blobs.conftest import SMALL_SEGMENT, blob_path, pending_entries, stored_addresses
from tests.live_server import free_port

LIMIT = 8 * 1024 * 1024


def blob_app(blobs: AsyncBlobStore) -> Starlette:
    async def upload(request: Request) -> Response:
        try:
            info = await blobs.put(
                request.stream(), max_bytes=LIMIT, expected_sha1=request.headers.get("x-expected-sha1")
            )
        except BlobTooLargeError as error:
            return JSONResponse({"error": str(error)}, status_code=413)
        except BlobMismatchError as error:
            return JSONResponse({"error": str(error)}, status_code=422)
        return JSONResponse({"address": info.address, "size": info.size, "sha1": info.sha1, "sha256": info.sha256})

    async def download(request: Request) -> Response:
        try:
            stream = await blobs.open(request.path_params["address"])
        except BlobNotFound:
            return JSONResponse({"error": "not found"}, status_code=404)
        except BlobIntegrityError as error:
            return JSONResponse({"error": str(error)}, status_code=500)
        headers = {"Content-Length": str(stream.info.size)}
        return StreamingResponse(stream, media_type="application/pdf", headers=headers)

    return Starlette(routes=[Route("/blobs", upload, methods=["POST"]), Route("/blobs/{address}", download)])


@pytest.fixture
def served(small_store: BlobStore) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(blob_app(AsyncBlobStore(small_store)), port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _chunks(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_streamed_upload_and_download(served: str, small_store: BlobStore, root: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 11)
    with httpx.Client(base_url=served, timeout=30) as http:
        response = http.post(
            "/blobs", content=_chunks(data), headers={"x-expected-sha1": hashlib.sha1(data).hexdigest()}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["size"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
        received = bytearray()
        with http.stream("GET", f"/blobs/{body['address']}") as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(len(data))
            for piece in download.iter_bytes():
                received += piece
        assert bytes(received) == data
        assert http.get(f"/blobs/{'0' * 64}").status_code == 404
    assert pending_entries(root) == []


def test_refused_uploads_store_nothing(served: str, root: Path) -> None:
    with httpx.Client(base_url=served, timeout=30) as http:
        too_big = http.post("/blobs", content=_chunks(b"x" * (LIMIT + 1), 64 * 1024))
        assert too_big.status_code == 413
        wrong = http.post(
            "/blobs", content=b"%PDF-1.4", headers={"x-expected-sha1": hashlib.sha1(b"other").hexdigest()}
        )
        assert wrong.status_code == 422 and "SHA-1" in wrong.json()["error"]
    assert stored_addresses(root) == [] and pending_entries(root) == []


def test_damage_found_before_streaming_is_a_status(served: str, small_store: BlobStore) -> None:
    info = small_store.put(os.urandom(50_000))
    data = blob_path(small_store, info.address) / "data"
    with data.open("r+b") as handle:
        handle.truncate(data.stat().st_size - 1)
    response = httpx.get(f"{served}/blobs/{info.address}", timeout=30)
    assert response.status_code == 500 and "truncated or extended" in response.json()["error"]


def test_damage_found_mid_stream_cuts_the_response(served: str, small_store: BlobStore) -> None:
    content = os.urandom(200 * SMALL_SEGMENT)  # 800 KiB: the first 16-segment batch is sent before the damage
    info = small_store.put(content)
    path = blob_path(small_store, info.address) / "data"
    raw = bytearray(path.read_bytes())
    raw[20 + 100 * (SMALL_SEGMENT + 16) + 5] ^= 0xFF  # inside segment 100
    path.write_bytes(bytes(raw))
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", f"{served}/blobs/{info.address}") as response:
        assert response.status_code == 200
        for piece in response.iter_bytes():
            received += piece
    assert 0 < len(received) <= 100 * SMALL_SEGMENT
    assert bytes(received) == content[: len(received)]


async def test_async_api_directly(small_store: BlobStore) -> None:
    blobs = AsyncBlobStore(small_store)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(300):
            yield b"0123456789" * 700  # 7 KB chunks: not aligned on segments nor on the 1 MiB batches

    info = await blobs.put(body(), expected_size=2_100_000)
    assert info.size == 2_100_000
    assert await blobs.exists(info.address)
    assert await blobs.stat(info.address) == info
    async with await blobs.open(info.address) as stream:
        assert stream.info == info
        total = 0
        async for chunk in stream:
            assert len(chunk) <= 16 * SMALL_SEGMENT
            total += len(chunk)
    assert total == info.size
    assert await blobs.read_bytes(info.address) == b"0123456789" * 700 * 300
    empty = await blobs.put(b"")
    assert [chunk async for chunk in await blobs.open(empty.address)] == []
    with pytest.raises(BlobMismatchError):
        await blobs.put([b"abc"], expected_size=4)
    assert (await blobs.delete(info.address)).value == "deleted"
    with pytest.raises(BlobNotFound):
        await blobs.open(info.address)


async def test_an_abandoned_upload_leaves_nothing(small_store: BlobStore, root: Path) -> None:
    blobs = AsyncBlobStore(small_store)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 100_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await blobs.put(broken())
    assert pending_entries(root) == [] and stored_addresses(root) == []
