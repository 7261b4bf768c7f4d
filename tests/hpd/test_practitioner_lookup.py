"""The bearer gate reads a professional's Practitioner once per request, for every service's check (DSP, CVE),
on both databases; a change in the directory acts on the next request (nothing kept across requests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from esante.cve.access_caller import PRACTITIONER as CVE_PRACTITIONER
from esante.cve.access_caller import VACCINATOR
from esante.db.engine import Connection
from esante.dsp.access_rule import PRACTITIONER as DSP_PRACTITIONER
from esante.dsp.access_rule import PROFESSIONS
from esante.security.policy import Caller
from tests.dsp.dsp_support import World, dsp_world, practitioner


class StatementLog:
    """A real connection that records the SQL it is given (to count the Practitioner lookups)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sql: list[str] = []

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.sql.append(sql)
        return await self.conn.fetch(sql, params)

    async def fetchrow(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.sql.append(sql)
        return await self.conn.fetchrow(sql, params)

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.sql.append(sql)
        return await self.conn.fetchval(sql, params)

    def practitioner_reads(self) -> int:
        return sum(1 for sql in self.sql if "res_type = 'Practitioner'" in sql)


async def authenticated(world: World, ehealth_id: str) -> tuple[Caller, StatementLog]:
    headers = {k.lower(): v for k, v in world.professional(ehealth_id).items()}
    async with world.database.read() as conn:
        spy = StatementLog(conn)
        caller = await world.platform.resource_server.authenticate(headers, spy)  # type: ignore[arg-type]
    return caller, spy


async def test_one_practitioner_read_serves_every_check(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world, httpx.AsyncClient(timeout=30) as http:
        nurse = await practitioner(http, world, "nurse", 1, profession="infirmier")
        caller, spy = await authenticated(world, nurse)
        assert caller.attributes[DSP_PRACTITIONER] == "nurse"
        assert caller.attributes[CVE_PRACTITIONER] == "nurse"
        assert caller.attributes[PROFESSIONS] == ("infirmier",)
        assert spy.practitioner_reads() == 1, spy.sql  # the DSP's and the CVE's checks each read it before

        # the directory changes: the next request sees the new profession (nothing kept across requests)
        await practitioner(http, world, "nurse", 1, profession="medecin")
        caller, spy = await authenticated(world, nurse)
        assert caller.attributes[PROFESSIONS] == ("medecin",)
        assert caller.attributes[VACCINATOR] is True
        assert spy.practitioner_reads() == 1


async def test_unknown_professional_is_nobody_to_every_check(db_url: str, tmp_path: Path) -> None:
    async with dsp_world(db_url, tmp_path) as world:
        caller, spy = await authenticated(world, "9999999999")
        assert caller.attributes[DSP_PRACTITIONER] == ""
        assert caller.attributes[CVE_PRACTITIONER] == ""
        assert caller.attributes[VACCINATOR] is False
        assert spy.practitioner_reads() == 1
