"""`esante keys list|rotate` and `esante token`: the server's configuration (env vars, TOML file) and key folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esante.cli import app
from esante.config import Settings, load_settings
from esante.security.keys import KeyRing
from esante.security.tokens import Reason, TokenError, verify
from tests.auth import register_client


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("ESANTE_VAR_DIR", str(folder))
    monkeypatch.delenv("ESANTE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./esante.toml
    return folder


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def server_verify(token: str) -> object:
    settings = load_settings()
    ring = KeyRing.load_or_create(settings)
    return verify(ring, token, audience=settings.effective_audience, issuer=settings.effective_issuer)


def test_help_lists_the_new_commands() -> None:
    output = CliRunner().invoke(app, ["--help"]).output
    assert "keys" in output and "token" in output


def test_keys_list_creates_and_lists_the_first_key(var_dir: Path) -> None:
    lines = run("keys", "list").splitlines()
    assert lines[0].split("\t") == ["kid", "alg", "state", "created", "published_until"]
    kid, alg, state, _created, until = lines[1].split("\t")
    assert (alg, state, until) == ("ES256", "signing", "-")
    assert (var_dir / "keys" / f"{kid}.pem").exists()


def test_keys_rotate_retires_the_previous_key(var_dir: Path) -> None:
    first = run("keys", "list").splitlines()[1].split("\t")[0]
    new = run("keys", "rotate").strip()
    rows = {line.split("\t")[0]: line.split("\t") for line in run("keys", "list").splitlines()[1:]}
    assert rows[new][2] == "signing" and rows[first][2] == "retired" and rows[first][4] != "-"
    rsa = run("keys", "rotate", "--alg", "RS256").strip()
    assert KeyRing.load_or_create(load_settings()).signing_key().kid == rsa
    assert CliRunner().invoke(app, ["keys", "rotate", "--alg", "HS256"]).exit_code == 2


def test_token_for_a_patient_verifies_with_the_server_configuration(var_dir: Path) -> None:
    token = run("token", "--as", "patient:p-1").strip()
    claims = server_verify(token)
    assert claims.subject == "patient:p-1" and claims.scope == "patient/*.rs"  # type: ignore[attr-defined]
    assert claims.iua.person_id == "p-1"  # type: ignore[attr-defined]
    assert claims.expires_at - claims.issued_at == 3600  # type: ignore[attr-defined]


def test_token_options(var_dir: Path) -> None:
    token = run(
        "token",
        "--as",
        "professional:2854-9",
        "--scope",
        "user/Patient.rs openid",
        "--ttl",
        "120",
        "--purpose",
        "ETREAT",
    ).strip()
    claims = server_verify(token)
    assert claims.scope == "user/Patient.rs openid"  # type: ignore[attr-defined]
    assert claims.expires_at - claims.issued_at == 120  # type: ignore[attr-defined]
    assert claims.to_caller().purpose_of_use == "ETREAT"  # type: ignore[attr-defined]
    other = run("token", "--as", "staff:bob", "--role", "statistician", "--aud", "https://elsewhere.example/fhir")
    with pytest.raises(TokenError) as refused:
        server_verify(other.strip())
    assert refused.value.reason is Reason.WRONG_AUDIENCE


def test_system_tokens_need_a_registered_client_and_stay_within_its_scopes(var_dir: Path) -> None:
    failed = CliRunner().invoke(app, ["token", "--as", "system:lab"])
    assert failed.exit_code == 2 and "not registered" in failed.output
    asyncio.run(_register(load_settings(), "lab", "system/Observation.cruds system/Patient.rs"))
    system = server_verify(run("token", "--as", "system:lab").strip())
    assert system.client_id == "lab" and system.scope == "system/Observation.cruds system/Patient.rs"  # type: ignore[attr-defined]
    narrowed = server_verify(run("token", "--as", "system:lab", "--scope", "system/Patient.r").strip())
    assert narrowed.scope == "system/Patient.r"  # type: ignore[attr-defined]
    wider = CliRunner().invoke(app, ["token", "--as", "system:lab", "--scope", "system/Patient.cruds"])
    assert wider.exit_code == 2 and "system/Patient.cruds" in wider.output
    asyncio.run(_register(load_settings(), "lab", "system/*.rs", status="suspended"))
    assert CliRunner().invoke(app, ["token", "--as", "system:lab"]).exit_code == 2


def test_staff_tokens_carry_roles(var_dir: Path) -> None:
    assert CliRunner().invoke(app, ["token", "--as", "staff:alice"]).exit_code == 2, "roles are required"
    assert CliRunner().invoke(app, ["token", "--as", "staff:alice", "--role", "king"]).exit_code == 2
    assert CliRunner().invoke(app, ["token", "--as", "patient:p", "--role", "administrator"]).exit_code == 2
    claims = server_verify(run("token", "--as", "staff:alice", "--role", "administrator").strip())
    assert claims.to_caller().attributes["roles"] == ("administrator",)  # type: ignore[attr-defined]


async def _register(settings: Settings, client_id: str, scopes: str, status: str = "active") -> None:
    from esante.db.engine import create_database
    from esante.db.migrate import upgrade

    upgrade(settings.effective_database_url)
    database = create_database(settings.effective_database_url, pool_size=1)
    await database.connect()
    try:
        await register_client(database, client_id, scopes, status=status)
    finally:
        await database.close()


def test_token_follows_the_configuration_file_and_env(
    var_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "esante.toml"
    config.write_text('base_url = "https://esante.example/fhir"\ntoken_ttl = 900\nsigning_alg = "RS256"\n')
    monkeypatch.setenv("ESANTE_CONFIG", str(config))
    monkeypatch.setenv("ESANTE_TOKEN_ISSUER", "https://auth.esante.example")
    token = run("token", "--as", "patient:p-2").strip()
    settings = load_settings()
    ring = KeyRing.load_or_create(settings)
    claims = verify(ring, token, audience="https://esante.example/fhir", issuer="https://auth.esante.example")
    assert claims.expires_at - claims.issued_at == 900
    assert ring.signing_key().alg == "RS256"
    # --config on the command line: same file
    monkeypatch.delenv("ESANTE_CONFIG")
    again = run("token", "--as", "patient:p-2", "--config", str(config)).strip()
    assert verify(ring, again, audience="https://esante.example/fhir", issuer="https://auth.esante.example")


@pytest.mark.parametrize(
    "args",
    [
        ["--as", "doctor:x"],
        ["--as", "patient:a b"],
        ["--as", "patient:p", "--scope", "patient/Observation.xyz"],
        ["--as", "patient:p", "--ttl", "0"],
        ["--as", "patient:p", "--ttl", "999999"],
    ],
)
def test_token_refuses_bad_input(var_dir: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["token", *args])
    assert result.exit_code == 2 and "error:" in result.output


def test_unsafe_key_configuration_is_reported(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESANTE_KEY_GRACE_PERIOD", "60")
    result = CliRunner().invoke(app, ["token", "--as", "patient:p"])
    assert result.exit_code == 2 and "key_grace_period" in result.output
    assert not (var_dir / "keys").exists()
