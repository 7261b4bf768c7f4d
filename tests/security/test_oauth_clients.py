"""The OAuth client registry: registration rules (keys, grants, scopes, redirect URIs), the store on both databases,
and the operator's `esante clients` commands."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey
from typer.testing import CliRunner

from esante.cli import app
from esante.db.engine import Database
from esante.security.oauth.client_store import ClientStore
from esante.security.oauth.clients import (
    ClientError,
    ClientKind,
    ClientStatus,
    Registration,
    build_client,
    jwks_from_pem,
    parse_jwks,
)

NOW = 1_800_000_000


def ec_jwks(curve: str = "P-384", **extra: str) -> dict[str, object]:
    key = ECKey.generate_key(curve)
    return {"keys": [{**key.as_dict(private=False), **extra}]}


def system(**overrides: object) -> Registration:
    values: dict[str, object] = {
        "client_id": "lab-1",
        "name": "Laboratoire Réunis",
        "kind": "laboratory",
        "jwks": parse_jwks(json.dumps(ec_jwks())),
        "scopes": "system/Observation.cruds system/Patient.rs",
        "organization": "Organization/lab-1",
    }
    values.update(overrides)
    return Registration(**values)  # type: ignore[arg-type]


def app_client(**overrides: object) -> Registration:
    values: dict[str, object] = {
        "client_id": "portal",
        "name": "Portail patient",
        "kind": "app",
        "public": True,
        "redirect_uris": ("https://portal.example.lu/callback",),
        "scopes": "patient/*.rs user/*.rs launch/patient openid fhirUser offline_access",
    }
    values.update(overrides)
    return Registration(**values)  # type: ignore[arg-type]


# --- pure validation ----------------------------------------------------------------------------------------------


def test_a_system_client_defaults_to_client_credentials_with_private_key_jwt() -> None:
    client = build_client(system(), NOW)
    assert client.kind is ClientKind.LABORATORY and client.status is ClientStatus.ACTIVE
    assert client.grant_types == ("client_credentials",) and client.auth_method == "private_key_jwt"
    assert not client.public and client.subject_organization == "Organization/lab-1"
    assert client.scopes == "system/Observation.cruds system/Patient.rs"


def test_a_public_app_uses_authorization_code_only() -> None:
    client = build_client(app_client(), NOW)
    assert client.public and client.auth_method == "none" and client.jwks is None
    assert client.grant_types == ("authorization_code", "refresh_token")


def test_pem_public_keys_become_a_jwks_with_the_thumbprint_as_kid() -> None:
    rsa = RSAKey.generate_key(2048)
    jwks = jwks_from_pem(rsa.as_pem(private=False))
    assert jwks["keys"][0]["kid"] == rsa.thumbprint() and jwks["keys"][0]["kty"] == "RSA"
    ec = ECKey.generate_key("P-256")
    assert jwks_from_pem(ec.as_pem(private=False))["keys"][0]["kid"] == ec.thumbprint()


def test_a_jwks_keeps_given_kids_and_names_the_thumbprint_otherwise() -> None:
    given = parse_jwks(json.dumps(ec_jwks(kid="key-2026", alg="ES384", use="sig")))
    assert given["keys"][0]["kid"] == "key-2026" and given["keys"][0]["alg"] == "ES384"
    key = ECKey.generate_key("P-256")
    single = parse_jwks(json.dumps(key.as_dict(private=False)))  # a bare JWK is accepted too
    assert single["keys"][0]["kid"] == key.thumbprint()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RSAKey.generate_key(1024).as_pem(private=False), "at least 2048 bits"),
        (lambda: ECKey.generate_key("P-521").as_pem(private=False), "P-256 or P-384"),
        (lambda: ECKey.generate_key("P-256").as_pem(private=True), "private key"),
        (lambda: b"not a key", "not a PEM public key"),
    ],
)
def test_weak_or_wrong_pem_keys_are_refused(make: object, message: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = make()  # type: ignore[operator]
    with pytest.raises(ClientError, match=message):
        jwks_from_pem(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"keys": []}', "no key"),
        (json.dumps({"keys": [ECKey.generate_key("P-256").as_dict(private=True)]}), "private key material"),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}), "private key material"),
        (
            json.dumps(
                {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}
            ),
            "not accepted",
        ),
        (json.dumps(ec_jwks(alg="RS256")), "does not fit"),
        (json.dumps(ec_jwks(use="enc")), "use must be 'sig'"),
        (json.dumps({"keys": [*ec_jwks(kid="a")["keys"], *ec_jwks(kid="a")["keys"]]}), "share a kid"),  # type: ignore[misc]
    ],
)
def test_bad_jwks_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ClientError, match=message):
        parse_jwks(text)


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        (lambda: system(client_id="bad id"), "client id"),
        (lambda: system(kind="insurer"), "kind 'insurer'"),
        (lambda: system(jwks=None), "needs its public keys"),
        (lambda: system(scopes=""), "at least one scope"),
        (lambda: system(scopes="patient/*.rs"), "need authorization_code"),
        (lambda: system(scopes="system/Observation.rx"), "invalid scope"),
        (lambda: system(scopes="system/*.rs admin"), "unknown scope 'admin'"),
        (lambda: system(grant_types=("password",)), "grant 'password'"),
        (lambda: system(grant_types=("authorization_code",), scopes="user/*.rs"), "needs at least one redirect"),
        (lambda: app_client(scopes="system/*.rs"), "need the client_credentials"),
        (lambda: app_client(grant_types=("client_credentials",), scopes="system/*.rs"), "public client cannot"),
        (
            lambda: app_client(
                public=False,
                jwks=parse_jwks(json.dumps(ec_jwks())),
                grant_types=("client_credentials",),
                redirect_uris=(),
                scopes="system/*.rs",
            ),
            "not for kind 'app'",
        ),
        (lambda: app_client(jwks=parse_jwks(json.dumps(ec_jwks()))), "public client has no keys"),
        (lambda: app_client(redirect_uris=()), "needs at least one redirect"),
        (lambda: app_client(redirect_uris=("http://portal.example.lu/cb",)), "only allowed on the loopback"),
        (lambda: app_client(redirect_uris=("https://portal.example.lu/cb#x",)), "without fragment"),
        (lambda: app_client(redirect_uris=("myapp:/cb",)), "private-use scheme"),
        (lambda: app_client(grant_types=("refresh_token",)), "only issued with authorization_code"),
    ],
)
def test_registrations_that_break_a_rule_are_refused(registration: object, message: str) -> None:
    with pytest.raises(ClientError, match=message):
        build_client(registration(), NOW)  # type: ignore[operator]


def test_loopback_and_private_use_redirect_uris_are_accepted() -> None:
    uris = ("http://127.0.0.1:8765/cb", "http://localhost/cb", "lu.esante.app:/oauth")
    assert build_client(app_client(redirect_uris=uris), NOW).redirect_uris == uris


# --- store ----------------------------------------------------------------------------------------------------------


async def test_the_store_registers_reads_suspends_and_reactivates(database: Database) -> None:
    store = ClientStore(database)
    client = await store.register(build_client(system(), NOW))
    assert await store.get("lab-1") == client
    with pytest.raises(ClientError, match="already registered"):
        await store.register(build_client(system(name="Other"), NOW))
    assert (await store.get("lab-1")).name == "Laboratoire Réunis"  # type: ignore[union-attr]
    await store.register(build_client(app_client(), NOW))
    assert [c.client_id for c in await store.list()] == ["lab-1", "portal"]
    assert await store.get("nobody") is None

    async with database.transaction() as conn:
        await conn.execute(
            "INSERT INTO oauth_refresh_token (token_hash, family, client_id, account_id, scope, subject_role, "
            "expires_at, revoked, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("a" * 64, "fam", "portal", "acc-1", "patient/*.rs offline_access", "patient", NOW + 99, False, NOW),
        )
    suspended = await store.suspend("portal", NOW + 10)
    assert suspended.status is ClientStatus.SUSPENDED and suspended.tokens_valid_after == NOW + 11
    async with database.read() as conn:
        assert bool(await conn.fetchval("SELECT revoked FROM oauth_refresh_token WHERE family = 'fam'"))
    again = await store.reactivate("portal", NOW + 20)
    assert again.status is ClientStatus.ACTIVE and again.tokens_valid_after == NOW + 11
    with pytest.raises(ClientError, match="no client"):
        await store.suspend("nobody", NOW)
    with pytest.raises(ClientError, match="no client"):
        await store.reactivate("nobody", NOW)


# --- CLI --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESANTE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("ESANTE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_registers_lists_suspends_and_reactivates(db_url: str, cli_env: Path) -> None:
    rsa = RSAKey.generate_key(2048)
    pem = cli_env / "lab.pem"
    pem.write_bytes(rsa.as_pem(private=False))
    code, out, err = cli(
        "clients", "register", "--id", "lab-2", "--name", "Labo", "--kind", "laboratory", "--public-key", str(pem),
        "--scope", "system/Observation.cruds", "--scope", "system/Patient.rs", "--organization", "Organization/lab",
        "--db", db_url,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "lab-2" and rsa.thumbprint() in err

    jwks = cli_env / "app.jwks"
    jwks.write_text(json.dumps(ec_jwks("P-256")))
    code, out, err = cli(
        "clients", "register", "--id", "ehr", "--name", "Hospital EHR", "--kind", "hospital", "--jwks", str(jwks),
        "--redirect-uri", "https://ehr.example.lu/cb", "--grant", "authorization_code", "--grant",
        "client_credentials", "--scope", "user/*.cruds system/*.rs", "--db", db_url,
    )  # fmt: skip
    assert code == 0, err

    code, out, _ = cli("clients", "list", "--db", db_url)
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert lines[0][0] == "client_id"
    rows = {row[0]: row for row in lines[1:]}
    assert rows["lab-2"][1:5] == ["laboratory", "active", "private_key_jwt", "client_credentials"]
    assert rows["lab-2"][5] == "system/Observation.cruds system/Patient.rs" and rows["lab-2"][6] == "Organization/lab"
    assert rows["ehr"][4] == "authorization_code,client_credentials"

    code, out, _ = cli("clients", "suspend", "lab-2", "--db", db_url)
    assert code == 0 and "suspended" in out
    code, out, _ = cli("clients", "list", "--db", db_url)
    assert "lab-2\tlaboratory\tsuspended" in out
    code, out, _ = cli("clients", "reactivate", "lab-2", "--db", db_url)
    assert code == 0 and "active" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "laboratory", "--scope", "system/*.rs"], "needs its public keys"),
        (["--kind", "laboratory", "--public-key", "missing.pem", "--scope", "system/*.rs"], "cannot read"),
        (["--kind", "wizard", "--public", "--scope", "user/*.rs"], "kind 'wizard'"),
        (
            ["--kind", "app", "--public", "--redirect-uri", "https://a.example/cb", "--scope", "patient/*.xyz"],
            "invalid scope",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(db_url: str, cli_env: Path, args: list[str], message: str) -> None:
    code, out, err = cli("clients", "register", "--id", "x", "--name", "X", *args, "--db", db_url)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli("clients", "list", "--db", db_url)
    assert out.strip().splitlines()[1:] == []  # nothing was stored


def test_cli_duplicate_and_unknown_clients_exit_2(db_url: str, cli_env: Path) -> None:
    args = ["clients", "register", "--id", "p", "--name", "P", "--kind", "app", "--public",
            "--redirect-uri", "https://a.example/cb", "--scope", "patient/*.rs", "--db", db_url]  # fmt: skip
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 2 and "already registered" in err
    code, _, err = cli("clients", "suspend", "nobody", "--db", db_url)
    assert code == 2 and "no client 'nobody'" in err
