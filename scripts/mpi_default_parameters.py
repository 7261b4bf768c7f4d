"""Estimate the MPI matching engine's packaged default parameter set (src/esante/mpi/data/default-parameters.json).

The default is what a fresh platform scores with before an operator has trained a set on its own registry
(``esante mpi train``). It is estimated without labels (EM, ``esante.mpi.matching.estimate_parameters``) on the
seeded synthetic Luxembourg population (``esante.synth``: names and places by country of residence, typing errors,
married names, swapped given names, missing traits): certified identities linked with establishment feeds, the
MPI's own task. Seeded: running it again gives the same file. Source data: the synthetic generator's package data
(see docs/synthetic-population.md for its sources and licences).

Usage: ``python scripts/mpi_default_parameters.py [--count 20000 --feeds 6000]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esante.mpi.matching import estimate_parameters, record_from_fhir
from esante.synth import FeedConfig, PopulationConfig, certified_patient, iter_feed_records, iter_persons

OUT = Path(__file__).resolve().parents[1] / "src" / "esante" / "mpi" / "data" / "default-parameters.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="certified identities")
    parser.add_argument("--feeds", type=int, default=6_000, help="establishment feed records")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    population = PopulationConfig(count=args.count, seed=args.seed)
    persons = list(iter_persons(population))
    certified = [record_from_fhir(certified_patient(p), f"C{i}") for i, p in enumerate(persons)]
    feeds = iter_feed_records(persons, population, FeedConfig(records=args.feeds, seed=args.seed))
    local = [record_from_fhir(r.resource, f"L{k}") for k, r in enumerate(feeds)]
    params = estimate_parameters(certified, local, seed=args.seed, created="2026-12-02T00:00:00+00:00")
    params.training["source"] = f"esante.synth seed {args.seed}: {args.count} certified x {len(local)} feed records"
    OUT.write_text(params.to_json() + "\n", encoding="utf-8")
    print(f"{params.version} → {OUT}")


if __name__ == "__main__":
    main()
