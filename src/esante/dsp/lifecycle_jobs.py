"""The operator's lifecycle jobs: opening a DSP for every certified identity, destroying the DSPs whose retention
is over. Both are idempotent and resumable: run them again after an interruption and they do what is left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from esante.dsp import lifecycle_store
from esante.dsp.audit import Actor, dsp_event
from esante.dsp.context import DspContext
from esante.dsp.lifecycle import Destruction, destroy_dsp
from esante.dsp.lifecycle_model import LifecycleError, open_record
from esante.fhir.store import ResourceStore
from esante.security.audit_trail import AuditTrail

LEVEL_SYSTEM = "urn:esante:identity-level"
_CERTIFIED = (
    " FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current AND NOT r.deleted"
    " WHERE t.res_type = 'Patient' AND t.param = '_tag' AND t.system = ? AND t.code = 'certified'"
    " AND NOT EXISTS (SELECT 1 FROM idx_token a WHERE a.rid = t.rid AND a.param = 'active' AND a.code = 'false')"
)


@dataclass
class OpenAllResult:
    certified: int = 0  # certified identities seen
    opened: int = 0  # DSPs opened by this run
    already: int = 0  # identities that had one (whatever its state)


async def count_certified(store: ResourceStore) -> int:
    async with store.database.read() as conn:
        return int(await conn.fetchval("SELECT COUNT(*)" + _CERTIFIED, (LEVEL_SYSTEM,)) or 0)


async def open_all(
    store: ResourceStore,
    context: DspContext,
    actor: Actor,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> OpenAllResult:
    """Open a DSP (pending for the refusal window) for each certified identity that has none; one transaction per
    batch, one AuditEvent for the run."""
    result = OpenAllResult()
    after = -1
    window = context.settings.refusal_window_days
    while True:
        async with store.database.transaction() as conn:
            rows = await conn.fetch(
                "SELECT t.rid, r.res_id" + _CERTIFIED + " AND t.rid > ? ORDER BY t.rid LIMIT ?",
                (LEVEL_SYSTEM, after, batch),
            )
            if not rows:
                break
            now = context.now()
            records = [open_record(str(row[1]), now, window) for row in rows]
            created = await lifecycle_store.insert_many_if_absent(conn, records)
        after = int(rows[-1][0])
        result.certified += len(rows)
        result.opened += created
        result.already += len(rows) - created
        if progress is not None:
            progress(len(rows))
    async with store.database.transaction() as conn:
        details = {
            "certified": str(result.certified),
            "opened": str(result.opened),
            "already": str(result.already),
            "refusal-window-days": str(window),
        }
        event = dsp_event(
            "open-all",
            actor=actor,
            recorded=context.now_micros(),
            server="esante dsp open-all",
            details=details,
            outcome_text=f"{result.opened} DSPs opened",
        )
        await AuditTrail().append(store.session(conn), event)
    return result


@dataclass
class DestroyDueResult:
    destroyed: list[Destruction] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (patient, why)


async def count_due(store: ResourceStore, context: DspContext) -> int:
    async with store.database.read() as conn:
        return await lifecycle_store.count_due(conn, context.now())


async def destroy_due(
    store: ResourceStore,
    context: DspContext,
    actor: Actor,
    *,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> DestroyDueResult:
    """Destroy every closed DSP whose retention period is over, each in its own transaction (its proof with it)."""
    result = DestroyDueResult()
    skipped: set[str] = set()
    while limit is None or len(result.destroyed) < limit:
        async with store.database.read() as conn:
            due = [
                p
                for p in await lifecycle_store.due_for_destruction(conn, context.now(), 100 + len(skipped))
                if p not in skipped
            ]
        if not due:
            break
        for patient_id in due:
            if limit is not None and len(result.destroyed) >= limit:
                break
            try:
                async with store.database.transaction() as conn:
                    done = await destroy_dsp(store.session(conn), context, patient_id, actor, "esante dsp destroy-due")
            except LifecycleError as error:  # changed meanwhile (reopened): not due any more
                result.failed.append((patient_id, error.message))
                skipped.add(patient_id)
            else:
                result.destroyed.append(done)
            if progress is not None:
                progress(1)
    return result
