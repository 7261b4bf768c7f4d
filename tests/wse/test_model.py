"""The WSE's pure parts: affiliations checked and shaped as valid FHIR Coverages and read back, the eligibility
decision on periods, the CSV header check, the prescribing table and its file checks, the use counter's flush."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest

from esante.fhir.validation import validate_resource
from esante.hpd.codes import professions
from esante.wse.eligibility_model import CoverageRow, decide, in_window
from esante.wse.model import Affiliation, AffiliationError, check_affiliation, coverage_of, packaged_insurers, row_of
from esante.wse.prescribing import PrescribingTableError, packaged_table, parse_table
from esante.wse.sources import read_csv
from esante.wse.usage import UsageCounter, UsageRow, month_totals
from tests.wse.support import matricule

INSURERS = packaged_insurers()


def test_a_checked_affiliation_is_a_valid_coverage_and_reads_back() -> None:
    item = Affiliation(
        "A-1/2",
        f" {matricule(1)[:8]}.{matricule(1)[8:]} ",
        "CMFEC",
        "co-insured",
        "2020-01-01",
        "2024-12-31",
        relationship="spouse",
        subscriber=matricule(2),
    )
    checked = check_affiliation(item, INSURERS)
    assert checked.matricule == matricule(1)
    coverage = coverage_of(checked, INSURERS, patient_id="p1")
    validate_resource(coverage, expected_type="Coverage")
    assert coverage["beneficiary"]["reference"] == "Patient/p1"
    row = row_of(coverage)
    assert row is not None and (row.matricule, row.insurer, row.start, row.end) == (
        matricule(1),
        "CMFEC",
        "2020-01-01",
        "2024-12-31",
    )
    assert row_of({"resourceType": "Coverage", "status": "active"}) is None  # not a CCSS affiliation
    foreign = dict(coverage, beneficiary={"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "123"}})
    assert row_of(foreign) is None  # no valid matricule


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"affiliation_id": "a b"}, "affiliation_id"),
        ({"matricule": "1980010100"}, "13 digits"),
        ({"insurer": "FOREIGN-XX"}, "FOREIGN-XX"),
        ({"coverage_type": "x"}, "type"),
        ({"start": "2020-1-1"}, "start"),
        ({"end": "2019-01-01"}, "before start"),
        ({"status": "draft"}, "status"),
        ({"relationship": "cousin"}, "relationship"),
        ({"subscriber": matricule(1)}, "another person"),
    ],
)
def test_bad_affiliations(changes: dict[str, Any], words: str) -> None:
    values: dict[str, Any] = {
        "affiliation_id": "A1",
        "matricule": matricule(1),
        "insurer": "CNS",
        "coverage_type": "principal",
        "start": "2020-01-01",
        **changes,
    }
    with pytest.raises(AffiliationError, match=words):
        check_affiliation(Affiliation(**values), INSURERS)


def test_decide_periods() -> None:
    rows = [
        CoverageRow("c1", "CNS", "principal", "active", "2010-01-01", "2014-12-31"),
        CoverageRow("c2", "CMFEP", "principal", "active", "2016-01-01", None),
        CoverageRow("c3", "EMCFL", "principal", "cancelled", "2015-01-01", "2015-12-31"),
    ]
    assert decide(rows, "2012-05-05").in_force[0].coverage_id == "c1"
    assert decide(rows, "2015-06-01").result == "between-affiliations"  # the cancelled one does not count
    assert decide(rows, "2009-12-31").result == "before-affiliation"
    assert decide(rows[:1], "2015-01-01").result == "after-affiliation"
    assert decide(rows[2:], "2015-06-01").result == "unknown-person"
    assert decide([], "2015-06-01").result == "unknown-person"
    today = date(2026, 12, 2)
    assert in_window("2016-12-02", today, 3660, 31) and not in_window("2027-01-03", today, 3660, 31)


def test_csv_header_must_be_the_format() -> None:
    with pytest.raises(ValueError, match="missing columns insurer"):
        list(read_csv(io.StringIO("affiliation_id,matricule,type,start\n")))
    with pytest.raises(ValueError, match="unknown columns colour"):
        list(read_csv(io.StringIO("affiliation_id,matricule,insurer,type,start,colour\n")))
    assert list(read_csv(io.StringIO(""))) == []


def test_prescribing_table() -> None:
    table = packaged_table()
    assert all(r.allowed and r.limitation is None for r in table.rights("medecin", ["med-generale"], ()))
    nurse = table.rights("infirmier", [], ["medication"])
    assert nurse[0].allowed is False and not table.may_prescribe("infirmier", [])
    assert not table.may_prescribe(None, [])
    codes = professions().concepts
    with pytest.raises(PrescribingTableError, match="not a code"):
        parse_table({"categories": {"medication": "m"}, "professions": {"doctor": {"medication": None}}}, codes)
    with pytest.raises(PrescribingTableError, match="unknown category"):
        parse_table({"categories": {"medication": "m"}, "professions": {"medecin": {"surgery": None}}}, codes)
    with pytest.raises(PrescribingTableError, match="JSON object"):
        parse_table([], codes)


async def test_usage_counter_keeps_counts_when_the_flush_fails() -> None:
    class Broken:
        def transaction(self) -> Any:
            raise OSError("database down")

    counter = UsageCounter(Broken(), interval=3600)  # type: ignore[arg-type]
    counter.add("pharmacy", "eligibility")
    counter.add("pharmacy", "eligibility")
    with pytest.raises(OSError):
        await counter.flush()
    assert sum(counter._counts.values()) == 2  # kept for the next attempt
    if counter._task is not None:
        counter._task.cancel()
    totals = month_totals([UsageRow("2024-12-01", "pharmacy", "eligibility", 3), UsageRow("2024-12-02", "x", "y", 1)])
    assert totals[("pharmacy", "eligibility")] == 3 and totals[("cgdis", "prescriber")] == 0 and totals[("x", "y")] == 1
