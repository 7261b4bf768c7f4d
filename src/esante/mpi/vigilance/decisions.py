"""What each identity-vigilance decision writes, given the identities it is about. Pure: no I/O.

The operations load the identities (:class:`Identity`: the current version, its domain and level), these functions
check that the decision makes sense for them and return a :class:`Plan`: the new content of every Patient the
decision changes (each a new version: history keeps the before), the Provenance activity and entities. A refused
decision raises a :class:`~esante.fhir.errors.FhirError` naming the problem, before anything is written:

- 404: an identity (or Task) that does not exist;
- 409: a state that forbids the decision now (an identity already merged, a link that is already there or absent,
  an unmerge of something not merged, a closed Task);
- 422: identities of the wrong kind for the decision (a certified identity as ``local``, a local one as
  ``target``, a merge across domains or of an identity into itself, a Task that is not a review of them).

Links are written by the MPI's internal writer, so the identity feed's hooks keep them as given and set the level
(``seealso`` → validated, none → provisional).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from esante.fhir.errors import conflict, error, unprocessable
from esante.fhir.model import StoredResource
from esante.mpi.model import IdentityLevel
from esante.mpi.provenance import Activity
from esante.mpi.review import REVIEW_CODE, TASK_SYSTEM

OPEN_TASK_STATUSES = frozenset({"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"})
OUTPUT_SYSTEM = "urn:esante:mpi-task-output"
DISTINCT = "distinct"  # the outcome of a dismissed review: not the same person


@dataclass(frozen=True)
class Identity:
    """One Patient as the decisions see it: current version, content, establishment domain (None: not local)."""

    id: str
    version: int
    resource: dict[str, Any]
    domain: str | None
    level: IdentityLevel | None
    stored: StoredResource | None = None  # the version read (what the write replaces)

    @property
    def reference(self) -> str:
        return f"Patient/{self.id}"

    @property
    def certified(self) -> bool:
        return self.level is IdentityLevel.CERTIFIED

    @property
    def local(self) -> bool:
        return self.domain is not None and not self.certified

    @property
    def linked_to(self) -> str | None:
        return _link(self.resource, "seealso")

    @property
    def merged_into(self) -> str | None:
        return _link(self.resource, "replaced-by")


@dataclass
class Write:
    """A new version of ``identity``; ``revision``: a re-pointed identity (a Provenance ``revision`` entity)."""

    identity: Identity
    resource: dict[str, Any]
    revision: bool = False


@dataclass
class Plan:
    activity: Activity
    writes: list[Write]
    entities: list[tuple[str, str]] = field(default_factory=list)  # (role, reference) known before writing
    skipped: list[str] = field(default_factory=list)  # why an identity was left as it is (unmerge)


def _link(resource: dict[str, Any], kind: str) -> str | None:
    for link in resource.get("link", []):
        reference = link.get("other", {}).get("reference", "") if isinstance(link, dict) else ""
        if link.get("type") == kind and isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


def with_links(resource: dict[str, Any], *, seealso: str | None, replaced_by: str | None) -> dict[str, Any]:
    """A copy of ``resource`` whose seealso and replaced-by links are exactly these (other links kept)."""
    new = copy.deepcopy(resource)
    links = [
        link
        for link in new.get("link", [])
        if not (isinstance(link, dict) and link.get("type") in ("seealso", "replaced-by"))
    ]
    if replaced_by:
        links.append({"other": {"reference": f"Patient/{replaced_by}"}, "type": "replaced-by"})
    if seealso:
        links.append({"other": {"reference": f"Patient/{seealso}"}, "type": "seealso"})
    if links:
        new["link"] = links
    else:
        new.pop("link", None)
    return new


# --- checks ----------------------------------------------------------------------------------------------------------


def _mpi_identity(identity: Identity, name: str) -> None:
    if identity.level is None and identity.domain is None:
        raise unprocessable(
            f"{name}: {identity.reference} is not an MPI identity (neither certified nor of a registered domain)",
            expression=name,
        )


def _not_merged(identity: Identity, name: str, hint: str = "") -> None:
    if identity.merged_into:
        raise conflict(f"{name}: {identity.reference} is merged into Patient/{identity.merged_into}{hint}")


def _local(identity: Identity, name: str) -> None:
    _mpi_identity(identity, name)
    if not identity.local:
        raise unprocessable(
            f"{name}: {identity.reference} is a certified identity; {name} must be an establishment's local identity",
            expression=name,
        )
    _not_merged(identity, name, ": decide on the survivor")


def _certified(identity: Identity, name: str) -> None:
    _mpi_identity(identity, name)
    if not identity.certified:
        raise unprocessable(
            f"{name}: {identity.reference} is a local identity ({identity.domain}); {name} must be a certified one",
            expression=name,
        )
    _not_merged(identity, name, ": link to the survivor")


def check_task(task: dict[str, Any] | None, task_id: str, about: set[str]) -> dict[str, Any]:
    """The review Task a decision closes: an open identity-review Task about one of the decision's identities."""
    if task is None:
        raise error(404, "not-found", f"task: Task/{task_id} does not exist")
    codes = {(c.get("system"), c.get("code")) for c in task.get("code", {}).get("coding", []) if isinstance(c, dict)}
    if (TASK_SYSTEM, REVIEW_CODE) not in codes:
        raise unprocessable(f"task: Task/{task_id} is not an identity-review Task", expression="task")
    if task.get("status") not in OPEN_TASK_STATUSES:
        raise conflict(f"task: Task/{task_id} is already {task.get('status')}")
    focus = str(task.get("focus", {}).get("reference", "")).removeprefix("Patient/")
    if about and focus not in about:
        named = ", ".join(f"Patient/{i}" for i in sorted(about))
        raise unprocessable(
            f"task: Task/{task_id} reviews Patient/{focus}, not the decision's identities ({named})",
            expression="task",
        )
    return task


# --- the decisions ---------------------------------------------------------------------------------------------------


def plan_link(local: Identity, target: Identity) -> Plan:
    """Link (or move the link of) a local identity to a certified one: validated."""
    _local(local, "local")
    _certified(target, "target")
    previous = local.linked_to
    if previous == target.id:
        raise conflict(f"local: {local.reference} is already linked to {target.reference}")
    entities = [("source", target.reference)]
    if previous:
        entities.append(("removal", f"Patient/{previous}"))
    new = with_links(local.resource, seealso=target.id, replaced_by=None)
    return Plan(Activity.LINK, [Write(local, new)], entities)


def plan_unlink(local: Identity) -> Plan:
    """Remove a local identity's link: provisional again (the matcher does not re-link an agent's decision)."""
    _local(local, "local")
    previous = local.linked_to
    if previous is None:
        raise conflict(f"local: {local.reference} is not linked to a certified identity (it is provisional)")
    new = with_links(local.resource, seealso=None, replaced_by=None)
    return Plan(Activity.UNLINK, [Write(local, new)], [("removal", f"Patient/{previous}")])


def plan_merge(source: Identity, target: Identity, linked_to_source: list[Identity]) -> Plan:
    """Merge ``source`` into the survivor ``target``.

    Certified identities: the source is retired (``active = false``, ``replaced-by`` the survivor) and every local
    identity linked to it is re-pointed to the survivor. Local identities (one domain): the source is retired, its
    link dropped; a survivor linked nowhere takes the source's link (re-pointed); two identities linked to
    different persons are refused (link or unlink first).
    """
    _mpi_identity(source, "source")
    _mpi_identity(target, "target")
    if source.id == target.id:
        raise unprocessable("source and target are the same identity: nothing to merge", expression="target")
    _not_merged(source, "source", " already")
    _not_merged(target, "target", ": merge into the survivor")
    if source.certified != target.certified:
        raise unprocessable(
            "a certified identity and a local one cannot be merged: link the local identity to the certified one",
            expression="target",
        )
    if not source.certified and source.domain != target.domain:
        raise unprocessable(
            f"local identities of two domains ({source.domain}, {target.domain}) cannot be merged: link each to the"
            " certified identity",
            expression="target",
        )
    retired = with_links(source.resource, seealso=None, replaced_by=target.id)
    retired["active"] = False
    writes = [Write(source, retired)]
    entities = [("source", target.reference)]
    if source.certified:
        for local in linked_to_source:
            if local.linked_to == source.id:
                writes.append(Write(local, with_links_keeping(local.resource, seealso=target.id), revision=True))
        return Plan(Activity.MERGE, writes, entities)
    kept, theirs = source.linked_to, target.linked_to
    if kept and theirs and kept != theirs:
        raise conflict(
            f"{source.reference} is linked to Patient/{kept} and {target.reference} to Patient/{theirs}: two"
            " persons; link or unlink one of them first"
        )
    if kept:
        entities.append(("removal", f"Patient/{kept}"))
        if not theirs:
            writes.append(Write(target, with_links_keeping(target.resource, seealso=kept), revision=True))
    return Plan(Activity.MERGE, writes, entities)


def with_links_keeping(resource: dict[str, Any], *, seealso: str | None) -> dict[str, Any]:
    """``resource`` with its seealso link set to ``seealso`` (None: removed), its replaced-by link kept."""
    return with_links(resource, seealso=seealso, replaced_by=_link(resource, "replaced-by"))


@dataclass(frozen=True)
class Revision:
    """An identity a merge re-pointed: its version before the merge, the version the merge wrote, and now."""

    before: dict[str, Any]
    by_merge: dict[str, Any]
    current: Identity


def plan_unmerge(source: Identity, survivor: str, before_merge: dict[str, Any], revisions: list[Revision]) -> Plan:
    """Undo the merge of ``source`` into ``survivor``: the source as it was before (active, its link), and exactly
    the identities that merge re-pointed pointed back — unless a later decision moved them since (then they are
    left as they are and named in ``skipped``)."""
    if source.merged_into != survivor:
        raise conflict(
            f"source: {source.reference} is now merged into Patient/{source.merged_into}, not into Patient/{survivor}"
            " as the recorded merge says: undo the later merge first"
        )
    restored = with_links(source.resource, seealso=_link(before_merge, "seealso"), replaced_by=None)
    if "active" in before_merge:
        restored["active"] = before_merge["active"]
    else:
        restored.pop("active", None)
    writes = [Write(source, restored)]
    skipped: list[str] = []
    for revision in revisions:
        current = revision.current
        set_by_merge = _link(revision.by_merge, "seealso")
        if current.linked_to != set_by_merge:
            now = f"Patient/{current.linked_to}" if current.linked_to else "nothing"
            skipped.append(f"{current.reference} is now linked to {now} (a later decision), left as it is")
            continue
        back = with_links_keeping(current.resource, seealso=_link(revision.before, "seealso"))
        writes.append(Write(current, back, revision=True))
    return Plan(Activity.UNMERGE, writes, [("removal", f"Patient/{survivor}")], skipped)


# --- the review Task -------------------------------------------------------------------------------------------------


def closed_task(
    task: dict[str, Any], when: str, decision: str, provenance: str | None, reason: str | None
) -> dict[str, Any]:
    """The review Task completed by a decision: status, end of execution, the decision (and its Provenance)."""
    closed = copy.deepcopy(task)
    closed["status"] = "completed"
    closed["lastModified"] = when
    period = dict(closed.get("executionPeriod") or {})
    period["end"] = when
    closed["executionPeriod"] = period
    if reason:
        closed["statusReason"] = {"text": reason}
    output: list[dict[str, Any]] = [
        {"type": {"coding": [{"system": OUTPUT_SYSTEM, "code": "decision"}]}, "valueCode": decision}
    ]
    if provenance:
        output.append(
            {
                "type": {"coding": [{"system": OUTPUT_SYSTEM, "code": "provenance"}]},
                "valueReference": {"reference": provenance},
            }
        )
    closed["output"] = output
    return closed
