"""Matchers for the identity feed.

:class:`MatriculeMatcher` links a local identity that carries a valid matricule to the certified identity holding
it (certain). It is the deterministic first rule of the feed; the probabilistic engine (mpi/matching) adds the
identities without a matricule or with a mistyped one.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.db.engine import Connection
from esante.identifiers.matricule import MatriculeError, parse_matricule
from esante.mpi.feed import Candidate
from esante.mpi.model import MATRICULE_SYSTEM, IdentityLevel
from esante.mpi.people import level_of


class MatriculeMatcher:
    async def candidates(self, conn: Connection, patient: dict[str, Any], limit: int) -> list[Candidate]:
        values = []
        for identifier in patient.get("identifier", []):
            if identifier.get("system") == MATRICULE_SYSTEM and isinstance(identifier.get("value"), str):
                try:
                    values.append(parse_matricule(identifier["value"]).value)
                except MatriculeError:
                    continue
        if not values:
            return []
        marks = ", ".join("?" * len(values))
        rows = await conn.fetch(
            "SELECT r.res_id, r.content FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current"
            f" AND NOT r.deleted WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.code IN ({marks})"
            " AND t.system = ?",
            [*values, MATRICULE_SYSTEM],
        )
        found = [
            Candidate(str(row[0]), 1.0, "auto-link", "certain", {"matricule": "exact"})
            for row in rows
            if level_of(orjson.loads(bytes(row[1]))) is IdentityLevel.CERTIFIED
        ]
        return found[:limit]
