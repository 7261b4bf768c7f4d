"""Build the name and place tables of the synthetic population in ``src/esante/synth/data/`` (developers only).

Sources and licences
--------------------
* Name lists: the person providers of **Faker 40.54.0** (https://github.com/joke2k/faker, MIT licence,
  Copyright (c) 2012 Daniele Faraglia). Faker's files name their own sources, repeated in the output:
  ``de_LU`` (Luxembourg) surnames with counts from nachnamen.net and given names with frequency classes from
  MatthiasWinkelmann/firstname-database (derived from Jörg Michael's ``gender.c`` list, GNU FDL);
  ``fr_BE`` surnames and given names of Wallonia with 2022 counts from Statbel (Belgian open data); ``fr_FR``
  surnames in the order of the national ranking; ``de_DE`` (namenforschung.net, Wiktionary), ``pt_PT``, ``it_IT``
  (Wiktionary/Wikipedia categories), ``es_ES``, ``pl_PL``, ``hr_HR``, ``ro_RO`` (Wikipedia), ``en_GB`` (ONS) lists
  without counts. The wheel is fetched with ``pip download`` (or given with ``--wheel``) and its modules are READ
  WITH ``ast`` (never imported or executed).
* Frequency heads, places, postal codes, streets, birth places: written by hand for this project, see
  ``scripts/synth_sources.py`` (Apache-2.0 with the project; plausible, not a reference).

Weights: Faker's counts are kept (fractions scaled to integers); a list without counts gets rank weights when it
is ordered by frequency (``1000 / rank``) or a hand-written head with rank weights followed by the rest of the
list sharing a quarter of the head's weight (a long tail of rarer names), so common names come out common.

Outputs (UTF-8 JSON, deterministic, sorted keys): ``names.json`` and ``places.json``.
Run: ``.venv/bin/python scripts/build_synth_data.py [--wheel FILE.whl]``.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth_sources as src  # the hand-written lists beside this script

FAKER = "faker==40.54.0"
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "esante" / "synth" / "data"
TAIL_WEIGHT = 4  # weight of each name of a list without any frequency (a head name of rank r weighs 1000 / r)
TAIL_SHARE = 0.25  # behind a hand-written head, the rest of Faker's list shares this fraction of the head's weight
LICENCE = (
    "Name lists from Faker 40.54.0 (MIT licence, (c) 2012 Daniele Faraglia) whose provider files cite: "
    "nachnamen.net (LU surnames), MatthiasWinkelmann/firstname-database (LU given names, GNU FDL), Statbel 2022 "
    "(BE), national rankings/Wiktionary/Wikipedia/ONS (FR, DE, PT, IT, ES, PL, HR, RO, GB). Frequency heads of "
    "FR/DE/PT/IT names written by hand for eSanté (Apache-2.0). Built by scripts/build_synth_data.py."
)


def fetch_wheel(workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", FAKER, "--no-deps", "--only-binary", ":all:", "-d", str(workdir)],
        check=True,
        capture_output=True,
    )
    wheels = sorted(workdir.glob("faker-*.whl"))
    if not wheels:
        raise SystemExit("pip download produced no Faker wheel")
    return wheels[0]


def provider_lists(wheel: zipfile.ZipFile, locale: str) -> dict[str, Any]:
    """Class-level literal assignments of ``faker/providers/person/<locale>``: tuples, lists, OrderedDict(...)."""
    tree = ast.parse(wheel.read(f"faker/providers/person/{locale}/__init__.py").decode("utf-8"))
    found: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "OrderedDict" and value.args:
            try:
                found[name] = dict(ast.literal_eval(value.args[0]))
            except ValueError:
                continue
        elif isinstance(value, ast.Tuple | ast.List):
            try:
                found[name] = list(ast.literal_eval(value))
            except ValueError:
                continue
    return found


def counted(mapping: dict[str, float]) -> list[list[Any]]:
    """Faker's counts as integer weights (fractions such as 0.0039 are scaled until the rarest weighs 1)."""
    scale = max(1.0, 1 / min(mapping.values()))
    return [[_fix_case(name), max(1, round(weight * scale))] for name, weight in mapping.items()]


def ranked(names: list[str]) -> list[list[Any]]:
    """A list ordered by frequency: rank weights."""
    return [[_fix_case(name), max(1, round(1000 / rank))] for rank, name in enumerate(_unique(names), start=1)]


def head_and_tail(head: list[str], tail: list[str]) -> list[list[Any]]:
    table = ranked(head)
    known = {name.casefold() for name, _ in table}
    rest = [name for name in _unique(tail) if name.casefold() not in known]
    weight = max(1, round(TAIL_SHARE * sum(w for _, w in table) / max(1, len(rest))))
    return table + [[name, weight] for name in rest]


def flat(names: list[str]) -> list[list[Any]]:
    return [[name, TAIL_WEIGHT] for name in _unique(names)]


def _unique(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        name = name.strip()
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return out


def _fix_case(name: str) -> str:
    """``Da silva`` -> ``Da Silva`` (Faker keeps the source's lower-case second word)."""
    return " ".join(part[:1].upper() + part[1:] for part in name.split(" "))


def build_names(wheel: zipfile.ZipFile) -> dict[str, Any]:
    lu, be, fr, de = (provider_lists(wheel, loc) for loc in ("de_LU", "fr_BE", "fr_FR", "de_DE"))
    pt, it, es, pl = (provider_lists(wheel, loc) for loc in ("pt_PT", "it_IT", "es_ES", "pl_PL"))
    hr, ro, en = (provider_lists(wheel, loc) for loc in ("hr_HR", "ro_RO", "en_GB"))

    # The Luxembourg surname counts include the immigrant communities, modelled by their own origins here:
    # Portuguese (with particles) and Balkan (-ić/-ović) names go to those origins instead.
    foreign = {n.casefold() for n in src.PT_SURNAME_HEAD + pt["last_names"] + src.IT_SURNAME_HEAD}
    lu_family = []
    balkan_from_lu = []
    for name, weight in counted(lu["last_names"]):
        bare = name.split(" ")[-1].casefold()
        if name.casefold().endswith(("ic", "ić")):
            balkan_from_lu.append(name)
        elif bare not in foreign and name.casefold() not in foreign:
            lu_family.append([name, weight])

    origins: dict[str, dict[str, Any]] = {
        "LU": {
            "family": lu_family,
            "given_male": counted(lu["first_names_male"]),
            "given_female": counted(lu["first_names_female"]),
        },
        "BE": {
            "family": counted(be["last_names"]),
            "given_male": counted(be["first_names_male"]),
            "given_female": counted(be["first_names_female"]),
        },
        "FR": {
            "family": ranked(fr["last_names"]),
            "given_male": head_and_tail(src.FR_GIVEN_MALE_HEAD, fr["first_names_male"]),
            "given_female": head_and_tail(src.FR_GIVEN_FEMALE_HEAD, fr["first_names_female"]),
        },
        "DE": {
            "family": head_and_tail(src.DE_SURNAME_HEAD, de["last_names"]),
            "given_male": head_and_tail(src.DE_GIVEN_MALE_HEAD, de["first_names_male"]),
            "given_female": head_and_tail(src.DE_GIVEN_FEMALE_HEAD, de["first_names_female"]),
        },
        "PT": {
            "family": head_and_tail(src.PT_SURNAME_HEAD, pt["last_names"]),
            "given_male": head_and_tail(src.PT_GIVEN_MALE_HEAD, pt["first_names_male"]),
            "given_female": head_and_tail(src.PT_GIVEN_FEMALE_HEAD, pt["first_names_female"]),
            "particles": dict(sorted(src.PT_PARTICLES.items())),
        },
        "IT": {
            "family": head_and_tail(src.IT_SURNAME_HEAD, it["last_names"]),
            "given_male": head_and_tail(src.IT_GIVEN_MALE_HEAD, it["first_names_male"]),
            "given_female": head_and_tail(src.IT_GIVEN_FEMALE_HEAD, it["first_names_female"]),
        },
        "ES": {
            "family": flat(es["last_names"]),
            "given_male": flat(es["first_names_male"]),
            "given_female": flat(es["first_names_female"]),
        },
        "PL": {
            "family": flat(pl["unisex_last_names"]),
            "given_male": flat(pl["first_names_male"]),
            "given_female": flat(pl["first_names_female"]),
        },
        "BK": {
            "family": flat(balkan_from_lu + hr["last_names"]),
            "given_male": flat(hr["first_names_male"]),
            "given_female": flat(hr["first_names_female"]),
        },
        "RO": {
            "family": flat(ro["last_names"]),
            "given_male": flat(ro["first_names_male"]),
            "given_female": flat(ro["first_names_female"]),
        },
        "EN": {
            "family": counted(en["last_names"]) if isinstance(en["last_names"], dict) else flat(en["last_names"]),
            "given_male": counted(en["first_names_male"])
            if isinstance(en["first_names_male"], dict)
            else flat(en["first_names_male"]),
            "given_female": counted(en["first_names_female"])
            if isinstance(en["first_names_female"], dict)
            else flat(en["first_names_female"]),
        },
    }
    for origin, table in origins.items():
        for key in ("family", "given_male", "given_female"):
            if len(table[key]) < 20:
                raise SystemExit(f"{origin}.{key}: only {len(table[key])} names (Faker changed?)")
    return {"source": LICENCE, "origins": origins}


def _expand(codes: list[int] | tuple[int, int, int]) -> list[int]:
    if isinstance(codes, tuple):
        first, last, step = codes
        return list(range(first, last + 1, step))
    return list(codes)


def build_places() -> dict[str, Any]:
    communes = []
    for commune, (population, localities) in src.LU_COMMUNES.items():
        share = population / len(localities)
        # the seat gets a larger share than the villages of its commune
        weights = [share * (2 if i == 0 else 1) for i in range(len(localities))]
        scale = population / sum(weights)
        for (locality, codes), weight in zip(localities, weights, strict=True):
            communes.append(
                {
                    "commune": commune,
                    "locality": locality,
                    "postal_codes": [f"L-{code:04d}" for code in _expand(codes)],
                    "weight": max(1, round(weight * scale)),
                }
            )
    return {
        "source": "Written by hand for eSanté (scripts/synth_sources.py, Apache-2.0): real names, approximate "
        "populations, postal codes plausible but not checked against the official register (CACLR). "
        "Built by scripts/build_synth_data.py.",
        "LU": {
            "localities": communes,
            "city_streets": [[street, f"L-{code:04d}"] for street, code in src.LU_CITY_STREETS],
            "streets": src.LU_STREETS,
        },
        "FR": {"towns": [list(t) for t in src.FR_TOWNS], "streets": src.FR_STREETS},
        "BE": {"towns": [list(t) for t in src.BE_TOWNS], "streets": src.BE_STREETS},
        "DE": {"towns": [list(t) for t in src.DE_TOWNS], "streets": src.DE_STREETS},
        "other": {"towns": [list(t) for t in src.OTHER_TOWNS], "streets": src.OTHER_STREETS},
        "birth_places": {origin: [list(p) for p in places] for origin, places in src.BIRTH_PLACES.items()},
    }


def write(name: str, payload: dict[str, Any]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    (OUT_DIR / name).write_text(text + "\n", encoding="utf-8")
    print(f"{name}: {len(text):,} characters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an already downloaded faker-40.54.0 wheel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel_path = args.wheel or fetch_wheel(Path(tmp))
        with zipfile.ZipFile(wheel_path) as wheel:
            write("names.json", build_names(wheel))
    write("places.json", build_places())


if __name__ == "__main__":
    main()
