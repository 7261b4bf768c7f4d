"""AccountService on both databases: the whole lifecycle, refusals, lockout, reset, delegations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from esante.db.engine import Database
from esante.security.accounts import store, totp
from esante.security.accounts.model import AccountError, AccountKind, AccountStatus, AuthenticationError, StaffRole
from esante.security.accounts.passwords import Argon2Parameters, PasswordHashing
from esante.security.accounts.service import AccountService
from tests.security.accounts_support import (
    EHEALTH_ID,
    FAST,
    MATRICULE,
    PASSWORD,
    add_patient,
    add_practitioner,
    service_for,
)
from tests.security.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def accounts(database: Database, clock: FakeClock) -> AccountService:
    await add_patient(database, "pat-1")
    await add_patient(database, "pat-2")
    await add_practitioner(database, "prac-1")
    return service_for(database, clock)


async def new_patient(service: AccountService, username: str = "alice", patient: str = "pat-1") -> tuple[Any, Any]:
    return await service.create(
        AccountKind.PATIENT, username, patient_id=patient, matricule=MATRICULE, email="alice@example.lu"
    )


async def active_patient(service: AccountService, clock: FakeClock, username: str = "alice") -> tuple[Any, str]:
    """An ACTIVE patient with TOTP enrolled: (account, TOTP secret)."""
    _account, letter = await new_patient(service, username)
    result = await service.activate(username, letter.code, MATRICULE, "alice@example.lu", PASSWORD)
    assert result.enrolment is not None
    account = await service.confirm_totp(username, PASSWORD, totp.code_at(result.enrolment.secret, clock()))
    clock.advance(30)  # the next code is a fresh one
    return account, result.enrolment.secret


async def code_for(error_type: type[Exception], awaitable: Any) -> str:
    with pytest.raises(error_type) as raised:
        await awaitable
    return raised.value.code  # type: ignore[attr-defined,no-any-return]


async def secrets_of(database: Database, account_id: str) -> store.AccountSecrets:
    async with database.read() as conn:
        found = await store.read_secrets(conn, account_id)
    assert found is not None
    return found


# ---------------------------------------------------------------- the whole lifecycle
async def test_lifecycle(accounts: AccountService, clock: FakeClock, database: Database) -> None:
    account, letter = await new_patient(accounts)
    assert account.status is AccountStatus.INACTIVE and account.fhir_user == "Patient/pat-1"
    assert letter.username == "alice" and letter.expires_at == int(clock()) + accounts.settings.activation_code_ttl
    stored = await secrets_of(database, account.id)
    assert stored.password_hash is None and stored.activation_code_hash is not None
    assert letter.code not in repr(stored) and len(stored.activation_code_hash) == 64

    # a new letter invalidates the first code
    second = await accounts.activation_letter(account.id)
    assert second.code != letter.code
    assert await code_for(
        AccountError, accounts.activate("alice", letter.code, MATRICULE, "alice@example.lu", PASSWORD)
    ) == ("activation_failed")

    result = await accounts.activate("ALICE", second.code.lower(), MATRICULE, " Alice@Example.lu ", PASSWORD)
    assert result.account.status is AccountStatus.INACTIVE and result.enrolment is not None
    # enrolled but not confirmed: no login yet
    assert await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD)) == "inactive"

    secret = result.enrolment.secret
    confirmed = await accounts.confirm_totp("alice", PASSWORD, totp.code_at(secret, clock()))
    assert confirmed.status is AccountStatus.ACTIVE and confirmed.totp_enabled
    assert (await secrets_of(database, account.id)).activation_code_hash is None
    # the letter's code is spent
    assert await code_for(
        AccountError, accounts.activate("alice", second.code, MATRICULE, "alice@example.lu", PASSWORD)
    ) == ("activation_failed")

    assert await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD)) == "second_factor_required"
    # the code used for the confirmation cannot log in (same time step)
    code = totp.code_at(secret, clock())
    assert await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, code)) == "invalid_credentials"
    clock.advance(30)
    code = totp.code_at(secret, clock())
    assert (await accounts.authenticate("alice", PASSWORD, code, "127.0.0.1")).id == account.id
    assert await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, code)) == "invalid_credentials"

    clock.advance(100)
    suspended = await accounts.suspend(account.id)
    assert suspended.status is AccountStatus.SUSPENDED and suspended.tokens_valid_after == int(clock()) + 1
    clock.advance(30)
    code = totp.code_at(secret, clock())
    assert await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, code)) == "suspended"
    assert await code_for(AccountError, accounts.suspend(account.id)) == "invalid_state"

    reactivated = await accounts.reactivate(account.id)
    assert reactivated.status is AccountStatus.ACTIVE
    assert reactivated.tokens_valid_after == suspended.tokens_valid_after  # old tokens stay dead
    clock.advance(30)
    assert (
        await accounts.authenticate("alice", PASSWORD, totp.code_at(secret, clock()))
    ).status is AccountStatus.ACTIVE

    closed = await accounts.close(account.id)
    assert closed.status is AccountStatus.CLOSED
    gone = await secrets_of(database, account.id)
    assert gone.password_hash is None and gone.totp_secret is None
    clock.advance(30)
    # the password hash is erased: a closed account only ever answers "invalid credentials"
    error = await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, totp.code_at(secret, clock())))
    assert error == "invalid_credentials"
    for action in (accounts.reactivate, accounts.suspend, accounts.close):
        assert await code_for(AccountError, action(account.id)) == "invalid_state"
    # the person may get a new account after closure
    again, _letter = await new_patient(accounts, "alice2")
    assert again.patient_id == "pat-1"


async def test_suspension_and_closure_revoke_refresh_tokens(
    accounts: AccountService, clock: FakeClock, database: Database
) -> None:
    account, _secret = await active_patient(accounts, clock)
    async with database.transaction() as conn:
        for token in ("a" * 64, "b" * 64):
            await conn.execute(
                "INSERT INTO oauth_refresh_token (token_hash, family, client_id, account_id, scope, subject_role, "
                "expires_at, revoked, created_at) VALUES (?, 'f', 'portal', ?, 'openid', 'patient', ?, FALSE, ?)",
                (token, account.id, int(clock()) + 1000, int(clock())),
            )
    await accounts.suspend(account.id)
    async with database.read() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM oauth_refresh_token WHERE NOT revoked") == 0


# ---------------------------------------------------------------- creation checks
@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"kind": "robot", "username": "x-1"}, "invalid_kind"),
        ({"kind": "patient", "username": "a", "patient_id": "pat-1"}, "invalid_username"),
        ({"kind": "patient", "username": "bad name", "patient_id": "pat-1"}, "invalid_username"),
        ({"kind": "patient", "username": "bob"}, "missing_link"),
        ({"kind": "patient", "username": "bob", "patient_id": "pat-1", "roles": ["administrator"]}, "unexpected_link"),
        ({"kind": "patient", "username": "bob", "patient_id": "nope"}, "unknown_patient"),
        ({"kind": "patient", "username": "bob", "patient_id": "bad/id"}, "invalid_link"),
        (
            {"kind": "patient", "username": "bob", "patient_id": "pat-1", "matricule": "1982080285658"},
            "invalid_matricule",
        ),
        ({"kind": "patient", "username": "bob", "patient_id": "pat-1", "email": None}, "missing_contact"),
        ({"kind": "patient", "username": "bob", "patient_id": "pat-1", "email": "not-an-email"}, "invalid_email"),
        ({"kind": "patient", "username": "bob", "patient_id": "pat-1", "mobile": "12ab"}, "invalid_mobile"),
        ({"kind": "professional", "username": "doc", "practitioner_id": "prac-1"}, "missing_link"),
        (
            {"kind": "professional", "username": "doc", "practitioner_id": "prac-1", "ehealth_id": "2854123450"},
            "invalid_ehealth_id",
        ),
        (
            {"kind": "professional", "username": "doc", "practitioner_id": "nope", "ehealth_id": EHEALTH_ID},
            "unknown_practitioner",
        ),
        ({"kind": "staff", "username": "admin"}, "missing_role"),
        ({"kind": "staff", "username": "admin", "roles": ["superuser"]}, "invalid_role"),
        ({"kind": "staff", "username": "admin", "roles": ["administrator"], "patient_id": "pat-1"}, "unexpected_link"),
    ],
)
async def test_create_refusals(
    accounts: AccountService, database: Database, arguments: dict[str, Any], code: str
) -> None:
    arguments = {"email": "x@example.lu", **arguments}
    kind = arguments.pop("kind")
    username = arguments.pop("username")
    assert await code_for(AccountError, accounts.create(kind, username, **arguments)) == code
    assert await accounts.list() == []  # nothing stored


async def test_create_each_kind_and_uniqueness(accounts: AccountService) -> None:
    pro, letter = await accounts.create(
        "professional",
        "Dr.Weber",
        practitioner_id="prac-1",
        ehealth_id=EHEALTH_ID[:4] + "-" + EHEALTH_ID[4:],
        mobile="00352 621 123 456",
        display_name="Dr Anne Weber",
    )
    assert (pro.username, pro.ehealth_id, pro.mobile) == ("dr.weber", EHEALTH_ID, "+352621123456")
    assert pro.fhir_user == "Practitioner/prac-1" and letter.name == "Dr Anne Weber"
    staff, _ = await accounts.create(
        "staff", "vigil", roles=["identity-vigilance", "administrator", "administrator"], email="v@x.lu"
    )
    assert staff.roles == (StaffRole.ADMINISTRATOR, StaffRole.IDENTITY_VIGILANCE) and staff.fhir_user is None
    await new_patient(accounts)
    assert await code_for(AccountError, new_patient(accounts, "ALICE", "pat-2")) == "username_taken"
    assert await code_for(AccountError, new_patient(accounts, "alice-bis", "pat-1")) == "account_exists"
    duplicate = accounts.create(
        "professional", "other", practitioner_id="prac-1", ehealth_id=EHEALTH_ID, email="o@x.lu"
    )
    assert await code_for(AccountError, duplicate) == "account_exists"
    listed = await accounts.list()
    assert {a.username for a in listed} == {"dr.weber", "vigil", "alice"}
    assert [a.username for a in await accounts.list(kind=AccountKind.STAFF)] == ["vigil"]
    assert await accounts.list(status=AccountStatus.ACTIVE) == []
    assert len(await accounts.list(limit=2)) == 2 and len(await accounts.list(limit=2, offset=2)) == 1
    assert (await accounts.find_by_username("Dr.Weber")) == pro and await accounts.get(pro.id) == pro
    assert await accounts.get("nope") is None and await accounts.find_by_username("nobody") is None


async def test_a_deleted_patient_cannot_get_an_account(accounts: AccountService, database: Database) -> None:
    async with database.transaction() as conn:
        await conn.execute("UPDATE resource SET deleted = TRUE WHERE res_type = 'Patient' AND res_id = 'pat-2'")
    assert await code_for(AccountError, new_patient(accounts, "bob", "pat-2")) == "unknown_patient"


# ---------------------------------------------------------------- activation refusals
async def test_activation_mismatches_are_generic_and_counted(accounts: AccountService, clock: FakeClock) -> None:
    account, letter = await new_patient(accounts)
    attempts = [
        ("alice", "AAAA-BBBB-CCCC-DDDD", MATRICULE, "alice@example.lu"),  # wrong code
        ("alice", letter.code, "2015123101725", "alice@example.lu"),  # another person's matricule
        ("alice", letter.code, MATRICULE, "other@example.lu"),  # wrong e-mail
        ("alice", letter.code, MATRICULE, "+352621000000"),  # wrong mobile (none on record)
    ]
    messages = set()
    for username, code, matricule, contact in attempts:
        with pytest.raises(AccountError) as raised:
            await accounts.activate(username, code, matricule, contact, PASSWORD)
        assert raised.value.code == "activation_failed"
        messages.add(raised.value.message)
    unknown = await code_for(
        AccountError, accounts.activate("nobody", letter.code, MATRICULE, "alice@example.lu", PASSWORD)
    )
    assert unknown == "activation_failed" and len(messages) == 1
    after = await accounts.get(account.id)
    assert after is not None and after.failed_logins == 4 and after.status is AccountStatus.INACTIVE
    # the fifth failure locks: even the right proofs are refused until the lock ends
    await code_for(
        AccountError, accounts.activate("alice", "AAAA-BBBB-CCCC-DDDD", MATRICULE, "alice@example.lu", PASSWORD)
    )
    assert (
        await code_for(AccountError, accounts.activate("alice", letter.code, MATRICULE, "alice@example.lu", PASSWORD))
        == "locked"
    )
    clock.advance(accounts.settings.lockout_seconds)
    result = await accounts.activate("alice", letter.code, MATRICULE, "alice@example.lu", PASSWORD)
    assert result.enrolment is not None and result.account.failed_logins == 0


async def test_expired_code_and_weak_password_change_nothing(
    accounts: AccountService, clock: FakeClock, database: Database
) -> None:
    account, letter = await new_patient(accounts)
    weak = accounts.activate("alice", letter.code, MATRICULE, "alice@example.lu", "alice@example.lu")
    assert await code_for(AccountError, weak) == "weak_password"
    short = accounts.activate("alice", letter.code, MATRICULE, "alice@example.lu", "short")
    assert await code_for(AccountError, short) == "weak_password"
    assert (await secrets_of(database, account.id)).password_hash is None
    clock.advance(accounts.settings.activation_code_ttl)
    expired = accounts.activate("alice", letter.code, MATRICULE, "alice@example.lu", PASSWORD)
    assert await code_for(AccountError, expired) == "code_expired"
    fresh = await accounts.activation_letter(account.id)
    assert (await accounts.activate("alice", fresh.code, MATRICULE, "alice@example.lu", PASSWORD)).enrolment


async def test_activation_by_mobile_and_matricule_absent(accounts: AccountService, clock: FakeClock) -> None:
    await accounts.create("staff", "stat", roles=["statistician"], mobile="+352 691 234 567")
    result = await accounts.activate("stat", (await _letter_code(accounts, "stat")), None, "00352691234567", PASSWORD)
    assert result.enrolment is not None
    assert await code_for(AuthenticationError, accounts.authenticate("stat", PASSWORD)) == "inactive"


async def _letter_code(accounts: AccountService, username: str) -> str:
    account = await accounts.find_by_username(username)
    assert account is not None
    return (await accounts.activation_letter(account.id)).code


async def test_professional_needs_a_confirmed_totp(
    accounts: AccountService, clock: FakeClock, database: Database
) -> None:
    pro, letter = await accounts.create(
        "professional", "doc", practitioner_id="prac-1", ehealth_id=EHEALTH_ID, email="doc@example.lu"
    )
    optional = service_for(database, clock, patient_totp_required=False)  # the setting does not apply to them
    result = await optional.activate("doc", letter.code, None, "doc@example.lu", PASSWORD)
    assert result.enrolment is not None and result.account.status is AccountStatus.INACTIVE
    assert await code_for(AuthenticationError, optional.authenticate("doc", PASSWORD)) == "inactive"
    wrong = optional.confirm_totp(
        "doc", PASSWORD, "000000" if totp.code_at(result.enrolment.secret, clock()) != "000000" else "111111"
    )
    assert await code_for(AuthenticationError, wrong) == "invalid_credentials"
    assert await code_for(
        AuthenticationError,
        optional.confirm_totp("doc", "wrong password!", totp.code_at(result.enrolment.secret, clock())),
    ) == ("invalid_credentials")
    assert (await optional.get(pro.id)).status is AccountStatus.INACTIVE  # type: ignore[union-attr]
    # the reactivation of a suspended, never-enrolled professional does not make it active
    await optional.suspend(pro.id)
    assert (await optional.reactivate(pro.id)).status is AccountStatus.INACTIVE
    # and an active professional without TOTP (impossible through the service) cannot log in
    async with database.transaction() as conn:
        await conn.execute("UPDATE account SET status = 'active' WHERE id = ?", (pro.id,))
    assert await code_for(AuthenticationError, optional.authenticate("doc", PASSWORD)) == "inactive"


async def test_patient_without_required_totp_is_active_at_once_and_may_enrol_later(
    database: Database, clock: FakeClock
) -> None:
    await add_patient(database, "pat-9")
    accounts = service_for(database, clock, patient_totp_required=False)
    account, letter = await accounts.create("patient", "paul", patient_id="pat-9", email="paul@example.lu")
    result = await accounts.activate("paul", letter.code, None, "paul@example.lu", PASSWORD)
    assert result.enrolment is None and result.account.status is AccountStatus.ACTIVE
    assert (await accounts.authenticate("paul", PASSWORD)).id == account.id
    assert await code_for(AccountError, accounts.confirm_totp("paul", PASSWORD, "123456")) == "no_enrolment"
    enrolment = await accounts.enroll_totp("paul", PASSWORD)
    assert (
        await code_for(AuthenticationError, accounts.enroll_totp("paul", "not the password")) == "invalid_credentials"
    )
    # enrol_totp was called twice (one refused): the secret of the successful call is the one to confirm
    confirmed = await accounts.confirm_totp("paul", PASSWORD, totp.code_at(enrolment.secret, clock()))
    assert confirmed.totp_enabled and confirmed.status is AccountStatus.ACTIVE
    assert await code_for(AccountError, accounts.enroll_totp("paul", PASSWORD)) == "totp_enabled"
    clock.advance(30)
    assert await code_for(AuthenticationError, accounts.authenticate("paul", PASSWORD)) == "second_factor_required"
    assert (await accounts.authenticate("paul", PASSWORD, totp.code_at(enrolment.secret, clock()))).id == account.id


# ---------------------------------------------------------------- login and lockout
async def test_lockout_after_threshold_and_its_expiry(accounts: AccountService, clock: FakeClock) -> None:
    account, secret = await active_patient(accounts, clock)
    threshold = accounts.settings.lockout_threshold
    for attempt in range(1, threshold):
        assert (
            await code_for(AuthenticationError, accounts.authenticate("alice", "wrong password!"))
            == "invalid_credentials"
        )
        assert (await accounts.get(account.id)).failed_logins == attempt  # type: ignore[union-attr]
    assert await code_for(AuthenticationError, accounts.authenticate("alice", "wrong password!")) == "locked"
    locked = await accounts.get(account.id)
    assert locked is not None and locked.locked_until == int(clock()) + accounts.settings.lockout_seconds
    # even the right password and code are refused while locked, and do not extend the lock
    clock.advance(accounts.settings.lockout_seconds - 1)
    assert (
        await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, totp.code_at(secret, clock())))
        == "locked"
    )
    assert (await accounts.get(account.id)).locked_until == locked.locked_until  # type: ignore[union-attr]
    clock.advance(1)
    # after expiry a single failure does not re-lock: the count starts again
    assert (
        await code_for(AuthenticationError, accounts.authenticate("alice", "wrong password!")) == "invalid_credentials"
    )
    assert (await accounts.get(account.id)).failed_logins == 1  # type: ignore[union-attr]
    clock.advance(30)
    ok = await accounts.authenticate("alice", PASSWORD, totp.code_at(secret, clock()))
    assert ok.failed_logins == 0 and ok.locked_until is None


async def test_wrong_or_replayed_totp_counts_and_unlock(accounts: AccountService, clock: FakeClock) -> None:
    account, secret = await active_patient(accounts, clock)
    code = totp.code_at(secret, clock())
    await accounts.authenticate("alice", PASSWORD, code)
    for _ in range(accounts.settings.lockout_threshold - 1):
        assert (
            await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, code)) == "invalid_credentials"
        )
    assert await code_for(AuthenticationError, accounts.authenticate("alice", PASSWORD, "12345x")) == "locked"
    unlocked = await accounts.unlock(account.id)
    assert unlocked.failed_logins == 0 and unlocked.locked_until is None
    clock.advance(30)
    assert (await accounts.authenticate("alice", PASSWORD, totp.code_at(secret, clock()))).id == account.id
    assert await code_for(AccountError, accounts.unlock("nope")) == "not_found"


async def test_unknown_user_and_errors_are_indistinguishable(accounts: AccountService, clock: FakeClock) -> None:
    await active_patient(accounts, clock)
    with pytest.raises(AuthenticationError) as unknown:
        await accounts.authenticate("nobody", PASSWORD, "123456")
    with pytest.raises(AuthenticationError) as wrong:
        await accounts.authenticate("alice", "wrong password!", "123456")
    assert (unknown.value.code, unknown.value.message) == (wrong.value.code, wrong.value.message)


async def test_login_rehashes_when_the_parameters_changed(
    accounts: AccountService, clock: FakeClock, database: Database
) -> None:
    account, secret = await active_patient(accounts, clock)
    before = (await secrets_of(database, account.id)).password_hash
    stronger = AccountService(
        database,
        accounts.settings,
        clock=clock,
        hashing=PasswordHashing(Argon2Parameters(time_cost=2, memory_cost=2048, parallelism=1)),
    )
    await stronger.authenticate("alice", PASSWORD, totp.code_at(secret, clock()))
    after = (await secrets_of(database, account.id)).password_hash
    assert before is not None and after is not None and after != before and "m=2048,t=2,p=1" in after
    clock.advance(30)
    assert (await stronger.authenticate("alice", PASSWORD, totp.code_at(secret, clock()))).id == account.id
    assert not PasswordHashing(FAST).needs_rehash(before)


# ---------------------------------------------------------------- password reset
async def test_password_reset(accounts: AccountService, clock: FakeClock, database: Database) -> None:
    account, secret = await active_patient(accounts, clock)
    letter = await accounts.issue_reset_code(account.id)
    assert letter.purpose == "reset" and letter.expires_at == int(clock()) + accounts.settings.reset_code_ttl
    new_password = "a brand new passphrase"
    # without the TOTP code, with a wrong matricule, with a wrong code: one generic refusal, nothing changes
    for code, matricule, otp in (
        (letter.code, MATRICULE, None),
        (letter.code, "2015123101725", totp.code_at(secret, clock())),
        ("AAAA-BBBB-CCCC-DDDD", MATRICULE, totp.code_at(secret, clock())),
    ):
        assert (
            await code_for(AccountError, accounts.reset_password("alice", code, matricule, new_password, otp))
            == "reset_failed"
        )
    assert (await accounts.get(account.id)).failed_logins == 3  # type: ignore[union-attr]
    assert await code_for(
        AccountError, accounts.reset_password("alice", letter.code, MATRICULE, "alice", totp.code_at(secret, clock()))
    ) == ("weak_password")
    clock.advance(40)
    done = await accounts.reset_password("alice", letter.code, MATRICULE, new_password, totp.code_at(secret, clock()))
    assert done.failed_logins == 0 and done.tokens_valid_after == int(clock()) + 1
    clock.advance(30)
    assert await code_for(
        AuthenticationError, accounts.authenticate("alice", PASSWORD, totp.code_at(secret, clock()))
    ) == ("invalid_credentials")
    clock.advance(30)
    assert (await accounts.authenticate("alice", new_password, totp.code_at(secret, clock()))).id == account.id
    # the code is single use
    clock.advance(30)
    again = accounts.reset_password(
        "alice", letter.code, MATRICULE, "yet another passphrase", totp.code_at(secret, clock())
    )
    assert await code_for(AccountError, again) == "reset_failed"


async def test_reset_code_expiry_and_states(accounts: AccountService, clock: FakeClock) -> None:
    inactive, _letter = await new_patient(accounts, "bob", "pat-2")
    assert await code_for(AccountError, accounts.issue_reset_code(inactive.id)) == "invalid_state"
    assert await code_for(AccountError, accounts.issue_reset_code("nope")) == "not_found"
    account, secret = await active_patient(accounts, clock)
    letter = await accounts.issue_reset_code(account.id)
    clock.advance(accounts.settings.reset_code_ttl)
    expired = accounts.reset_password(
        "alice", letter.code, MATRICULE, "a brand new passphrase", totp.code_at(secret, clock())
    )
    assert await code_for(AccountError, expired) == "code_expired"


# ---------------------------------------------------------------- delegations
async def test_delegations(accounts: AccountService, clock: FakeClock, database: Database) -> None:
    assistant, _secret = await active_patient(accounts, clock)
    await accounts.add_delegation(assistant.id, "pat-2")
    assert await accounts.delegations(assistant.id) == ["pat-2"]
    assert await code_for(AccountError, accounts.add_delegation(assistant.id, "pat-2")) == "delegation_exists"
    assert await code_for(AccountError, accounts.add_delegation(assistant.id, "pat-1")) == "self_delegation"
    assert await code_for(AccountError, accounts.add_delegation(assistant.id, "pat-404")) == "unknown_patient"
    assert await code_for(AccountError, accounts.add_delegation("nope", "pat-2")) == "not_found"
    pro, _ = await accounts.create(
        "professional", "doc", practitioner_id="prac-1", ehealth_id=EHEALTH_ID, email="d@x.lu"
    )
    assert await code_for(AccountError, accounts.add_delegation(pro.id, "pat-2")) == "not_a_patient_account"
    await accounts.revoke_delegation(assistant.id, "pat-2")
    assert await accounts.delegations(assistant.id) == []
    assert await code_for(AccountError, accounts.revoke_delegation(assistant.id, "pat-2")) == "delegation_not_found"
    await accounts.add_delegation(assistant.id, "pat-2")  # again, after a revocation
    async with database.read() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM account_delegation WHERE account_id = ?", (assistant.id,)) == 2
    await accounts.close(assistant.id)
    assert await accounts.delegations(assistant.id) == []
    assert await code_for(AccountError, accounts.add_delegation(assistant.id, "pat-2")) == "invalid_state"


# ---------------------------------------------------------------- concurrency
async def test_concurrent_logins_with_one_code_succeed_once(accounts: AccountService, clock: FakeClock) -> None:
    account, secret = await active_patient(accounts, clock)
    code = totp.code_at(secret, clock())
    results = await asyncio.gather(
        *(accounts.authenticate("alice", PASSWORD, code) for _ in range(4)), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    refusals = [r for r in results if isinstance(r, AuthenticationError)]
    assert len(refusals) == 3 and {r.code for r in refusals} == {"invalid_credentials"}
    assert (await accounts.get(account.id)).failed_logins == 3  # type: ignore[union-attr]


async def test_concurrent_failures_are_all_counted(accounts: AccountService, clock: FakeClock) -> None:
    account, _secret = await active_patient(accounts, clock)
    await asyncio.gather(*(accounts.authenticate("alice", "wrong password!") for _ in range(4)), return_exceptions=True)
    assert (await accounts.get(account.id)).failed_logins == 4  # type: ignore[union-attr]
