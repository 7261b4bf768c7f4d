"""The supporting-data loader: the CDC folder, hand-made schedules, and every way a file can be bad."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from esante.cve.engine import SupportingDataError, load_supporting_data
from esante.cve.engine.dates import Duration
from tests.conftest import shared_data
from tests.cve.schedules import Age, Dose, Interval, Series, antigen_xml, build, schedule_xml


@pytest.fixture(scope="module")
def cdc_folder() -> Path:
    return shared_data("cdsi", "supporting-data-4.64")


def test_cdc_supporting_data_loads(cdc_folder: Path) -> None:
    data = load_supporting_data(cdc_folder)
    assert len(data.antigens) == 30
    assert data.vaccine_groups["MMR"].antigens == ("Measles", "Mumps", "Rubella")
    assert data.vaccine_groups["MMR"].administer_full_vaccine_group is True
    assert data.vaccine_groups["DTaP/Tdap/Td"].antigens == ("Diphtheria", "Pertussis", "Tetanus")
    # CVX codes are compared as numbers: "08" and "8" are the same product.
    assert [a.antigen for a in data.cvx_map["8"]] == ["HepB"]
    zoster = {a.antigen: a for a in data.cvx_map["121"]}
    assert zoster["Varicella"].end_age == Duration(50, 0, 0)  # Zostavax before 50 counts as varicella
    hib = next(s for s in data.antigens["Hib"].series if s.name.startswith("Hib start at 2 months"))
    assert hib.doses[1].ages[0].abs_min_age == Duration(0, 0, 66)  # "10 weeks - 4 days"
    assert data.live_virus_conflicts["21"]  # varicella after another live vaccine


def test_loaded_objects_are_immutable(cdc_folder: Path) -> None:
    data = load_supporting_data(cdc_folder)
    with pytest.raises(TypeError):
        data.antigens["Hib"] = data.antigens["HepB"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.antigens["Hib"].series[0].doses[0].recurring = True  # type: ignore[misc]


def test_hand_made_schedule(tmp_path: Path) -> None:
    data = build(
        tmp_path,
        {
            "Testitis": antigen_xml(
                [
                    Series(
                        "s",
                        [Dose(Age("6 weeks - 4 days", "6 weeks")), Dose(intervals=[Interval("24 days", "4 weeks")])],
                    )
                ],
                immunity_birth_date="01/01/1957",
            )
        },
    )
    testitis = data.antigens["Testitis"]
    assert testitis.immunity.date_of_birth[0].immunity_birth_date.year == 1957
    assert testitis.series[0].doses[1].intervals[0].min_int == Duration(0, 0, 28)


def _write_valid(folder: Path) -> None:
    build(folder, {"Testitis": antigen_xml([Series("s", [Dose()])])})


def test_not_well_formed_xml_is_a_clear_error(tmp_path: Path) -> None:
    _write_valid(tmp_path)
    (tmp_path / "AntigenSupportingData- Testitis.xml").write_text("<antigenSupportingData><series>", encoding="utf-8")
    with pytest.raises(SupportingDataError, match=r"Testitis\.xml: not well-formed XML"):
        load_supporting_data(tmp_path)


def test_schema_violation_is_a_clear_error(tmp_path: Path) -> None:
    _write_valid(tmp_path)
    # A series without its mandatory <seriesType> (and an unknown element) does not conform to the XSD.
    path = tmp_path / "AntigenSupportingData- Testitis.xml"
    path.write_text(path.read_text().replace("<seriesType>Standard</seriesType>", "<kind>Standard</kind>"))
    with pytest.raises(SupportingDataError, match=r"does not conform to AntigenSupportingData\.xsd: line \d+"):
        load_supporting_data(tmp_path)


def test_schedule_schema_violation(tmp_path: Path) -> None:
    _write_valid(tmp_path)
    (tmp_path / "ScheduleSupportingData.xml").write_text("<scheduleSupportingData/>", encoding="utf-8")
    with pytest.raises(SupportingDataError, match=r"ScheduleSupportingData\.xsd"):
        load_supporting_data(tmp_path)


def test_bad_age_names_the_element(tmp_path: Path) -> None:
    with pytest.raises(SupportingDataError, match=r"<minAge>: unrecognised duration 'six weeks'"):
        build(tmp_path, {"Testitis": antigen_xml([Series("s", [Dose(Age(min="six weeks"))])])})


def test_unknown_vaccine_group(tmp_path: Path) -> None:
    (tmp_path / "AntigenSupportingData- Testitis.xml").write_text(
        antigen_xml([Series("s", [Dose()])], vaccine_group="Nowhere"), encoding="utf-8"
    )
    (tmp_path / "ScheduleSupportingData.xml").write_text(schedule_xml({"Testitis": ["Testitis"]}, {}), encoding="utf-8")
    with pytest.raises(SupportingDataError, match="unknown vaccine group 'Nowhere'"):
        load_supporting_data(tmp_path)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SupportingDataError, match="not a folder"):
        load_supporting_data(tmp_path / "absent")
    with pytest.raises(SupportingDataError, match=r"ScheduleSupportingData\.xml is missing"):
        load_supporting_data(tmp_path)
    (tmp_path / "ScheduleSupportingData.xml").write_text(schedule_xml({}, {}), encoding="utf-8")
    with pytest.raises(SupportingDataError, match=r"no AntigenSupportingData\*\.xml"):
        load_supporting_data(tmp_path)


def test_external_entities_are_not_resolved(tmp_path: Path) -> None:
    _write_valid(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET", encoding="utf-8")
    path = tmp_path / "AntigenSupportingData- Testitis.xml"
    text = path.read_text()
    doctype = f'<!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>'
    path.write_text(doctype + text.replace("<seriesName>s</seriesName>", "<seriesName>&x;</seriesName>"))
    with pytest.raises(SupportingDataError, match="DOCTYPE is not allowed"):
        load_supporting_data(tmp_path)


def test_observation_codes_from_standard_terminologies(cdc_folder: Path) -> None:
    data = load_supporting_data(cdc_folder)
    assert data.observation_code("SNOMED", "370388006") == data.observation_code("snomed", " 370388006 ")
    code = data.observation_code("SNOMED", "370388006")
    assert code is not None and code in data.observations
    assert data.observation_code("SNOMED", "0") is None
