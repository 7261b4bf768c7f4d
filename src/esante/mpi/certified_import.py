"""Bulk import of certified identities from the national register (``esante mpi import FILE --certified``).

Input: NDJSON (one FHIR Patient per line) or CSV (documented columns, see :mod:`esante.mpi.sources`). Each identity
must carry a valid matricule (``urn:oid:1.3.182.4.4``: 13 digits with its Luhn and Verhoeff check digits; the old
11-digit form is accepted and flagged ``old-matricule``). The import is **idempotent**, keyed on the matricule: an
identity already certified is updated when its content changed (a new version; unchanged ones are left alone) and
keeps its id and eSanté patient identifier; a new one is created, tagged ``certified``, and given an eSanté patient
identifier (``urn:oid:1.3.182.2.4.2``) — any eSanté identifier in the file is ignored: only the MPI assigns them.
Rejected lines are reported with their line number and the reason; the others are imported.

Batches of ``batch_size`` identities are written in one transaction each (the store buffers their rows and index
rows into a few statements), so an interrupted import keeps what it finished and can simply be run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.errors import FhirError
from esante.fhir.model import StoredResource
from esante.fhir.store import ResourceStore
from esante.fhir.validation import validate_resource
from esante.identifiers.esante_id import new_esante_id
from esante.identifiers.matricule import MatriculeError, parse_matricule
from esante.mpi.model import ESANTE_ID_SYSTEM, FLAG_SYSTEM, MATRICULE_SYSTEM, IdentityLevel, level_tag
from esante.mpi.people import level_of

Source = Iterable[tuple[int, dict[str, Any] | str]]  # (line number, Patient or the reason the line is unreadable)


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class ImportResult:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return (self.read - len(self.rejected)) / self.seconds if self.seconds else 0.0


def prepare(resource: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check one identity and shape it as the MPI stores it; returns (matricule, Patient). Raises ValueError."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise ValueError("not a FHIR Patient")
    try:
        validate_resource(resource, expected_type="Patient")
    except FhirError as error:
        raise ValueError("; ".join(issue.diagnostics for issue in error.issues)) from error
    matricules = [i for i in resource.get("identifier", []) if i.get("system") == MATRICULE_SYSTEM]
    if len(matricules) != 1 or not isinstance(matricules[0].get("value"), str):
        raise ValueError(f"a certified identity needs exactly one matricule ({MATRICULE_SYSTEM})")
    try:
        matricule = parse_matricule(matricules[0]["value"])
    except MatriculeError as error:
        raise ValueError(f"invalid matricule: {error}") from error
    body = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
    identifiers = [
        i for i in resource.get("identifier", []) if i.get("system") not in (MATRICULE_SYSTEM, ESANTE_ID_SYSTEM)
    ]
    body["identifier"] = [{"use": "official", "system": MATRICULE_SYSTEM, "value": matricule.value}, *identifiers]
    tags = [level_tag(IdentityLevel.CERTIFIED)]
    if matricule.old:
        tags.append({"system": FLAG_SYSTEM, "code": "old-matricule"})
    body["meta"] = {"tag": tags}
    return matricule.value, body


def _comparable(content: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in content.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    return {**{k: v for k, v in content.items() if k not in ("meta", "id")}, "meta": meta}


class CertifiedImporter:
    def __init__(self, store: ResourceStore, batch_size: int = 500) -> None:
        self.store = store
        self.batch_size = batch_size

    async def run(self, source: Source, progress: Callable[[int], None] | None = None) -> ImportResult:
        result = ImportResult()
        started = time.perf_counter()
        batch: list[tuple[int, str, dict[str, Any]]] = []
        for line, item in source:
            result.read += 1
            try:
                if isinstance(item, str):
                    raise ValueError(item)
                matricule, body = prepare(item)
            except ValueError as error:
                result.rejected.append(Rejection(line, str(error)))
                continue
            batch.append((line, matricule, body))
            if len(batch) >= self.batch_size:
                await self._write(batch, result)
                batch = []
                if progress is not None:
                    progress(result.read)
        if batch:
            await self._write(batch, result)
        if progress is not None:
            progress(result.read)
        result.seconds = time.perf_counter() - started
        return result

    async def _write(self, batch: list[tuple[int, str, dict[str, Any]]], result: ImportResult) -> None:
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn)
            # a lookup of 500 values: planned with them (a generic plan filtered every matricule of the register)
            await session.plan_searches_per_execution()
            existing = await _certified_by_matricule(conn, [m for _, m, _ in batch])
            fresh = iter(await _fresh_ids(conn, len({m for _, m, _ in batch} - set(existing))))
            new: list[tuple[str, StoredResource]] = []
            for _line, matricule, body in batch:
                current = existing.get(matricule)
                if current is None:
                    esante_id = next(fresh)
                    body["identifier"].insert(1, {"use": "secondary", "system": ESANTE_ID_SYSTEM, "value": esante_id})
                    stored = await session.create(body, client_id=False)
                    new.append((esante_id, stored))
                    existing[matricule] = stored
                    result.created += 1
                    continue
                assert current.content is not None
                old = orjson.loads(current.content)
                kept = [i for i in old.get("identifier", []) if i.get("system") == ESANTE_ID_SYSTEM]
                body["identifier"][1:1] = kept
                body["id"] = current.res_id
                if _comparable(body) == _comparable(old):
                    result.unchanged += 1
                    continue
                existing[matricule] = await session.update(body, current)
                result.updated += 1
            await session.flush()
            if new:
                now = int(time.time())
                await conn.executemany(
                    "INSERT INTO mpi_esante_id (esante_id, res_id, assigned_at) VALUES (?, ?, ?)",
                    [(esante_id, stored.res_id, now) for esante_id, stored in new],
                )


async def _certified_by_matricule(conn: Connection, matricules: list[str]) -> dict[str, StoredResource]:
    """The current certified identities holding these matricules.

    One indexed lookup on the identifier (``ix_idx_token_value``); the level is checked on the loaded content: a
    condition on the ``_tag`` index in the same statement made PostgreSQL hash every certified identity of the
    register for each batch (0.5 s a batch at 20,000 identities).
    """
    from esante.fhir.store import _SELECT_COLUMNS, row_to_stored

    unique = sorted(set(matricules))
    marks = ", ".join("?" * len(unique))
    columns = ", ".join("r." + c.strip() for c in _SELECT_COLUMNS.split(","))
    rows = await conn.fetch(
        f"SELECT t.code, {columns} FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted"
        f" WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.code IN ({marks}) AND t.system = ?",
        [*unique, MATRICULE_SYSTEM],
    )
    found: dict[str, StoredResource] = {}
    for row in rows:
        stored = row_to_stored(row[1:])
        if stored.content is not None and level_of(orjson.loads(stored.content)) is IdentityLevel.CERTIFIED:
            found[str(row[0])] = stored
    return found


async def _fresh_ids(conn: Connection, count: int) -> list[str]:
    """``count`` eSanté patient identifiers never assigned before, checked in one statement (the ledger's primary
    key is the final guard)."""
    chosen: set[str] = set()
    while len(chosen) < count:
        candidates = {new_esante_id() for _ in range(count - len(chosen))} - chosen
        marks = ", ".join("?" * len(candidates))
        taken = await conn.fetch(
            f"SELECT esante_id FROM mpi_esante_id WHERE esante_id IN ({marks})", sorted(candidates)
        )
        chosen |= candidates - {str(row[0]) for row in taken}
    return sorted(chosen)


def import_event(result: ImportResult, file_name: str, operator: str, settings: Any) -> dict[str, Any]:
    """One AuditEvent for an import run (DICOM 110107 Import): who imported what file, with what outcome.

    A national register import touches a million patients: one event naming the file and the counts stands for it
    (the identities' own history keeps every version it wrote).
    """
    from esante.fhir.model import micros_to_instant

    server = settings.effective_audience
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110107", "display": "Import"},
        "subtype": [{"system": "urn:esante:mpi-operation", "code": "certified-import"}],
        "action": "C",
        "recorded": micros_to_instant(int(time.time() * 1_000_000)),
        "outcome": "0" if not result.rejected else "4",
        **({"outcomeDesc": f"{len(result.rejected)} line(s) rejected"} if result.rejected else {}),
        "agent": [
            {
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "AUT"}]
                },
                "who": {"identifier": {"system": "urn:esante:operator", "value": operator}},
                "requestor": True,
            }
        ],
        "source": {"site": server, "observer": {"display": "esante mpi import"}},
        "entity": [
            {
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "what": {"display": file_name},
                "detail": [
                    {"type": name, "valueString": str(value)}
                    for name, value in (
                        ("read", result.read),
                        ("created", result.created),
                        ("updated", result.updated),
                        ("unchanged", result.unchanged),
                        ("rejected", len(result.rejected)),
                    )
                ],
            }
        ],
    }
