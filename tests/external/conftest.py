"""A real server: uvicorn on a loopback port, in a background thread, on both database backends."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from esante.app import create_app
from esante.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """Base URL (…/fhir) of a running server; stopped after the test."""
    port = _free_port()
    settings = Settings(var_dir=tmp_path, database_url=db_url, host="127.0.0.1", port=port, warm_up=False)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("the test server did not start")
    yield base
    server.should_exit = True
    thread.join(timeout=10)
