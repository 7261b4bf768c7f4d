"""The pure parts of the authorization server: scope intersection, subject roles and purposes of use, the consent
page's wording, the tickets; and the grant store's housekeeping on both databases."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from esante.db.engine import Database
from esante.security.accounts.model import Account, AccountKind, AccountStatus
from esante.security.oauth import tickets
from esante.security.oauth.clients import OAuthClient
from esante.security.oauth.grant_store import GrantStore, hash_secret
from esante.security.oauth.grants_policy import (
    PolicyError,
    choose_purpose,
    intersect,
    patient_choices,
    person_scope,
    subject_role,
    system_scope,
)
from esante.security.oauth.pages import describe_scopes
from esante.security.scopes import parse_scopes
from tests.security.helpers import ring_in


def client(scopes: str) -> OAuthClient:
    return OAuthClient("c", "C", kind="app", scopes=scopes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "registered", "granted"),
    [
        ("patient/Observation.cruds", "patient/*.rs", ["patient/Observation.rs"]),
        ("patient/*.rs", "patient/Observation.cruds patient/Patient.r", ["patient/Observation.rs",
                                                                         "patient/Patient.r"]),
        ("patient/*.read", "patient/*.cruds", ["patient/*.rs"]),
        ("patient/Observation.rs", "user/*.rs", []),
        ("patient/Observation.cud", "patient/*.rs", []),
        ("patient/*.rs patient/Observation.rs", "patient/*.cruds", ["patient/*.rs"]),
        (
            "patient/Observation.rs?category=laboratory",
            "patient/*.rs",
            ["patient/Observation.rs?category=laboratory"],
        ),
        ("patient/Observation.rs", "patient/Observation.rs?category=vital-signs", [
            "patient/Observation.rs?category=vital-signs"
        ]),
        ("patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", []),
        ("openid fhirUser offline_access launch/patient", "openid launch/patient", ["openid", "launch/patient"]),
    ],
)  # fmt: skip
def test_intersection(requested: str, registered: str, granted: list[str]) -> None:
    assert intersect(parse_scopes(requested), parse_scopes(registered)) == granted


def test_person_scope_needs_a_patient_for_patient_scopes() -> None:
    app = client("patient/*.rs user/*.rs launch/patient offline_access system/*.rs")
    asked = "patient/*.rs user/Patient.rs launch/patient offline_access system/*.rs"
    assert person_scope(asked, app, has_patient=True) == "patient/*.rs user/Patient.rs launch/patient offline_access"
    assert person_scope(asked, app, has_patient=False) == "user/Patient.rs offline_access"
    with pytest.raises(PolicyError) as error:
        person_scope("patient/*.rs launch/patient", app, has_patient=False)
    assert error.value.error == "invalid_scope"
    with pytest.raises(PolicyError):
        person_scope("offline_access openid", app, has_patient=True)  # no resource scope at all
    with pytest.raises(PolicyError):
        person_scope("patient/*.zz", app, has_patient=True)


def test_system_scope() -> None:
    lab = client("system/Observation.cruds system/Patient.rs")
    assert system_scope(None, lab) == "system/Observation.cruds system/Patient.rs"
    assert system_scope("system/*.r user/*.rs", lab) == "system/Observation.r system/Patient.r"
    with pytest.raises(PolicyError):
        system_scope("user/*.rs", lab)


def account(kind: AccountKind, **values: object) -> Account:
    return Account("a1", kind, "u", AccountStatus.ACTIVE, **values)  # type: ignore[arg-type]


def test_roles_purposes_and_patient_choices() -> None:
    lea = account(AccountKind.PATIENT, patient_id="p1")
    assert subject_role(lea, "p1") == "patient" and subject_role(lea, "p2") == "assistant"
    assert subject_role(account(AccountKind.PROFESSIONAL), None) == "professional"
    assert patient_choices(lea, ["p2", "p1", "p3"]) == ["p1", "p2", "p3"]
    assert patient_choices(account(AccountKind.STAFF), ["p2"]) == []
    assert choose_purpose("patient", None) == "PATRQT" and choose_purpose("professional", "ETREAT") == "ETREAT"
    assert choose_purpose("system", None) is None
    with pytest.raises(PolicyError, match="not allowed for a patient"):
        choose_purpose("patient", "TREAT")


def test_scopes_in_words() -> None:
    assert describe_scopes("patient/*.rs user/Observation.cruds system/Patient.r offline_access") == [
        "Read and search all data of the selected patient",
        "Create, read, update, delete and search Observation records you are allowed to see",
        "Read Patient records of the platform",
        "Keep access when you are not using it (until you revoke it or it expires)",
    ]
    assert describe_scopes("patient/Observation.rs?category=laboratory") == [
        "Read and search Observation records of the selected patient (only: category = laboratory)"
    ]


def test_tickets_round_trip_and_refuse_what_is_not_theirs(tmp_path: Path) -> None:
    ring = ring_in(tmp_path)
    issuer = "https://as.example"
    ticket = tickets.issue(ring, issuer, tickets.CONSENT, {"client_id": "c"}, acct="a1", patients=["p1"])
    claims = tickets.read(ring, issuer, ticket, tickets.CONSENT)
    assert claims["req"] == {"client_id": "c"} and claims["acct"] == "a1" and claims["patients"] == ["p1"]
    assert claims["exp"] - claims["iat"] == tickets.TICKET_TTL
    with pytest.raises(tickets.TicketError, match="out of order"):
        tickets.read(ring, issuer, ticket, tickets.LOGIN)
    with pytest.raises(tickets.TicketError, match="altered"):
        tickets.read(ring, "https://other.example", ticket, tickets.CONSENT)
    with pytest.raises(tickets.TicketError, match="expired"):
        tickets.read(ring, issuer, ticket, tickets.CONSENT, now=time.time() + tickets.TICKET_TTL + 1)
    other_ring = ring_in(tmp_path / "other")
    with pytest.raises(tickets.TicketError):
        tickets.read(other_ring, issuer, ticket, tickets.CONSENT)
    from esante.security.tokens import mint

    access = mint(ring, issuer=issuer, audience="x", subject="s", client_id="c", scope="user/*.rs", ttl=60)
    with pytest.raises(tickets.TicketError, match="altered"):
        tickets.read(ring, issuer, access, tickets.CONSENT)  # an access token is not a ticket


async def test_the_grant_store_forgets_what_can_no_longer_matter(database: Database) -> None:
    store = GrantStore(database, access_token_max_ttl=3600)
    now = int(time.time())
    assert await store.use_assertion("lab", "j1", now - 10, now - 100)
    assert await store.use_assertion("lab", "j2", now + 300, now)
    assert not await store.use_assertion("lab", "j2", now + 300, now)  # replay
    await store.revoke_access("old-jti", now - 1)
    await store.revoke_access("live-jti", now + 100)
    await store.save_code(
        "old-code", client_id="c", account_id="a", redirect_uri="https://a/cb", scope="user/*.rs", person_id=None,
        subject_role="staff", code_challenge="x" * 43, purpose_of_use=None, now=now - 200_000, ttl=60,
    )  # fmt: skip
    await store.purge(now, force=True)
    async with database.read() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM oauth_assertion_jti") == 1
        assert await conn.fetchval("SELECT jti FROM oauth_revoked_token") == "live-jti"
        assert (
            await conn.fetchval("SELECT COUNT(*) FROM oauth_code WHERE code_hash = ?", (hash_secret("old-code"),)) == 0
        )
    assert not await store.use_assertion("lab", "j2", now + 300, now)  # still remembered until it expires
    assert await store.is_revoked("live-jti") and not await store.is_revoked("old-jti")
