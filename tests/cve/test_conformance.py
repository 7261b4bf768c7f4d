"""The CDC CDSi test cases (dev subsets in ../shared/data/cdsi) through ``esante cve conformance``.

Fails — never skips — when the shared data are missing. Pass-rate floors: the healthy file must reach the
project target (≥ 99.7 %); the underlying-conditions file is held to the rate measured with supporting data
4.64 (its target of 97 % is not reached: docs/cve-engine.md lists why, case by case).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esante.cli import app as cli
from esante.cve.conformance import ConformanceError, check_case, read_cases
from esante.cve.engine import load_supporting_data
from tests.conftest import shared_data

HEALTHY_TARGET = 0.997
CONDITIONS_FLOOR = 0.93  # measured 188/202 = 93.1 %; the 97 % target is not met (see docs/cve-engine.md)


@pytest.fixture(scope="module")
def data_folder() -> Path:
    return shared_data("cdsi", "supporting-data-4.64")


@pytest.mark.parametrize(
    ("cases_file", "floor", "count"),
    [
        ("test-cases-healthy-v4.45-dev.csv", HEALTHY_TARGET, 608),
        ("test-cases-conditions-v4.6-dev.csv", CONDITIONS_FLOOR, 202),
    ],
)
def test_conformance_pass_rate(data_folder: Path, tmp_path: Path, cases_file: str, floor: float, count: int) -> None:
    cases = shared_data("cdsi", cases_file)
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli, ["cve", "conformance", "--cases", str(cases), "--data", str(data_folder), "--report", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"^(\d+) passed, (\d+) failed$", result.output, re.MULTILINE)
    assert match, result.output
    passed, failed = int(match.group(1)), int(match.group(2))
    assert passed + failed == count
    report = json.loads(report_path.read_text())
    assert report["passed"] == passed and len(report["failures"]) == failed
    for failure in report["failures"]:
        assert failure["error"] is None, failure  # a failure is a wrong answer, never a crash
        assert failure["mismatches"] and all({"field", "expected", "actual"} <= set(m) for m in failure["mismatches"])
    assert passed / count >= floor, f"{cases_file}: {passed}/{count} = {passed / count:.2%} < {floor:.1%}"


def test_a_case_passes_only_when_every_populated_field_matches(data_folder: Path) -> None:
    data = load_supporting_data(data_folder)
    case = next(
        c for c in read_cases(shared_data("cdsi", "test-cases-healthy-v4.45-dev.csv")) if c.case_id == "2013-0002"
    )
    assert check_case(data, case).passed
    wrong = dataclasses.replace(case, earliest="2025-12-09")
    result = check_case(data, wrong)
    assert not result.passed
    assert result.mismatches == [{"field": "earliest date", "expected": "2025-12-09", "actual": "2025-12-08"}]


def test_bad_case_file_is_a_clear_error(tmp_path: Path, data_folder: Path) -> None:
    bad = tmp_path / "cases.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConformanceError, match="not a CDSi test-case file"):
        read_cases(bad)
    result = CliRunner().invoke(cli, ["cve", "conformance", "--cases", str(bad), "--data", str(data_folder)])
    assert result.exit_code == 2
    assert "not a CDSi test-case file" in result.output
    result = CliRunner().invoke(cli, ["cve", "conformance", "--cases", str(bad), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "ScheduleSupportingData.xml is missing" in result.output


def test_a_dose_valid_in_a_risk_and_a_standard_series_reports_the_risk_type(data_folder: Path) -> None:
    # 2016-UC-0048: HepB doses valid in the standard and the risk best series; the case's Series_Type_n says
    # "risk" (not a pass criterion, reported in the JSON notes).
    data = load_supporting_data(data_folder)
    case = next(
        c for c in read_cases(shared_data("cdsi", "test-cases-conditions-v4.6-dev.csv")) if c.case_id == "2016-UC-0048"
    )
    result = check_case(data, case)
    assert result.passed and result.notes == []
