"""`esante accounts …`: operators' commands on the configured database (a fresh var/ is migrated first)."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from esante.cli import app
from esante.config import load_settings
from esante.db.engine import create_database
from esante.db.migrate import upgrade
from tests.security.accounts_support import EHEALTH_ID, MATRICULE, add_patient, add_practitioner

CODE = re.compile(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("ESANTE_VAR_DIR", str(folder))
    monkeypatch.delenv("ESANTE_CONFIG", raising=False)
    monkeypatch.delenv("ESANTE_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return folder


def seed(*patients: str, practitioner: str | None = None) -> None:
    """FHIR resources in the configured (SQLite) database, for the link checks."""
    url = load_settings().effective_database_url
    upgrade(url)

    async def run() -> None:
        database = create_database(url)
        await database.connect()
        try:
            for patient in patients:
                await add_patient(database, patient)
            if practitioner:
                await add_practitioner(database, practitioner)
        finally:
            await database.close()

    asyncio.run(run())


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["accounts", *args])


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def refused(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def create_patient(username: str = "alice", patient: str = "p-1") -> tuple[str, str]:
    """(account id, letter text)"""
    output = ok(
        "create",
        "--kind",
        "patient",
        "--username",
        username,
        "--patient",
        patient,
        "--matricule",
        MATRICULE,
        "--email",
        f"{username}@example.lu",
        "--name",
        "Alice Muller",
    )
    account_id, letter = output.split("\n", 1)
    assert UUID.match(account_id)
    return account_id, letter


def test_help_lists_the_account_commands() -> None:
    output = CliRunner().invoke(app, ["accounts", "--help"]).stdout
    for command in ("create", "list", "suspend", "reactivate", "close", "unlock", "activation-letter", "reset-code"):
        assert command in output
    assert "delegate" in output and "undelegate" in output


def test_fresh_var_dir_is_migrated_and_a_missing_patient_refused(var_dir: Path) -> None:
    message = refused("create", "--kind", "patient", "--username", "alice", "--patient", "p-1", "--email", "a@x.lu")
    assert message == "error: there is no Patient/p-1 in the store"
    assert (var_dir / "esante.sqlite3").exists()
    assert "0 account(s)" in invoke("list").stderr


def test_create_prints_the_id_and_the_letter(var_dir: Path) -> None:
    seed("p-1", "p-2", practitioner="pr-1")
    account_id, letter = create_patient()
    assert "Dear Alice Muller" in letter and "Username:     alice" in letter and CODE.search(letter)
    assert "Valid until:" in letter
    html = ok(
        "create",
        "--kind",
        "professional",
        "--username",
        "dr.weber",
        "--practitioner",
        "pr-1",
        "--ehealth-id",
        EHEALTH_ID,
        "--mobile",
        "+352621123456",
        "--letter-format",
        "html",
    )
    page = html.split("\n", 1)[1]
    assert page.startswith("<!DOCTYPE html>") and CODE.search(page) and "dr.weber" in page
    staff = ok("create", "--kind", "staff", "--username", "stat", "--role", "statistician", "--email", "s@x.lu")
    assert UUID.match(staff.split("\n", 1)[0])

    listed = ok("list")
    for expected in ("alice", "dr.weber", "stat", "Patient/p-1", "Practitioner/pr-1", "statistician", "inactive"):
        assert expected in listed
    only_staff = ok("list", "--kind", "staff")
    assert "stat" in only_staff and "alice" not in only_staff
    assert "alice" not in ok("list", "--status", "active")
    assert account_id[:8] in listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--kind", "robot", "--username", "x-1", "--email", "a@x.lu"), "unknown account kind"),
        (("create", "--kind", "staff", "--username", "x-1", "--email", "a@x.lu"), "at least one role"),
        (
            ("create", "--kind", "staff", "--username", "x-1", "--role", "root", "--email", "a@x.lu"),
            "unknown staff role",
        ),
        (
            (
                "create",
                "--kind",
                "patient",
                "--username",
                "x-1",
                "--patient",
                "p-1",
                "--email",
                "a@x.lu",
                "--matricule",
                "123",
            ),
            "13 digits",
        ),
        (("create", "--kind", "professional", "--username", "x-1", "--email", "a@x.lu"), "eHealthID"),
        (("create", "--kind", "patient", "--username", "x-1", "--letter-format", "pdf"), "--format"),
        (("list", "--status", "sleeping"), "sleeping"),
        (("suspend", "no-such-id"), "no account"),
        (("activation-letter", "no-such-id", "--format", "rtf"), "--format"),
    ],
)
def test_bad_input_exits_2_with_one_line(var_dir: Path, args: tuple[str, ...], message: str) -> None:
    seed("p-1")
    assert message in refused(*args)


def test_status_commands_letters_and_delegations(var_dir: Path, tmp_path: Path) -> None:
    seed("p-1", "p-2")
    account_id, letter = create_patient()
    first_code = CODE.search(letter)
    assert first_code is not None

    out = tmp_path / "letter.html"
    result = invoke("activation-letter", account_id, "--format", "html", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == "" and "written" in result.stderr
    content = out.read_text()
    second_code = CODE.search(content)
    assert second_code is not None and second_code.group() != first_code.group()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    assert "reset code is for active accounts" in refused("reset-code", account_id)
    assert ok("suspend", account_id).strip() == f"account {account_id} (alice): suspended"
    assert "already suspended" in refused("suspend", account_id)
    assert "activation letter" not in ok("reactivate", account_id)
    assert ok("unlock", account_id).endswith(": inactive\n")

    assert ok("delegate", account_id, "p-2").strip() == f"account {account_id} now assists Patient/p-2"
    assert "already assists" in refused("delegate", account_id, "p-2")
    assert "own patient" in refused("delegate", account_id, "p-1")
    assert "no longer assists" in ok("undelegate", account_id, "p-2")
    assert "does not assist" in refused("undelegate", account_id, "p-2")

    assert ok("close", account_id).endswith(": closed\n")
    assert "final" in refused("reactivate", account_id)
    assert "closed" in ok("list", "--status", "closed")
