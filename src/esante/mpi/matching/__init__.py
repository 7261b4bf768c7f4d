"""The MPI's matching engine: pure Python (no I/O), called by the MPI service.

Typical use by the service::

    params = estimate_parameters(records)                 # EM on the registry itself (or ParameterSet.from_json)
    index = CandidateIndex(params)
    index.add_many(records)                                 # then index.add / update / remove on every write
    candidates = index.lookup(record_from_fhir(patient), limit=10)   # $match, identity feeds
    report = find_duplicates(records, params)               # esante mpi find-duplicates

See docs/mpi-matching.md for the rules, the model and the measured quality.
"""

from esante.mpi.matching.blocking import DEFAULT_CAP, DEFAULT_RULES, BlockingRule, BlockingStats, candidate_pairs
from esante.mpi.matching.dedupe import DuplicatePair, DuplicateReport, find_duplicates
from esante.mpi.matching.features import Features, prepare
from esante.mpi.matching.fhir import record_from_fhir
from esante.mpi.matching.fields import FIELDS, compare
from esante.mpi.matching.index import Candidate, CandidateIndex
from esante.mpi.matching.parameters import (
    AUTO_LINK,
    CERTAIN,
    CERTAINLY_NOT,
    NO_LINK,
    POSSIBLE,
    PROBABLE,
    REVIEW,
    ParameterError,
    ParameterSet,
    Thresholds,
)
from esante.mpi.matching.record import Address, IdentityRecord, PartialDate, RecordError
from esante.mpi.matching.scoring import FieldComparison, Score, Scorer
from esante.mpi.matching.training import estimate_parameters


def score_pair(a: IdentityRecord, b: IdentityRecord, params: ParameterSet) -> Score:
    """Score two records directly (a review screen's side-by-side view, a manual check)."""
    return Scorer(params).score(prepare(a), prepare(b))


__all__ = [
    "AUTO_LINK",
    "CERTAIN",
    "CERTAINLY_NOT",
    "DEFAULT_CAP",
    "DEFAULT_RULES",
    "FIELDS",
    "NO_LINK",
    "POSSIBLE",
    "PROBABLE",
    "REVIEW",
    "Address",
    "BlockingRule",
    "BlockingStats",
    "Candidate",
    "CandidateIndex",
    "DuplicatePair",
    "DuplicateReport",
    "Features",
    "FieldComparison",
    "IdentityRecord",
    "ParameterError",
    "ParameterSet",
    "PartialDate",
    "RecordError",
    "Score",
    "Scorer",
    "Thresholds",
    "candidate_pairs",
    "compare",
    "estimate_parameters",
    "find_duplicates",
    "prepare",
    "record_from_fhir",
    "score_pair",
]
