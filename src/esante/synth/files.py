"""Writing the population and feeds to files (the only I/O of the package): NDJSON + a ground-truth CSV.

One pass: the certified identities are written as they stream past on their way to the feed sampler, so 1.2 M
identities take constant memory (see docs/synthetic-population.md for the measured figures).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from esante.synth.config import FeedConfig, PopulationConfig
from esante.synth.feeds import FeedRecord, FeedStats, iter_feed_records
from esante.synth.fhir import certified_patient
from esante.synth.model import Person
from esante.synth.population import iter_persons

TRUTH_COLUMNS = ("record", "domain", "local_id", "person_id", "matricule", "kind", "errors", "collides_with")
_PROGRESS_EVERY = 1000


@dataclass
class Summary:
    identities: int = 0
    feed_records: int = 0
    seconds: float = 0.0
    stats: FeedStats = field(default_factory=FeedStats)

    @property
    def rate(self) -> float:
        """Certified identities generated (and written) per second."""
        return self.identities / self.seconds if self.seconds else 0.0


def truth_row(number: int, record: FeedRecord) -> list[str]:
    """The ground truth of the ``number``-th line (1-based) of the feeds NDJSON."""
    return [
        str(number),
        record.domain.system,
        record.local_id,
        record.person_id,
        record.matricule or "",
        record.kind,
        ";".join(record.errors),
        record.collides_with or "",
    ]


def write_population(
    population: PopulationConfig,
    out: Path,
    *,
    feeds: FeedConfig | None = None,
    feeds_out: Path | None = None,
    truth_out: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Write ``population.count`` certified Patients to ``out`` (NDJSON, line n = person ``P{n-1:07d}``) and,
    with ``feeds``, the establishment records to ``feeds_out`` with their truth in ``truth_out`` (CSV).
    ``progress`` is called with the number of identities written so far (every 1,000 and at the end)."""
    if feeds is not None and (feeds_out is None or truth_out is None):
        raise ValueError("feeds need both a feeds file and a truth file")
    summary = Summary()
    started = time.perf_counter()
    with out.open("wb", buffering=1 << 20) as certified:

        def written() -> Iterator[Person]:
            for person in iter_persons(population):
                certified.write(orjson.dumps(certified_patient(person)))
                certified.write(b"\n")
                summary.identities += 1
                if progress is not None and summary.identities % _PROGRESS_EVERY == 0:
                    progress(summary.identities)
                yield person

        if feeds is None or feeds_out is None or truth_out is None:
            for _ in written():
                pass
        else:
            with feeds_out.open("wb", buffering=1 << 20) as feed_file, truth_out.open("w", newline="") as truth_file:
                truth = csv.writer(truth_file)
                truth.writerow(TRUTH_COLUMNS)
                for record in iter_feed_records(written(), population, feeds, summary.stats):
                    feed_file.write(orjson.dumps(record.resource))
                    feed_file.write(b"\n")
                    summary.feed_records += 1
                    truth.writerow(truth_row(summary.feed_records, record))
    summary.seconds = time.perf_counter() - started
    if progress is not None:
        progress(summary.identities)
    return summary
