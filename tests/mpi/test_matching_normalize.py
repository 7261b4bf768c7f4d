"""Normalisation and the phonetic key: the rules of docs/mpi-matching.md, one assertion per rule."""

from __future__ import annotations

import pytest

from esante.mpi.matching.normalize import core_tokens, country, fold, fold_variants, postal_code, split_maiden
from esante.mpi.matching.phonetic import phonetic_key


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Gonçalves", "goncalves"),
        ("LEFÈVRE", "lefevre"),
        ("João", "joao"),
        ("Weiß", "weiss"),
        ("Straße", "strasse"),
        ("Lætitia", "laetitia"),
        ("Œuvray", "oeuvray"),
        ("Søren", "soren"),
        ("Łukasz", "lukasz"),
        ("Jean-Marie", "jean marie"),
        ("d'Almeida", "d almeida"),
        ("O\u2019Brien", "o brien"),
        ("  Da   Silva,  Santos ", "da silva santos"),
        ("Müller", "muller"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_umlauts_get_their_german_spelling_as_a_variant() -> None:
    assert fold_variants("Müller") == ("muller", "mueller")
    assert fold_variants("Schröder") == ("schroder", "schroeder")
    assert fold_variants("Mueller") == ("mueller",)
    assert fold_variants("Manuel") == ("manuel",)  # no blanket ue -> u


def test_particles_leave_the_core_unless_nothing_else_remains() -> None:
    assert core_tokens("de oliveira da silva") == ("oliveira", "silva")
    assert core_tokens("van der berg") == ("berg",)
    assert core_tokens("d almeida") == ("almeida",)
    assert core_tokens("le") == ("le",)
    assert core_tokens("da silva e sousa") == ("silva", "sousa")


@pytest.mark.parametrize(
    ("text", "current", "birth"),
    [
        ("Dupont née Martin", "Dupont", "Martin"),
        ("Dupont nee Martin", "Dupont", "Martin"),
        ("Weber geb. Schmit", "Weber", "Schmit"),
        ("Weber geborene Schmit", "Weber", "Schmit"),
        ("Martin ép. Dupont", "Dupont", "Martin"),
        ("Martin épouse Dupont", "Dupont", "Martin"),
        ("Martin veuve Dupont", "Dupont", "Martin"),
        ("Schmit verh. Weber", "Weber", "Schmit"),
        ("Da Silva nascida Santos", "Da Silva", "Santos"),
    ],
)
def test_maiden_markers(text: str, current: str, birth: str) -> None:
    assert split_maiden(text) == (current, birth)


@pytest.mark.parametrize("text", ["Née", "née Martin", "Martin née", "Dupont", "Nee-Dupont"])
def test_a_marker_without_two_sides_is_a_name(text: str) -> None:
    assert split_maiden(text) == (text, None)


def test_postal_codes_and_countries() -> None:
    assert postal_code("L-1234") == "1234"
    assert postal_code("l 1234") == "1234"
    assert postal_code("F-57100") == "57100"
    assert postal_code("57100") == "57100"
    assert country("Luxembourg") == country("LUX") == country("lu") == "lu"
    assert country("Deutschland") == "de"
    assert country("Atlantis") == "atlantis"


@pytest.mark.parametrize(
    "spellings",
    [
        ("Schmit", "Schmitt", "Schmidt", "Schmid"),
        ("Meyer", "Meier", "Mayer", "Maier", "Mayr"),
        ("Müller", "Mueller", "Muller"),
        ("Thibault", "Thibaut", "Thibaud"),
        ("Lefèvre", "Lefebvre"),
        ("Philippe", "Filipe", "Phillip"),
        ("Christophe", "Kristof", "Christoph"),
        ("Dupont", "Dupond"),
        ("Gonçalves", "Goncalves"),
        ("Hoffmann", "Hofmann", "Offmann"),
        ("Coelho", "Coelo"),
        ("Weber", "Veber"),
    ],
)
def test_phonetic_key_unites_spellings(spellings: tuple[str, ...]) -> None:
    keys = {phonetic_key(fold(s).replace(" ", "")) for s in spellings}
    assert len(keys) == 1, keys


@pytest.mark.parametrize(("a", "b"), [("Schmit", "Weber"), ("Ferreira", "Pereira"), ("Martin", "Martins")])
def test_phonetic_key_keeps_names_apart(a: str, b: str) -> None:
    assert phonetic_key(fold(a)) != phonetic_key(fold(b))


def test_phonetic_key_of_nothing() -> None:
    assert phonetic_key("") == ""
    assert phonetic_key("123") == ""
