"""Recording the capacity of each DSP document access in the audit trail (an annotator of the Auditor).

The policy decision cannot say it: it is taken once per interaction and resource *type*, before the documents
are known, and names the ways in a professional holds for *some* patient (the AuthZ-Consent event's rules). So
once the interaction is over, and before its REST AuditEvents are journaled, this annotator asks, for each event
about a patient who has a DSP, which ways in let the caller reach each document it names — the same SQL as the
access rule (``access_sql.py``), one way at a time, in one statement — and writes the answer into the event
(``access_log_model.annotate``). The audit trail keeps the capacity as it was at the time of the access, whatever
grants change later.

Cost: for a professional's search, one statement (whether the patient has a DSP, and the ways in the professional
holds for them); for any other DSP document access, a primary-key lookup of the DSP record, plus for a professional
one statement over the documents named; the professional's name comes from the token check's read of their
Practitioner. Nothing for interactions that touch no DSP document.
"""

from __future__ import annotations

from typing import Any

import orjson

from esante.db.engine import Connection, Database
from esante.dsp import access_sql as q
from esante.dsp.access_caller import IDENTITY, human_name, practitioner_identity
from esante.dsp.access_log_model import (
    DOCUMENT,
    GRANT_CAPACITY,
    WRITE,
    Action,
    Annotation,
    Capacity,
    DocumentFacts,
    Target,
    annotate,
    event_documents,
    event_patient,
    ordered,
    target_of,
)
from esante.dsp.access_rule import PRACTITIONER, Professional, acting_professional
from esante.dsp.context import DspContext
from esante.dsp.grants_model import Kind
from esante.dsp.model import reference_id
from esante.security.audit import AuditRecord
from esante.security.policy import Caller

WAYS = (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP, Kind.EMERGENCY)
_RECORD = "dsp-record"  # the row _held returns when the patient has a DSP (no grant kind is spelled so)
_CONTENT = "SELECT res_id, version_id, content FROM resource WHERE res_type = ? AND res_id = ? AND is_current"


class AccessLogCapture:
    """The annotator (``Auditor.add_annotator``): capacities, actions and names for the log."""

    def __init__(self, database: Database, context: DspContext) -> None:
        self.database = database
        self.context = context

    async def __call__(self, record: AuditRecord, events: list[dict[str, Any]]) -> None:
        target = target_of(record)
        if target is None:
            return
        todo = [(event, patient) for event in events if (patient := event_patient(event))]
        if not todo:
            return
        async with self.database.read() as conn:
            found = [
                (event, await self.annotation(conn, record.caller, target, event, patient)) for event, patient in todo
            ]
        for event, annotation in found:  # computed first, written after: a failure leaves the events as built
            if annotation is not None:
                annotate(event, annotation)

    async def annotation(
        self, conn: Connection, caller: Caller, target: Target, event: dict[str, Any], patient: str
    ) -> Annotation | None:
        professional = acting_professional(caller)
        person = caller.attributes.get("person_id")
        own_record = caller.kind in ("patient", "assistant") and person == patient
        held: tuple[Capacity, ...] | None = None
        if target.action == Action.SEARCH and not own_record and professional is not None and professional.practitioner:
            # a professional's search (most audited DSP accesses): whether the patient has a DSP and the ways in
            # the professional holds for them, in one statement
            held = await self._held(conn, professional, patient, self.context.now())
            if held is None:
                return None  # not a DSP patient: the platform's generic document store
        elif await conn.fetchval("SELECT 1 FROM dsp_record WHERE patient_id = ?", (patient,)) is None:
            return None
        documents = event_documents(event)
        if target.document and target.document not in documents:
            documents.append(target.document)
        actions = await self._actions(conn, target, documents)
        if not actions and target.action != Action.SEARCH:
            return None
        who = _Who()
        per_document: dict[str, tuple[Capacity, ...]]
        if caller.kind == "patient" and person == patient:
            per_document = {ref: (Capacity.PATIENT,) for ref in actions}
            base: tuple[Capacity, ...] = (Capacity.PATIENT,)
            who.reference = f"Patient/{patient}"
        elif caller.kind == "assistant" and person == patient:
            per_document = {ref: (Capacity.ASSISTANT,) for ref in actions}
            base = (Capacity.ASSISTANT,)
            fhir_user = caller.attributes.get("fhir_user")
            if isinstance(fhir_user, str) and fhir_user.startswith("Patient/"):
                who.reference = fhir_user
                who.name = await _name(conn, "Patient", fhir_user.split("/", 1)[1])
        elif professional is not None and professional.practitioner:
            if held is not None:
                per_document, base = {}, held
            else:
                per_document, base = await self._professional(conn, professional, patient, actions)
            who.reference = f"Practitioner/{professional.practitioner}"
            identity = caller.attributes.get(IDENTITY)
            if caller.attributes.get(PRACTITIONER) == professional.practitioner and isinstance(identity, tuple):
                who.name, who.ehealth_id = identity  # read by the token check, in this request
            else:
                who.name, who.ehealth_id = await _practitioner(conn, professional.practitioner)
        elif caller.kind == "system" and professional is None:
            per_document = {ref: (Capacity.ESTABLISHMENT,) for ref in actions}
            base = (Capacity.ESTABLISHMENT,)
        else:
            per_document = {ref: (Capacity.OTHER,) for ref in actions}
            base = (Capacity.OTHER,)
        facts = {
            ref: DocumentFacts(action, per_document.get(ref) or (Capacity.OTHER,), replaces)
            for ref, (action, replaces) in actions.items()
        }
        capacities = ordered([c for f in facts.values() for c in f.capacities] + list(base))
        return Annotation(
            capacities or (Capacity.OTHER,),
            facts,
            Action.SEARCH if target.action == Action.SEARCH else None,
            who.reference,
            who.name,
            who.ehealth_id,
        )

    async def _actions(
        self, conn: Connection, target: Target, documents: list[str]
    ) -> dict[str, tuple[Action, str | None]]:
        """Each document's action (and what a replacement replaces); a write becomes file, replace or update by the
        stored version, and a document superseded by a replacement of the same interaction is not listed twice."""
        if target.action == Action.SEARCH:
            return {}
        if target.action != WRITE:
            return {ref: (Action(target.action), None) for ref in documents}
        written: dict[str, tuple[int, dict[str, Any]]] = {}
        for ref in documents:
            row = await conn.fetchrow(_CONTENT, (DOCUMENT, ref.split("/", 1)[1]))
            if row is not None and row[2] is not None:
                written[ref] = (int(row[1]), orjson.loads(bytes(row[2])))
        actions: dict[str, tuple[Action, str | None]] = {}
        superseded: set[str] = set()
        for ref, (version, content) in written.items():
            if version > 1:
                continue
            replaced = _replaces(content)
            actions[ref] = (Action.REPLACE, replaced) if replaced else (Action.FILE, None)
            if replaced:
                superseded.add(replaced)
        for ref, (version, _content) in written.items():
            if version > 1 and ref not in superseded:
                actions[ref] = (Action.UPDATE, None)
        return {ref: actions[ref] for ref in documents if ref in actions}

    async def _professional(
        self,
        conn: Connection,
        pro: Professional,
        patient: str,
        actions: dict[str, tuple[Action, str | None]],
    ) -> tuple[dict[str, tuple[Capacity, ...]], tuple[Capacity, ...]]:
        now = self.context.now()
        if not actions:  # a search: the ways in they hold for this patient
            return {}, await self._held(conn, pro, patient, now) or ()
        per_document: dict[str, tuple[Capacity, ...]] = {}
        for letter in ("r", "c", "u"):
            refs = [ref for ref, (action, _) in actions.items() if _letter(action) == letter]
            if refs:
                per_document.update(await self._ways(conn, pro, letter, refs, now))
        return per_document, ()

    async def _ways(
        self, conn: Connection, pro: Professional, letter: str, refs: list[str], now: int
    ) -> dict[str, tuple[Capacity, ...]]:
        """Which ways in reach each document for ``letter``, in one statement (a column per way)."""
        habilitation = self.context.habilitation
        classes = habilitation.reads(pro.professions) if letter == "r" else habilitation.writes(pro.professions)
        columns: list[tuple[Capacity | str, q.Sql]] = []
        for kind in pro.holds(*WAYS):
            if kind is Kind.EMERGENCY and letter != "r":
                continue  # an emergency access reads only
            sql = q.document_access(
                pro.practitioner,
                now=now,
                kinds=(kind,),
                classes=classes,
                emergency_classes=classes.intersect(habilitation.essential),
                roles=pro.roles,
            )
            if sql[0] != "1 = 0":
                columns.append((GRANT_CAPACITY[kind], sql))
        if letter != "c":
            columns.append((Capacity.AUTHOR, q.authored(pro.practitioner, "author", pro.roles)))
        if pro.holds(Kind.BLOCK):
            columns.append(("blocked", q.blocked(pro.practitioner, now)))
        if not columns:
            return {}
        selects = ", ".join(f"CASE WHEN {sql.replace('{r}', 'r')} THEN 1 ELSE 0 END" for _, (sql, _) in columns)
        params: list[Any] = [value for _, (_, values) in columns for value in values]
        ids = [ref.split("/", 1)[1] for ref in refs]
        marks = ", ".join("?" * len(ids))
        rows = await conn.fetch(
            f"SELECT r.res_id, {selects} FROM resource r"
            f" WHERE r.res_type = 'DocumentReference' AND r.is_current AND r.res_id IN ({marks})",
            [*params, *ids],
        )
        found: dict[str, tuple[Capacity, ...]] = {}
        for row in rows:
            flags = {name for (name, _), value in zip(columns, row[1:], strict=True) if value}
            if "blocked" in flags:  # a blocked professional reaches only what they authored
                flags &= {Capacity.AUTHOR}
            found[f"{DOCUMENT}/{row[0]}"] = ordered(c for c in flags if isinstance(c, Capacity))
        return found

    async def _held(self, conn: Connection, pro: Professional, patient: str, now: int) -> tuple[Capacity, ...] | None:
        """The ways in ``pro`` holds for ``patient`` now: grants in force (an emergency unless opted out), and
        authorship of one of the patient's documents; a block leaves only authorship. None: the patient has no DSP.

        One statement, shaped so that PostgreSQL keeps a generic plan for it (planned once per connection, where
        planning it costs ~0.8 ms a search): the authorship probe reads the index rows only — they exist for
        current, undeleted documents alone, so no join to ``resource`` is needed — one document at a time up to the
        first authored (``LIMIT 1``, the author check a row probe): its estimated cost no longer depends on how
        many documents the plan expects the patient to have, so the generic plan is never estimated dearer than the
        custom ones (it was by 20 %, on 1.46 M documents, and PostgreSQL re-planned it at every search)."""
        kinds = ", ".join(f"'{k.value}'" for k in (*WAYS, Kind.BLOCK))
        probe = conn.dialect.is_postgres  # (SQLite plans every statement anew and knows no OFFSET without LIMIT)
        authored, author_params = q.authored(pro.practitioner, "author", pro.roles, probe=probe)
        rows = await conn.fetch(
            f"SELECT '{_RECORD}' FROM dsp_record WHERE patient_id = ?"
            " UNION ALL SELECT g.kind FROM dsp_grant g WHERE g.practitioner_id = ? AND g.patient_id = ?"
            f" AND g.kind IN ({kinds}) AND g.status = 'active' AND (g.starts_at IS NULL OR g.starts_at <= ?)"
            " AND (g.ends_at IS NULL OR g.ends_at > ?)"
            " UNION ALL SELECT o.kind FROM dsp_grant o WHERE o.patient_id = ?"
            f" AND o.kind = '{Kind.EMERGENCY_OPT_OUT.value}' AND o.status = 'active'"
            " AND (o.starts_at IS NULL OR o.starts_at <= ?) AND (o.ends_at IS NULL OR o.ends_at > ?)"
            " UNION ALL SELECT 'author' FROM (SELECT 1 FROM idx_reference pt"
            " WHERE pt.res_type = 'DocumentReference' AND pt.param = 'patient'"
            f" AND pt.target_type = 'Patient' AND pt.target_id = ? AND {authored.replace('{r}', 'pt')} LIMIT 1) a",
            [patient, pro.practitioner, patient, now, now, patient, now, now, patient, *author_params],
        )
        held = {str(row[0]) for row in rows}
        if _RECORD not in held:
            return None
        capacities = {GRANT_CAPACITY[k] for k in WAYS if k.value in held}
        if Kind.EMERGENCY_OPT_OUT.value in held:
            capacities.discard(Capacity.EMERGENCY)
        if Kind.BLOCK.value in held:
            capacities = set()
        if "author" in held:
            capacities.add(Capacity.AUTHOR)
        return ordered(capacities)


class _Who:
    reference: str | None = None
    name: str | None = None
    ehealth_id: str | None = None


def _letter(action: Action) -> str:
    if action in (Action.FILE, Action.REPLACE):
        return "c"
    if action == Action.UPDATE:
        return "u"
    return "r"


def _replaces(content: dict[str, Any]) -> str | None:
    for relation in content.get("relatesTo", []) or []:
        if isinstance(relation, dict) and relation.get("code") == "replaces":
            target = reference_id(relation.get("target"), DOCUMENT)
            if target:
                return f"{DOCUMENT}/{target}"
    return None


async def _content(conn: Connection, res_type: str, res_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(_CONTENT, (res_type, res_id))
    if row is None or row[2] is None:
        return None
    loaded: dict[str, Any] = orjson.loads(bytes(row[2]))
    return loaded


async def _name(conn: Connection, res_type: str, res_id: str) -> str | None:
    content = await _content(conn, res_type, res_id)
    return human_name(content) if content else None


async def _practitioner(conn: Connection, practitioner_id: str) -> tuple[str | None, str | None]:
    content = await _content(conn, "Practitioner", practitioner_id)
    return practitioner_identity(content) if content is not None else (None, None)
