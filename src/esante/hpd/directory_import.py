"""The directory import (``esante hpd import FILE``): lines of directory resources written through the store.

Idempotent, keyed on business identifiers (:data:`esante.hpd.model.KEY_SYSTEMS`): a resource whose key is in the
directory is updated when its content changed (a new version, same id) and left alone otherwise; a new one is
created. Logical references (``Reference.identifier``) are resolved to ``Type/id``. A new Practitioner gets an
eHealthID drawn at random and spent in the ledger (:mod:`esante.hpd.ehealth_ledger`); an existing one keeps its own.

Lines are written in batches, one transaction each (an interrupted import keeps what it finished and is simply run
again). A line is refused as a whole — with its number and the reason — when one of its resources disagrees with
the way an earlier line gave it, refers to something that does not exist, or is refused by the store; the other
lines are imported. A delta file is just a file with fewer lines: what it does not mention is left as it is.

The right to practise: when a line changes a professional's status (active, suspended, withdrawn) — or creates a
professional whose right is not active — :meth:`DirectoryImporter._apply_status` runs once, in the line's
transaction: the professional's roles follow (inactive unless the right is active and the role has not ended).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from esante.db.engine import Connection
from esante.fhir.errors import FhirError
from esante.fhir.model import StoredResource, row_to_stored
from esante.fhir.store import _SELECT_COLUMNS, ResourceStore, StoreSession
from esante.fhir.validation import validate_resource
from esante.hpd.ehealth_ledger import fresh_ehealth_ids, record
from esante.hpd.lines import Item, Line, Rejection, period_ended, ref_target, references
from esante.hpd.model import (
    EHEALTH_ID_SYSTEM,
    KEY_SYSTEMS,
    MINISTRY_NAME,
    MINISTRY_ORGANIZATION_ID,
    ORGANIZATION_SYSTEM,
    RightToPractise,
    right_to_practise_of,
)
from esante.hpd.practise import Agent, PractiseError, change_right_to_practise
from esante.hpd.terminology import ensure_code_systems

Source = Iterable[tuple[int, Line | str]]
Key = tuple[str, str]  # (resource type, business key)

_AMBIGUOUS = object()  # several current resources hold the key
ANALYZE_FIRST = 10_000  # resources created by a run before the first ANALYZE (then at each doubling): _analyze


@dataclass
class ImportResult:
    read: int = 0  # lines read (blank lines not counted)
    created: Counter[str] = field(default_factory=Counter)  # by resource type
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    status_changes: int = 0
    professionals: int = 0  # distinct professionals the file states
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Lines imported per second."""
        return (self.read - len(self.rejected)) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class _Target:
    res_id: str
    active: bool | None = None  # Practitioner: its current ``active``


@dataclass
class _Batch:
    """What one batch's transaction did: merged into the run's state only once it has committed."""

    seen: dict[Key, tuple[int, bytes]] = field(default_factory=dict)
    ids: dict[Key, _Target] = field(default_factory=dict)
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    status_changes: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    assigned: list[tuple[str, str]] = field(default_factory=list)  # (eHealthID, Practitioner id)
    drawn: list[str] = field(default_factory=list)  # fresh eHealthIDs ready for new Practitioners


class _LineFailed(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def ministry_item() -> Item:
    """The Ministry of Health, issuer of every right to practise (``Practitioner.qualification.issuer``)."""
    return Item(
        "Organization",
        MINISTRY_ORGANIZATION_ID,
        {
            "resourceType": "Organization",
            "identifier": [{"use": "official", "system": ORGANIZATION_SYSTEM, "value": MINISTRY_ORGANIZATION_ID}],
            "active": True,
            "type": [
                {"coding": [{"system": "urn:esante:hpd:organization-type", "code": "authority"}]},
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "govt"}]},
            ],
            "name": MINISTRY_NAME,
            "address": [{"city": "Luxembourg", "country": "LU"}],
        },
    )


class DirectoryImporter:
    def __init__(
        self, store: ResourceStore, batch_size: int = 500, today: date | None = None, operator: str = "esante"
    ) -> None:
        self.store = store
        self.operator = operator  # who runs the import (the agent of right-to-practise changes)
        self.batch_size = max(1, batch_size)
        self.today = today or date.today()
        self._seen: dict[Key, tuple[int, bytes]] = {}  # resources stated by this run: (line, fingerprint)
        self._ids: dict[Key, _Target] = {}  # resources this run resolved or wrote
        self._professionals: set[str] = set()

    async def run(self, source: Source, progress: Callable[[int], None] | None = None) -> ImportResult:
        result = ImportResult()
        started = time.perf_counter()
        analyzed, analyze_at = 0, ANALYZE_FIRST
        await ensure_code_systems(self.store)
        await self._write_batch([Line(0, [ministry_item()])], result)
        batch: list[Line] = []
        for number, entry in source:
            result.read += 1
            if isinstance(entry, str):
                result.rejected.append(Rejection(number, entry))
                continue
            batch.append(entry)
            if len(batch) >= self.batch_size:
                await self._write_batch(batch, result)
                batch = []
                if progress is not None:
                    progress(result.read)
                created = sum(result.created.values())
                if created >= analyze_at:
                    await self._analyze()
                    analyzed, analyze_at = created, 2 * created
        if batch:
            await self._write_batch(batch, result)
        if sum(result.created.values()) - analyzed >= ANALYZE_FIRST // 10:
            await self._analyze()
        if progress is not None:
            progress(result.read)
        result.rejected.sort(key=lambda r: r.line)
        result.professionals = len(self._professionals)
        result.seconds = time.perf_counter() - started
        return result

    async def _write_batch(self, lines: list[Line], result: ImportResult) -> None:
        """One transaction; a line the store refuses is reported and the batch written again without it."""
        while lines:
            try:
                done = await self._write(lines)
            except _LineFailed as failure:
                kept = [line for line in lines if line.number != failure.line]
                if len(kept) == len(lines):  # not a line of this batch: a bug, not a bad line
                    raise RuntimeError(f"a refusal named line {failure.line}, which is not in the batch") from failure
                result.rejected.append(Rejection(failure.line, failure.reason))
                lines = kept
                continue
            self._seen.update(done.seen)
            self._ids.update(done.ids)
            self._professionals.update(key for kind, key in done.seen if kind == "Practitioner")
            result.created.update(done.created)
            result.updated.update(done.updated)
            result.unchanged += done.unchanged
            result.status_changes += done.status_changes
            result.rejected.extend(done.rejected)
            return

    async def _write(self, lines: list[Line]) -> _Batch:
        batch = _Batch()
        async with self.store.database.transaction() as conn:
            session = self.store.session(conn)
            await session.plan_searches_per_execution()
            found = await _lookup(conn, self._wanted(lines))
            new = {
                item.key
                for line in lines
                for item in line.items
                if item.type == "Practitioner"
                and ("Practitioner", item.key) not in found
                and ("Practitioner", item.key) not in self._seen
            }
            batch.drawn = await fresh_ehealth_ids(conn, len(new))
            # PostgreSQL: the logical keys of the likely creates in one round trip (not one per 64 creates)
            await session.reserve_rids(
                sum(
                    1
                    for line in lines
                    for item in line.items
                    if (item.type, item.key) not in found and (item.type, item.key) not in self._seen
                )
            )
            for line in lines:
                checked = self._check(line, batch, found)
                if isinstance(checked, str):
                    batch.rejected.append(Rejection(line.number, checked))
                    continue
                try:
                    await self._apply(session, line, checked, batch, found)
                except FhirError as error:
                    raise _LineFailed(line.number, "; ".join(i.diagnostics for i in error.issues)) from error
            await session.flush()
            await record(conn, batch.assigned)
        return batch

    def _wanted(self, lines: list[Line]) -> dict[str, set[str]]:
        """The keys to look up: resources the lines state (not yet stated by this run) and those they refer to."""
        wanted: dict[str, set[str]] = {}
        for line in lines:
            for item in line.items:
                if (item.type, item.key) not in self._seen:
                    wanted.setdefault(item.type, set()).add(item.key)
                for target in item.targets:
                    if target not in self._ids:
                        wanted.setdefault(target[0], set()).add(target[1])
        return wanted

    def _check(self, line: Line, batch: _Batch, found: dict[Key, Any]) -> list[tuple[Item, bytes]] | str:
        """The line's resources still to write, or why the line is refused (nothing of it is written then)."""
        pending: list[tuple[Item, bytes]] = []
        stated: set[Key] = set()
        for item in line.items:
            key = (item.type, item.key)
            fingerprint = item.fingerprint()
            earlier = batch.seen.get(key) or self._seen.get(key)
            if earlier is not None:
                if earlier[1] != fingerprint:
                    return f"{item.type} {item.key} is given differently on line {earlier[0]}"
                stated.add(key)
                continue
            if found.get(key) is _AMBIGUOUS:
                return f"several {item.type} resources hold the identifier {item.key}: the directory needs one"
            for target in item.targets:
                known = target in stated or target in batch.ids or target in self._ids
                if not known and found.get(target) in (None, _AMBIGUOUS):
                    return (
                        f"{item.type} {item.key} refers to the {target[0]} {target[1]}, which is not in the directory"
                        " (it must come on an earlier line or already be there)"
                    )
            stated.add(key)
            pending.append((item, fingerprint))
        return pending

    async def _apply(
        self, session: StoreSession, line: Line, pending: list[tuple[Item, bytes]], batch: _Batch, found: dict[Key, Any]
    ) -> None:
        for item, fingerprint in pending:
            key = (item.type, item.key)
            body: dict[str, Any] = orjson.loads(orjson.dumps(item.body))  # the line stays as read (batch retries)
            for ref in references(body):
                target = ref_target(ref)
                ref["reference"] = f"{target[0]}/{self._target(target, batch, found).res_id}"
            current: StoredResource | None = found.get(key)
            old = orjson.loads(current.content) if current is not None and current.content else None
            new_ehealth_id = None
            if item.type == "Practitioner":
                kept = [i for i in (old or {}).get("identifier", []) if i.get("system") == EHEALTH_ID_SYSTEM]
                if not kept:
                    new_ehealth_id = await self._draw(session.conn, batch)
                    kept = [{"use": "official", "system": EHEALTH_ID_SYSTEM, "value": new_ehealth_id}]
                body["identifier"] = [*kept, *body.get("identifier", [])]
            elif item.type == "PractitionerRole":
                practitioner = self._target(ref_target(body["practitioner"]), batch, found)
                body["active"] = (
                    body.get("active", True) is True
                    and practitioner.active is not False
                    and not period_ended(body.get("period"), self.today)
                )
            unchanged = current is not None and old is not None and _comparable(body) == _comparable(old)
            if not unchanged and not item.checked:  # a resource built from CSV cells: checked once, when written
                try:
                    validate_resource(body, expected_type=item.type)
                except FhirError as error:
                    reason = "; ".join(issue.diagnostics for issue in error.issues)
                    raise _LineFailed(line.number, f"{item.type} {item.key}: {reason}") from error
            if current is None:
                stored = await session.create(body, res_id=str(uuid.uuid4()), client_id=False)
                batch.created[item.type] += 1
            elif unchanged:
                stored = current
                batch.unchanged += 1
            else:
                body["id"] = current.res_id
                stored = await session.update(body, current)
                batch.updated[item.type] += 1
            if new_ehealth_id is not None:
                batch.assigned.append((new_ehealth_id, stored.res_id))
            batch.seen[key] = (line.number, fingerprint)
            # a Practitioner is active as its line states (a storage hook may have stamped the written body with the
            # status recorded before this line's change, which _apply_status below makes the line's)
            active = (item.right.active if item.right else body.get("active")) if item.type == "Practitioner" else None
            batch.ids[key] = _Target(stored.res_id, active)
            if item.type == "Practitioner" and item.right is not None:
                previous = right_to_practise_of(old) if old is not None else None
                if (previous is None and not item.right.active) or (
                    previous is not None and previous.status is not item.right.status
                ):  # before the line's roles are written: they are written under the new status
                    await self._apply_status(session, line.number, stored, previous, item.right)
                    batch.status_changes += 1
                    # the cascade wrote roles of this batch: what the batch looked up is stale for them
                    await session.flush()
                    roles = {k for t, k in found if t == "PractitionerRole" and found[(t, k)] is not _AMBIGUOUS}
                    found.update(await _lookup(session.conn, {"PractitionerRole": roles}))

    async def _apply_status(
        self,
        session: StoreSession,
        line: int,
        practitioner: StoredResource,
        previous: RightToPractise | None,
        right: RightToPractise,
    ) -> None:
        """THE place where an import changes a right to practise (the Practitioner already records the new status).

        Every PractitionerRole of the professional follows: active iff the right is active and the role has not
        ended (a restoration brings back the roles that were active, not those that ended meanwhile).
        """
        # first the cascade, in this transaction: tokens, sessions and system clients acting for the professional
        # revoked (or the held roles brought back); a transition the status cannot take (e.g. withdrawn ->
        # suspended) rejects the line with the cascade's reason
        try:
            await change_right_to_practise(
                session,
                practitioner.res_id,
                right.status,
                reason=right.reason or "register import",
                source="import",
                agent=Agent(self.operator, "operator"),
                effective=right.date,
                allow_unchanged=True,
            )
        except PractiseError as error:
            raise _LineFailed(line, error.message) from error
        # then the roles the import itself wrote inactive during a loss become active again on a restoration (the
        # cascade only brings back the roles it held)
        await session.flush()
        rows = await session.conn.fetch(
            f"SELECT {', '.join('r.' + c.strip() for c in _SELECT_COLUMNS.split(','))} FROM idx_reference x"
            " JOIN resource r ON r.rid = x.rid AND r.is_current AND NOT r.deleted"
            " WHERE x.res_type = 'PractitionerRole' AND x.param = 'practitioner'"
            " AND x.target_type = 'Practitioner' AND x.target_id = ?",
            (practitioner.res_id,),
        )
        for role in (row_to_stored(row) for row in rows):
            assert role.content is not None
            content = orjson.loads(role.content)
            wanted = right.active and not period_ended(content.get("period"), self.today)
            if content.get("active") is not wanted:
                content["active"] = wanted
                await session.update(content, role)

    async def _analyze(self) -> None:
        """PostgreSQL: refresh the planner statistics of the tables the look-ups (and the searches) read, as the
        directory grows.

        A directory loaded into empty tables is otherwise planned as if it were still empty when autovacuum has not
        run (or is off): the business-key look-ups then scan instead of probing the index (the MPI's import met the
        same, see mpi/certified_import.py ``_analyze``). Run when the resources the run created reach 10,000, then
        at each doubling, and at the end after 1,000 or more.
        """
        if self.store.database.dialect.is_postgres:
            async with self.store.database.transaction() as conn:
                # idx_string and idx_date too: the directory's searches (names, localities, periods) read them
                await conn.execute("ANALYZE resource, idx_token, idx_reference, idx_string, idx_date, hpd_ehealth_id")

    def _target(self, key: Key, batch: _Batch, found: dict[Key, Any]) -> _Target:
        target = batch.ids.get(key) or self._ids.get(key)
        if target is None:
            stored: StoredResource = found[key]
            active = None
            if key[0] == "Practitioner" and stored.content is not None:
                active = orjson.loads(stored.content).get("active") is not False
            target = batch.ids[key] = _Target(stored.res_id, active)
        return target

    async def _draw(self, conn: Connection, batch: _Batch) -> str:
        if not batch.drawn:
            batch.drawn = await fresh_ehealth_ids(conn, 1, avoid={e for e, _ in batch.assigned})
        return batch.drawn.pop()


def _comparable(content: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (content.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in content.items() if k not in ("meta", "id")}
    if meta:
        body["meta"] = meta
    return body


async def _lookup(conn: Connection, wanted: dict[str, set[str]]) -> dict[Key, Any]:
    """The current resources holding these business keys (one indexed statement per type); a key held by several
    resources maps to ``_AMBIGUOUS``."""
    columns = ", ".join("r." + c.strip() for c in _SELECT_COLUMNS.split(","))
    found: dict[Key, Any] = {}
    for res_type, keys in wanted.items():
        unique = sorted(keys)
        if not unique:
            continue
        system = KEY_SYSTEMS[res_type]
        if conn.dialect.is_postgres:  # one index probe per value
            rows = await conn.fetch(
                f"SELECT t.code, {columns} FROM unnest(?::text[]) AS k(code) JOIN idx_token t ON t.res_type = ?"
                " AND t.param = 'identifier' AND t.code = k.code AND t.system = ?"
                " JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted",
                [unique, res_type, system],
            )
        else:
            rows = []
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows.extend(
                    await conn.fetch(
                        f"SELECT t.code, {columns} FROM idx_token t"
                        " JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted"
                        f" WHERE t.res_type = ? AND t.param = 'identifier' AND t.system = ?"
                        f" AND t.code IN ({', '.join('?' * len(chunk))})",
                        [res_type, system, *chunk],
                    )
                )
        for row in rows:
            key = (res_type, str(row[0]))
            stored = row_to_stored(row[1:])
            previous = found.get(key)
            same = previous is None or (previous is not _AMBIGUOUS and previous.rid == stored.rid)
            found[key] = stored if same else _AMBIGUOUS
    return found
