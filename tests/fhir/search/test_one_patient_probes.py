"""A search about one patient checks its other index conditions on the patient's rows (``where_clause``'s
``probes``): the same answers as the ordinary form, and on PostgreSQL a cached generic plan that cannot start from a
common code estimated as rare (the index tables hold every parameter, so one code looks rare to the planner)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from search_kit import SearchKit

from esante.db.engine import to_dollar_params
from esante.fhir.search.compile import count_matches, select_matches, where_clause
from esante.fhir.search.execute import execute_search

LOINC = "http://loinc.org"


@pytest.fixture
async def records(kit: SearchKit) -> SearchKit:
    """40 patients with 12 Observations each; code 1-1 on nine in ten of them (common), 9-9 on the rest."""
    patients = [{"resourceType": "Patient", "id": f"p{i}"} for i in range(40)]
    observations = [
        {
            "resourceType": "Observation",
            "id": f"o{p}-{n}",
            "status": "final" if n % 3 else "amended",
            "code": {"coding": [{"system": LOINC, "code": "1-1" if n % 10 else "9-9"}]},
            "subject": {"reference": f"Patient/p{p}"},
            "effectiveDateTime": f"{2010 + n}-0{1 + p % 9}-01",
        }
        for p in range(40)
        for n in range(12)
    ]
    await kit.add(*patients, *observations)
    async with kit.database.transaction() as conn:
        await conn.execute("ANALYZE")
    return kit


QUERIES = [
    f"subject=Patient/p3&code={LOINC}|1-1&_sort=-date",
    f"subject=Patient/p3&code={LOINC}|1-1&_sort=-date&_count=4",
    f"subject=Patient/p3&code={LOINC}|1-1&_sort=-date&_count=4&_offset=4",
    f"subject=Patient/p7&code={LOINC}|9-9",
    "subject=Patient/p7&status=amended&date=ge2015-01-01&_sort=date",
    "subject=Patient/p7&status=final&_count=3",
    "subject=Patient/p7&status:not=final&_sort=-_lastUpdated",
    "patient=Patient/p1&code:missing=false&_count=5",
    "subject=Patient/p39&code=nothing",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_probes_give_the_same_answers(records: SearchKit, query: str) -> None:
    """Page, order, paging and total alike (SQLite: the ordinary form either way)."""
    request = records.parse("Observation", query)
    answers = []
    for one_patient in (False, True):
        async with records.database.read() as conn:
            result = await execute_search(conn, request, one_patient=one_patient)
        answers.append(([m.res_id for m in result.matches], result.total, result.has_next))
    assert answers[0] == answers[1]
    assert answers[0][1] is not None


def test_only_the_patient_condition_selects_rows(kit: SearchKit) -> None:
    request = kit.parse("Observation", f"subject=Patient/p3&code={LOINC}|1-1&status:not=final&_sort=-date")
    where, _ = where_clause(request.res_types, request.filters, probes=True)
    assert re.search(r"r\.rid IN \(SELECT x\d+\.rid FROM idx_reference", where)  # the patient's rows
    assert re.search(r"EXISTS \(SELECT 1 FROM idx_token x\d+ WHERE .* AND x\d+\.rid = r\.rid OFFSET 0\)", where)
    assert "r.rid NOT IN (SELECT" in where  # a :not stays what it was (a probe cannot say "no row")
    plain, _ = where_clause(request.res_types, request.filters)
    assert "EXISTS" not in plain and "OFFSET 0" not in plain


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def _generic_plan(kit: SearchKit, sql: str, params: list[Any]) -> str:
    """EXPLAIN of the plan PostgreSQL caches for ``sql`` without its values (as after five executions)."""
    async with kit.database.transaction() as conn:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE probe_check AS {to_dollar_params(sql)}")
        try:
            rows = await conn.fetch(f"EXPLAIN EXECUTE probe_check({', '.join(_literal(v) for v in params)})")
        finally:
            await conn.execute("DEALLOCATE probe_check")
    return "\n".join(str(row[0]) for row in rows)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _joined_token_scans(plan: str) -> list[str]:
    """Lines scanning idx_token outside a SubPlan (a scan the plan could start from or hash)."""
    lines = plan.splitlines()
    found = []
    for i, line in enumerate(lines):
        if "idx_token" not in line:
            continue
        ancestors, depth = [], _indent(line)
        for above in reversed(lines[:i]):
            if _indent(above) < depth:
                ancestors.append(above.strip())
                depth = _indent(above)
        if not any(a.startswith(("SubPlan", "InitPlan")) for a in ancestors):
            found.append(line)
    return found


@pytest.mark.parametrize("statement", ["page", "count"])
async def test_the_generic_plan_starts_from_the_patient(records: SearchKit, statement: str) -> None:
    async with records.database.read() as conn:
        if not conn.dialect.is_postgres:
            pytest.skip("SQLite plans every statement with its values")
    request = records.parse("Observation", f"subject=Patient/p3&code={LOINC}|1-1&_sort=-date")
    for probes in (False, True):
        if statement == "page":
            sql, params = select_matches(request.res_types, request.filters, request.sort, 21, 0, probes=probes)
        else:
            sql, params = count_matches(request.res_types, request.filters, probes=probes)
        plan = await _generic_plan(records, sql, params)
        if probes:
            assert not _joined_token_scans(plan), plan
            assert "idx_reference" in plan, plan
        else:
            assert _joined_token_scans(plan), plan  # the ordinary form offers the code as a join input


async def test_no_probes_where_the_values_plan_the_search(records: SearchKit) -> None:
    """A connection that plans every statement with its values (the search pool, a write transaction, the setting
    ``search_cached_plans_for_one_patient`` off) gets the ordinary form: the planner may start from a rare code."""
    request = records.parse("Observation", QUERIES[0])
    for search_pool, probed in ((False, True), (True, False)):
        async with records.database.read(search=search_pool) as conn:
            if not conn.dialect.is_postgres:
                pytest.skip("SQLite plans every statement with its values: never probes")
            sent: list[str] = []
            fetch = conn.fetch

            async def recording(sql: str, params: Any = (), fetch: Any = fetch, sent: list[str] = sent) -> Any:
                sent.append(sql)
                return await fetch(sql, params)

            conn.fetch = recording  # type: ignore[method-assign]
            result = await execute_search(conn, request, one_patient=True)
        assert [m.res_id for m in result.matches] == [f"o3-{n}" for n in (11, 9, 8, 7, 6, 5, 4, 3, 2, 1)]
        assert any("OFFSET 0" in sql for sql in sent) is probed, sent
