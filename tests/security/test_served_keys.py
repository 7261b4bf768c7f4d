"""A served platform and the operator's CLI share the key folder: the CLI's token verifies with the served JWKS,
and a rotation done with the CLI is published by the running server without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from typer.testing import CliRunner

from esante.cli import app
from tests.live_server import serve_command_env


def test_cli_tokens_verify_against_the_served_jwks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = serve_command_env(monkeypatch, tmp_path / "var")
    monkeypatch.chdir(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "esante.cli", "serve"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    try:
        for _ in range(150):
            try:
                if httpx.get(url).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        served = httpx.get(url).json()
        (kid,) = [key["kid"] for key in served["keys"]]
        assert (tmp_path / "var" / "keys" / f"{kid}.pem").exists()  # created by `esante serve` at start

        result = CliRunner().invoke(app, ["token", "--as", "patient:p-9"])
        assert result.exit_code == 0, result.output
        token = jwt.decode(result.stdout.strip(), KeySet.import_key_set(served), algorithms=["ES256"])
        assert token.header["kid"] == kid and token.claims["sub"] == "patient:p-9"
        assert token.claims["aud"] == f"http://127.0.0.1:{port}/fhir"

        rotated = CliRunner().invoke(app, ["keys", "rotate"])
        assert rotated.exit_code == 0, rotated.output
        published = {key["kid"] for key in httpx.get(url).json()["keys"]}
        assert published == {kid, rotated.stdout.strip()}
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
