"""The esante command line: help, database upgrade and a served platform, with shared configuration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from esante.cli import app
from esante.config import load_settings
from esante.db.migrate import current


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db", "config", "audit"):
        assert command in result.output


def test_db_upgrade_uses_env_configuration(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "esante.sqlite3").exists()
    assert current(load_settings().effective_database_url) == "0015"


def test_config_file_and_precedence(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "esante.toml"
    config.write_text('port = 9000\nvar_dir = "/srv/esante"\nmax_body_bytes = 1000\n')
    monkeypatch.setenv("ESANTE_CONFIG", str(config))
    monkeypatch.setenv("ESANTE_PORT", "9100")
    settings = load_settings()
    assert settings.port == 9100 and settings.max_body_bytes == 1000
    assert settings.effective_database_url == "sqlite:////srv/esante/esante.sqlite3"
    assert load_settings(port=9200).port == 9200
    masked = CliRunner().invoke(app, ["config", "--db", "postgresql://u:secret@h/db"])
    assert "secret" not in masked.output and "u:***@h/db" in masked.output


def test_serve_starts_with_demo_data_and_prints_the_base_url(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, ESANTE_VAR_DIR=str(tmp_path / "var"))
    elsewhere = tmp_path / "elsewhere" / "platform.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "esante.cli", "serve", "--port", str(port), "--demo", "--db", f"sqlite:///{elsewhere}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/fhir"
        for _ in range(150):
            try:
                if httpx.get(f"{base}/metadata").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/Patient").status_code == 401, "no token, no data"
        # the token the server printed how to get: the demo integrator's, minted by the operator's CLI
        minted = subprocess.run(
            [
                sys.executable,
                "-m",
                "esante.cli",
                "token",
                "--as",
                "system:demo-integrator",
                "--db",
                f"sqlite:///{elsewhere}",
            ],
            env=dict(env, ESANTE_PORT=str(port)),
            capture_output=True,
            text=True,
            check=True,
        )
        auth = {"Authorization": f"Bearer {minted.stdout.strip()}"}
        assert httpx.get(f"{base}/Patient?_summary=count", headers=auth).json()["total"] == 20
        assert httpx.get(f"{base}/DocumentReference", headers=auth).json()["total"] == 1
        # the demo directory (HPD import): Dr Claire Demo and 60 synthetic professionals; her observations name her
        assert httpx.get(f"{base}/Practitioner?_summary=count", headers=auth).json()["total"] == 61
        claire = httpx.get(f"{base}/Practitioner?family=demo", headers=auth).json()["entry"][0]["resource"]
        mine = httpx.get(f"{base}/Observation?performer=Practitioner/{claire['id']}&_summary=count", headers=auth)
        assert mine.json()["total"] == 40
        # the README's example search finds demo patients
        found = httpx.get(f"{base}/Patient?address-city=luxembourg&_sort=family&_count=5", headers=auth).json()
        assert found["total"] == 4
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert base in output and "esante token --as system:demo-integrator" in output
    # the served app used the --db given on the command line, not the default under var/
    assert elsewhere.exists() and not (tmp_path / "var" / "esante.sqlite3").exists()
    assert (tmp_path / "var" / "blobs").is_dir()
