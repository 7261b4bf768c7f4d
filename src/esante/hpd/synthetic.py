"""A synthetic national directory: professionals with their rights to practise and places of practice, as the
Ministry/CNS extract would give them (the CSV import format, :mod:`esante.hpd.csv_source`). No real person.

Seeded and deterministic (same configuration and seed, same rows), streamed (constant memory apart from the
organisations). Names come from the synthetic population's tables (``esante.synth``), places from its Luxembourg
localities (weighted by population). The shares below are ours, rough orders of magnitude for Luxembourg's 25,005
registered professionals (PLATFORM.md), not official statistics:

* professions: nurses and nursing assistants are more than half, physicians ~10 % (a third of them general
  practitioners), then physiotherapists, pharmacists, dentists, psychotherapists and the other professions of the
  law of 26 March 1992;
* places: hospitals (4 groups of 1 to 3 sites and 2 specialised hospitals), 3 laboratories with collection sites,
  ~100 pharmacies, imaging centres, home-care networks, care homes, the CGDIS with its rescue centres, and
  practices (cabinets of 1 to 4 professionals of one profession) created as professionals settle; many physicians
  practise both in their cabinet and at a hospital (two rows), a practice is often affiliated with a hospital;
* right to practise: 0.4 % suspended, 0.8 % withdrawn (half of them without a place of practice any more),
  3 % limited in time; 2 % of the rows end a role (a ``role_until`` in the past).
"""

from __future__ import annotations

import csv
import random
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from esante.hpd.codes import professions
from esante.hpd.csv_source import COLUMNS
from esante.synth.names import surname
from esante.synth.places import home_address
from esante.synth.tables import Town, name_tables, place_tables
from esante.synth.weighted import Weighted

#: professionals per profession (weights; the total is scaled to ``DirectoryConfig.count``)
PROFESSION_SHARES: dict[str, float] = {
    "medecin": 2600,
    "medecin-dentiste": 600,
    "pharmacien": 700,
    "biologiste": 80,
    "psychotherapeute": 650,
    "infirmier": 8500,
    "aide-soignant": 5200,
    "sage-femme": 300,
    "masseur-kinesitherapeute": 1400,
    "assistant-social": 700,
    "assistant-senior": 300,
    "assistant-hygiene-sociale": 150,
    "atm-chirurgie": 300,
    "atm-radiologie": 450,
    "laborantin": 600,
    "dieteticien": 200,
    "ergotherapeute": 450,
    "masseur": 100,
    "orthophoniste": 350,
    "orthoptiste": 50,
    "osteopathe": 250,
    "pedagogue-curatif": 250,
    "podologue": 100,
    "psychomotricien": 300,
}
#: physicians' specialties (weights); the rest of the recognised specialties share what is left
SPECIALTY_SHARES: dict[str, float] = {
    "med-generale": 33,
    "med-pediatrie": 5,
    "med-gynecologie-obstetrique": 5,
    "med-cardiologie": 4,
    "med-psychiatrie": 4,
    "med-anesthesiologie": 6,
    "med-radiologie": 5,
    "med-medecine-interne": 4,
    "med-chirurgie-generale": 3,
    "med-orthopedie": 3,
    "med-ophtalmologie": 3,
    "med-dermatologie": 2,
    "med-orl": 2,
    "med-gastro-enterologie": 2,
}
#: where each profession practises: organisation kind -> weight (a physician may add a hospital, below)
WORKPLACES: dict[str, dict[str, float]] = {
    "medecin": {"practice": 75, "hospital": 25},
    "medecin-dentiste": {"practice": 1},
    "pharmacien": {"pharmacy": 85, "hospital": 10, "laboratory": 5},
    "biologiste": {"laboratory": 1},
    "psychotherapeute": {"practice": 85, "hospital": 15},
    "infirmier": {"hospital": 63, "care-network": 20, "care-home": 10, "practice": 5, "rescue": 2},
    "aide-soignant": {"care-home": 45, "care-network": 35, "hospital": 20},
    "sage-femme": {"hospital": 80, "practice": 20},
    "masseur-kinesitherapeute": {"practice": 80, "hospital": 20},
    "atm-chirurgie": {"hospital": 1},
    "atm-radiologie": {"hospital": 70, "imaging": 30},
    "laborantin": {"laboratory": 70, "hospital": 30},
    "assistant-social": {"hospital": 50, "care-network": 50},
    "assistant-senior": {"care-home": 60, "care-network": 40},
    "assistant-hygiene-sociale": {"care-network": 60, "hospital": 40},
}
OTHER_WORKPLACES: dict[str, float] = {"practice": 70, "hospital": 30}
#: professions billing the CNS in their own name: they carry a CNS provider code (first digit of the range)
CNS_RANGES: dict[str, str] = {
    "medecin": "9",
    "medecin-dentiste": "8",
    "masseur-kinesitherapeute": "7",
    "sage-femme": "6",
    "orthophoniste": "5",
    "psychotherapeute": "4",
    "infirmier": "3",
    "podologue": "2",
    "dieteticien": "2",
    "ergotherapeute": "2",
    "psychomotricien": "2",
    "osteopathe": "2",
    "orthoptiste": "2",
}
#: origins of the professionals' names (many are cross-border commuters)
ORIGINS: dict[str, float] = {"LU": 30, "FR": 27, "BE": 13, "DE": 13, "PT": 9, "IT": 4, "ES": 1, "PL": 1, "EN": 2}
LANGUAGES = {"LU": "lb", "FR": "fr", "BE": "fr", "DE": "de", "PT": "pt", "IT": "it", "ES": "es", "PL": "pl", "EN": "en"}
PRACTICE_NAMES = {
    "medecin": "Cabinet médical",
    "medecin-dentiste": "Cabinet dentaire",
    "masseur-kinesitherapeute": "Cabinet de kinésithérapie",
    "psychotherapeute": "Cabinet de psychothérapie",
    "sage-femme": "Cabinet de sage-femme",
    "infirmier": "Cabinet de soins infirmiers",
}
HOSPITAL_TOWNS = (
    ("Luxembourg", "Luxembourg", "Kirchberg"),
    ("Esch-sur-Alzette", "Niederkorn", "Dudelange"),
    ("Ettelbruck", "Wiltz"),
    ("Luxembourg",),
)


@dataclass(frozen=True)
class DirectoryConfig:
    count: int = 25_005
    seed: int = 1
    reference_date: date = date(2025, 1, 1)
    suspended_rate: float = 0.004
    withdrawn_rate: float = 0.008
    limited_rate: float = 0.03
    ended_role_rate: float = 0.02
    hospital_second_role_rate: float = 0.45  # physicians in private practice who also practise at a hospital


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    street: str
    postal_code: str
    city: str


@dataclass
class Org:
    org_id: str
    name: str
    kind: str
    sites: list[Site]
    cns_code: str = ""
    endpoint: str = ""
    phone: str = ""
    affiliated_with: str = ""
    members: int = 0  # practices: professionals settled so far
    capacity: int = 1


@dataclass
class DirectorySummary:
    professionals: int = 0
    rows: int = 0
    organizations: int = 0
    sites: int = 0
    by_profession: dict[str, int] = field(default_factory=dict)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class _Places:
    """The directory's organisations (fixed ones made up front, practices created as professionals settle)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.places = place_tables()
        self.towns: Weighted[Town] = self.places.by_residence["LU"].towns
        self.by_name: dict[str, Town] = {}
        for town in self.towns.items:
            self.by_name.setdefault(town.city, town)
        self.orgs: dict[str, list[Org]] = {}
        self.practices: dict[str, list[Org]] = {}
        self.created: list[Org] = []
        self.site_count = 0
        self.emitted: set[str] = set()  # organisations already on a row (an affiliation refers to one of those)
        self._cns = 0
        self._build()

    def _town(self, name: str | None = None) -> Town:
        if name and name in self.by_name:
            return self.by_name[name]
        return self.towns.pick(self.rng)

    def _site(self, org_id: str, number: int, name: str, town_name: str | None = None) -> Site:
        town = self._town(town_name)
        address = home_address(self.rng, "LU", self.places)
        while address.city != town.city and town.city != "Luxembourg":
            address = home_address(self.rng, "LU", self.places)
            if self.rng.random() < 0.02:
                break
        postal = address.postal_code if address.city == town.city else self.rng.choice(town.postal_codes)
        self.site_count += 1
        return Site(f"{org_id}-S{number}", name, address.line, postal, town.city)

    def _org(self, kind: str, org_id: str, name: str, towns: tuple[str | None, ...], **extra: Any) -> Org:
        sites = []
        for number, town in enumerate(towns, start=1):
            site = self._site(org_id, number, name, town)
            if len(towns) > 1:
                site = Site(site.site_id, f"{name} — site de {site.city}", site.street, site.postal_code, site.city)
            sites.append(site)
        org = Org(org_id, name, kind, sites, **extra)
        self.orgs.setdefault(kind, []).append(org)
        self.created.append(org)
        return org

    def cns_code(self, first: str) -> str:
        self._cns += 1
        body = f"{first}{(self._cns * 7919) % 100_000:05d}"
        return f"{body}-{self._cns % 97:02d}"

    def _build(self) -> None:
        rng = self.rng
        for number, towns in enumerate(HOSPITAL_TOWNS, start=1):
            name = f"Centre hospitalier {self._town(towns[0]).city} {number}"
            self._org(
                "hospital",
                f"HOSP{number:02d}",
                name,
                towns,
                cns_code=self.cns_code("1"),
                endpoint=f"mailto:secretariat@hosp{number:02d}.example.lu",
                phone=f"+352 {44 + number}{rng.randrange(100000, 999999)}",
            )
        for number, (label, town) in enumerate((("de réadaptation", "Luxembourg"), ("psychiatrique", "Ettelbruck")), 5):
            self._org("hospital", f"HOSP{number:02d}", f"Centre {label} {town}", (town,), cns_code=self.cns_code("1"))
        for number in range(1, 4):
            towns = tuple(self._town().city for _ in range(10))
            self._org(
                "laboratory",
                f"LAB{number:02d}",
                f"Laboratoire d'analyses médicales {number}",
                (None, *towns[1:]),
                cns_code=self.cns_code("1"),
                endpoint=f"https://fhir.lab{number:02d}.example.lu/fhir",
            )
        for number in range(1, 101):
            town = self._town().city
            self._org(
                "pharmacy", f"PHA{number:03d}", f"Pharmacie {town} {number}", (town,), cns_code=self.cns_code("1")
            )
        for number in range(1, 4):
            town = self._town().city
            self._org("imaging", f"IMG{number:02d}", f"Centre d'imagerie médicale {town}", (town,))
        for number in range(1, 7):
            towns = tuple(self._town().city for _ in range(5))
            self._org("care-network", f"RAS{number:02d}", f"Réseau d'aides et de soins {number}", towns)
        for number in range(1, 51):
            town = self._town().city
            self._org("care-home", f"EAS{number:02d}", f"Maison de soins {town} {number}", (town,))
        towns = tuple(self._town().city for _ in range(24))
        self._org("rescue", "CGDIS", "Corps grand-ducal d'incendie et de secours", ("Luxembourg", *towns))

    def workplace(self, kind: str, profession: str, founder: str) -> Org:
        if kind != "practice":
            return self.rng.choice(self.orgs[kind])
        open_ones = self.practices.setdefault(profession, [])
        if open_ones and open_ones[-1].members < open_ones[-1].capacity:
            org = open_ones[-1]
        else:
            number = len(self.created) + 1
            label = PRACTICE_NAMES.get(profession, f"Cabinet ({professions().concepts[profession].display.lower()})")
            org_id = f"CAB{number:05d}"
            hospitals = [org for org in self.orgs["hospital"][:4] if org.org_id in self.emitted]
            org = Org(
                org_id,
                f"{label} {founder}",
                "practice",
                [self._site(org_id, 1, f"{label} {founder}")],
                capacity=1 + int(self.rng.random() ** 2 * 4),
                affiliated_with=self.rng.choice(hospitals).org_id if hospitals and self.rng.random() < 0.3 else "",
            )
            open_ones.append(org)
            self.created.append(org)
        org.members += 1
        return org


def iter_directory_rows(config: DirectoryConfig, summary: DirectorySummary | None = None) -> Iterator[dict[str, str]]:
    """The directory as CSV rows (column -> cell), one per professional x place of practice."""
    rng = random.Random(f"esante-hpd-synth:{config.seed}")
    summary = summary if summary is not None else DirectorySummary()
    places = _Places(rng)
    names = name_tables()
    origins = Weighted.of(ORIGINS)
    shares = Weighted.of(PROFESSION_SHARES)
    table = professions()
    specialties = Weighted(
        [
            *SPECIALTY_SHARES.items(),
            *((c.code, 0.4) for c in table.specialties_of("medecin") if c.code not in SPECIALTY_SHARES),
        ]
    )
    today = config.reference_date
    for index in range(config.count):
        profession = shares.pick(rng)
        origin = origins.pick(rng)
        female = rng.random() < (0.8 if profession in ("infirmier", "aide-soignant", "sage-femme") else 0.5)
        names_table = names[origin]
        given = (names_table.given_female if female else names_table.given_male).pick(rng)
        family = surname(rng, names_table)
        year = rng.randint(1980, today.year - 1)
        start = date(year, rng.randint(1, 12), rng.randint(1, 28))
        person = {
            "authorisation": f"{profession[:3].upper()}-{year}-{index + 1:05d}",
            "profession": profession,
            "family": family,
            "given": given,
            "prefix": "Dr" if profession in ("medecin", "medecin-dentiste") else "",
            "gender": "F" if female else "M",
            "languages": " ".join(
                dict.fromkeys([LANGUAGES.get(origin, "fr"), "fr", *(["lb"] if origin == "LU" else [])])
            ),
            "authorised_from": start.isoformat(),
            "cns_code": places.cns_code(CNS_RANGES[profession]) if profession in CNS_RANGES else "",
        }
        if profession == "medecin":
            first = specialties.pick(rng)
            second = specialties.pick(rng) if first != "med-generale" and rng.random() < 0.08 else first
            person["specialties"] = " ".join(dict.fromkeys([first, second]))
        elif profession == "medecin-dentiste" and rng.random() < 0.12:
            person["specialties"] = rng.choice(("dent-orthodontie", "dent-chirurgie-buccale"))
        elif profession == "infirmier" and rng.random() < 0.15:
            person["specialties"] = rng.choice([c.code for c in table.specialties_of("infirmier")])
        if rng.random() < config.limited_rate:
            person["authorised_until"] = date(today.year + rng.randint(0, 4), rng.randint(1, 12), 28).isoformat()
        draw = rng.random()
        if draw < config.suspended_rate:
            person.update(status="suspended", status_reason="suspension disciplinaire")
        elif draw < config.suspended_rate + config.withdrawn_rate:
            person.update(status="withdrawn", status_reason="retrait du droit d'exercer")
        if person.get("status"):
            person["status_date"] = date(today.year - 1, rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        summary.professionals += 1
        summary.by_profession[profession] = summary.by_profession.get(profession, 0) + 1
        if person.get("status") == "withdrawn" and rng.random() < 0.5:
            summary.rows += 1
            yield _row(person)
            continue
        kinds = [Weighted.of(WORKPLACES.get(profession, OTHER_WORKPLACES)).pick(rng)]
        if profession == "medecin" and kinds[0] == "practice" and rng.random() < config.hospital_second_role_rate:
            kinds.append("hospital")
        email_name = f"{_ascii(given)}.{_ascii(family)}"
        for kind in kinds:
            org = places.workplace(kind, profession, family)
            places.emitted.add(org.org_id)
            site = rng.choice(org.sites)
            row = dict(person)
            row.update(
                org_id=org.org_id,
                org_name=org.name,
                org_type=org.kind,
                org_cns_code=org.cns_code,
                org_phone=org.phone,
                org_endpoint=org.endpoint,
                org_affiliated_with=org.affiliated_with,
                site_id=site.site_id,
                site_name=site.name,
                street=site.street,
                postal_code=site.postal_code,
                city=site.city,
                country="LU",
                role_phone=f"+352 {rng.randrange(20000000, 99999999)}",
                role_email=f"{email_name}@{org.org_id.lower()}.example.lu",
                role_from=max(start, date(2000, 1, 1)).isoformat(),
            )
            if rng.random() < config.ended_role_rate:
                until = date(today.year - 1, rng.randint(1, 12), 28).isoformat()
                if until >= row["role_from"]:
                    row["role_until"] = until
            summary.rows += 1
            yield _row(row)
    summary.organizations = len(places.created)
    summary.sites = places.site_count


def _row(values: dict[str, str]) -> dict[str, str]:
    return {column: values.get(column, "") for column in COLUMNS}


def write_directory_csv(
    config: DirectoryConfig, out: Path, progress: Callable[[int], None] | None = None
) -> DirectorySummary:
    """Write the directory to ``out`` (CSV import format); ``progress`` gets the professionals written so far."""
    summary = DirectorySummary()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in iter_directory_rows(config, summary):
            writer.writerow(row)
            if progress is not None and summary.professionals % 1000 == 0:
                progress(summary.professionals)
    if progress is not None:
        progress(summary.professionals)
    return summary
