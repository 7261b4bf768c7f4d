"""The certified import's bulk path: preparation in worker processes, precomputed index rows, COPY, the ledger.

The rows a worker extracts must be exactly the rows the store would have extracted (searches find what was
imported), a proposed eSanté identifier already in the ledger is drawn again, and the known-matricule hint only
saves work: it never decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from esante.app import Platform
from esante.fhir.indexing import extract_index_rows
from esante.mpi import certified_import
from esante.mpi.certified_import import CertifiedImporter, Prepared, Rejection, prepare_chunk
from esante.mpi.model import ESANTE_ID_SYSTEM, MATRICULE_SYSTEM
from esante.mpi.sources import read_file
from esante.synth.config import PopulationConfig
from esante.synth.fhir import certified_patient
from esante.synth.population import iter_persons

_TABLES = ("string", "token", "date", "number", "quantity", "reference", "uri")


def _register(path: Path, count: int, seed: int = 7) -> list[dict[str, Any]]:
    people = [certified_patient(p) for p in iter_persons(PopulationConfig(count=count, seed=seed))]
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in people))
    return people


async def _stored_index(platform: Platform) -> tuple[dict[int, dict[str, Any]], dict[int, set[tuple[Any, ...]]]]:
    """The current Patients by rid, and every index row in the database by rid (without rid and res_type)."""
    async with platform.database.read() as conn:
        rows = await conn.fetch("SELECT rid, content FROM resource WHERE res_type = 'Patient' AND is_current")
        people = {int(r[0]): orjson.loads(bytes(r[1])) for r in rows}
        indexed: dict[int, set[tuple[Any, ...]]] = {rid: set() for rid in people}
        for kind in _TABLES:
            for row in await conn.fetch(f"SELECT * FROM idx_{kind} WHERE res_type = 'Patient'"):
                indexed[int(row[0])].add((kind, *row[2:]))
    return people, indexed


def _esante(patient: dict[str, Any]) -> str:
    return str(next(i["value"] for i in patient["identifier"] if i["system"] == ESANTE_ID_SYSTEM))


def _expected(resource: dict[str, Any]) -> set[tuple[Any, ...]]:
    rows = extract_index_rows(resource)
    return {(kind, *value) for kind in _TABLES for value in getattr(rows, kind)}


@pytest.mark.parametrize("workers", [0, 2])
async def test_bulk_import_writes_the_rows_the_store_would(
    platform: Platform, tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(certified_import, "POOL_AFTER", 0)  # the worker processes from the first chunk
    monkeypatch.setattr(certified_import, "ANALYZE_FIRST", 100)  # statistics refreshed during the run too
    source = tmp_path / "register.ndjson"
    people = _register(source, 450)
    importer = CertifiedImporter(platform.store, batch_size=300, workers=workers)  # 300 creates: COPY on PostgreSQL
    first = await importer.run(read_file(source))
    assert (first.read, first.created, first.updated, first.unchanged, first.rejected) == (450, 450, 0, 0, [])

    stored, indexed = await _stored_index(platform)
    assert len(stored) == 450
    for rid, patient in stored.items():
        assert indexed[rid] == _expected(patient), "precomputed rows differ from the store's own extraction"
    ids = {p["id"]: _esante(p) for p in stored.values()}
    assert len(set(ids.values())) == 450
    async with platform.database.read() as conn:
        ledger = {str(r[0]): str(r[1]) for r in await conn.fetch("SELECT esante_id, res_id FROM mpi_esante_id")}
    assert ledger == {esante: pid for pid, esante in ids.items()}

    # re-import with a few changed lines: the known-matricule hint skips their extraction, the store redoes it
    people[10]["name"][0]["family"] = "Renamed"
    people[20]["birthDate"] = "1901-01-01"
    source.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in people))
    again = await importer.run(read_file(source))
    assert (again.created, again.updated, again.unchanged) == (0, 2, 448)
    after, indexed = await _stored_index(platform)
    assert {p["id"]: _esante(p) for p in after.values()} == ids
    for rid, patient in after.items():
        assert indexed[rid] == _expected(patient)
    renamed = [p for p in after.values() if p["name"][0]["family"] == "Renamed"]
    assert len(renamed) == 1 and renamed[0]["meta"]["versionId"] == "2"


async def test_a_proposed_esante_id_already_assigned_is_drawn_again(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "register.ndjson"
    _register(source, 3, seed=11)
    drawn = certified_import.new_esante_id
    proposals = iter(["1000000007", "1000000007", "1000000015"])  # the second proposal repeats the first
    monkeypatch.setattr(certified_import, "new_esante_id", lambda: next(proposals, None) or drawn())
    first = await CertifiedImporter(platform.store, workers=0).run(read_file(source))
    assert first.created == 3
    stored, indexed = await _stored_index(platform)
    values = sorted(_esante(p) for p in stored.values())
    assert len(set(values)) == 3 and "1000000007" in values and "1000000015" in values
    for rid, patient in stored.items():  # the redrawn one was indexed with its final identifier
        assert indexed[rid] == _expected(patient)

    more = tmp_path / "more.ndjson"
    more.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in _register(tmp_path / "x.ndjson", 2, seed=12)))
    proposals = iter(["1000000015", "1000000023"])  # 1000000015 is in the ledger now
    monkeypatch.setattr(certified_import, "new_esante_id", lambda: next(proposals, None) or drawn())
    second = await CertifiedImporter(platform.store, workers=0).run(read_file(more))
    assert second.created == 2
    async with platform.database.read() as conn:
        ledger = [str(r[0]) for r in await conn.fetch("SELECT esante_id FROM mpi_esante_id")]
    assert len(ledger) == len(set(ledger)) == 5


def test_prepare_chunk_is_pure_and_reports_each_line() -> None:
    person = certified_patient(next(iter(iter_persons(PopulationConfig(count=1, seed=3)))))
    matricule = next(i["value"] for i in person["identifier"] if i["system"] == MATRICULE_SYSTEM)
    items: list[tuple[int, Any]] = [
        (1, orjson.dumps(person)),
        (2, b"{oops"),
        (3, b"[1, 2]"),
        (4, {"resourceType": "Observation"}),
        (5, "the header lacks the column(s) sex"),
    ]
    out = prepare_chunk(items)
    assert [type(e) for e in out] == [Prepared, Rejection, Rejection, Rejection, Rejection]
    first = out[0]
    assert isinstance(first, Prepared) and first.matricule == matricule and first.index_rows is not None
    assert first.body["identifier"][1]["system"] == ESANTE_ID_SYSTEM
    assert first.index_rows == extract_index_rows(first.body)
    assert [(e.line, e.reason.split(" (")[0]) for e in out[1:] if isinstance(e, Rejection)] == [
        (2, "not JSON"),
        (3, "not a JSON object"),
        (4, "not a FHIR Patient"),
        (5, "the header lacks the column(s) sex"),
    ]
    known = prepare_chunk(items[:1], known=[int(matricule)])[0]
    assert isinstance(known, Prepared) and known.index_rows is None, "a known matricule skips the extraction"
