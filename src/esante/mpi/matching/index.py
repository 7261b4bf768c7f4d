"""An in-memory candidate index for online look-ups, kept consistent with writes (add / update / remove).

Each blocking rule has a dict from the hash of a key to its block: one record slot (most blocks are singletons, and
an int is the cheapest value), a list of slots, or, once the block has grown past the cap, a negative count (the
block is *overflowed*: its members are no longer kept, a look-up skips it, as batch blocking skips a block over the
cap; it stays skipped until ``rebuild``, even if removals shrink it). Keys are hashed with Python's ``hash`` for
memory: a collision only adds a candidate that is then scored like any other.

A look-up prepares the incoming record, gathers the union of its kept blocks (at most rules x keys x cap records),
scores each candidate and returns the best ``limit`` by probability (ties by id, so results are deterministic).
Cost per look-up: O(candidates) comparisons; per write: O(rules) dict operations (+ O(cap) to drop a slot from a
list). Memory: one ``Features`` per record (names, places and streets shared through caches) plus one dict entry per
record and key.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from esante.mpi.matching.blocking import DEFAULT_CAP, DEFAULT_RULES, BlockingRule
from esante.mpi.matching.features import Features, prepare
from esante.mpi.matching.fields import compare_bounded
from esante.mpi.matching.parameters import ParameterSet
from esante.mpi.matching.record import IdentityRecord
from esante.mpi.matching.scoring import Score, Scorer, probability_from_weight

Block = int | list[int]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored record scored against the looked-up one."""

    record_id: str
    score: Score

    @property
    def probability(self) -> float:
        return self.score.probability

    @property
    def grade(self) -> str:
        return self.score.grade

    @property
    def decision(self) -> str:
        return self.score.decision


class CandidateIndex:
    """Records by blocking key, for ``lookup``; not thread-safe (the service serialises writes, or holds a lock)."""

    def __init__(
        self,
        params: ParameterSet,
        *,
        rules: Sequence[BlockingRule] = DEFAULT_RULES,
        cap: int = DEFAULT_CAP,
        prior: float | None = None,
    ) -> None:
        """``prior`` overrides the parameter set's λ for look-ups (see ``Scorer``)."""
        if cap < 2:
            raise ValueError("the block cap must be at least 2")
        self.rules = tuple(rules)
        self.cap = cap
        self._scorer = Scorer(params, prior)
        self._prior = prior
        self._slots: list[Features | None] = []
        self._free: list[int] = []
        self._slot_of: dict[str, int] = {}
        self._blocks: list[dict[int, Block]] = [{} for _ in self.rules]

    # -- writes -----------------------------------------------------------------------------------------------------
    def add(self, record: IdentityRecord | Features) -> None:
        """Index a new record; ``ValueError`` if its id is already indexed (use ``update``)."""
        features = record if isinstance(record, Features) else prepare(record)
        if features.id in self._slot_of:
            raise ValueError(f"record {features.id!r} is already indexed (use update)")
        slot = self._free.pop() if self._free else len(self._slots)
        if slot == len(self._slots):
            self._slots.append(features)
        else:
            self._slots[slot] = features
        self._slot_of[features.id] = slot
        for blocks, rule in zip(self._blocks, self.rules, strict=True):
            for key in rule.key(features):
                self._insert(blocks, hash(key), slot)

    def update(self, record: IdentityRecord | Features) -> None:
        """Replace a record's traits (or add it): its old keys are removed first, so no stale key stays behind."""
        features = record if isinstance(record, Features) else prepare(record)
        self.remove(features.id)
        self.add(features)

    def remove(self, record_id: str) -> bool:
        """Drop a record (merged, deleted, or deactivated identities); False if it was not indexed."""
        slot = self._slot_of.pop(record_id, None)
        if slot is None:
            return False
        features = self._slots[slot]
        assert features is not None
        for blocks, rule in zip(self._blocks, self.rules, strict=True):
            for key in rule.key(features):
                self._delete(blocks, hash(key), slot)
        self._slots[slot] = None
        self._free.append(slot)
        return True

    def add_many(self, records: Iterable[IdentityRecord | Features]) -> int:
        count = 0
        for record in records:
            self.add(record)
            count += 1
        return count

    def rebuild(self) -> None:
        """Re-key every record (re-opens overflowed blocks that shrank back under the cap)."""
        stored = [f for f in self._slots if f is not None]
        self._slots, self._free, self._slot_of = [], [], {}
        self._blocks = [{} for _ in self.rules]
        self.add_many(stored)

    def set_parameters(self, params: ParameterSet, *, prior: float | None = None) -> None:
        """Score with a new parameter set (and, if given, a new prior) from now on (the keys depend on neither)."""
        if prior is not None:
            self._prior = prior
        self._scorer = Scorer(params, self._prior)

    def _insert(self, blocks: dict[int, Block], key: int, slot: int) -> None:
        block = blocks.get(key)
        if block is None:
            blocks[key] = slot
        elif isinstance(block, list):
            if len(block) >= self.cap:
                blocks[key] = -(len(block) + 1)
            else:
                block.append(slot)
        elif block >= 0:
            blocks[key] = [block, slot]
        else:
            blocks[key] = block - 1

    @staticmethod
    def _delete(blocks: dict[int, Block], key: int, slot: int) -> None:
        block = blocks.get(key)
        if block is None:
            return
        if isinstance(block, list):
            block.remove(slot)
            if len(block) == 1:
                blocks[key] = block[0]
        elif block >= 0 or block == -1:
            del blocks[key]
        else:
            blocks[key] = block + 1

    # -- reads ------------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._slot_of

    def get(self, record_id: str) -> Features | None:
        slot = self._slot_of.get(record_id)
        return None if slot is None else self._slots[slot]

    def candidate_ids(self, record: IdentityRecord | Features) -> list[str]:
        """Ids sharing a kept block with ``record`` (itself excluded), sorted."""
        features = record if isinstance(record, Features) else prepare(record)
        return sorted(self._slots[slot].id for slot in self._candidate_slots(features))  # type: ignore[union-attr]

    def lookup(
        self, record: IdentityRecord | Features, limit: int = 10, *, min_probability: float = 0.0
    ) -> list[Candidate]:
        """The ``limit`` best-scored candidates for ``record`` with a probability of at least ``min_probability``,
        best first. A record that is itself indexed (same id) is never its own candidate."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        features = record if isinstance(record, Features) else prepare(record)
        scorer = self._scorer
        prior, table, rest = scorer.prior_weight, scorer.table, scorer.best_rest
        floor = scorer.weight_floor(min_probability) - 1e-9  # never drop a pair the exact check below would keep
        kept: list[tuple[float, str, tuple[int, ...]]] = []
        for slot in self._candidate_slots(features):
            stored = self._slots[slot]
            assert stored is not None
            vector = compare_bounded(features, stored, table, floor, rest)
            if vector is None:  # cannot reach min_probability whatever its address says
                continue
            weight = scorer.weight(vector)
            if probability_from_weight(weight + prior) >= min_probability:
                kept.append((-weight, stored.id, vector))
        # a full Score (per-field weights, grade, decision) only for the candidates returned
        best = heapq.nsmallest(limit, kept)
        return [Candidate(record_id, scorer.score_vector(vector)) for _w, record_id, vector in best]

    def _candidate_slots(self, features: Features) -> set[int]:
        slots: set[int] = set()
        for blocks, rule in zip(self._blocks, self.rules, strict=True):
            for key in rule.key(features):
                block = blocks.get(hash(key))
                if block is None:
                    continue
                if isinstance(block, list):
                    slots.update(block)
                elif block >= 0:
                    slots.add(block)
        own = self._slot_of.get(features.id)
        if own is not None:
            slots.discard(own)
        return slots

    def stats(self) -> dict[str, object]:
        """Records, keys and overflowed blocks per rule: what an operator checks when look-ups slow down."""
        per_rule = {}
        for blocks, rule in zip(self._blocks, self.rules, strict=True):
            overflowed = sum(1 for b in blocks.values() if isinstance(b, int) and b < 0)
            per_rule[rule.name] = {"keys": len(blocks), "overflowed": overflowed}
        return {"records": len(self), "cap": self.cap, "rules": per_rule}
