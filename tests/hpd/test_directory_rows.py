"""The directory's identifiers, code systems and CSV rows, as pure functions: what is accepted, what is refused and
why (every refusal names the column)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from esante.fhir.validation import validate_resource
from esante.hpd.codes import CodeError, check_profession, check_specialty, code_systems, professions
from esante.hpd.csv_source import COLUMNS, RowError, read_csv, row_to_line
from esante.hpd.model import (
    CNS_PROVIDER_SYSTEM,
    MINISTRY_AUTHORISATION_SYSTEM,
    PROFESSION_SYSTEM,
    RIGHT_TO_PRACTISE_URL,
    RightToPractise,
    Status,
    right_to_practise_of,
)
from esante.identifiers.checkdigits import luhn_digit
from esante.identifiers.cns_provider_code import CnsProviderCodeError, is_physician_code, parse_cns_provider_code
from esante.identifiers.ehealth_id import is_valid_ehealth_id, new_ehealth_id

TODAY = date(2025, 6, 1)


def row(**values: str) -> dict[str, str | None]:
    """A valid row (a GP at her cabinet) with ``values`` changed."""
    base = {
        "authorisation": "MED-2010-00042",
        "profession": "medecin",
        "specialties": "med-generale",
        "family": "Schmit",
        "given": "Anne Marie",
        "prefix": "Dr",
        "gender": "F",
        "languages": "lb fr de",
        "cns_code": "901234-56",
        "authorised_from": "2010-09-01",
        "org_id": "CAB00001",
        "org_name": "Cabinet médical Schmit",
        "org_type": "practice",
        "org_endpoint": "mailto:cabinet.schmit@example.lu",
        "org_affiliated_with": "HOSP01",
        "site_id": "CAB00001-S1",
        "street": "12, rue de la Gare",
        "postal_code": "L-4011",
        "city": "Esch-sur-Alzette",
        "role_phone": "+352 26 54 32 10",
        "role_email": "anne.schmit@example.lu",
        "role_from": "2012-01-01",
    }
    base.update(values)
    return dict(base)


def refusal(**values: str) -> str:
    with pytest.raises(RowError) as caught:
        row_to_line(7, row(**values), TODAY)
    return str(caught.value)


# --- identifiers -----------------------------------------------------------------------------------------------


def test_new_ehealth_ids_have_ten_digits_a_luhn_digit_and_no_leading_zero() -> None:
    drawn = {new_ehealth_id() for _ in range(2000)}
    assert len(drawn) > 1990  # random, not a sequence
    for value in drawn:
        assert len(value) == 10 and value[0] != "0" and value[9] == luhn_digit(value[:9])
        assert is_valid_ehealth_id(value)
    assert not is_valid_ehealth_id("1000000009")  # a wrong check digit is caught


def test_cns_provider_codes_are_checked_and_normalised() -> None:
    assert parse_cns_provider_code("901234-56") == "901234-56"
    assert parse_cns_provider_code(" 90123456 ") == "901234-56"
    assert parse_cns_provider_code("901 234-56") == "901234-56"
    assert is_physician_code("901234-56") and not is_physician_code("301234-56")
    for bad, why in (
        ("90123-456", "NNNNNN-NN"),
        ("9012345-6", "NNNNNN-NN"),
        ("901234-5", "8 digits"),
        ("9012345678", "8 digits"),
        ("90A234-56", "NNNNNN-NN"),
        ("", "8 digits"),
        ("\uff19\uff10\uff11\uff12\uff13\uff14-\uff15\uff16", "NNNNNN-NN"),  # full-width digits are not ASCII
    ):
        with pytest.raises(CnsProviderCodeError, match=why):
            parse_cns_provider_code(bad)


# --- code systems ----------------------------------------------------------------------------------------------


def test_the_professions_code_system_is_valid_fhir_and_lists_the_regulated_professions() -> None:
    for resource in code_systems():
        validate_resource(resource, expected_type="CodeSystem")
    table = professions()
    assert table.url == PROFESSION_SYSTEM == table.resource["url"]
    codes = {c.code for c in table.professions()}
    assert {
        "medecin",
        "medecin-dentiste",
        "pharmacien",
        "infirmier",
        "sage-femme",
        "masseur-kinesitherapeute",
        "biologiste",
        "psychotherapeute",
        "aide-soignant",
        "orthophoniste",
        "ergotherapeute",
    } <= codes
    specialties = {c.code for c in table.specialties_of("medecin")}
    assert {
        "med-generale",
        "med-cardiologie",
        "med-pediatrie",
        "med-gynecologie-obstetrique",
        "med-psychiatrie",
        "med-radiologie",
        "med-anesthesiologie",
        "med-chirurgie-generale",
    } <= specialties
    assert table.resource["count"] == len(table.concepts)
    for concept in table.concepts.values():  # French display, English designation
        assert concept.display and concept.english, concept.code
    assert table.get("med-cardiologie").english == "Cardiology"  # type: ignore[union-attr]
    assert check_profession("sage-femme").display == "Sage-femme"
    with pytest.raises(CodeError, match="unknown profession"):
        check_profession("med-cardiologie")  # a specialty is not a profession
    with pytest.raises(CodeError, match="belongs to the profession 'medecin'"):
        check_specialty("med-cardiologie", "infirmier")


def test_the_right_to_practise_is_read_back_from_a_practitioner() -> None:
    assert right_to_practise_of({}) == RightToPractise(Status.ACTIVE)
    assert right_to_practise_of({"active": False}).status is Status.SUSPENDED
    stamped = {
        "extension": [
            {
                "url": RIGHT_TO_PRACTISE_URL,
                "extension": [{"url": "status", "valueCode": "withdrawn"}, {"url": "date", "valueDate": "2024-02-01"}],
            }
        ]
    }
    assert right_to_practise_of(stamped) == RightToPractise(Status.WITHDRAWN, "2024-02-01")


# --- CSV rows ----------------------------------------------------------------------------------------------------


def test_a_row_states_the_professional_and_the_place_of_practice() -> None:
    line = row_to_line(7, row(), TODAY)
    assert line.number == 7
    assert [i.type for i in line.items] == [
        "Endpoint",
        "Organization",
        "OrganizationAffiliation",
        "Location",
        "Practitioner",
        "HealthcareService",
        "PractitionerRole",
    ]
    items = {i.type: i for i in line.items}
    practitioner = items["Practitioner"].body
    assert items["Practitioner"].key == "MED-2010-00042"
    assert practitioner["identifier"] == [
        {"use": "official", "system": MINISTRY_AUTHORISATION_SYSTEM, "value": "MED-2010-00042"},
        {"system": CNS_PROVIDER_SYSTEM, "value": "901234-56"},
    ]
    assert practitioner["active"] is True
    assert [q["code"]["coding"][0]["code"] for q in practitioner["qualification"]] == ["medecin", "med-generale"]
    assert practitioner["qualification"][0]["period"] == {"start": "2010-09-01"}
    assert practitioner["qualification"][0]["issuer"]["identifier"]["value"] == "MINSANTE"
    name = {"use": "official", "family": "Schmit", "given": ["Anne", "Marie"], "prefix": ["Dr"]}
    assert practitioner["name"] == [name]
    assert [c["coding"][0]["code"] for c in practitioner["communication"]] == ["lb", "fr", "de"]
    role = items["PractitionerRole"].body
    assert items["PractitionerRole"].key == "MED-2010-00042/CAB00001/CAB00001-S1"
    assert role["active"] is True and role["period"] == {"start": "2012-01-01"}
    assert role["practitioner"]["identifier"]["value"] == "MED-2010-00042"
    assert role["specialty"][0]["coding"][0]["code"] == "med-generale"
    assert items["Location"].body["address"]["postalCode"] == "L-4011"
    assert items["Endpoint"].body["connectionType"]["code"] == "direct-project"
    assert items["OrganizationAffiliation"].key == "HOSP01/CAB00001"


def test_a_row_without_a_place_states_the_professional_only_and_a_past_end_ends_the_role() -> None:
    bare = {k: v for k, v in row().items() if not k.startswith(("org_", "site_", "role_")) and k not in (
        "street", "postal_code", "city")}  # fmt: skip
    line = row_to_line(3, bare, TODAY)
    assert [i.type for i in line.items] == ["Practitioner"]
    ended = row_to_line(4, row(role_until="2025-05-31"), TODAY)
    assert ended.items[-1].body["active"] is False and ended.items[-1].body["period"]["end"] == "2025-05-31"
    assert row_to_line(4, row(role_until="2025-06-01"), TODAY).items[-1].body["active"] is True  # ends today


def test_a_suspended_or_withdrawn_professional_is_inactive_and_needs_a_date_and_a_reason() -> None:
    line = row_to_line(
        5, row(status="withdrawn", status_date="2025-03-01", status_reason="retrait du droit d'exercer"), TODAY
    )
    practitioner = next(i for i in line.items if i.type == "Practitioner")
    assert practitioner.body["active"] is False
    assert practitioner.right == RightToPractise(Status.WITHDRAWN, "2025-03-01", "retrait du droit d'exercer")
    extension = practitioner.body["extension"][0]
    assert extension["url"] == RIGHT_TO_PRACTISE_URL
    assert {"url": "reason"} not in [{"url": e["url"]} for e in extension["extension"]]  # the reason is not public
    assert "status_date, status_reason: required" in refusal(status="suspended")
    assert "status: active, suspended or withdrawn" in refusal(status="struck-off")
    future = {"status": "suspended", "status_date": "2025-06-02", "status_reason": "x"}
    assert "status_date: 2025-06-02 is in the future" in refusal(**future)
    assert "status_reason: at most 1,000 characters" in refusal(
        status="suspended", status_date="2025-06-01", status_reason="x" * 1001
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"cns_code": "90123-456"}, "cns_code: a CNS provider code is NNNNNN-NN"),
        ({"cns_code": "301234-56"}, "cns_code: a physician's CNS provider code begins with 9"),
        ({"org_cns_code": "12"}, "org_cns_code: a CNS provider code has 8 digits"),
        ({"profession": "chiropracteur"}, "profession: unknown profession code 'chiropracteur'"),
        ({"specialties": "med-generale dent-orthodontie"}, "specialties: specialty 'dent-orthodontie' belongs to"),
        ({"specialties": "med-astrologie"}, "specialties: unknown specialty code 'med-astrologie'"),
        ({"family": ""}, "family: required"),
        ({"authorisation": ""}, "authorisation: required"),
        ({"authorisation": "MED 2010"}, "authorisation: letters, digits"),
        ({"authorised_from": "01/09/2010"}, "authorised_from: a date is YYYY-MM-DD, not '01/09/2010'"),
        ({"authorised_from": "2010-02-30"}, "authorised_from: 2010-02-30 is not a calendar date"),
        ({"authorised_until": "2009-12-31"}, "authorised_until: before authorised_from"),
        ({"role_from": "2012-13-01"}, "role_from: 2012-13-01 is not a calendar date"),
        ({"role_until": "2011-01-01"}, "role_until: before role_from"),
        ({"status_date": "yesterday", "status": "suspended", "status_reason": "x"}, "status_date: a date is"),
        ({"gender": "W"}, "gender: F, M, X or U"),
        ({"languages": "French"}, "languages: 'French' is not a BCP-47"),
        ({"org_name": ""}, "org_name: required with org_id"),
        ({"org_type": "spa"}, "org_type: unknown organisation type 'spa'"),
        ({"org_id": "", "site_id": ""}, "org_name: given without org_id"),
        ({"site_id": ""}, "site_id: required with a site's name or address"),
        ({"city": ""}, "city: required with site_id"),
        ({"postal_code": "4011-L"}, "postal_code: a Luxembourg postal code is L-NNNN"),
        ({"country": "Luxembourg"}, "country: an ISO 3166 alpha-2 code"),
        ({"org_endpoint": "ftp://x"}, "org_endpoint: a mailto: or https:// address"),
        ({"role_email": "anne.schmit"}, "role_email: not an e-mail address"),
        ({"role_phone": "call me"}, "role_phone: not a phone number"),
        ({"org_affiliated_with": "CAB00001"}, "org_affiliated_with: an organisation is not affiliated with itself"),
        ({"family": "Schmit\u0007"}, "family: a control character (code 7)"),
    ],
)
def test_every_bad_cell_refuses_its_row_naming_the_column(values: dict[str, str], reason: str) -> None:
    assert reason in refusal(**values)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_the_file_reader_reports_each_bad_row_by_its_line_and_keeps_the_others(tmp_path: Path) -> None:
    good = row()
    header = list(COLUMNS)
    cells = [good.get(c) or "" for c in header]
    bad = list(cells)
    bad[header.index("cns_code")] = "12-34"
    path = _write_csv(tmp_path / "d.csv", header, [cells, bad, [*cells, "surplus"], cells])
    read: list[tuple[int, Any]] = list(read_csv(path, TODAY))
    assert [n for n, _ in read] == [2, 3, 4, 5]
    assert isinstance(read[0][1], object) and not isinstance(read[0][1], str)
    assert isinstance(read[1][1], str) and read[1][1].startswith("cns_code:")
    assert read[2][1] == "1 cell(s) more than the header has columns"
    assert not isinstance(read[3][1], str)


def test_a_header_without_a_required_column_or_with_an_unknown_one_refuses_the_file(tmp_path: Path) -> None:
    header = [c for c in COLUMNS if c != "profession"]
    path = _write_csv(tmp_path / "a.csv", header, [["x"] * len(header)])
    assert list(read_csv(path, TODAY)) == [(1, "the header lacks the required column(s) profession")]
    path = _write_csv(tmp_path / "b.csv", [*COLUMNS, "matricule"], [])
    assert list(read_csv(path, TODAY)) == [(1, "unknown column(s) matricule (see the documented columns)")]
