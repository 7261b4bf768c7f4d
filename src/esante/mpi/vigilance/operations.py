"""The identity-vigilance operations over the API (POST, Parameters in, Parameters out), for identity-vigilance
agents only: ``Patient/$mpi-link``, ``$mpi-unlink``, ``$mpi-merge``, ``$mpi-unmerge`` and ``Task/{id}/$mpi-dismiss``.

One decision is one transaction (the request's): the new Patient versions, one ``Provenance`` naming the agent,
the review Task closed (if one is given) and the establishments' notices, or nothing at all. The Patients are
written by the MPI's internal writer (no API caller), as the identity feed expects of link decisions and as
certified identities require; who decided is in the Provenance (the agent's account) and in the request's
AuditEvent (the caller), never lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from esante.fhir.context import Outcome
from esante.fhir.errors import FhirError, Issue, conflict, error
from esante.fhir.model import StoredResource, micros_to_instant, row_to_stored
from esante.fhir.operations import OperationCall, OperationDefinition
from esante.fhir.store import StoreSession
from esante.mpi.domains import DomainStore
from esante.mpi.feed import VIGILANCE_ROLE
from esante.mpi.model import ESANTE_ID_SYSTEM
from esante.mpi.people import level_of
from esante.mpi.provenance import ACTIVITY_SYSTEM, Activity, decision_provenance, person_agent
from esante.mpi.vigilance.decisions import (
    DISTINCT,
    Identity,
    Plan,
    Revision,
    Write,
    check_task,
    closed_task,
    plan_link,
    plan_merge,
    plan_unlink,
    plan_unmerge,
)
from esante.mpi.vigilance.inputs import Spec, read
from esante.mpi.vigilance.notices import NoticeLine, notice
from esante.security.policy import Caller

REVIEW_OUTCOME_SYSTEM = "urn:esante:mpi-review-outcome"  # a dismissed review's Provenance (not a decision on links)
_COLUMNS = "r.rid, r.res_type, r.res_id, r.version_id, r.last_updated, r.deleted, r.content"
_TASK = Spec("task", "Task")
_REASON = Spec("reason", "string")


def _json(stored: StoredResource) -> dict[str, Any]:
    assert stored.content is not None
    content: dict[str, Any] = orjson.loads(stored.content)
    return content


def check_agent(caller: Caller) -> None:
    """Only identity-vigilance staff decide on identities (a source client or a professional may not)."""
    if caller.kind != "staff" or VIGILANCE_ROLE not in (caller.attributes.get("roles") or ()):
        raise FhirError(403, [Issue("forbidden", "identity decisions are taken by identity-vigilance agents only")])


def agent_of(caller: Caller) -> dict[str, Any]:
    """The Provenance agent: the caller's account (``acct``), or the token subject of an account-less operator."""
    account = caller.attributes.get("account_id") or caller.subject or "unknown"
    display = caller.attributes.get("subject_name") or caller.attributes.get("name")
    return person_agent(str(account), str(display) if display else None)


class _Decision:
    """One decision's reads and writes, in the request's transaction, by the MPI's internal writer."""

    def __init__(self, call: OperationCall, domains: DomainStore) -> None:
        self.call = call
        self.domains = domains
        self.session: StoreSession = call.session.store.session(call.session.conn)  # caller None
        self._cache: dict[str, Identity] = {}
        self._domains: frozenset[str] | None = None

    async def identity(self, res_id: str, name: str) -> Identity:
        if res_id in self._cache:
            return self._cache[res_id]
        stored = await self.session.read("Patient", res_id)
        if stored is None or stored.deleted:
            raise error(404, "not-found", f"{name}: Patient/{res_id} does not exist", expression=name)
        identity = await self.load(stored)
        self._cache[res_id] = identity
        return identity

    def remember(self, identity: Identity) -> None:
        self._cache[identity.id] = identity

    async def load(self, stored: StoredResource) -> Identity:
        resource = _json(stored)
        return Identity(
            stored.res_id, stored.version_id, resource, await self._domain(resource), level_of(resource), stored
        )

    async def _domain(self, resource: dict[str, Any]) -> str | None:
        """The registered establishment domain among the identity's identifier systems (the feed allows one)."""
        if self._domains is None:  # read once per decision: a merge may load many identities
            rows = await self.session.conn.fetch("SELECT system FROM mpi_domain")
            self._domains = frozenset(str(row[0]) for row in rows)
        systems = sorted(
            str(i["system"])
            for i in resource.get("identifier", [])
            if isinstance(i, dict) and isinstance(i.get("system"), str) and i["system"] in self._domains
        )
        return systems[0] if systems else None

    async def referring(self, res_type: str, param: str, patient: str) -> list[StoredResource]:
        """Current resources of ``res_type`` whose ``param`` references ``Patient/<patient>``."""
        await self.session.flush()
        rows = await self.session.conn.fetch(
            f"SELECT DISTINCT {_COLUMNS} FROM idx_reference x JOIN resource r ON r.rid = x.rid AND r.is_current"
            " AND NOT r.deleted WHERE x.res_type = ? AND x.param = ? AND x.target_type = 'Patient'"
            " AND x.target_id = ? ORDER BY r.res_id",
            (res_type, param, patient),
        )
        return [row_to_stored(row) for row in rows]

    async def linked_to(self, patient: str) -> list[Identity]:
        return [await self.load(s) for s in await self.referring("Patient", "link", patient)]

    async def task(self, task_id: str | None, about: set[str]) -> tuple[StoredResource, dict[str, Any]] | None:
        if task_id is None:
            return None
        stored = await self.session.read("Task", task_id)
        content = _json(stored) if stored is not None and not stored.deleted else None
        checked = check_task(content, task_id, about)
        assert stored is not None
        return stored, checked

    # --- writing ---------------------------------------------------------------------------------------------------

    async def write(
        self,
        plan: Plan,
        reason: str | None,
        task: tuple[StoredResource, dict[str, Any]] | None,
        notices: Callable[[list[tuple[Write, StoredResource]], str, str], Awaitable[list[dict[str, Any]]]]
        | None = None,
    ) -> Outcome:
        written: list[tuple[Write, StoredResource]] = []
        for write in plan.writes:
            assert write.identity.stored is not None
            stored = await self.session.update(write.resource, write.identity.stored)
            await self.session.flush()  # the next write's hooks read the database (a merge's survivor)
            written.append((write, stored))
        when = micros_to_instant(written[0][1].last_updated)
        entities = list(plan.entities)
        entities += [("revision", f"Patient/{s.res_id}/_history/{s.version_id}") for w, s in written if w.revision]
        provenance = decision_provenance(
            plan.activity,
            [f"Patient/{s.res_id}/_history/{s.version_id}" for _w, s in written],
            when,
            agent_of(self.call.ctx.caller),
            entities=entities,
            reason=reason,
            task=f"Task/{task[0].res_id}" if task else None,
        )
        recorded = await self.session.create(provenance, client_id=False)
        sent = [
            await self.session.create(item, client_id=False)
            for item in (await notices(written, when, recorded.res_id) if notices else [])
        ]
        closed = None
        if task is not None:
            done = closed_task(task[1], when, plan.activity.value, f"Provenance/{recorded.res_id}", reason)
            closed = await self.session.update(done, task[0])
        await self.session.flush()
        return _answer(
            plan.activity.value,
            recorded,
            [s for _w, s in written],
            sent,
            closed,
            plan.skipped,
        )

    # --- notices ---------------------------------------------------------------------------------------------------

    async def label(self, res_id: str, domain: str | None) -> str:
        """How a notice names an identity: its domain identifier, or the eSanté identifier of a certified one."""
        try:
            identity = await self.identity(res_id, "patient")
        except FhirError:
            return f"Patient/{res_id}"
        wanted = domain if domain is not None else ESANTE_ID_SYSTEM
        for ident in identity.resource.get("identifier", []):
            if isinstance(ident, dict) and ident.get("system") == wanted and ident.get("value"):
                if domain is not None:
                    return f"{domain}|{ident['value']} (Patient/{res_id})"
                return f"Patient/{res_id} (eSanté identifier {ident['value']})"
        return f"Patient/{res_id}"

    async def _now(self, write: Write) -> str:
        resource = write.resource
        domain = write.identity.domain
        links = {
            str(link.get("type")): str(link.get("other", {}).get("reference", "")).removeprefix("Patient/")
            for link in resource.get("link", [])
            if isinstance(link, dict)
        }
        if "replaced-by" in links:
            return f"is merged into {await self.label(links['replaced-by'], domain)}: use that identifier"
        if "seealso" in links:
            return f"belongs to {await self.label(links['seealso'], None)}"
        return "is linked to no certified identity (provisional)"

    def notices_for(self, kind: str, headline: str, about: list[str]) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
        async def build(written: list[tuple[Write, StoredResource]], when: str, decision: str) -> list[dict[str, Any]]:
            by_domain: dict[str, list[NoticeLine]] = {}
            for write, _stored in written:
                domain = write.identity.domain
                if domain is None or write.identity.certified:
                    continue
                value = next(
                    (
                        str(i.get("value"))
                        for i in write.resource.get("identifier", [])
                        if isinstance(i, dict) and i.get("system") == domain
                    ),
                    "",
                )
                line = NoticeLine(write.identity.reference, value, await self._now(write))
                by_domain.setdefault(domain, []).append(line)
            built = []
            for system, lines in sorted(by_domain.items()):
                registered = await self.domains.get(system, self.session.conn)
                assert registered is not None
                built.append(notice(kind, registered, lines, about, headline, when, decision))
            return built

        return build


def _reference(res_type: str, stored: StoredResource, versioned: bool = False) -> dict[str, Any]:
    suffix = f"/_history/{stored.version_id}" if versioned else ""
    return {"valueReference": {"reference": f"{res_type}/{stored.res_id}{suffix}"}}


def _answer(
    decision: str,
    provenance: StoredResource,
    patients: list[StoredResource],
    notices: list[StoredResource],
    task: StoredResource | None,
    skipped: list[str],
) -> Outcome:
    parameter: list[dict[str, Any]] = [
        {"name": "decision", "valueCode": decision},
        {"name": "provenance", **_reference("Provenance", provenance)},
        *({"name": "patient", **_reference("Patient", p, versioned=True)} for p in patients),
        *({"name": "notice", **_reference("Communication", n)} for n in notices),
        *([{"name": "task", **_reference("Task", task, versioned=True)}] if task else []),
        *({"name": "skipped", "valueString": text} for text in skipped),
    ]
    touched = [*patients, *([task] if task else [])]
    return Outcome(200, {"resourceType": "Parameters", "parameter": parameter}, touched=touched)


# --- the operations --------------------------------------------------------------------------------------------------


class VigilanceOperations:
    def __init__(self, domains: DomainStore) -> None:
        self.domains = domains

    def _start(self, call: OperationCall, *specs: Spec) -> tuple[_Decision, dict[str, str]]:
        check_agent(call.ctx.caller)
        return _Decision(call, self.domains), read(call.parameters, specs)

    async def link(self, call: OperationCall) -> Outcome:
        decision, given = self._start(call, Spec("local", "Patient", True), Spec("target", "Patient", True), _TASK,
                                      _REASON)  # fmt: skip
        local = await decision.identity(given["local"], "local")
        target = await decision.identity(given["target"], "target")
        plan = plan_link(local, target)
        task = await decision.task(given.get("task"), {local.id, target.id})
        return await decision.write(plan, given.get("reason"), task)

    async def unlink(self, call: OperationCall) -> Outcome:
        decision, given = self._start(call, Spec("local", "Patient", True), Spec("reason", "string", True), _TASK)
        local = await decision.identity(given["local"], "local")
        plan = plan_unlink(local)
        task = await decision.task(given.get("task"), {local.id, local.linked_to or local.id})
        return await decision.write(plan, given["reason"], task)

    async def merge(self, call: OperationCall) -> Outcome:
        decision, given = self._start(call, Spec("source", "Patient", True), Spec("target", "Patient", True), _TASK,
                                      _REASON)  # fmt: skip
        source = await decision.identity(given["source"], "source")
        target = await decision.identity(given["target"], "target")
        linked = await decision.linked_to(source.id) if source.certified else []
        plan = plan_merge(source, target, linked)
        task = await decision.task(given.get("task"), {source.id, target.id})
        headline = (
            f"Identity-vigilance merge: {await decision.label(source.id, source.domain)} is merged into"
            f" {await decision.label(target.id, target.domain)}. Your identities:"
        )
        notices = decision.notices_for("merge", headline, [source.reference, target.reference])
        return await decision.write(plan, given.get("reason"), task, notices)

    async def unmerge(self, call: OperationCall) -> Outcome:
        decision, given = self._start(call, Spec("source", "Patient", True), Spec("reason", "string", True), _TASK)
        source = await decision.identity(given["source"], "source")
        if not source.merged_into:
            raise conflict(f"source: {source.reference} is not merged: there is nothing to undo")
        merge = await _last_merge(decision, source)
        if merge is None:
            raise conflict(
                f"source: {source.reference} was merged by its establishment's identity feed, not by an"
                " identity-vigilance decision: the establishment undoes it (PUT with active = true)"
            )
        survivor, merged_version, revised = merge
        before = await decision.session.vread("Patient", source.id, merged_version - 1)
        if before is None or before.content is None:
            raise conflict(f"source: the version of {source.reference} before its merge is not available")
        revisions = []
        for res_id, version in revised:
            by_merge = await decision.session.vread("Patient", res_id, version)
            previous = await decision.session.vread("Patient", res_id, version - 1)
            current = await decision.session.read("Patient", res_id)
            if by_merge is None or previous is None or current is None or current.deleted:
                continue
            identity = await decision.load(current)
            decision.remember(identity)
            revisions.append(Revision(_json(previous), _json(by_merge), identity))
        plan = plan_unmerge(source, survivor, _json(before), revisions)
        task = await decision.task(given.get("task"), {source.id, survivor})
        headline = (
            f"Identity-vigilance unmerge: {await decision.label(source.id, source.domain)} is no longer merged into"
            f" {await decision.label(survivor, source.domain)}. Your identities:"
        )
        notices = decision.notices_for("unmerge", headline, [source.reference, f"Patient/{survivor}"])
        return await decision.write(plan, given["reason"], task, notices)

    async def dismiss(self, call: OperationCall) -> Outcome:
        """Close a review Task without a link: the candidates are not the same person (``distinct``)."""
        decision, given = self._start(call, _REASON)
        assert call.resource_id is not None
        task = await decision.task(call.resource_id, set())
        assert task is not None
        stored, content = task
        when = micros_to_instant(decision.session.store.clock.now())
        focus = content.get("focus", {}).get("reference")
        provenance: dict[str, Any] = {
            "resourceType": "Provenance",
            "target": [{"reference": f"Task/{stored.res_id}/_history/{stored.version_id + 1}"}],
            "recorded": when,
            "activity": {"coding": [{"system": REVIEW_OUTCOME_SYSTEM, "code": DISTINCT}]},
            "agent": [agent_of(call.ctx.caller)],
        }
        if isinstance(focus, str) and focus:
            provenance["entity"] = [{"role": "source", "what": {"reference": focus}}]
        if given.get("reason"):
            provenance["reason"] = [{"text": given["reason"]}]
        recorded = await decision.session.create(provenance, client_id=False)
        done = closed_task(content, when, DISTINCT, f"Provenance/{recorded.res_id}", given.get("reason"))
        closed = await decision.session.update(done, stored)
        assert closed.version_id == stored.version_id + 1
        await decision.session.flush()
        parameter = [
            {"name": "decision", "valueCode": DISTINCT},
            {"name": "provenance", **_reference("Provenance", recorded)},
            {"name": "task", **_reference("Task", closed, versioned=True)},
        ]
        return Outcome(200, {"resourceType": "Parameters", "parameter": parameter}, touched=[closed])


async def _last_merge(decision: _Decision, source: Identity) -> tuple[str, int, list[tuple[str, int]]] | None:
    """The latest merge decision that retired ``source``: (survivor, the source's merged version, the
    re-pointed identities and the version the merge gave them), from its Provenance."""
    best: tuple[str, int, list[tuple[str, int]]] | None = None
    for stored in await decision.referring("Provenance", "target", source.id):
        provenance = _json(stored)
        codes = {(c.get("system"), c.get("code")) for c in provenance.get("activity", {}).get("coding", [])}
        if (ACTIVITY_SYSTEM, Activity.MERGE.value) not in codes:
            continue
        entities = [(e.get("role"), str(e.get("what", {}).get("reference", ""))) for e in provenance.get("entity", [])]
        revised = [_versioned(ref) for role, ref in entities if role == "revision"]
        survivor = next((ref.removeprefix("Patient/") for role, ref in entities if role == "source"), None)
        merged = [
            v for ref in (t.get("reference", "") for t in provenance.get("target", []))
            if (v := _versioned(str(ref)))[0] == source.id and v not in revised
        ]  # fmt: skip
        if survivor is None or not merged:
            continue
        version = merged[0][1]
        if best is None or version > best[1]:
            best = (survivor, version, [r for r in revised if r[0]])
    return best


def _versioned(reference: str) -> tuple[str, int]:
    """``Patient/x/_history/n`` → (x, n); anything else → ("", 0)."""
    parts = reference.split("/")
    if len(parts) == 4 and parts[0] == "Patient" and parts[2] == "_history" and parts[3].isdigit():
        return parts[1], int(parts[3])
    return "", 0


def vigilance_operations(domains: DomainStore) -> list[OperationDefinition]:
    """The operations to register (``platform.operations.register`` each)."""
    ops = VigilanceOperations(domains)
    patient = frozenset({"Patient"})

    def define(name: str, handler: Any, text: str, types: frozenset[str] = patient, instance: bool = False) -> Any:
        return OperationDefinition(
            name=name,
            handler=handler,
            type_level=not instance,
            instance=instance,
            resource_types=types,
            affects_state=True,
            requires="u",
            documentation=f"Identity-vigilance (agents only): {text} (docs/mpi-vigilance.md).",
        )

    return [
        define("mpi-link", ops.link, "link a local identity to a certified one (validated)"),
        define("mpi-unlink", ops.unlink, "remove a local identity's link (provisional)"),
        define("mpi-merge", ops.merge, "merge an identity into a survivor, cross-references re-pointed"),
        define("mpi-unmerge", ops.unmerge, "undo a merge decision, cross-references pointed back"),
        define("mpi-dismiss", ops.dismiss, "close a review Task: not the same person", frozenset({"Task"}), True),
    ]
