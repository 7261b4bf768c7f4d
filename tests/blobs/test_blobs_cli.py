"""``esante blobs …`` through typer's CliRunner, configured as an operator would: environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from esante.blobs import BlobStore
from esante.blobs.format import KeyRecord
from esante.blobs.master_keys import parse_keys
from esante.cli import app
from esante.config import load_settings
from esante.db.engine import sqlalchemy_url
from tests.blobs.conftest import blob_path

runner = CliRunner()


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A platform folder and a first master key in the environment (as ESANTE_BLOB_KEYS)."""
    monkeypatch.delenv("ESANTE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["blobs", "new-key", "--kid", "k2025"])
    assert result.exit_code == 0, result.output
    entry = result.stdout.strip()
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ESANTE_BLOB_KEYS", entry)
    return {"k2025": entry}


def _store() -> BlobStore:
    return BlobStore.from_settings(load_settings())


def test_new_key_prints_a_usable_entry() -> None:
    result = runner.invoke(app, ["blobs", "new-key", "--kid", "k1"])
    assert result.exit_code == 0
    (key,) = parse_keys(result.stdout, "output")
    assert key.kid == "k1"
    assert runner.invoke(app, ["blobs", "new-key", "--kid", "bad kid"]).exit_code == 2


def test_status_shows_keys_by_id_only(operator_env: dict[str, str]) -> None:
    _store().put(b"one")
    result = runner.invoke(app, ["blobs", "status", "--by-key"])
    assert result.exit_code == 0, result.output
    assert "active key = k2025" in result.stdout and "blobs = 1" in result.stdout
    assert "k2025\t1\tactive" in result.stdout
    assert operator_env["k2025"].split(":")[1] not in result.output
    config = runner.invoke(app, ["config"])
    assert operator_env["k2025"].split(":")[1] not in config.output and "blob_keys = ***" in config.output


def test_rotate_key_end_to_end(operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    contents = [os.urandom(5000 + i) for i in range(7)]
    addresses = [_store().put(data).address for data in contents]
    new = runner.invoke(app, ["blobs", "new-key", "--kid", "k2026"]).stdout.strip()

    monkeypatch.setenv("ESANTE_BLOB_KEYS", f"{operator_env['k2025']},{new}")
    result = runner.invoke(app, ["blobs", "rotate-key"])
    assert result.exit_code == 2 and "set blob_active_key" in result.output  # two keys: say which is active

    monkeypatch.setenv("ESANTE_BLOB_ACTIVE_KEY", "k2026")
    result = runner.invoke(app, ["blobs", "rotate-key", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "7 blobs: 7 re-wrapped, 0 already on k2026" in result.stdout
    assert "store record rotated" in result.stdout
    again = runner.invoke(app, ["blobs", "rotate-key"])
    assert again.exit_code == 0 and "0 re-wrapped, 7 already on k2026" in again.stdout

    monkeypatch.setenv("ESANTE_BLOB_KEYS", new)  # the old key retired
    monkeypatch.delenv("ESANTE_BLOB_ACTIVE_KEY")
    store = _store()
    assert [store.read_bytes(address) for address in addresses] == contents
    verified = runner.invoke(app, ["blobs", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "7 blobs fully verified" in verified.stdout and "k2026 7" in verified.stdout


def test_rotation_reports_blobs_it_cannot_unwrap(operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store()
    good = store.put(b"good").address
    bad = store.put(b"bad").address
    record = KeyRecord.decode((blob_path(store, bad) / "key").read_bytes())
    (blob_path(store, bad) / "key").write_bytes(record.__class__(**{**record.__dict__, "kid": "lost"}).encode())
    new = runner.invoke(app, ["blobs", "new-key", "--kid", "k2026"]).stdout.strip()
    monkeypatch.setenv("ESANTE_BLOB_KEYS", f"{operator_env['k2025']},{new}")
    monkeypatch.setenv("ESANTE_BLOB_ACTIVE_KEY", "k2026")
    result = runner.invoke(app, ["blobs", "rotate-key"])
    assert result.exit_code == 1
    assert f"{bad}  unknown-key" in result.stdout and "rotation incomplete" in result.output
    assert (blob_path(store, bad) / "data").exists()
    assert _store().read_bytes(good) == b"good"


def test_verify_finds_tampering(operator_env: dict[str, str]) -> None:
    store = _store()
    intact = store.put(os.urandom(100_000)).address
    damaged = store.put(os.urandom(100_000)).address
    data = blob_path(store, damaged) / "data"
    raw = bytearray(data.read_bytes())
    raw[50_000] ^= 1
    data.write_bytes(bytes(raw))
    quick = runner.invoke(app, ["blobs", "verify", "--quick"])
    assert quick.exit_code == 0, quick.output  # a flipped bit inside a segment needs the full check
    full = runner.invoke(app, ["blobs", "verify"])
    assert full.exit_code == 1
    assert f"{damaged}  damaged: segment 0 of 2 does not authenticate" in full.stdout
    assert intact not in full.stdout
    one = runner.invoke(app, ["blobs", "verify", "--address", intact])
    assert one.exit_code == 0 and "1 blobs fully verified" in one.stdout


def test_verify_reports_and_cleans_interrupted_writes(operator_env: dict[str, str]) -> None:
    store = _store()
    store.put(b"x")
    pending = store.backend.begin()
    pending.write(b"half a document")
    stale = Path(load_settings().effective_blob_dir) / "tmp"
    for path in [*stale.iterdir(), *stale.glob("*/*")]:
        os.utime(path, (1_000_000, 1_000_000))
    report = runner.invoke(app, ["blobs", "verify"])
    assert report.exit_code == 0 and "1 interrupted write(s) in tmp/" in report.stdout
    cleaned = runner.invoke(app, ["blobs", "verify", "--clean-tmp"])
    assert "1 interrupted write(s) removed" in cleaned.stdout
    assert list(stale.iterdir()) == []


def test_destroy_needs_confirmation(operator_env: dict[str, str]) -> None:
    address = _store().put(b"to be destroyed").address
    refused = runner.invoke(app, ["blobs", "destroy", address])
    assert refused.exit_code == 2 and _store().exists(address)
    done = runner.invoke(app, ["blobs", "destroy", address, "--yes"])
    assert done.exit_code == 0 and f"{address}: deleted" in done.stdout
    assert not _store().exists(address)
    again = runner.invoke(app, ["blobs", "destroy", address, "--yes"])
    assert again.exit_code == 1 and "absent" in again.stdout


def test_a_bad_key_configuration_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("ESANTE_BLOB_KEYS", "k1:tooshort")
    result = runner.invoke(app, ["blobs", "status"])
    assert result.exit_code == 2 and "an AES-256 key is 32" in result.output


def test_the_generated_development_key_is_flagged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("ESANTE_BLOB_KEYS", raising=False)
    monkeypatch.delenv("ESANTE_BLOB_KEYS_FILE", raising=False)
    result = runner.invoke(app, ["blobs", "status"])
    assert result.exit_code == 0 and "development default" in result.output


def _audit_events(db_url: str) -> list[dict[str, Any]]:
    engine = create_engine(sqlalchemy_url(db_url))
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT content FROM resource WHERE res_type = 'AuditEvent' AND is_current").all()
    engine.dispose()
    events = [orjson.loads(bytes(row[0])) for row in rows]
    return [e for e in events if e.get("subtype", [{}])[0].get("system") == "urn:esante:blob-operation"]


def test_operator_commands_are_audited(
    operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    address = _store().put(b"a document").address
    new = runner.invoke(app, ["blobs", "new-key", "--kid", "k2026"]).stdout.strip()
    monkeypatch.setenv("ESANTE_BLOB_KEYS", f"{operator_env['k2025']},{new}")
    monkeypatch.setenv("ESANTE_BLOB_ACTIVE_KEY", "k2026")
    assert runner.invoke(app, ["blobs", "rotate-key", "--db", db_url]).exit_code == 0
    assert runner.invoke(app, ["blobs", "verify", "--db", db_url]).exit_code == 0
    assert runner.invoke(app, ["blobs", "destroy", address, "--yes", "--db", db_url]).exit_code == 0
    events = {e["subtype"][0]["code"]: e for e in _audit_events(db_url)}
    assert sorted(events) == ["destroy", "rotate-key", "verify"]
    rotation = events["rotate-key"]
    details = {d["type"]: d["valueString"] for d in rotation["entity"][0]["detail"]}
    assert rotation["type"]["code"] == "110113" and rotation["outcome"] == "0"
    assert details["active-key"] == "k2026" and details["rotated"] == "1"
    assert events["destroy"]["action"] == "D" and events["destroy"]["entity"][0]["what"]["display"] == f"blob {address}"
    assert all(e["agent"][0]["who"]["identifier"]["system"] == "urn:esante:operator" for e in events.values())
    dumped = orjson.dumps(list(events.values()))
    assert operator_env["k2025"].split(":")[1].encode() not in dumped and new.split(":")[1].encode() not in dumped
