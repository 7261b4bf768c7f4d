"""The knobs of the synthetic population, with defaults taken from the national figures where there are some.

Every proportion is configurable so a benchmark can stress one trait (more married names, more cross-border
residents...) without touching the generator. Defaults and their origin are listed in docs/synthetic-population.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

#: DSP by country of residence, 31 Dec 2024 (Cahier eSanté, Dec 2024): the population the MPI really holds.
RESIDENCE_SHARES: dict[str, float] = {"LU": 0.556, "FR": 0.219, "BE": 0.103, "DE": 0.094, "other": 0.028}

#: Origin of the names by country of residence (ours, after STATEC's nationality figures for Luxembourg:
#: Portuguese the largest foreign community, then French, Italian, Belgian, German; cross-border residents
#: mostly carry their own country's names). Origins: LU FR BE DE PT IT, and "other" = ES PL BK (Balkans) RO EN.
ORIGIN_SHARES: dict[str, dict[str, float]] = {
    "LU": {
        "LU": 0.50,
        "PT": 0.17,
        "FR": 0.08,
        "IT": 0.06,
        "BE": 0.03,
        "DE": 0.03,
        "ES": 0.02,
        "PL": 0.02,
        "BK": 0.05,
        "RO": 0.02,
        "EN": 0.02,
    },
    "FR": {"FR": 0.84, "PT": 0.06, "IT": 0.04, "LU": 0.01, "BE": 0.01, "DE": 0.01, "ES": 0.01, "BK": 0.01, "PL": 0.01},
    "BE": {"BE": 0.84, "FR": 0.04, "PT": 0.04, "IT": 0.03, "LU": 0.03, "DE": 0.01, "ES": 0.01},
    "DE": {"DE": 0.78, "LU": 0.07, "PT": 0.03, "IT": 0.02, "PL": 0.05, "RO": 0.03, "BK": 0.02},
    "other": {
        "PT": 0.20,
        "EN": 0.15,
        "ES": 0.12,
        "IT": 0.10,
        "FR": 0.08,
        "DE": 0.08,
        "LU": 0.08,
        "PL": 0.08,
        "RO": 0.06,
        "BK": 0.05,
    },
}

#: Age pyramid as (first age, last age, share): roughly Luxembourg's resident population (STATEC, early 2020s),
#: 5-year bands, wide at 25-54 as a country of working-age immigration.
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 4, 5.3), (5, 9, 5.5), (10, 14, 5.6), (15, 19, 5.6), (20, 24, 6.0), (25, 29, 7.0), (30, 34, 8.0),
    (35, 39, 8.3), (40, 44, 8.0), (45, 49, 7.4), (50, 54, 7.3), (55, 59, 7.0), (60, 64, 6.0), (65, 69, 4.6),
    (70, 74, 3.7), (75, 79, 3.0), (80, 84, 2.0), (85, 89, 1.2), (90, 94, 0.5), (95, 104, 0.17),
)  # fmt: skip

#: Number of given names (1, 2, 3) by origin: Luxembourgers and Portuguese often carry several.
GIVEN_NAME_COUNTS: dict[str, tuple[float, float, float]] = {
    "LU": (0.40, 0.40, 0.20), "FR": (0.35, 0.45, 0.20), "BE": (0.45, 0.40, 0.15), "DE": (0.60, 0.35, 0.05),
    "PT": (0.20, 0.70, 0.10), "IT": (0.70, 0.27, 0.03), "ES": (0.55, 0.43, 0.02), "PL": (0.55, 0.44, 0.01),
    "BK": (0.90, 0.10, 0.00), "RO": (0.60, 0.38, 0.02), "EN": (0.30, 0.65, 0.05),
}  # fmt: skip

#: How often a married woman of each origin carries her spouse's name (relative to ``married_name_rate``):
#: usual in Germany and France (nom d'usage), rarer in Belgium, Italy and Portugal where the birth name stays.
MARRIED_NAME_FACTOR: dict[str, float] = {
    "LU": 0.85, "FR": 0.95, "BE": 0.35, "DE": 1.0, "PT": 0.45, "IT": 0.25, "ES": 0.15, "PL": 0.95,
    "BK": 0.9, "RO": 0.95, "EN": 0.95,
}  # fmt: skip


@dataclass(frozen=True)
class PopulationConfig:
    """What the certified register (RNPP/CCSS) looks like."""

    count: int = 1_000
    seed: int = 1
    reference_date: date = date(2024, 12, 31)
    residence_shares: dict[str, float] = field(default_factory=lambda: dict(RESIDENCE_SHARES))
    origin_shares: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in ORIGIN_SHARES.items()}
    )
    age_bands: tuple[tuple[int, int, float], ...] = AGE_BANDS
    given_name_counts: dict[str, tuple[float, float, float]] = field(default_factory=lambda: dict(GIVEN_NAME_COUNTS))
    #: share of women aged >= 25 carrying a married name (times MARRIED_NAME_FACTOR of their origin)
    married_name_rate: float = 0.60
    married_name_factor: dict[str, float] = field(default_factory=lambda: dict(MARRIED_NAME_FACTOR))
    #: share of married men who took their wife's name
    married_men_rate: float = 0.03
    #: among married names: the spouse's name alone (else the compound "Spouse-Birth")
    married_replace_share: float = 0.70
    #: share of Portuguese and Spanish names with two surnames (mother's + father's)
    double_surname_rate_iberian: float = 0.75
    #: share of other names with two surnames, space-separated (e.g. Belgian children since 2014)
    double_surname_rate: float = 0.04
    #: share of the certified identities born before 2014 that still carry the old 11-digit matricule
    old_matricule_rate: float = 0.002
    #: share of persons whose birth day (or month and day) is unknown: matricule with 00, partial birthDate
    partial_birth_date_rate: float = 0.0005
    #: share of persons generated as the twin of the previous one (same family, birth date and place, address)
    twin_rate: float = 0.01
    #: share of persons of a foreign origin living in Luxembourg who were born there (second generation)
    born_in_residence_rate: float = 0.40


@dataclass(frozen=True)
class Domain:
    """An establishment's identifier domain: its local identifiers are ``urn:oid:1.3.182.3.1.1.<number>.2``."""

    number: int
    name: str
    kind: str  # hospital | laboratory | clinic
    weight: float  # share of the feed records this establishment sends
    id_prefix: str  # local identifiers look like <prefix><digits>
    id_digits: int
    keyboard: str = "qwertz"  # Luxembourg uses the Swiss-French QWERTZ layout; French systems AZERTY

    @property
    def system(self) -> str:
        return f"urn:oid:1.3.182.3.1.1.{self.number}.2"


#: Fictitious establishments (names are generic; numbers are ours, not real OIDs).
DEFAULT_DOMAINS: tuple[Domain, ...] = (
    Domain(1, "Hôpital Centre", "hospital", 0.22, "", 8),
    Domain(2, "Hôpital Sud", "hospital", 0.17, "S", 9),
    Domain(3, "Hôpitaux Est", "hospital", 0.15, "", 10),
    Domain(4, "Hôpital Nord", "hospital", 0.08, "N", 7),
    Domain(5, "Laboratoire A", "laboratory", 0.15, "LA", 9),
    Domain(6, "Laboratoire B", "laboratory", 0.12, "LB-", 8, keyboard="azerty"),
    Domain(7, "Laboratoire C", "laboratory", 0.08, "C", 9),
    Domain(8, "Clinique de rééducation", "clinic", 0.03, "R", 6, keyboard="azerty"),
)

#: Default error rates of establishment feeds, per record where the error can apply (see docs).
ERROR_RATES: dict[str, float] = {
    "typo_family": 0.03,  # one typing error in the family name
    "typo_given": 0.03,  # one typing error in a given name
    "accents_dropped": 0.15,  # Müller -> Muller (or Mueller), Gonçalves -> Goncalves
    "given_swapped": 0.03,  # given names in another order
    "middle_names_missing": 0.25,  # only the first given name kept
    "day_month_swapped": 0.01,  # 1980-03-07 -> 1980-07-03 (when both <= 12)
    "birth_date_typo": 0.005,  # one digit of the birth date mistyped (still a valid date)
    "maiden_for_married": 0.20,  # the birth name sent as the family name of a married person
    "compound_family_truncated": 0.15,  # only one part of a compound family name
    "outdated_address": 0.08,  # the address before the last move
    "missing_birth_place": 0.60,  # establishments rarely record it
    "missing_address": 0.05,
    "missing_gender": 0.005,
    "missing_birth_date": 0.002,
    "missing_matricule": 0.15,
    "matricule_typo": 0.003,  # one digit wrong: the check digits no longer match
    "matricule_old_form": 0.01,  # the old 11-digit form (born before 2014)
    "uppercase": 0.30,  # family name in capitals (a format, not an error: matchers must not care)
}


@dataclass(frozen=True)
class FeedConfig:
    """What the establishments send: ``records`` local identities of sampled certified persons, plus extras."""

    records: int = 1_000
    seed: int = 1
    domains: tuple[Domain, ...] = DEFAULT_DOMAINS
    #: a person is known in at most this many establishments (``records`` <= count * this)
    max_domains_per_person: int = 3
    error_rates: dict[str, float] = field(default_factory=lambda: dict(ERROR_RATES))
    #: extra record of the same person under a second local id in the same domain, per primary record
    duplicate_rate: float = 0.02
    #: extra record reusing another person's local id in the same domain (one id, two persons), per primary record
    collision_rate: float = 0.002
    #: extra record of a person absent from the register (tourist, newcomer), per primary record
    unregistered_rate: float = 0.01
    #: records are emitted through a shuffle window of this size (duplicates are not adjacent)
    shuffle_window: int = 4096
