"""The compiled statements can use the index tables' indexes (no full scan of an idx_* table).

PostgreSQL: plans are read with ``enable_seqscan = off`` (the test data is too small for the planner to prefer
indexes on its own; this checks that the shapes are *indexable*). SQLite: ``EXPLAIN QUERY PLAN`` must show
``SEARCH`` (index) and never ``SCAN`` of an index table.
"""

from __future__ import annotations

import re

import pytest
from search_kit import SearchKit

from esante.fhir.search.compile import select_matches

QUERIES = [
    ("Observation", "code=http://loinc.org|3-1"),
    ("Observation", "date=ge2020-01-01&date=lt2021-01-01"),
    ("Observation", "subject:Patient.name=fam1"),
    ("Observation", "subject.organization.name=org"),
    ("Patient", "_has:Observation:subject:code=3-1"),
    ("Observation", "value-quantity=gt5||mg"),
    ("Patient", "identifier=urn:x|1"),
    ("Patient", "family:exact=Fam1"),
]


@pytest.fixture
async def loaded(kit: SearchKit) -> SearchKit:
    await kit.add(
        *[{"resourceType": "Organization", "id": f"org{i}", "name": f"Org {i}"} for i in range(5)],
        *[
            {
                "resourceType": "Patient",
                "id": f"p{i}",
                "name": [{"family": f"Fam{i % 13}"}],
                "identifier": [{"system": "urn:x", "value": str(i)}],
                "managingOrganization": {"reference": f"Organization/org{i % 5}"},
            }
            for i in range(60)
        ],
        *[
            {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": f"{i % 7}-1"}]},
                "subject": {"reference": f"Patient/p{i % 60}"},
                "effectiveDateTime": f"{2000 + i % 24}-01-01",
                "valueQuantity": {"value": i % 10, "unit": "mg"},
            }
            for i in range(300)
        ],
    )
    async with kit.database.transaction() as conn:
        await conn.execute("ANALYZE")
    return kit


@pytest.mark.parametrize(("res_type", "query"), QUERIES)
async def test_plans_use_indexes(loaded: SearchKit, res_type: str, query: str) -> None:
    request = loaded.parse(res_type, query)
    sql, params = select_matches(request.res_types, request.filters, request.sort, 21, 0)
    async with loaded.database.transaction() as conn:
        if conn.dialect.is_postgres:
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + sql, params))
            assert not re.search(r"Seq Scan on idx_", plan), plan
            if "date=" not in query and "value-quantity" not in query:
                # (date and code-or-unit quantity filters may be answered through ix_idx_*_rid + filter when
                # the planner prefers a merge join under LIMIT: an index either way)
                value_index = r"Index (Only )?Scan using ix_idx_\w+_value|Bitmap Index Scan on ix_idx_\w+_value"
                assert re.search(value_index, plan), plan
        else:
            rows = await conn.fetch("EXPLAIN QUERY PLAN " + sql, params)
            plan = "\n".join(str(row[-1]) for row in rows)
            scans = [line for line in plan.splitlines() if re.match(r"SCAN [xct]\d", line.strip())]
            assert not scans, plan
            assert "ix_idx_" in plan, plan
    # and the statement runs
    async with loaded.database.read() as conn:
        await conn.fetch(sql, params)


@pytest.mark.parametrize("res_type", ["Observation", "Patient"])
async def test_compartment_membership_is_one_indexed_sub_select(loaded: SearchKit, res_type: str) -> None:
    """The policy's compartment restriction (a patient's own data) stays an index lookup, never a filter run over
    every current resource (the shape an OR of per-parameter sub-selects got from PostgreSQL)."""
    from esante.fhir.definitions import get_registry
    from esante.fhir.search.execute import patients_cond

    request = loaded.parse(res_type, "code=http://loinc.org|3-1" if res_type == "Observation" else "")
    access = patients_cond(get_registry(), (res_type,), ("p1", "p8"))
    sql, params = select_matches(request.res_types, [*request.filters, access], request.sort, 21, 0)
    async with loaded.database.transaction() as conn:
        if conn.dialect.is_postgres:
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + sql, params))
            assert "hashed SubPlan" not in plan, plan
            lookup = r"(Index|Index Only|Bitmap Index) Scan (using|on) ix_idx_reference_value"
            if res_type == "Patient":
                lookup = r"Index (Only )?Scan using \w+ on resource pp"
            assert re.search(lookup, plan), plan
        else:
            rows = await conn.fetch("EXPLAIN QUERY PLAN " + sql, params)
            plan = "\n".join(str(row[-1]) for row in rows)
            assert not re.search(r"SCAN (pc|pp)\b", plan), plan
    async with loaded.database.read() as conn:
        found = sorted(str(row[2]) for row in await conn.fetch(sql, params))
    # Observation o<i>: code "<i % 7>-1", subject p<i % 60>
    expected = ["o241", "o248"] if res_type == "Observation" else ["p1", "p8"]
    assert found == sorted(expected)
