"""IHE PIXm ITI-104 (Patient Identity Feed) and every other write of a local identity, as hooks on Patient writes.

An establishment feeds its identities with plain FHIR (conditional ``PUT Patient?identifier=<domain>|<id>`` to add
or revise, the same with ``active = false`` and ``link`` replaced-by to merge, conditional ``DELETE``); HL7 v2 ADT
over MLLP arrives at the same writes. These hooks make them MPI writes:

- a Patient carrying an identifier of a registered establishment domain is a **local identity**: only that
  domain's identity source (its OAuth client) or an identity-vigilance agent may write it (403 otherwise); it
  belongs to one domain only (400);
- the level tag and the ``seealso`` links are the MPI's (or an identity-vigilance agent's), never the feed's: what
  the feed sends is replaced;
- a new or still provisional local identity is matched against the certified identities (:class:`Matcher`): with
  exactly one candidate above the auto-link threshold it is linked (``Patient.link`` seealso → validated, and a
  ``Provenance`` auto-link names the engine's parameter version and the probability); with several, or in the
  review band, it stays provisional and an identity-vigilance review Task is opened in the same transaction; below
  it stays provisional;
- an identity an agent has decided on (linked, unlinked, merged: any write of the MPI's own writer or of an
  identity-vigilance agent) carries the flag ``urn:esante:identity-flag|agent-decided`` and is never matched
  automatically again: an agent's unlink survives the establishment's next revision; the feed can neither set nor
  remove the MPI's flags;
- a validated identity keeps its link (only an agent's decision moves it); when a revision's traits no longer
  match the linked identity (a local id reused for somebody else: a *collision*), the link is kept and a review
  Task (reason ``collision``) is opened;
- a merge (``active = false`` + ``link`` replaced-by) must name a survivor of the same domain;
- certified identities (tagged ``certified``) are written only by the register import (no API caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from esante.db.engine import Connection
from esante.fhir.errors import FhirError, Issue, bad_request
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.fhir.model import micros_to_instant
from esante.mpi.model import (
    FLAG_SYSTEM,
    LEVEL_SYSTEM,
    LOCAL_DOMAIN_PREFIX,
    NATIONAL_SYSTEMS,
    IdentityLevel,
    level_tag,
)
from esante.mpi.people import level_of
from esante.mpi.provenance import Activity, decision_provenance, engine_agent
from esante.mpi.review import COLLISION, UNCERTAIN_LINK, open_review
from esante.security.policy import Caller

VIGILANCE_ROLE = "identity-vigilance"
AGENT_DECIDED = {"system": FLAG_SYSTEM, "code": "agent-decided"}


@dataclass(frozen=True)
class Candidate:
    """A certified identity the matcher proposes, with its probability (0..1) and decision."""

    patient_id: str
    probability: float
    decision: str  # auto-link | review | no-link
    grade: str  # certain | probable | possible | certainly-not
    agreement: dict[str, str]  # field → comparison level, for the review screen


class Matcher(Protocol):
    """Finds certified identities for a local one (the matching engine behind it: docs/mpi-matching.md), best
    first, without the ``no-link`` ones."""

    async def candidates(self, conn: Connection, patient: dict[str, Any], limit: int) -> list[Candidate]: ...


@dataclass
class _Pending:
    """What the first hook decided and the second writes once the identity has its id and version."""

    reviews: list[Candidate]
    reason: str = UNCERTAIN_LINK
    auto_link: Candidate | None = None


def _forbidden(text: str) -> FhirError:
    return FhirError(403, [Issue("forbidden", text)])


async def _domains_of(conn: Connection, resource: dict[str, Any]) -> dict[str, str | None]:
    """The registered establishment domains among the resource's identifier systems → their identity source."""
    systems = sorted(
        {
            i["system"]
            for i in resource.get("identifier", [])
            if isinstance(i, dict) and isinstance(i.get("system"), str) and i["system"] not in NATIONAL_SYSTEMS
        }
    )
    if not systems:
        return {}
    marks = ", ".join("?" * len(systems))
    rows = await conn.fetch(f"SELECT system, source_client_id FROM mpi_domain WHERE system IN ({marks})", systems)
    return {str(r[0]): (str(r[1]) if r[1] else None) for r in rows}


def _is_vigilance(caller: Caller) -> bool:
    return caller.kind == "staff" and VIGILANCE_ROLE in (caller.attributes.get("roles") or ())


def _links(resource: dict[str, Any], kind: str) -> list[str]:
    return [
        str(link["other"]["reference"]).removeprefix("Patient/")
        for link in resource.get("link", [])
        if isinstance(link, dict) and link.get("type") == kind and isinstance(link.get("other"), dict)
        and str(link["other"].get("reference", "")).startswith("Patient/")
    ]  # fmt: skip


class IdentityFeed:
    """The hooks (registered on a platform's :class:`HookRegistry`)."""

    def __init__(self, matcher: Matcher, review_limit: int = 3) -> None:
        self.matcher = matcher
        self.review_limit = review_limit
        self._pending: dict[int, _Pending] = {}  # id(resource dict) → what to write with it

    def install(self, hooks: HookRegistry) -> None:
        hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, self.before_write, {"Patient"})
        hooks.register(Pointcut.STORAGE_PRESTORAGE_UPDATE, self.before_write, {"Patient"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self.after_write, {"Patient"})
        hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, self.after_write, {"Patient"})

    async def before_write(self, event: HookEvent) -> None:
        resource = event.resource
        assert resource is not None
        caller = event.caller
        conn = event.session.conn
        previous = orjson.loads(event.previous.content) if event.previous and event.previous.content else None
        certified = any(
            tag.get("system") == LEVEL_SYSTEM and tag.get("code") == IdentityLevel.CERTIFIED.value
            for tag in resource.get("meta", {}).get("tag", [])
        ) or (previous is not None and level_of(previous) is IdentityLevel.CERTIFIED)
        if certified:
            if caller is not None:  # only the register import (an internal writer, no API caller) writes them
                raise _forbidden("certified identities come from the national register import, not from the API")
            return
        domains = await _domains_of(conn, resource)
        if not domains:
            if any(str(s).startswith(LOCAL_DOMAIN_PREFIX) for s in _systems(resource)):
                raise bad_request(
                    "the identifier's domain is not registered (esante mpi domains add)",
                    expression="Patient.identifier",
                )
            return
        if len(domains) > 1:
            raise bad_request("a local identity belongs to one identifier domain only", expression="Patient.identifier")
        ((system, source),) = domains.items()
        if caller is not None and not _is_vigilance(caller) and caller.attributes.get("client_id") != source:
            raise _forbidden(f"only the identity source of {system} may write its identities")
        trusted = caller is None or _is_vigilance(caller)  # the MPI's own writers and the agents decide links
        await self._shape(conn, resource, previous, system, trusted)

    async def _shape(
        self, conn: Connection, resource: dict[str, Any], previous: dict[str, Any] | None, system: str, trusted: bool
    ) -> None:
        """Set the level and the links: the MPI's (or an agent's), whatever the feed sent."""
        replaced_by = _links(resource, "replaced-by")
        # an agent's (or the MPI's own) write says where the identity is linked, or that it is linked nowhere;
        # a feed's write keeps the link the MPI made before
        if trusted:
            kept_link = _links(resource, "seealso")
        else:
            kept_link = _links(previous, "seealso") if previous is not None else []
        resource["link"] = [
            link for link in resource.get("link", []) if isinstance(link, dict) and link.get("type") != "seealso"
        ]
        if replaced_by:  # a merge: the survivor must be an identity of the same domain
            if resource.get("active") is not False:
                raise bad_request("a merged identity has active = false", expression="Patient.active")
            survivor = await conn.fetchval(
                "SELECT r.content FROM resource r WHERE r.res_type = 'Patient' AND r.res_id = ? AND r.is_current"
                " AND NOT r.deleted",
                (replaced_by[0],),
            )
            if survivor is None or system not in _systems(orjson.loads(bytes(survivor))):
                raise bad_request(
                    "the surviving identity (link replaced-by) must be an identity of the same domain",
                    expression="Patient.link",
                )
        flags = _flags(previous) if previous is not None else []
        if trusted and AGENT_DECIDED not in flags:
            flags.append(AGENT_DECIDED)
        decided = AGENT_DECIDED in flags
        level = IdentityLevel.PROVISIONAL
        pending: _Pending | None = None
        if kept_link:
            level = IdentityLevel.VALIDATED
            resource["link"].append({"other": {"reference": f"Patient/{kept_link[0]}"}, "type": "seealso"})
            if not trusted and previous is not None and resource.get("active") is not False:
                pending = await self._collision(conn, resource, kept_link[0])
        elif not replaced_by and not trusted and not decided:  # an agent's decision is not second-guessed
            found = await self.matcher.candidates(conn, resource, self.review_limit)
            sure = [c for c in found if c.decision == "auto-link"]
            if len(sure) == 1:
                level = IdentityLevel.VALIDATED
                resource["link"].append({"other": {"reference": f"Patient/{sure[0].patient_id}"}, "type": "seealso"})
                pending = _Pending([], auto_link=sure[0])
            elif found:  # several certain candidates are as uncertain as a probable one
                pending = _Pending(found)
        if pending is not None:
            if len(self._pending) > 1000:  # entries of writes that failed between the two hooks
                self._pending.clear()
            self._pending[id(resource)] = pending
        if not resource["link"]:
            del resource["link"]
        meta = dict(resource.get("meta") or {})
        kept = [t for t in meta.get("tag", []) if t.get("system") not in (LEVEL_SYSTEM, FLAG_SYSTEM)]
        meta["tag"] = [*kept, level_tag(level), *flags]
        resource["meta"] = meta

    async def _collision(self, conn: Connection, resource: dict[str, Any], linked: str) -> _Pending | None:
        """A revision of a linked identity whose traits no longer match the linked person: a review, not a move."""
        found = await self.matcher.candidates(conn, resource, self.review_limit + 1)
        if any(c.patient_id == linked for c in found):
            return None
        shown = [Candidate(linked, 0.0, "no-link", "certainly-not", {}), *found[: self.review_limit]]
        return _Pending(shown, reason=COLLISION)

    async def after_write(self, event: HookEvent) -> None:
        stored = event.stored
        if stored is None or stored.content is None or event.resource is None:
            return
        pending = self._pending.pop(id(event.resource), None)
        if pending is None:
            return
        if pending.reviews:
            await open_review(event.session, stored, pending.reviews, pending.reason)
        if pending.auto_link is not None:
            provenance = decision_provenance(
                Activity.AUTO_LINK,
                [f"Patient/{stored.res_id}/_history/{stored.version_id}"],
                micros_to_instant(stored.last_updated),
                engine_agent(getattr(self.matcher, "version", "") or "unknown"),
                entities=[("source", f"Patient/{pending.auto_link.patient_id}")],
                probability=pending.auto_link.probability,
            )
            await event.session.create(provenance, client_id=False)


def _flags(resource: dict[str, Any]) -> list[dict[str, str]]:
    """The MPI's flags on a stored identity (``meta.tag`` of :data:`FLAG_SYSTEM`), as plain system/code tags."""
    return [
        {"system": FLAG_SYSTEM, "code": str(t.get("code"))}
        for t in resource.get("meta", {}).get("tag", [])
        if isinstance(t, dict) and t.get("system") == FLAG_SYSTEM
    ]


def _systems(resource: dict[str, Any]) -> set[str]:
    return {str(i.get("system")) for i in resource.get("identifier", []) if isinstance(i, dict) and i.get("system")}
