"""The registry of identifier domains (one per establishment): who may feed identities of which system.

The national domains (matricule, eSanté patient identifier) are built in; establishment domains are registered by
an operator (``esante mpi domains add``) with their OID, name, organization and the OAuth client that is their one
identity source (IHE PIXm: a Patient Identity Source per domain).
"""

from __future__ import annotations

import re
import time

from esante.db.engine import Connection, Database, IntegrityViolation
from esante.mpi.model import NATIONAL_DOMAINS, NATIONAL_SYSTEMS, Domain

_OID_SYSTEM = re.compile(r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$")


class DomainError(ValueError):
    """A registration refused: the message names the problem."""


def check_system(system: str) -> str:
    """An identifier domain is named by an OID: ``urn:oid:1.3.182.3.1.1.<n>.2``."""
    value = system.strip()
    if not _OID_SYSTEM.match(value):
        raise DomainError(f"{system!r} is not an OID system (urn:oid:1.2.3...)")
    if value in NATIONAL_SYSTEMS:
        raise DomainError(f"{value} is a national domain, registered with the platform")
    return value


def _row(row: tuple[object, ...]) -> Domain:
    system, name, organization, client, created = row
    return Domain(
        str(system),
        str(name),
        str(organization) if organization else None,
        str(client) if client else None,
        created_at=int(created),  # type: ignore[call-overload]
    )


class DomainStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def register(
        self, system: str, name: str, *, organization: str | None = None, source_client_id: str | None = None
    ) -> Domain:
        domain = Domain(check_system(system), name.strip(), organization, source_client_id, created_at=int(time.time()))
        if not domain.name:
            raise DomainError("a domain needs a name")
        try:
            async with self.database.transaction() as conn:
                await conn.execute(
                    "INSERT INTO mpi_domain (system, name, organization, source_client_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (domain.system, domain.name, domain.organization, domain.source_client_id, domain.created_at),
                )
        except IntegrityViolation as error:
            raise DomainError(f"domain {domain.system} is already registered") from error
        return domain

    async def get(self, system: str, conn: Connection | None = None) -> Domain | None:
        national = next((d for d in NATIONAL_DOMAINS if d.system == system), None)
        if national is not None:
            return national
        sql = "SELECT system, name, organization, source_client_id, created_at FROM mpi_domain WHERE system = ?"
        if conn is not None:
            row = await conn.fetchrow(sql, (system,))
        else:
            async with self.database.read() as own:
                row = await own.fetchrow(sql, (system,))
        return _row(tuple(row)) if row is not None else None

    async def list(self) -> list[Domain]:
        async with self.database.read() as conn:
            rows = await conn.fetch(
                "SELECT system, name, organization, source_client_id, created_at FROM mpi_domain ORDER BY system"
            )
        return [*NATIONAL_DOMAINS, *(_row(tuple(r)) for r in rows)]
