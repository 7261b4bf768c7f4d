"""Preparing a big CSV file's rows in worker processes while the importer writes (PostgreSQL imports).

Turning a row into checked FHIR resources (:func:`~esante.hpd.csv_source.row_to_line`, then the FHIR R4 validation
of each resource) is pure CPU, about a third of a national import's work; the importer's own process spends much of
its time waiting for the database. :func:`prepared_lines` hands chunks of rows to ``workers`` forked processes a
few chunks ahead of the writer and yields their lines in file order, validated (``Item.checked``: the writer does
not validate them again). Same lines, same order, same rejections as the in-process path.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from datetime import date

from esante.fhir.errors import FhirError
from esante.fhir.validation import validate_resource
from esante.hpd.csv_source import prepare_row
from esante.hpd.lines import Line

CHUNK = 200  # rows per task
Row = tuple[int, dict[str, str | None] | str]


def prepare_chunk(rows: list[Row], today: date) -> list[tuple[int, Line | str]]:
    """Rows → validated lines (or the reason each is refused): what a worker does with a chunk."""
    out: list[tuple[int, Line | str]] = []
    for number, row in rows:
        prepared = row if isinstance(row, str) else prepare_row(number, row, today)
        out.append((number, prepared if isinstance(prepared, str) else validated(prepared)))
    return out


def validated(line: Line) -> Line | str:
    """The line with every resource validated against FHIR R4, or the reason it is refused (the writer's words)."""
    items = []
    for item in line.items:
        if not item.checked:
            try:
                validate_resource(item.body, expected_type=item.type)
            except FhirError as error:
                return f"{item.type} {item.key}: " + "; ".join(issue.diagnostics for issue in error.issues)
            item = replace(item, checked=True)
        items.append(item)
    return Line(line.number, items)


def prepared_lines(rows: Iterable[Row], today: date, workers: int) -> Iterator[tuple[int, Line | str]]:
    """The rows prepared by ``workers`` processes, in order (``workers`` 0: in this process)."""
    if workers <= 0:
        for chunk in _chunks(rows):
            yield from prepare_chunk(chunk, today)
        return
    prepare_chunk([(0, {"authorisation": "X", "profession": "medecin", "family": "X", "given": "X",
                        "authorised_from": "2000-01-01"})], today)  # fmt: skip  # load the definitions before fork
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    ahead = 4 * workers
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_die_with_parent) as pool:
        in_flight: deque[Future[list[tuple[int, Line | str]]]] = deque()
        for chunk in _chunks(rows):
            in_flight.append(pool.submit(prepare_chunk, chunk, today))
            if len(in_flight) >= ahead:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()


def _chunks(rows: Iterable[Row]) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _die_with_parent() -> None:
    """Linux: a worker ends with the importer (it would otherwise outlive a killed importer, waiting for work)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
