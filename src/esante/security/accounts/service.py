"""The account use cases: creation, activation with a letter's code, TOTP enrolment, login with lockout,
suspension and closure, password reset, DSP assistants' delegations.

Every change to an account is one transaction. Slow work (argon2) runs in a thread *before* the write transaction,
so a login never holds the SQLite writer or a PostgreSQL row lock while hashing; the transaction then re-reads the
row (locked on PostgreSQL) and applies counters atomically. A refused attempt is committed (failure counter,
lockout) before the error is raised: an exception inside the transaction would roll the counter back.

Error messages never say which of several secrets was wrong nor whether an unknown username exists.
"""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from esante.config import Settings
from esante.db.engine import Connection, Database, IntegrityViolation
from esante.security.accounts import codes, store, totp
from esante.security.accounts.letters import ActivationLetter, LetterPurpose
from esante.security.accounts.model import (
    Account,
    AccountError,
    AccountKind,
    AccountStatus,
    AuthenticationError,
)
from esante.security.accounts.passwords import PasswordHashing, check_password_policy
from esante.security.accounts.store import AccountSecrets
from esante.security.accounts.totp import TotpEnrolment
from esante.security.accounts.validation import (
    check_ehealth_id,
    check_email,
    check_fhir_id,
    check_matricule,
    check_mobile,
    check_roles,
    check_username,
    contact_matches,
    normalize_matricule,
    normalize_username,
)
from esante.security.standing import ProfessionalRef, Standing, StandingRefusal, professional_of_account

Clock = Callable[[], float]
log = structlog.get_logger("esante.accounts")

_ACTIVATION_FAILED = AccountError(
    "activation_failed", "the username, activation code, matricule or e-mail/mobile do not match an account to activate"
)
_RESET_FAILED = AccountError(
    "reset_failed", "the username, reset code, matricule or authenticator code do not match; nothing was changed"
)
_LOCKED_MESSAGE = "too many failed attempts: the account is locked for a while; try again later or call the helpdesk"


def _invalid_credentials() -> AuthenticationError:
    return AuthenticationError("invalid_credentials", "wrong username, password or authenticator code")


def _error_copy(error: AccountError) -> AccountError:
    return type(error)(error.code, error.message)


@dataclass(frozen=True)
class ActivationResult:
    """What activation gives back: the account and, unless it is already active, the TOTP enrolment to confirm."""

    account: Account
    enrolment: TotpEnrolment | None


def _requires_totp(kind: AccountKind, settings: Settings) -> bool:
    """Professionals and staff always need a second factor; patients unless the platform makes it optional."""
    return kind is not AccountKind.PATIENT or settings.patient_totp_required


class AccountService:
    """The compte eSanté use cases over one database. ``clock`` gives epoch seconds (tests move it).

    ``standing``: the checks services register on whether a professional may act at all (the HPD's right to
    practise, ``security/standing.py``); a professional who fails them cannot sign in.
    """

    def __init__(
        self,
        database: Database,
        settings: Settings,
        clock: Clock = time.time,
        hashing: PasswordHashing | None = None,
        standing: Standing | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self.hashing = hashing or PasswordHashing()
        self.standing = standing or Standing()

    def _now(self) -> int:
        return int(self.clock())

    # ================================================================ reads
    async def get(self, account_id: str) -> Account | None:
        """The account, or None when there is none with this id."""
        async with self.database.read() as conn:
            return await store.get_account(conn, account_id)

    async def find_by_username(self, username: str) -> Account | None:
        async with self.database.read() as conn:
            return await store.find_by_username(conn, normalize_username(username))

    async def list(
        self,
        kind: AccountKind | None = None,
        status: AccountStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Account]:
        if not 1 <= limit <= 10_000 or offset < 0:
            raise AccountError("invalid_paging", "limit is 1 to 10000 and offset is not negative")
        async with self.database.read() as conn:
            return await store.list_accounts(conn, kind=kind, status=status, limit=limit, offset=offset)

    async def delegations(self, account_id: str) -> builtins.list[str]:
        """The ids of the patients this (assistant) account may currently act for, sorted."""
        async with self.database.read() as conn:
            return await store.active_delegations(conn, account_id)

    async def standing_refusal(
        self, who: ProfessionalRef | None, issued_at: int | None = None
    ) -> StandingRefusal | None:
        """Why the professional ``who`` may not act now (the services' standing checks), or None.

        ``issued_at``: when the grant or token being used was issued (epoch seconds); None for a new sign-in.
        """
        if who is None or not self.standing.checks:
            return None
        async with self.database.read() as conn:
            return await self.standing.refusal(conn, who, issued_at)

    # ================================================================ creation and letters
    async def create(
        self,
        kind: AccountKind | str,
        username: str,
        *,
        patient_id: str | None = None,
        practitioner_id: str | None = None,
        ehealth_id: str | None = None,
        roles: tuple[str, ...] | builtins.list[str] = (),
        matricule: str | None = None,
        email: str | None = None,
        mobile: str | None = None,
        display_name: str | None = None,
    ) -> tuple[Account, ActivationLetter]:
        """Create an INACTIVE account and the letter with its one-time activation code."""
        account = self._new_account(
            kind, username, patient_id, practitioner_id, ehealth_id, roles, matricule, email, mobile, display_name
        )
        code = codes.new_code()
        expires = account.created_at + self.settings.activation_code_ttl
        try:
            async with self.database.transaction() as conn:
                await self._check_links(conn, account)
                await store.insert_account(
                    conn, account, activation_code_hash=codes.hash_code(code), activation_expires=expires
                )
        except IntegrityViolation as error:  # a concurrent create took the username first
            raise AccountError("username_taken", f"the username {account.username!r} is already taken") from error
        log.info("account.created", account_id=account.id, kind=account.kind.value)
        return account, self._letter(account, code, expires, LetterPurpose.ACTIVATION)

    def _new_account(
        self,
        kind: AccountKind | str,
        username: str,
        patient_id: str | None,
        practitioner_id: str | None,
        ehealth_id: str | None,
        roles: tuple[str, ...] | builtins.list[str],
        matricule: str | None,
        email: str | None,
        mobile: str | None,
        display_name: str | None,
    ) -> Account:
        """Validate and normalise everything that needs no database."""
        try:
            account_kind = AccountKind(kind)
        except ValueError as error:
            allowed = ", ".join(k.value for k in AccountKind)
            raise AccountError("invalid_kind", f"unknown account kind {kind!r} (one of: {allowed})") from error
        name = check_username(username)
        staff_roles = check_roles(roles)
        patient = check_fhir_id(patient_id, "Patient") if patient_id else None
        practitioner = check_fhir_id(practitioner_id, "Practitioner") if practitioner_id else None
        ehid = check_ehealth_id(ehealth_id) if ehealth_id else None
        if account_kind is AccountKind.PATIENT:
            if patient is None:
                raise AccountError("missing_link", "a patient account needs the id of its Patient resource")
            if practitioner or ehid or staff_roles:
                raise AccountError("unexpected_link", "a patient account has no Practitioner, eHealthID or role")
        elif account_kind is AccountKind.PROFESSIONAL:
            if practitioner is None or ehid is None:
                raise AccountError(
                    "missing_link", "a professional account needs its Practitioner resource id and its eHealthID"
                )
            if patient or staff_roles:
                raise AccountError("unexpected_link", "a professional account has no Patient link or staff role")
        else:
            if not staff_roles:
                raise AccountError("missing_role", "a staff account needs at least one role")
            if patient or practitioner or ehid:
                raise AccountError("unexpected_link", "a staff account has no Patient, Practitioner or eHealthID")
        email_value = check_email(email) if email else None
        mobile_value = check_mobile(mobile) if mobile else None
        if email_value is None and mobile_value is None:
            raise AccountError("missing_contact", "an e-mail address or a mobile number is needed for activation")
        if display_name is not None and len(display_name.strip()) > 255:
            raise AccountError("invalid_name", "the display name has at most 255 characters")
        now = self._now()
        return Account(
            id=str(uuid.uuid4()),
            kind=account_kind,
            username=name,
            status=AccountStatus.INACTIVE,
            display_name=(display_name or "").strip() or None,
            patient_id=patient,
            practitioner_id=practitioner,
            ehealth_id=ehid,
            roles=staff_roles,
            matricule=check_matricule(matricule) if matricule else None,
            email=email_value,
            mobile=mobile_value,
            created_at=now,
            updated_at=now,
        )

    async def _check_links(self, conn: Connection, account: Account) -> None:
        if await store.username_taken(conn, account.username):
            raise AccountError("username_taken", f"the username {account.username!r} is already taken")
        if account.patient_id is not None:
            if not await store.resource_exists(conn, "Patient", account.patient_id):
                raise AccountError("unknown_patient", f"there is no Patient/{account.patient_id} in the store")
            if await store.open_account_for(conn, "patient_id", account.patient_id):
                raise AccountError("account_exists", f"Patient/{account.patient_id} already has an account")
        if account.practitioner_id is not None and not await store.resource_exists(
            conn, "Practitioner", account.practitioner_id
        ):
            raise AccountError(
                "unknown_practitioner", f"there is no Practitioner/{account.practitioner_id} in the store"
            )
        if account.ehealth_id is not None and await store.open_account_for(conn, "ehealth_id", account.ehealth_id):
            raise AccountError("account_exists", f"the eHealthID {account.ehealth_id} already has an account")

    async def activation_letter(self, account_id: str) -> ActivationLetter:
        """A new activation code for an inactive account (the previous code stops working)."""
        now = self._now()
        code = codes.new_code()
        expires = now + self.settings.activation_code_ttl
        async with self.database.transaction() as conn:
            account = await self._require(conn, account_id)
            if account.status is not AccountStatus.INACTIVE:
                raise AccountError(
                    "invalid_state", f"account {account_id} is {account.status.value}: only inactive accounts get one"
                )
            await store.update_account(
                conn, account_id, now, activation_code_hash=codes.hash_code(code), activation_expires=expires
            )
        log.info("account.activation_letter", account_id=account_id)
        return self._letter(account, code, expires, LetterPurpose.ACTIVATION)

    def _letter(self, account: Account, code: str, expires: int, purpose: LetterPurpose) -> ActivationLetter:
        return ActivationLetter(
            account_id=account.id,
            name=account.display_name or account.username,
            username=account.username,
            code=code,
            expires_at=expires,
            purpose=purpose,
            password_min_length=self.settings.password_min_length,
        )

    # ================================================================ activation and TOTP enrolment
    async def activate(
        self, username: str, code: str, matricule: str | None, email_or_mobile: str, new_password: str
    ) -> ActivationResult:
        """Check the letter's code, the matricule and the e-mail or mobile; set the password; start TOTP enrolment.

        The account becomes ACTIVE only with :meth:`confirm_totp`, except patient accounts when
        ``patient_totp_required`` is false (then at once, and ``enrolment`` is None). Running it again before the
        confirmation restarts the enrolment (new password, new TOTP secret) with the same code.
        """
        now = self._now()
        async with self.database.read() as conn:
            account = await store.find_by_username(conn, normalize_username(username))
            secrets = await store.read_secrets(conn, account.id) if account else None
        if account is None or secrets is None or account.status is not AccountStatus.INACTIVE:
            codes.code_matches(code, None)  # same work as a real check
            raise _error_copy(_ACTIVATION_FAILED)
        if _locked(account, now):
            raise AccountError("locked", _LOCKED_MESSAGE)
        proofs_ok = (
            codes.code_matches(code, secrets.activation_code_hash)
            & (normalize_matricule(matricule) == normalize_matricule(account.matricule))
            & contact_matches(email_or_mobile, account.email, account.mobile)
        )
        if not proofs_ok:
            await self._fail(account.id, now, "activation")
            raise _error_copy(_ACTIVATION_FAILED)
        if secrets.activation_expires is None or now >= secrets.activation_expires:
            raise AccountError("code_expired", "this activation code has expired: ask for a new letter")
        check_password_policy(
            new_password,
            min_length=self.settings.password_min_length,
            personal=(account.username, account.matricule, account.email),
        )
        password_hash = await asyncio.to_thread(self.hashing.hash, new_password)
        needs_totp = _requires_totp(account.kind, self.settings)
        secret = totp.new_secret() if needs_totp else None
        async with self.database.transaction() as conn:
            current = await store.get_account(conn, account.id, lock=True)
            latest = await store.read_secrets(conn, account.id)
            if current is None or latest is None or current.status is not AccountStatus.INACTIVE:
                raise _error_copy(_ACTIVATION_FAILED)
            if latest.activation_code_hash != secrets.activation_code_hash:  # a new letter was issued meanwhile
                raise _error_copy(_ACTIVATION_FAILED)
            values: dict[str, object] = {
                "password_hash": password_hash,
                "totp_secret": secret,
                "totp_enabled": False,
                "totp_last_counter": None,
                "failed_logins": 0,
                "locked_until": None,
            }
            if not needs_totp:
                values.update(status=AccountStatus.ACTIVE.value, activation_code_hash=None, activation_expires=None)
            await store.update_account(conn, account.id, now, **values)
            updated = await store.get_account(conn, account.id)
        assert updated is not None
        log.info("account.activation", account_id=account.id, active=not needs_totp)
        enrolment = totp.enrolment(secret, account.username) if secret else None
        return ActivationResult(updated, enrolment)

    async def enroll_totp(self, username: str, password: str) -> TotpEnrolment:
        """Start (or restart) TOTP enrolment for an active patient account that has no second factor yet."""
        now = self._now()
        account, secrets = await self._verify_password(username, password, now)
        if account.status is not AccountStatus.ACTIVE:
            raise AuthenticationError(account.status.value, f"the account is {account.status.value}")
        if secrets.totp_enabled:
            raise AccountError("totp_enabled", "an authenticator is already enrolled for this account")
        secret = totp.new_secret()
        async with self.database.transaction() as conn:
            await store.update_account(conn, account.id, now, totp_secret=secret, totp_last_counter=None)
        return totp.enrolment(secret, account.username)

    async def confirm_totp(self, username: str, password: str, totp_code: str) -> Account:
        """Finish enrolment with the first code of the authenticator: TOTP on, and an inactive account ACTIVE."""
        now = self._now()
        account, secrets = await self._verify_password(username, password, now)
        if account.status not in (AccountStatus.INACTIVE, AccountStatus.ACTIVE):
            raise AuthenticationError(account.status.value, f"the account is {account.status.value}")
        if secrets.totp_secret is None or secrets.totp_enabled:
            raise AccountError("no_enrolment", "there is no authenticator enrolment waiting for confirmation")
        counter = totp.verify_totp(secrets.totp_secret, totp_code, now, secrets.totp_last_counter)
        error: AccountError | None = None
        async with self.database.transaction() as conn:
            latest = await store.read_secrets(conn, account.id)
            if latest is None or latest.totp_secret != secrets.totp_secret or latest.totp_enabled:
                error = AccountError("no_enrolment", "the enrolment changed meanwhile: start again")
            elif counter is None or not await store.claim_totp_counter(conn, account.id, counter, now):
                await self._record_failure(conn, account.id, now)
                error = _invalid_credentials()
            else:
                values: dict[str, object] = {"totp_enabled": True, "failed_logins": 0, "locked_until": None}
                if account.status is AccountStatus.INACTIVE:
                    values.update(status=AccountStatus.ACTIVE.value, activation_code_hash=None, activation_expires=None)
                await store.update_account(conn, account.id, now, **values)
        if error is not None:
            raise error
        log.info("account.totp_confirmed", account_id=account.id)
        updated = await self.get(account.id)
        assert updated is not None
        return updated

    # ================================================================ login
    async def authenticate(
        self, username: str, password: str, totp_code: str | None = None, client_address: str | None = None
    ) -> Account:
        """The account when the password (and the TOTP code, when enrolled) are right; else AuthenticationError.

        Codes: ``invalid_credentials`` (unknown user, wrong password, wrong or replayed TOTP code),
        ``second_factor_required`` (right password, no code given), ``locked``, ``inactive``, ``suspended``,
        ``closed``, and the codes of the standing checks (``right_to_practise_suspended``,
        ``right_to_practise_withdrawn``: the professional may not practise; told only after the right password, not
        counted as a failure). Each wrong password or code counts toward the lockout; a success resets the count.
        """
        now = self._now()
        account, secrets = await self._load(normalize_username(username))
        password_ok = await asyncio.to_thread(self.hashing.verify, secrets.password_hash if secrets else None, password)
        if account is None or secrets is None:
            log.info("account.login_refused", reason="unknown_user", client=client_address)
            raise _invalid_credentials()
        if _locked(account, now):
            raise AuthenticationError("locked", _LOCKED_MESSAGE)
        new_hash: str | None = None
        if password_ok and secrets.password_hash and self.hashing.needs_rehash(secrets.password_hash):
            new_hash = await asyncio.to_thread(self.hashing.hash, password)
        error: AuthenticationError | None = None
        async with self.database.transaction() as conn:
            current = await store.get_account(conn, account.id, lock=True)
            latest = await store.read_secrets(conn, account.id)
            if current is None or latest is None or latest.password_hash != secrets.password_hash:
                error = _invalid_credentials()  # the password changed while we were hashing
            elif _locked(current, now):
                error = AuthenticationError("locked", _LOCKED_MESSAGE)
            elif not password_ok:
                locked = await self._record_failure(conn, account.id, now)
                error = AuthenticationError("locked", _LOCKED_MESSAGE) if locked else _invalid_credentials()
            else:
                error = _status_error(current)
                if error is None:  # an active account whose professional may not practise (HPD)
                    refused = await self.standing.refusal(conn, professional_of_account(current))
                    if refused is not None:
                        error = AuthenticationError(refused.code, refused.message)
                if error is None and latest.totp_enabled:
                    error = await self._check_second_factor(conn, current, latest, totp_code, now)
                if error is None:
                    values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
                    if new_hash is not None:
                        values["password_hash"] = new_hash
                    await store.update_account(conn, account.id, now, **values)
                    current = replace(current, failed_logins=0, locked_until=None, updated_at=now)
        if error is not None:
            log.info("account.login_refused", account_id=account.id, reason=error.code, client=client_address)
            raise error
        log.info("account.login", account_id=account.id, client=client_address)
        assert current is not None
        return current

    async def _check_second_factor(
        self, conn: Connection, account: Account, secrets: AccountSecrets, code: str | None, now: int
    ) -> AuthenticationError | None:
        if not code or not code.strip():
            return AuthenticationError("second_factor_required", "enter the code shown by your authenticator app")
        assert secrets.totp_secret is not None
        counter = totp.verify_totp(secrets.totp_secret, code, now, secrets.totp_last_counter)
        if counter is None or not await store.claim_totp_counter(conn, account.id, counter, now):
            locked = await self._record_failure(conn, account.id, now)
            return AuthenticationError("locked", _LOCKED_MESSAGE) if locked else _invalid_credentials()
        return None

    async def _load(self, username: str) -> tuple[Account | None, AccountSecrets | None]:
        async with self.database.read() as conn:
            account = await store.find_by_username(conn, username)
            secrets = await store.read_secrets(conn, account.id) if account else None
        return account, secrets

    async def _verify_password(self, username: str, password: str, now: int) -> tuple[Account, AccountSecrets]:
        """Check a password outside a login (enrolment): same refusals and failure counting as a login."""
        account, secrets = await self._load(normalize_username(username))
        ok = await asyncio.to_thread(self.hashing.verify, secrets.password_hash if secrets else None, password)
        if account is None or secrets is None:
            raise _invalid_credentials()
        if _locked(account, now):
            raise AuthenticationError("locked", _LOCKED_MESSAGE)
        if not ok:
            await self._fail(account.id, now, "password")
            raise _invalid_credentials()
        return account, secrets

    async def _fail(self, account_id: str, now: int, what: str) -> None:
        async with self.database.transaction() as conn:
            await self._record_failure(conn, account_id, now)
        log.info("account.attempt_failed", account_id=account_id, what=what)

    async def _record_failure(self, conn: Connection, account_id: str, now: int) -> bool:
        """Count one failed attempt; True when it locks the account (a lock that expired starts a new count)."""
        current = await store.get_account(conn, account_id, lock=True)
        if current is None:
            return False
        expired = current.locked_until is not None and current.locked_until <= now
        failures = (0 if expired else current.failed_logins) + 1
        threshold = self.settings.lockout_threshold
        locked_until = now + self.settings.lockout_seconds if threshold > 0 and failures >= threshold else None
        await store.update_account(conn, account_id, now, failed_logins=failures, locked_until=locked_until)
        if locked_until is not None:
            log.warning("account.locked", account_id=account_id, until=locked_until)
        return locked_until is not None

    # ================================================================ operator actions
    async def suspend(self, account_id: str) -> Account:
        """Stop all access now (tokens already issued included); reactivation restores it."""
        return await self._set_status(account_id, AccountStatus.SUSPENDED)

    async def reactivate(self, account_id: str) -> Account:
        """Lift a suspension: back to ACTIVE, or to INACTIVE when the activation was never completed."""
        return await self._set_status(account_id, None)

    async def close(self, account_id: str) -> Account:
        """Close for good: access stops, secrets and pending codes are erased, assistant delegations revoked."""
        return await self._set_status(account_id, AccountStatus.CLOSED)

    async def unlock(self, account_id: str) -> Account:
        """Lift a lockout (and reset the failure count) before it expires on its own."""
        now = self._now()
        async with self.database.transaction() as conn:
            await self._require(conn, account_id, lock=True)
            await store.update_account(conn, account_id, now, failed_logins=0, locked_until=None)
            updated = await store.get_account(conn, account_id)
        assert updated is not None
        log.info("account.unlocked", account_id=account_id)
        return updated

    async def _set_status(self, account_id: str, target: AccountStatus | None) -> Account:
        now = self._now()
        async with self.database.transaction() as conn:
            account = await self._require(conn, account_id, lock=True)
            status = account.status
            if status is AccountStatus.CLOSED:
                raise AccountError("invalid_state", f"account {account_id} is closed (closure is final)")
            values: dict[str, object] = {}
            if target is AccountStatus.SUSPENDED:
                if status is AccountStatus.SUSPENDED:
                    raise AccountError("invalid_state", f"account {account_id} is already suspended")
                values = {"status": target.value}
            elif target is AccountStatus.CLOSED:
                values = {
                    "status": target.value,
                    "password_hash": None,
                    "totp_secret": None,
                    "totp_enabled": False,
                    "activation_code_hash": None,
                    "activation_expires": None,
                    "reset_code_hash": None,
                    "reset_expires": None,
                }
                await store.revoke_delegations(conn, account_id, None, now)
            else:  # reactivation
                if status is not AccountStatus.SUSPENDED:
                    raise AccountError("invalid_state", f"account {account_id} is {status.value}, not suspended")
                secrets = await store.read_secrets(conn, account_id)
                assert secrets is not None
                done = secrets.password_hash is not None and (
                    secrets.totp_enabled or not _requires_totp(account.kind, self.settings)
                )
                values = {"status": (AccountStatus.ACTIVE if done else AccountStatus.INACTIVE).value}
            if target is not None:  # suspension and closure stop every token issued so far
                values["tokens_valid_after"] = now + 1  # iat has 1 s granularity: this second's tokens too
                await store.revoke_refresh_tokens(conn, account_id)
            await store.update_account(conn, account_id, now, **values)
            updated = await store.get_account(conn, account_id)
        assert updated is not None
        log.info("account.status", account_id=account_id, status=updated.status.value)
        return updated

    async def _require(self, conn: Connection, account_id: str, *, lock: bool = False) -> Account:
        account = await store.get_account(conn, account_id, lock=lock)
        if account is None:
            raise AccountError("not_found", f"there is no account {account_id}")
        return account

    # ================================================================ password reset
    async def issue_reset_code(self, account_id: str) -> ActivationLetter:
        """A password-reset letter for an active account (a new code replaces any earlier one)."""
        now = self._now()
        code = codes.new_code()
        expires = now + self.settings.reset_code_ttl
        async with self.database.transaction() as conn:
            account = await self._require(conn, account_id, lock=True)
            if account.status is not AccountStatus.ACTIVE:
                raise AccountError(
                    "invalid_state",
                    f"account {account_id} is {account.status.value}: a reset code is for active accounts"
                    + (" (send an activation letter instead)" if account.status is AccountStatus.INACTIVE else ""),
                )
            await store.update_account(
                conn, account_id, now, reset_code_hash=codes.hash_code(code), reset_expires=expires
            )
        log.info("account.reset_code", account_id=account_id)
        return self._letter(account, code, expires, LetterPurpose.RESET)

    async def reset_password(
        self, username: str, code: str, matricule: str | None, new_password: str, totp_code: str | None = None
    ) -> Account:
        """Set a new password with a reset letter's code + the matricule (+ a TOTP code when enrolled).

        Access granted before stops: ``tokens_valid_after`` moves to now and refresh tokens are revoked.
        """
        now = self._now()
        account, secrets = await self._load(normalize_username(username))
        if account is None or secrets is None or account.status is not AccountStatus.ACTIVE:
            codes.code_matches(code, None)
            raise _error_copy(_RESET_FAILED)
        if _locked(account, now):
            raise AccountError("locked", _LOCKED_MESSAGE)
        proofs_ok = codes.code_matches(code, secrets.reset_code_hash) & (
            normalize_matricule(matricule) == normalize_matricule(account.matricule)
        )
        counter: int | None = None
        if secrets.totp_enabled:
            assert secrets.totp_secret is not None
            counter = totp.verify_totp(secrets.totp_secret, totp_code or "", now, secrets.totp_last_counter)
            proofs_ok = proofs_ok and counter is not None
        if not proofs_ok:
            await self._fail(account.id, now, "reset")
            raise _error_copy(_RESET_FAILED)
        if secrets.reset_expires is None or now >= secrets.reset_expires:
            raise AccountError("code_expired", "this reset code has expired: ask for a new one")
        check_password_policy(
            new_password,
            min_length=self.settings.password_min_length,
            personal=(account.username, account.matricule, account.email),
        )
        password_hash = await asyncio.to_thread(self.hashing.hash, new_password)
        error: AccountError | None = None
        async with self.database.transaction() as conn:
            latest = await store.read_secrets(conn, account.id)
            current = await store.get_account(conn, account.id, lock=True)
            if latest is None or current is None or latest.reset_code_hash != secrets.reset_code_hash:
                error = _error_copy(_RESET_FAILED)
            elif counter is not None and not await store.claim_totp_counter(conn, account.id, counter, now):
                await self._record_failure(conn, account.id, now)
                error = _error_copy(_RESET_FAILED)
            else:
                await store.update_account(
                    conn,
                    account.id,
                    now,
                    password_hash=password_hash,
                    reset_code_hash=None,
                    reset_expires=None,
                    failed_logins=0,
                    locked_until=None,
                    tokens_valid_after=now + 1,  # tokens issued up to this second (iat) stop working
                )
                await store.revoke_refresh_tokens(conn, account.id)
        if error is not None:
            raise error
        log.info("account.password_reset", account_id=account.id)
        updated = await self.get(account.id)
        assert updated is not None
        return updated

    # ================================================================ delegations (DSP assistants)
    async def add_delegation(self, assistant_account_id: str, patient_id: str) -> None:
        """Let a patient account act for another patient (a DSP assistant)."""
        patient = check_fhir_id(patient_id, "Patient")
        now = self._now()
        async with self.database.transaction() as conn:
            account = await self._require(conn, assistant_account_id, lock=True)
            if account.kind is not AccountKind.PATIENT:
                raise AccountError("not_a_patient_account", "only a patient account can be a DSP assistant")
            if account.status not in (AccountStatus.ACTIVE, AccountStatus.INACTIVE):
                raise AccountError(
                    "invalid_state", f"account {assistant_account_id} is {account.status.value}: it cannot assist"
                )
            if account.patient_id == patient:
                raise AccountError("self_delegation", "an account cannot be the assistant of its own patient")
            if not await store.resource_exists(conn, "Patient", patient):
                raise AccountError("unknown_patient", f"there is no Patient/{patient} in the store")
            if patient in await store.active_delegations(conn, assistant_account_id):
                raise AccountError("delegation_exists", f"this account already assists Patient/{patient}")
            await store.add_delegation(conn, assistant_account_id, patient, now)
        log.info("account.delegation_added", account_id=assistant_account_id)

    async def revoke_delegation(self, assistant_account_id: str, patient_id: str) -> None:
        now = self._now()
        async with self.database.transaction() as conn:
            await self._require(conn, assistant_account_id, lock=True)
            if not await store.revoke_delegations(conn, assistant_account_id, [patient_id.strip()], now):
                raise AccountError("delegation_not_found", f"this account does not assist Patient/{patient_id}")
        log.info("account.delegation_revoked", account_id=assistant_account_id)


def _locked(account: Account, now: int) -> bool:
    return account.locked_until is not None and now < account.locked_until


def _status_error(account: Account) -> AuthenticationError | None:
    if account.status is AccountStatus.CLOSED:
        return AuthenticationError("closed", "this account is closed")
    if account.status is AccountStatus.SUSPENDED:
        return AuthenticationError("suspended", "this account is suspended; contact the helpdesk")
    if account.status is AccountStatus.INACTIVE:
        return AuthenticationError("inactive", "this account is not activated yet: use the activation letter")
    if account.kind is not AccountKind.PATIENT and not account.totp_enabled:  # never without a second factor
        return AuthenticationError("inactive", "this account has no second factor enrolled: contact the helpdesk")
    return None
