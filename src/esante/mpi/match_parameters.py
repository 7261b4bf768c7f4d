"""Where the matching engine's parameter sets live: versioned in ``mpi_match_parameters``, one of them active.

A parameter set (m/u per field and level, the prior λ, the thresholds) is estimated from the registry itself
(``esante mpi train``: EM, no labels) and stored under its content version (``fs-<hash>``); activating one makes
every process of the platform score with it from its next look-up (the engine re-reads the active version at most
every few seconds). Old sets stay, so a decision made yesterday can be re-scored with yesterday's parameters and an
activation can be undone. Until anything is trained, the engine uses the set shipped with the package
(``mpi/data/default-parameters.json``, estimated on the seeded synthetic Luxembourg population by
``scripts/mpi_default_parameters.py``).
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from esante.db.engine import Connection, Database
from esante.mpi.matching import ParameterError, ParameterSet

DEFAULT_SOURCE = "package default (synthetic Luxembourg population)"


def default_parameters() -> ParameterSet:
    text = resources.files("esante.mpi").joinpath("data/default-parameters.json").read_text(encoding="utf-8")
    return ParameterSet.from_json(text)


class ParameterStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def active(self, conn: Connection | None = None) -> ParameterSet:
        """The active set, or the packaged default when none was ever activated."""
        sql = "SELECT content FROM mpi_match_parameters WHERE active ORDER BY activated_at DESC LIMIT 1"
        if conn is not None:
            content = await conn.fetchval(sql)
        else:
            async with self.database.read() as read:
                content = await read.fetchval(sql)
        return default_parameters() if content is None else ParameterSet.from_json(str(content))

    async def save(self, params: ParameterSet, source: str, *, activate: bool) -> str:
        """Store a set (idempotent on its version) and optionally make it the active one."""
        now = int(time.time())
        async with self.database.transaction() as conn:
            known = await conn.fetchval("SELECT 1 FROM mpi_match_parameters WHERE version = ?", (params.version,))
            if not known:
                await conn.execute(
                    "INSERT INTO mpi_match_parameters (version, created_at, activated_at, active, source, content)"
                    " VALUES (?, ?, NULL, FALSE, ?, ?)",
                    (params.version, now, source, params.to_json()),
                )
            if activate:
                await self._activate(conn, params.version, now)
        return params.version

    async def activate(self, version: str) -> None:
        async with self.database.transaction() as conn:
            if not await conn.fetchval("SELECT 1 FROM mpi_match_parameters WHERE version = ?", (version,)):
                raise ParameterError(f"no parameter set {version!r} (esante mpi parameters list)")
            await self._activate(conn, version, int(time.time()))

    @staticmethod
    async def _activate(conn: Connection, version: str, now: int) -> None:
        await conn.execute("UPDATE mpi_match_parameters SET active = FALSE WHERE active AND version <> ?", (version,))
        await conn.execute(
            "UPDATE mpi_match_parameters SET active = TRUE, activated_at = ? WHERE version = ?", (now, version)
        )

    async def list(self) -> list[dict[str, Any]]:
        async with self.database.read() as conn:
            rows = await conn.fetch(
                "SELECT version, created_at, activated_at, active, source FROM mpi_match_parameters"
                " ORDER BY created_at DESC, version"
            )
        return [
            {"version": r[0], "created_at": r[1], "activated_at": r[2], "active": bool(r[3]), "source": r[4]}
            for r in rows
        ]
