"""Accounts as the rest of the platform sees them: kinds, states, staff roles, and the errors of their use cases.

Pure data (no I/O). The SQL lives in ``accounts/store.py``, the use cases in ``accounts/service.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AccountKind(StrEnum):
    PATIENT = "patient"  # linked to a Patient resource; may also assist other patients (DSP assistant)
    PROFESSIONAL = "professional"  # linked to a Practitioner; identified by the eHealthID
    STAFF = "staff"  # agency staff, with roles


class AccountStatus(StrEnum):
    INACTIVE = "inactive"  # created, waiting for activation with the letter's code
    ACTIVE = "active"
    SUSPENDED = "suspended"  # by an operator (or by the right-to-practise withdrawal); reactivation restores it
    CLOSED = "closed"  # final


class StaffRole(StrEnum):
    ADMINISTRATOR = "administrator"
    IDENTITY_VIGILANCE = "identity-vigilance"
    STATISTICIAN = "statistician"
    HPD_ADMINISTRATOR = "hpd-administrator"  # suspends, withdraws and restores rights to practise (HPD)


@dataclass(frozen=True)
class Account:
    """One account, without its secrets (hashes never leave the store module)."""

    id: str
    kind: AccountKind
    username: str
    status: AccountStatus
    display_name: str | None = None
    patient_id: str | None = None
    practitioner_id: str | None = None
    ehealth_id: str | None = None
    roles: tuple[StaffRole, ...] = ()
    matricule: str | None = None
    email: str | None = None
    mobile: str | None = None
    totp_enabled: bool = False
    failed_logins: int = 0
    locked_until: int | None = None
    tokens_valid_after: int = 0
    created_at: int = 0
    updated_at: int = 0

    @property
    def fhir_user(self) -> str | None:
        """The FHIR resource this account's person is (SMART ``fhirUser``): Patient/x or Practitioner/x."""
        if self.kind is AccountKind.PATIENT and self.patient_id:
            return f"Patient/{self.patient_id}"
        if self.kind is AccountKind.PROFESSIONAL and self.practitioner_id:
            return f"Practitioner/{self.practitioner_id}"
        return None


class AccountError(Exception):
    """A refused account operation; ``code`` is stable (tests, audit, API error codes), the message is for people.

    Messages never reveal whether another account exists or which of several secrets was wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AuthenticationError(AccountError):
    """Login refused: codes ``invalid_credentials``, ``second_factor_required``, ``locked``, ``inactive``,
    ``suspended``, ``closed``, and the standing checks' codes (``right_to_practise_suspended``, ...)."""
