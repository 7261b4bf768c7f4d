"""The identity feed's matcher: the probabilistic engine (mpi/engine.py) over the certified identities.

The matricule is one of the engine's compared fields (and a blocking key), so a local identity carrying the right
matricule and agreeing traits is linked with certainty, and one with a mistyped matricule is still found by its
other traits; a matricule alone, against disagreeing traits, is not enough to link (a reused or mistyped number
must not join two people).
"""

from __future__ import annotations

from typing import Any

from esante.db.engine import Connection
from esante.fhir.errors import bad_request
from esante.mpi.engine import MatchingEngine
from esante.mpi.feed import Candidate
from esante.mpi.matching import NO_LINK, RecordError
from esante.mpi.matching import Candidate as Scored


def to_candidate(found: Scored) -> Candidate:
    agreement = {name: level for name, level in found.score.levels().items() if level != "missing"}
    decision = found.decision.replace("_", "-")  # the engine's auto_link / no_link → the feed's auto-link / no-link
    return Candidate(found.record_id, found.probability, decision, found.grade, agreement)


class EngineMatcher:
    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine

    @property
    def version(self) -> str:
        return self.engine.parameter_version

    async def candidates(self, conn: Connection, patient: dict[str, Any], limit: int) -> list[Candidate]:
        try:
            found = await self.engine.lookup(conn, patient, limit, min_probability=0.0)
        except RecordError as exc:  # valid FHIR, but a trait no identity can have (a birth year of 1700)
            raise bad_request(f"identity traits not usable for matching: {exc}", expression="Patient") from exc
        return [to_candidate(c) for c in found if c.decision != NO_LINK]
