"""Batch duplicate detection over the register and parameter estimation from it (``esante mpi find-duplicates``,
``train``, ``parameters``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from typer.testing import CliRunner

from esante.app import Platform, build_platform
from esante.cli import app as cli
from esante.config import Settings
from esante.identifiers.matricule import make_matricule
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.duplicates import run_find_duplicates
from esante.mpi.model import MATRICULE_SYSTEM
from esante.synth import PopulationConfig, certified_patient, iter_persons


def _certified(matricule: str, family: str, given: str, birth: str, city: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MATRICULE_SYSTEM, "value": matricule}],
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": "female",
        "address": [{"use": "home", "line": ["4 rue Principale"], "postalCode": "9010", "city": city}],
    }


# one woman registered twice (a second matricule, a typo in the name), and her namesake of another year
REGISTER = [
    _certified(make_matricule("19820802", 14), "Schmit", "Léa", "1982-08-02", "Ettelbruck"),
    _certified(make_matricule("19820802", 27), "Schmitt", "Léa", "1982-08-02", "Ettelbruck"),
    _certified(make_matricule("19640311", 31), "Schmit", "Léa", "1964-03-11", "Wiltz"),
    _certified(make_matricule("19910507", 45), "Kieffer", "Tom", "1991-05-07", "Mersch"),
]


async def _tasks(platform: Platform) -> list[dict[str, Any]]:
    async with platform.database.read() as conn:
        rows = await conn.fetch("SELECT content FROM resource WHERE res_type = 'Task' AND is_current")
    return [orjson.loads(bytes(r[0])) for r in rows]


async def test_suspected_duplicates_become_review_tasks_once(platform: Platform) -> None:
    await CertifiedImporter(platform.store).run(list(enumerate(REGISTER, start=1)))
    run = await run_find_duplicates(platform.store)
    assert (run.identities, run.suspected, run.opened, run.already_reviewed) == (4, 1, 1, 0)
    (task,) = await _tasks(platform)
    assert task["reasonCode"]["coding"][0]["code"] == "suspected-duplicate" and task["status"] == "requested"
    (candidate,) = task["input"]
    pair = {task["focus"]["reference"], candidate["valueReference"]["reference"]}
    async with platform.database.read() as conn:
        rows = await conn.fetch("SELECT res_id, content FROM resource WHERE res_type = 'Patient' AND is_current")
    families = {f"Patient/{r[0]}": orjson.loads(bytes(r[1]))["name"][0]["family"] for r in rows}
    births = {f"Patient/{r[0]}": orjson.loads(bytes(r[1]))["birthDate"] for r in rows}
    assert {families[p] for p in pair} == {"Schmit", "Schmitt"} and {births[p] for p in pair} == {"1982-08-02"}
    agreement = {e["url"]: e for e in candidate["extension"]}["urn:esante:mpi-field-agreement"]["extension"]
    assert {a["url"]: a["valueCode"] for a in agreement}["birth_date"] == "exact"
    # run again (every night): the pair is known, nothing new opened
    again = await run_find_duplicates(platform.store)
    assert (again.suspected, again.opened, again.already_reviewed) == (1, 0, 1)
    assert len(await _tasks(platform)) == 1
    dry = await run_find_duplicates(platform.store, min_probability=0.000001, dry_run=True)
    assert dry.opened == 0 and len(await _tasks(platform)) == 1


def test_cli_find_duplicates_train_and_parameters(db_url: str) -> None:
    runner = CliRunner()

    async def register() -> None:
        platform = build_platform(Settings(database_url=db_url, warm_up=False))
        await platform.database.connect()
        try:
            population = PopulationConfig(count=600, seed=5)
            persons = [certified_patient(p) for p in iter_persons(population)]
            await CertifiedImporter(platform.store).run(list(enumerate([*REGISTER, *persons], start=1)))
        finally:
            await platform.database.close()

    asyncio.run(register())
    found = runner.invoke(cli, ["mpi", "find-duplicates", "--db", db_url])
    assert found.exit_code == 0, found.output
    assert "604 certified identities" in found.output and "review tasks opened" in found.output
    bad = runner.invoke(cli, ["mpi", "find-duplicates", "--min-probability", "2", "--db", db_url])
    assert bad.exit_code == 2 and "--min-probability" in bad.output
    listed = runner.invoke(cli, ["mpi", "parameters", "list", "--db", db_url])
    assert listed.exit_code == 0 and "yes (default)" in listed.output
    # no local identities: learning from the register alone must be asked for, and is not activated
    refused = runner.invoke(cli, ["mpi", "train", "--sample", "600", "--db", db_url])
    assert refused.exit_code == 2 and "--deduplication" in refused.output
    trained = runner.invoke(cli, ["mpi", "train", "--sample", "600", "--deduplication", "--db", db_url])
    assert trained.exit_code == 0, trained.output
    version = trained.output.strip().splitlines()[-1]
    assert version.startswith("fs-") and "deduplication" in trained.output and "not active" in trained.output
    listed = runner.invoke(cli, ["mpi", "parameters", "list", "--db", db_url])
    assert version in listed.output and "yes (default)" in listed.output
    missing = runner.invoke(cli, ["mpi", "parameters", "activate", "fs-000000000000", "--db", db_url])
    assert missing.exit_code == 2 and "no parameter set" in missing.output
    assert runner.invoke(cli, ["mpi", "parameters", "activate", version, "--db", db_url]).exit_code == 0
    listed = runner.invoke(cli, ["mpi", "parameters", "list", "--db", db_url])
    assert "default" not in listed.output
    assert runner.invoke(cli, ["mpi", "train", "--sample", "5", "--db", db_url]).exit_code == 2


def test_sharing_the_comparisons_among_processes_changes_nothing() -> None:
    """Forked workers take every n-th block: together exactly the pairs of one process, in the same order."""
    from esante.mpi.matching import find_duplicates
    from tests.mpi.matching_support import synthetic_linkage, trained_parameters

    certified, local, _truth = synthetic_linkage()
    records = [*certified[:1500], *local]  # the feeds' records are duplicates of certified persons
    alone = find_duplicates(records, trained_parameters())
    shared = find_duplicates(records, trained_parameters(), workers=2)
    assert alone.pairs, "the set holds duplicates"
    assert [(p.left_id, p.right_id, p.score) for p in shared.pairs] == [
        (p.left_id, p.right_id, p.score) for p in alone.pairs
    ]
    assert shared.compared == alone.compared and shared.blocking.pairs == alone.blocking.pairs
