"""The real application under uvicorn on a loopback port, in a background thread (external clients' tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from esante.app import Platform, create_app
from esante.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command_env(monkeypatch: pytest.MonkeyPatch, var_dir: Path) -> int:
    """The environment of an ``esante serve`` subprocess on a free loopback port (returned), its own var folder, no
    warm-up and no configuration file of the developer's."""
    port = free_port()
    monkeypatch.setenv("ESANTE_VAR_DIR", str(var_dir))
    monkeypatch.setenv("ESANTE_PORT", str(port))
    monkeypatch.setenv("ESANTE_WARM_UP", "false")
    monkeypatch.delenv("ESANTE_CONFIG", raising=False)
    return port


def loopback_settings(**values: object) -> Settings:
    """Settings for a server on a free loopback port (tokens' audience and issuer follow the port)."""
    return Settings(host="127.0.0.1", port=free_port(), warm_up=False, **values)  # type: ignore[arg-type]


@contextmanager
def serve(settings: Settings, platform: Platform | None = None) -> Iterator[str]:
    """Run the app for ``settings`` until the block ends; yields the FHIR base URL."""
    app = create_app(settings, platform)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.port}/fhir"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("the test server did not start")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
