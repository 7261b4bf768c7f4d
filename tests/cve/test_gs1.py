"""GS1 DataMatrix parsing (pure) and the packaged product table."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esante.cve.engine import load_supporting_data
from esante.cve.engine.model import normalize_cvx
from esante.cve.record.gs1 import GS, Gs1Error, expiry_date, gtin_check_digit, parse_datamatrix, valid_gtin
from esante.cve.record.products import ProductTableError, load_products
from tests.cve.record_support import CDC_DATA, HEXYON

TODAY = date(2025, 6, 1)


def _code(text: str) -> str:
    with pytest.raises(Gs1Error) as caught:
        parse_datamatrix(text, TODAY)
    return caught.value.code


def test_raw_scan_with_symbology_identifier_and_separators() -> None:
    data = parse_datamatrix(f"]d201{HEXYON}17270531" + f"10AB-12/C{GS}21X7Y8Z9{GS}71012345678", TODAY)
    assert data.gtin == HEXYON
    assert data.expiry == date(2027, 5, 31)
    assert data.lot == "AB-12/C"
    assert data.serial == "X7Y8Z9"
    assert data.national_codes == {"710": "12345678"}
    assert [ai for ai, _ in data.elements] == ["01", "17", "10", "21", "710"]


def test_any_order_leading_fnc1_trailing_gs_and_the_keyboard_gs_symbol() -> None:
    data = parse_datamatrix(f"{GS}10LOT1{GS}17260115{GS}01{HEXYON}21SER\u241d11250101{GS}", TODAY)
    assert (data.gtin, data.lot, data.serial, data.expiry) == (HEXYON, "LOT1", "SER", date(2026, 1, 15))
    assert data.value("11") == "250101"


def test_bracketed_human_readable_form() -> None:
    data = parse_datamatrix(f"(01){HEXYON}(17)270500(10)LOT 2(21)S1".replace(" ", ""), TODAY)
    assert (data.gtin, data.lot, data.serial, data.expiry) == (HEXYON, "LOT2", "S1", date(2027, 5, 31))


def test_day_zero_is_the_last_day_of_the_month() -> None:
    assert expiry_date("240200", TODAY) == date(2024, 2, 29)
    assert expiry_date("250200", TODAY) == date(2025, 2, 28)
    assert expiry_date("261200", TODAY) == date(2026, 12, 31)
    assert expiry_date("270400", TODAY) == date(2027, 4, 30)


def test_century_within_minus_49_and_plus_50_years() -> None:
    assert expiry_date("750101", TODAY).year == 2075  # +50: this century
    assert expiry_date("760101", TODAY).year == 1976  # +51: the previous one
    assert expiry_date("990101", date(2001, 1, 1)).year == 1999
    assert expiry_date("010101", date(1999, 1, 1)).year == 2001  # -98: the next century


def test_check_digit() -> None:
    assert gtin_check_digit("0209990000001") == "0"
    assert valid_gtin(HEXYON)
    assert not valid_gtin(HEXYON[:-1] + "1")
    assert not valid_gtin("123")
    # a known published example: GTIN-13 4006381333931 (check digit 1) padded to 14 digits
    assert valid_gtin("04006381333931")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (f"01{HEXYON[:-1]}117270531", "gs1-check-digit"),
        ("", "gs1-empty"),
        ("   ", "gs1-empty"),
        ("]d2", "gs1-empty"),
        ("hello", "gs1-syntax"),
        ("{}<>", "gs1-syntax"),
        (f"01{HEXYON}42ABC", "gs1-ai"),  # no AI 42
        (f"01{HEXYON}17271332", "gs1-date"),  # month 13
        (f"01{HEXYON}17270431", "gs1-date"),  # 31 April
        (f"01{HEXYON}172705", "gs1-length"),  # cut short
        (f"01{HEXYON}10" + "L" * 21, "gs1-length"),  # a lot longer than 20: a GS is missing
        (f"01{HEXYON}10LOT1{GS}10LOT2", "gs1-duplicate"),
        ("0102099900A00010", "gs1-syntax"),  # a letter in a numeric AI
        (f"01{HEXYON}10LOT\x07", "gs1-syntax"),  # a control character
        (f"01{HEXYON}10{GS}21S", "gs1-length"),  # an empty lot
        ("(01)123(17)270531", "gs1-length"),
        ("(01)" + HEXYON + "(42)X", "gs1-ai"),
        ("(01)" + HEXYON + "junk", "gs1-length"),
        ("(01)" + HEXYON + ")x", "gs1-syntax"),
        (f"01{HEXYON}11251332", "gs1-date"),  # every date AI must be a date
    ],
)
def test_refusals(text: str, code: str) -> None:
    assert _code(text) == code


def test_a_code_without_gtin_parses_but_has_none() -> None:
    data = parse_datamatrix(f"17270531{GS}10LOT", TODAY)
    assert data.gtin is None and data.lot == "LOT"


_CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_values = st.text(alphabet=st.sampled_from(_CSET82), min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    body=st.text(alphabet="0123456789", min_size=13, max_size=13),
    lot=_values,
    serial=_values,
    expiry=st.dates(min_value=date(1976, 1, 1), max_value=date(2075, 12, 31)),
    order=st.permutations(["01", "17", "10", "21"]),
    day_zero=st.booleans(),
)
def test_any_well_formed_scan_gives_back_its_fields(
    body: str, lot: str, serial: str, expiry: date, order: list[str], day_zero: bool
) -> None:
    gtin = body + gtin_check_digit(body)
    yymmdd = expiry.strftime("%y%m") + ("00" if day_zero else expiry.strftime("%d"))
    values = {"01": gtin, "17": yymmdd, "10": lot, "21": serial}
    text = ""
    for position, ai in enumerate(order):
        text += ai + values[ai]
        if ai in ("10", "21") and position < len(order) - 1:
            text += GS
    data = parse_datamatrix("]d2" + text, TODAY)
    assert (data.gtin, data.lot, data.serial) == (gtin, lot, serial)
    assert data.expiry == expiry_date(yymmdd, TODAY)
    assert data.expiry is not None and data.expiry.strftime("%y%m") == expiry.strftime("%y%m")


def test_the_packaged_product_table_agrees_with_the_cdc_data() -> None:
    table = load_products()
    schedule = load_supporting_data(CDC_DATA)
    assert len(table.products) >= 50
    for product in table.products:
        assert valid_gtin(product.gtin)
        assert product.gtin_status == "illustrative"  # none could be sourced: the file says so
        cvx = normalize_cvx(product.cvx)
        assert cvx in schedule.cvx_map, product
        assert sorted(product.antigens) == sorted(a.antigen for a in schedule.cvx_map[cvx]), product
    document = json.loads(
        (Path(__file__).resolve().parents[2] / "src/esante/cve/data/products.json").read_text(encoding="utf-8")
    )
    assert "ILLUSTRATIVE" in document["notice"]
    # the schedule's vaccines are all there: hexavalent, rotavirus, pneumococcal, MenB, MenACWY, MMR(V), HPV,
    # dTap-IPV, zoster, influenza, RSV, COVID-19, hepatitis A and B
    groups = {a for p in table.products for a in p.antigens}
    for antigen in (
        "Hib",
        "Rotavirus",
        "Pneumococcal",
        "Meningococcal B",
        "Meningococcal",
        "Measles",
        "Varicella",
        "HPV",
        "Polio",
        "Zoster",
        "Influenza",
        "RSV",
        "COVID-19",
        "HepA",
        "HepB",
        "Pertussis",
    ):
        assert antigen in groups


def test_a_bad_product_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "products.json"
    row = {"gtin": HEXYON, "name": "X", "cvx": "146"}
    cases = [
        ({"products": [{**row, "gtin": HEXYON[:-1] + "1"}]}, "check digit"),
        ({"products": [row, row]}, "more than once"),
        ({"products": [{**row, "cvx": ""}]}, "needs a name and a cvx"),
        ({"products": [{**row, "gtin_status": "real"}]}, "gtin_status"),
        ({"items": []}, "'products' list"),
    ]
    for document, text in cases:
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(ProductTableError, match=text):
            load_products(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ProductTableError, match="cannot read"):
        load_products(path)
