"""Blocking: which pairs are worth comparing at all.

Comparing every pair of a 1.2 M registry is 7·10¹¹ comparisons; blocking compares only pairs that share a key under
at least one rule. The rules are chosen so that a true pair escapes all of them only when several traits are wrong at
once (each rule needs different traits to be right):

===================  =================================================  ==================================
rule                 key                                                traits that must be right
===================  =================================================  ==================================
matricule            the matricule's first 11 digits (old form = new)   matricule
date_name            birth date + phonetic given, family or birth name  birth date, one name (any field)
names                phonetic first given + family name, sorted         given and family (either order)
year_postal_initial  birth year + postal code + given initial           birth year, postal code, initial
date_postal          birth date + postal code                           birth date, postal code
postal_given         postal code + phonetic first given name            postal code, given name
family_house         phonetic family (or birth) name + house number     family name, house number
house_street         house number + phonetic street (or other line)     house number, one address line
===================  =================================================  ==================================

A block with more than ``cap`` records (default 100) is skipped: ``Jean Schmit`` or ``1 January 1950`` would pair
thousands of records that the other rules pair far more selectively, and one skipped block bounds a look-up's cost.
Skipped blocks are counted (``BlockingStats``) so an operator sees what the cap removed.

Batch generation (``candidate_pairs``) groups the records rule by rule with a dict (O(n) per rule) and emits each pair
of each kept block once across rules: a pair already emitted by an earlier rule (both records share one of its kept
keys) is not emitted again, which needs no set of pairs (memory O(n · rules), not O(pairs)).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from esante.mpi.matching.features import Features

DEFAULT_CAP = 100
KeyFunction = Callable[[Features], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class BlockingRule:
    """A named key function; ``fields`` are the compared fields the key constrains (EM leaves them out when it
    learns from this rule's pairs, since within its blocks they agree by construction)."""

    name: str
    key: KeyFunction
    fields: tuple[str, ...]


def _matricule(f: Features) -> tuple[str, ...]:
    return (f.matricule[:11],) if f.matricule else ()


def _name_keys(f: Features) -> list[str]:
    """Phonetic keys of the first given name, the family name and the birth name (whichever exist)."""
    keys = [f.given.first_phon] if f.given is not None else []
    keys.extend(n.phon for n in (f.family, f.birth) if n is not None)
    return keys


def _date_name(f: Features) -> tuple[str, ...]:
    if not f.birth_digits:
        return ()
    return tuple(dict.fromkeys(f"{f.birth_digits}|{key}" for key in _name_keys(f) if key))


def _names(f: Features) -> tuple[str, ...]:
    if f.given is None:
        return ()
    given = f.given.first_phon
    keys = ("|".join(sorted((given, n.phon))) for n in (f.family, f.birth) if n is not None)
    return tuple(dict.fromkeys(keys))


def _year_postal_initial(f: Features) -> tuple[str, ...]:
    if f.birth_date is None or f.postal is None or f.given is None:
        return ()
    return (f"{f.birth_date[0]}|{f.postal}|{f.given.compact[0]}",)


def _date_postal(f: Features) -> tuple[str, ...]:
    return (f"{f.birth_digits}|{f.postal}",) if f.birth_digits and f.postal else ()


def _postal_name(f: Features) -> tuple[str, ...]:
    if not f.postal:
        return ()
    return tuple(dict.fromkeys(f"{f.postal}|{key}" for key in _name_keys(f) if key))


def _city_name(f: Features) -> tuple[str, ...]:
    if f.city is None or not f.city.phon:
        return ()
    return tuple(dict.fromkeys(f"{f.city.phon}|{key}" for key in _name_keys(f) if key))


def _places(f: Features) -> list[str]:
    """The postal code and the phonetic city, tagged so that a code never meets a city."""
    places = []
    if f.postal:
        places.append(f"p{f.postal}")
    if f.city is not None and f.city.phon:
        places.append(f"c{f.city.phon}")
    return places


def _locality_street(f: Features) -> tuple[str, ...]:
    lines = [line.phon for line in (f.street, f.complement) if line is not None and line.phon]
    return tuple(dict.fromkeys(f"{place}|{line}" for place in _places(f) for line in lines))


def _date_place(f: Features) -> tuple[str, ...]:
    if not f.birth_digits:
        return ()
    keys = [f"h{f.house}"] if f.house else []
    if f.city is not None and f.city.phon:
        keys.append(f"c{f.city.phon}")
    return tuple(f"{f.birth_digits}|{key}" for key in keys)


def _family_house(f: Features) -> tuple[str, ...]:
    if f.house is None:
        return ()
    return tuple(dict.fromkeys(f"{f.house}|{n.phon}" for n in (f.family, f.birth) if n is not None))


def _house_street(f: Features) -> tuple[str, ...]:
    if f.house is None:
        return ()
    return tuple(dict.fromkeys(f"{f.house}|{line.phon}" for line in (f.street, f.complement) if line is not None))


DEFAULT_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("matricule", _matricule, ("matricule",)),
    BlockingRule("date_name", _date_name, ("birth_date", "given", "family", "birth_name")),
    BlockingRule("names", _names, ("given", "family", "birth_name")),
    BlockingRule("year_postal_initial", _year_postal_initial, ("birth_date", "address", "given")),
    BlockingRule("date_postal", _date_postal, ("birth_date", "address")),
    BlockingRule("postal_name", _postal_name, ("address", "given", "family", "birth_name")),
    BlockingRule("city_name", _city_name, ("address", "given", "family", "birth_name")),
    BlockingRule("locality_street", _locality_street, ("address", "address_complement")),
    BlockingRule("date_place", _date_place, ("birth_date", "address")),
    BlockingRule("family_house", _family_house, ("family", "birth_name", "address")),
    BlockingRule("house_street", _house_street, ("address", "address_complement")),
)
MAX_KEYS = 4  # a rule gives at most four keys per record (e.g. 2 places x 2 address lines)


@dataclass(slots=True)
class BlockingStats:
    """What blocking did, per rule: blocks kept, blocks skipped over the cap (and the records in them), pairs."""

    blocks: dict[str, int] = field(default_factory=dict)
    skipped_blocks: dict[str, int] = field(default_factory=dict)
    skipped_records: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)

    @property
    def total_pairs(self) -> int:
        return sum(self.pairs.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "blocks": dict(self.blocks),
            "skipped_blocks": dict(self.skipped_blocks),
            "skipped_records": dict(self.skipped_records),
            "pairs": dict(self.pairs),
        }


def candidate_pairs(
    left: Sequence[Features],
    right: Sequence[Features] | None = None,
    *,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    cap: int = DEFAULT_CAP,
    stats: BlockingStats | None = None,
    shard: int = 0,
    shards: int = 1,
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(i, j, rule_index)`` once per candidate pair: within ``left`` (deduplication, ``i < j``) or between
    ``left[i]`` and ``right[j]`` (linkage). A linkage block is skipped when either side exceeds ``cap``.

    ``shard``/``shards``: only the pairs of every ``shards``-th kept block, starting at ``shard`` — the shards of one
    set are disjoint and together give every pair once, so processes can share the work (keys are computed by each).

    Time O(rules · n) to key and group plus O(pairs); memory O(rules · n) for the kept keys (machine integers).
    """
    if cap < 2:
        raise ValueError("the block cap must be at least 2")
    if not 0 <= shard < shards:
        raise ValueError("shard must be in 0..shards-1")
    stats = stats if stats is not None else BlockingStats()
    sides = [left] if right is None else [left, right]
    # kept[side][rule][slot] holds the hash of a record's key in a kept block (0 = no such key): to skip pairs an
    # earlier rule already emitted without remembering the pairs themselves.
    kept: list[list[list[array[int]]]] = [[] for _ in sides]
    for rule_index, rule in enumerate(rules):
        groups: list[dict[str, list[int]]] = []
        for side in sides:
            group: dict[str, list[int]] = {}
            for position, features in enumerate(side):
                for key in rule.key(features):
                    group.setdefault(key, []).append(position)
            groups.append(group)
        arrays = [[array("q", bytes(8 * len(side))) for _ in range(MAX_KEYS)] for side in sides]
        stats.blocks[rule.name] = stats.skipped_blocks[rule.name] = stats.skipped_records[rule.name] = 0
        stats.pairs[rule.name] = 0
        blocks = _blocks(groups, right is None)
        kept_blocks: list[tuple[int, list[int], list[int]]] = []
        for key, members in blocks:
            if max(len(m) for m in members) > cap:
                stats.skipped_blocks[rule.name] += 1
                stats.skipped_records[rule.name] += sum(len(m) for m in members)
                continue
            stats.blocks[rule.name] += 1
            tag = hash(key) or 1
            for side_index, slots in enumerate(members):
                for slot in slots:
                    for row in arrays[side_index]:
                        if row[slot] == 0:
                            row[slot] = tag
                            break
            kept_blocks.append((tag, members[0], members[-1]))
        for side_index in range(len(sides)):
            kept[side_index].append(arrays[side_index])
        earlier = [k[:rule_index] for k in kept]
        now_left, now_right = arrays[0], arrays[-1]
        emitted = 0
        for number, (tag, first, second) in enumerate(kept_blocks):
            if number % shards != shard:
                continue
            pairs = (
                ((i, j) for x, i in enumerate(first) for j in first[x + 1 :])
                if right is None
                else ((i, j) for i in first for j in second)
            )
            for i, j in pairs:
                if _shared(earlier[0], earlier[-1], i, j):
                    continue
                if (now_left[1][i] and now_right[1][j]) and _other_tag(now_left, now_right, i, j, tag):
                    continue  # the pair shares two keys of this rule: emitted in the block of the smaller one
                emitted += 1
                yield i, j, rule_index
        stats.pairs[rule.name] = emitted


def _blocks(groups: list[dict[str, list[int]]], dedupe: bool) -> Iterator[tuple[str, list[list[int]]]]:
    if dedupe:
        for key, members in groups[0].items():
            if len(members) > 1:
                yield key, [members]
        return
    left, right = groups
    for key, members in left.items():
        other = right.get(key)
        if other:
            yield key, [members, other]


def _other_tag(left: list[array[int]], right: list[array[int]], i: int, j: int, tag: int) -> bool:
    shared = {row[i] for row in left} & {row[j] for row in right}
    shared.discard(0)
    return min(shared) != tag


def _shared(left: list[list[array[int]]], right: list[list[array[int]]], i: int, j: int) -> bool:
    """Did an earlier rule put records i (left) and j (right) in one kept block? (MAX_KEYS = 4 rows per rule.)"""
    for (l0, l1, l2, l3), (r0, r1, r2, r3) in zip(left, right, strict=True):
        a0, b0 = l0[i], r0[j]
        if a0 == 0 or b0 == 0:
            continue
        theirs = (b0, r1[j], r2[j], r3[j])
        if a0 in theirs:
            return True
        a1, a2, a3 = l1[i], l2[i], l3[i]
        if (a1 and a1 in theirs) or (a2 and a2 in theirs) or (a3 and a3 in theirs):
            return True
    return False
