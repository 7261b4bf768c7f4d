"""Establishment identity feeds: local identities of certified persons as hospitals and laboratories send them.

For a sample of the certified population, each sampled person gets a local identity in one to
``max_domains_per_person`` establishments (identifier ``urn:oid:1.3.182.3.1.1.<n>.2``), with realistic errors
(see :mod:`esante.synth.errors`). Extras, per primary record: a duplicate (the same person under a second local
id of the same domain), a collision (another person's local id reused for this person) and a person absent from
the register. Each :class:`FeedRecord` carries its ground truth (person, kind, errors) BESIDE the resource, never
inside it, so a matcher's output can be scored.

Streaming: the feeds are drawn while the population streams past (the person traits are not kept); exactly
``records`` primary records are chosen by selection sampling (Knuth's algorithm S) over the population's
``count * max_domains_per_person`` person-establishment slots, and records leave through a shuffle window so
one person's records are not adjacent.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from esante.synth.config import Domain, FeedConfig, PopulationConfig
from esante.synth.errors import apply_errors
from esante.synth.fhir import local_patient
from esante.synth.model import Person
from esante.synth.population import PersonFactory, population_rng

_RECENT_IDS = 512  # local ids remembered per domain for collisions


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """One local identity sent by an establishment, and its ground truth (never inside ``resource``)."""

    resource: dict[str, Any]  # the FHIR Patient the establishment sends
    domain: Domain
    local_id: str
    person_id: str  # the true person: "P…" (certified), "U…" (absent from the register)
    matricule: str | None  # the person's certified matricule (None when absent from the register)
    kind: str  # primary | duplicate | collision | unregistered
    errors: tuple[str, ...]  # error kinds applied, in the order of esante.synth.errors.ERROR_ORDER
    collides_with: str | None = None  # collision: the person the local id belonged to


@dataclass
class FeedStats:
    """Counts for measuring the error model: per error, records where it could apply and where it did."""

    records: Counter[str] = field(default_factory=Counter)  # by kind
    opportunities: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)

    def rate(self, error: str) -> float:
        return self.applied[error] / self.opportunities[error] if self.opportunities[error] else 0.0


class _LocalIds:
    """Unique, increasing local identifiers per domain, in each domain's format."""

    def __init__(self, domains: Iterable[Domain], rng: random.Random) -> None:
        self._next = {d.number: rng.randrange(10 ** (d.id_digits - 2), 10 ** (d.id_digits - 1)) for d in domains}

    def new(self, rng: random.Random, domain: Domain) -> str:
        self._next[domain.number] += rng.randint(1, 7)
        return f"{domain.id_prefix}{self._next[domain.number]:0{domain.id_digits}d}"


def iter_feed_records(
    persons: Iterable[Person],
    population: PopulationConfig,
    config: FeedConfig,
    stats: FeedStats | None = None,
) -> Iterator[FeedRecord]:
    """Feed records for ``config.records`` sampled person-establishment pairs (plus extras), while ``persons``
    (the stream of :func:`~esante.synth.population.iter_persons` for ``population``) is consumed to the end."""
    size = population.count
    per_person = config.max_domains_per_person
    if not 0 <= config.records <= size * per_person:
        raise ValueError(f"records must be 0..{size * per_person} (count x max_domains_per_person)")
    stats = stats if stats is not None else FeedStats()
    rng = population_rng(config.seed, "feeds")
    extra_factory = PersonFactory(population)  # persons absent from the register (no matricule allocated)
    local_ids = _LocalIds(config.domains, rng)
    recent: dict[int, deque[tuple[str, str]]] = {d.number: deque(maxlen=_RECENT_IDS) for d in config.domains}
    weights = [d.weight for d in config.domains]
    window: list[FeedRecord] = []
    slots_left, wanted, unregistered = size * per_person, config.records, 0

    def make(person: Person, domain: Domain, kind: str, local_id: str, collides: str | None = None) -> FeedRecord:
        traits, errors = apply_errors(rng, person, domain, config.error_rates, population, stats)
        stats.records[kind] += 1
        return FeedRecord(
            local_patient(traits, domain, local_id), domain, local_id, person.person_id, person.matricule,
            kind, errors, collides,
        )  # fmt: skip

    def emit(record: FeedRecord) -> Iterator[FeedRecord]:
        window.append(record)
        if len(window) >= config.shuffle_window:
            index = rng.randrange(len(window))
            window[index], window[-1] = window[-1], window[index]
            yield window.pop()

    for person in persons:
        if wanted == 0:
            continue
        chosen = 0
        for _ in range(per_person):  # selection sampling: exactly `records` slots in the end
            if rng.random() * slots_left < wanted:
                chosen += 1
                wanted -= 1
            slots_left -= 1
        if not chosen:
            continue
        for domain in _distinct_domains(rng, config.domains, weights, chosen):
            local_id = local_ids.new(rng, domain)
            yield from emit(make(person, domain, "primary", local_id))
            if rng.random() < config.duplicate_rate:
                yield from emit(make(person, domain, "duplicate", local_ids.new(rng, domain)))
            held = recent[domain.number]
            if held and rng.random() < config.collision_rate:
                other_id, other_person = held[rng.randrange(len(held))]
                yield from emit(make(person, domain, "collision", other_id, other_person))
            held.append((local_id, person.person_id))
            if rng.random() < config.unregistered_rate:
                unregistered += 1
                stranger = extra_factory.person(rng, f"U{unregistered:07d}", registered=False)
                yield from emit(make(stranger, domain, "unregistered", local_ids.new(rng, domain)))
    rng.shuffle(window)
    yield from window


def _distinct_domains(rng: random.Random, domains: tuple[Domain, ...], weights: list[float], k: int) -> list[Domain]:
    """``k`` different establishments, each drawn in proportion to its weight."""
    chosen: list[Domain] = []
    while len(chosen) < k:
        domain = rng.choices(domains, weights)[0]
        if domain not in chosen:
            chosen.append(domain)
    return chosen
