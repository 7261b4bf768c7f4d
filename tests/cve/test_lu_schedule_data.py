"""The packaged Luxembourg schedule as data: valid against the CDC XSDs, loadable, sourced, and built on the CDC's
names and codes (antigens, vaccine groups, CVX) that the engine's vaccine-group logic relies on."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from esante.cve.engine import SupportingData, load_supporting_data
from esante.cve.engine.model import normalize_cvx
from esante.cve.schedule import Schedule
from esante.cve.schedules import load_luxembourg_schedule, luxembourg_schedule_files
from tests.conftest import shared_data

XSD = Path(str(resources.files("esante.cve.engine").joinpath("xsd")))
SOURCE = re.compile(r"\[S\d+[],: ]|CDC value|\[CONV\]|CDC '")
LU_ANTIGENS = {
    "Diphtheria",
    "Tetanus",
    "Pertussis",
    "Polio",
    "Hib",
    "HepB",
    "Pneumococcal",
    "Rotavirus",
    "Meningococcal B",
    "Meningococcal",
    "Measles",
    "Mumps",
    "Rubella",
    "Varicella",
    "HPV",
    "Zoster",
    "Influenza",
    "RSV",
    "COVID-19",
}


def _folder() -> Path:
    folder = luxembourg_schedule_files()
    assert isinstance(folder, Path), "the package is installed from a folder in the test environment"
    return folder


def _files() -> list[Path]:
    return sorted(_folder().glob("*.xml"))


@pytest.fixture(scope="module")
def lu() -> SupportingData:
    return load_luxembourg_schedule()


@pytest.fixture(scope="module")
def cdc() -> SupportingData:
    return load_supporting_data(shared_data("cdsi", "supporting-data-4.64"))


def test_one_file_per_antigen_and_the_schedule_file() -> None:
    names = [p.name for p in _files()]
    assert "ScheduleSupportingData.xml" in names
    assert len([n for n in names if n.startswith("AntigenSupportingData")]) == len(LU_ANTIGENS)


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_every_file_is_valid_against_the_cdc_xsd(path: Path) -> None:
    """Checked with lxml directly, not only through the engine's loader."""
    xsd = "ScheduleSupportingData.xsd" if path.name.startswith("Schedule") else "AntigenSupportingData.xsd"
    schema = etree.XMLSchema(etree.parse(str(XSD / xsd)))
    document = etree.parse(str(path))
    assert schema.validate(document), schema.error_log


def test_the_engine_loads_it_once(lu: SupportingData) -> None:
    assert set(lu.antigens) == LU_ANTIGENS
    assert load_luxembourg_schedule() is lu
    assert set(Schedule("lu").get().antigens) == LU_ANTIGENS  # the setting cve_schedule = "lu" reaches these files


@pytest.mark.parametrize("path", [p for p in _files() if p.name.startswith("Antigen")], ids=lambda p: p.name)
def test_every_target_dose_names_its_source(path: Path) -> None:
    """Each seriesDose carries (or is introduced by, or belongs to a series introduced by) a comment citing a
    Luxembourg source, 'CDC value' or the documented convention: nothing is authored silently."""
    root = etree.parse(str(path)).getroot()
    for series in root.findall("series"):
        series_note = _comment_before(series)
        for dose in series.findall("seriesDose"):
            notes = [_comment_before(dose), series_note] + [
                c.text or ""
                for c in dose.iter(etree.Comment)  # type: ignore[arg-type]
            ]
            assert any(SOURCE.search(n) for n in notes), (
                f"{path.name}: {series.findtext('seriesName')} {dose.findtext('doseNumber')}"
            )


def _comment_before(element: etree._Element) -> str:
    previous = element.getprevious()
    texts = []
    while previous is not None and isinstance(previous, etree._Comment):
        texts.append(previous.text or "")
        previous = previous.getprevious()
    return " ".join(texts)


def test_names_and_codes_are_the_cdcs(lu: SupportingData, cdc: SupportingData) -> None:
    """Antigen names, vaccine groups (with their antigens and 'administer full group') and every CVX association
    are the CDC's: the engine and the FHIR side speak CDC codes."""
    for name in lu.antigens:
        assert name in cdc.antigens
    for name, group in lu.vaccine_groups.items():
        assert cdc.vaccine_groups[name].antigens == group.antigens
        assert cdc.vaccine_groups[name].administer_full_vaccine_group == group.administer_full_vaccine_group
    for cvx, associations in lu.cvx_map.items():
        assert set(associations) <= set(cdc.cvx_map[cvx]), cvx
        assert all(a.antigen in LU_ANTIGENS for a in associations)
    # nothing of the CDC map is lost for the Luxembourg antigens
    for cvx, associations in cdc.cvx_map.items():
        kept = {a for a in associations if a.antigen in LU_ANTIGENS}
        assert kept == set(lu.cvx_map.get(cvx, ())), cvx


def test_every_vaccine_named_in_a_series_is_mapped_to_its_antigen(lu: SupportingData) -> None:
    for antigen in lu.antigens.values():
        for series in antigen.series:
            for dose in series.doses:
                for v in (*dose.preferable_vaccines, *dose.allowable_vaccines):
                    antigens = {a.antigen for a in lu.cvx_map.get(v.cvx, ())}
                    assert antigen.name in antigens, (antigen.name, series.name, v.cvx)


def test_the_luxembourg_products_count_for_their_antigens(lu: SupportingData) -> None:
    """Every product of the packaged product table (Hexyon, Rotarix, Prevenar 20, Bexsero, Nimenrix, Priorix-Tetra,
    Gardasil 9, Boostrix Polio, Shingrix, Beyfortus, Abrysvo ...) maps through its CVX to the schedule's antigens."""
    table = json.loads(resources.files("esante.cve").joinpath("data", "products.json").read_text("utf-8"))
    for product in table["products"]:
        mapped = {a.antigen for a in lu.cvx_map.get(normalize_cvx(product["cvx"]), ())}
        expected = {a for a in product["antigens"] if a in LU_ANTIGENS}
        assert mapped == expected, product["name"]


def test_a_broken_copy_is_refused_naming_the_file(tmp_path: Path) -> None:
    """The schedule is data a maintainer edits: a typo must fail loudly, not load half-way."""
    from esante.cve.engine import SupportingDataError

    for path in _files():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    target = tmp_path / "AntigenSupportingData-Zoster.xml"
    target.write_text(target.read_text("utf-8").replace("<minAge>65 years</minAge>", "<minAge>65 yers</minAge>", 1))
    with pytest.raises(SupportingDataError, match=re.escape("AntigenSupportingData-Zoster.xml")):
        load_supporting_data(tmp_path)
