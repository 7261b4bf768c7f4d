"""Shared pieces of the account tests: a fast argon2 profile, a movable clock, FHIR resources to link to."""

from __future__ import annotations

from typing import Any

from esante.config import Settings
from esante.db.engine import Database
from esante.fhir.store import ResourceStore
from esante.identifiers.ehealth_id import make_ehealth_id
from esante.security.accounts import totp
from esante.security.accounts.passwords import Argon2Parameters, PasswordHashing
from esante.security.accounts.service import AccountService
from tests.security.helpers import FakeClock

# argon2id with tiny costs: the tests exercise the logic, not the hardness (the default profile is tested once)
FAST = Argon2Parameters(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"
MATRICULE = "1982080285657"
EHEALTH_ID = make_ehealth_id("285412345")


async def add_resource(database: Database, resource: dict[str, Any], res_id: str) -> None:
    """Store a resource with a client-chosen id, as a PUT would."""
    store = ResourceStore(database)
    async with database.transaction() as conn:
        session = store.session(conn)
        await session.create(dict(resource), res_id=res_id)
        await session.flush()


async def add_patient(database: Database, res_id: str) -> None:
    await add_resource(database, {"resourceType": "Patient", "name": [{"family": res_id}]}, res_id)


async def add_practitioner(database: Database, res_id: str) -> None:
    await add_resource(database, {"resourceType": "Practitioner", "name": [{"family": res_id}]}, res_id)


def service_for(database: Database, clock: FakeClock, **settings: Any) -> AccountService:
    return AccountService(database, Settings(**settings), clock=clock, hashing=PasswordHashing(FAST))


def current_code(secret: str, clock: FakeClock) -> str:
    return totp.code_at(secret, clock())
