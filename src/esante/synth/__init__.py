"""Synthetic population for the MPI: certified identities (national register) and establishment feeds.

Pure, seeded, deterministic generation (the same configuration and seed give the same bytes), streaming with
constant memory so 1.2 M identities can be produced for benchmarks. Names and places come from package data
built by scripts/build_synth_data.py (sources and licences in docs/synthetic-population.md).

* :func:`iter_persons` — the certified population (:class:`Person`, the true traits);
  :func:`certified_patient` — one person as the FHIR R4 Patient the register sends (matricule, no eSanté id).
* :func:`iter_feed_records` — local identities of sampled persons as establishments send them, with errors;
  each :class:`FeedRecord` keeps its ground truth beside the resource.
* :func:`write_population` — both to NDJSON files plus a truth CSV (the ``esante synth population`` command).
"""

from esante.synth.config import DEFAULT_DOMAINS, ERROR_RATES, Domain, FeedConfig, PopulationConfig
from esante.synth.errors import LocalTraits
from esante.synth.feeds import FeedRecord, FeedStats, iter_feed_records
from esante.synth.fhir import certified_patient, local_patient
from esante.synth.files import Summary, write_population
from esante.synth.model import Address, Person
from esante.synth.population import iter_persons

__all__ = [
    "DEFAULT_DOMAINS",
    "ERROR_RATES",
    "Address",
    "Domain",
    "FeedConfig",
    "FeedRecord",
    "FeedStats",
    "LocalTraits",
    "Person",
    "PopulationConfig",
    "Summary",
    "certified_patient",
    "iter_feed_records",
    "iter_persons",
    "local_patient",
    "write_population",
]
