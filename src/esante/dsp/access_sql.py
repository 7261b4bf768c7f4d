"""The SQL of the DSP access rule: each fact it needs, as a condition on the row of the resource being decided.

Pure: functions return ``(sql, params)`` with ``{r}`` standing for the resource row (``resource`` table: ``rid``,
``res_id``) and ``?`` placeholders, to become :class:`~esante.security.pdp.restrictions.SqlCondition`\\ s. Every
fact is read where it lives, current state only, so a search, its total, a chain, an include, a history and a read
by id all get the same answer in one statement:

- a document's patient, class, confidentiality and authors: the search index (``idx_reference`` ``patient``,
  ``author``/``source``; ``idx_token`` ``category``, ``security-label``) — the current version's values, so an old
  version of a document hidden today is hidden too;
- a DSP's state: ``dsp_record`` (a pending record whose refusal window is over counts as active);
- the grants: ``dsp_grant`` (derived from the Consents); a PractitionerRole author: its ``practitioner``
  reference in the index; a Binary's document: ``dsp_binary``;
- the right to practise: the HPD's ``practising_sql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from esante.dsp.grants_model import Kind
from esante.dsp.habilitation import Classes
from esante.dsp.model import CONFIDENTIALITY_SYSTEM, DOCUMENT_CLASS_SYSTEM
from esante.hpd.practise import practising_sql

Sql = tuple[str, tuple[Any, ...]]

ACTIVE_RECORD = "(dsp_rec.status = 'active' OR (dsp_rec.status = 'pending' AND dsp_rec.window_ends_at <= ?))"
_PATIENT_OF = "dsp_pt.rid = {r}.rid AND dsp_pt.param = 'patient' AND dsp_pt.target_type = 'Patient'"


def _kinds(kinds: Sequence[Kind]) -> str:
    return ", ".join(f"'{kind.value}'" for kind in kinds)


def _in_force(alias: str) -> str:
    """Grant row ``alias`` active now (params: now, now)."""
    return (
        f"{alias}.status = 'active' AND ({alias}.starts_at IS NULL OR {alias}.starts_at <= ?)"
        f" AND ({alias}.ends_at IS NULL OR {alias}.ends_at > ?)"
    )


def and_(*parts: Sql) -> Sql:
    real = [p for p in parts if p[0] != "1 = 1"]
    if not real:
        return "1 = 1", ()
    if any(p[0] == "1 = 0" for p in real):
        return "1 = 0", ()
    return " AND ".join(f"({s})" for s, _ in real), tuple(v for _, ps in real for v in ps)


def governed() -> Sql:
    """A document or list of a patient who has a DSP (whatever its state)."""
    return (
        "EXISTS (SELECT 1 FROM idx_reference dsp_pt JOIN dsp_record dsp_rec ON dsp_rec.patient_id = dsp_pt.target_id"
        f" WHERE {_PATIENT_OF})",
        (),
    )


def open_dsp(now: int) -> Sql:
    """A document or list of a patient whose DSP is open now."""
    return (
        "EXISTS (SELECT 1 FROM idx_reference dsp_pt JOIN dsp_record dsp_rec ON dsp_rec.patient_id = dsp_pt.target_id"
        f" WHERE {_PATIENT_OF} AND {ACTIVE_RECORD})",
        (now,),
    )


def blocked(practitioner: str, now: int) -> Sql:
    """A document or list of a patient who blocked ``practitioner``."""
    return (
        "EXISTS (SELECT 1 FROM idx_reference dsp_pt JOIN dsp_grant dsp_g ON dsp_g.patient_id = dsp_pt.target_id"
        f" WHERE {_PATIENT_OF} AND dsp_g.practitioner_id = ? AND dsp_g.kind = '{Kind.BLOCK.value}'"
        f" AND {_in_force('dsp_g')})",
        (practitioner, now, now),
    )


def _author_condition(practitioner: str, param: str, roles: tuple[str, ...] | None) -> Sql:
    """Index row ``dsp_a`` is a ``param`` reference to ``practitioner`` or one of their PractitionerRoles (``roles``
    when the caller's are known, else looked up in the index)."""
    head = f"dsp_a.param = '{param}' AND"
    if roles is not None:
        if not roles:
            return f"{head} dsp_a.target_type = 'Practitioner' AND dsp_a.target_id = ?", (practitioner,)
        marks = ", ".join("?" * len(roles))
        return (
            f"{head} ((dsp_a.target_type = 'Practitioner' AND dsp_a.target_id = ?) OR"
            f" (dsp_a.target_type = 'PractitionerRole' AND dsp_a.target_id IN ({marks})))",
            (practitioner, *roles),
        )
    return (
        f"{head} ((dsp_a.target_type = 'Practitioner' AND dsp_a.target_id = ?)"
        " OR (dsp_a.target_type = 'PractitionerRole' AND dsp_a.target_id IN (SELECT dsp_role.res_id"
        " FROM idx_reference dsp_prr JOIN resource dsp_role"
        " ON dsp_role.rid = dsp_prr.rid AND dsp_role.is_current WHERE dsp_prr.res_type = 'PractitionerRole'"
        " AND dsp_prr.param = 'practitioner' AND dsp_prr.target_type = 'Practitioner' AND dsp_prr.target_id = ?)))",
        (practitioner, practitioner),
    )


def authored(practitioner: str, param: str, roles: tuple[str, ...] | None = None, *, probe: bool = False) -> Sql:
    """A resource whose ``param`` (``author`` of a DocumentReference, ``source`` of a List) names ``practitioner``
    or one of their PractitionerRoles. ``probe``: checked row by row (``OFFSET 0`` keeps PostgreSQL from making it
    a join), for a statement that must stay on a cached generic plan."""
    condition, params = _author_condition(practitioner, param, roles)
    fence = " OFFSET 0" if probe else ""
    return f"EXISTS (SELECT 1 FROM idx_reference dsp_a WHERE dsp_a.rid = {{r}}.rid AND {condition}{fence})", params


def document_access(
    practitioner: str,
    *,
    now: int,
    kinds: Sequence[Kind],
    classes: Classes | None,
    emergency_classes: Classes | None = None,
    author_param: str | None = None,
    roles: tuple[str, ...] | None = None,
) -> Sql:
    """A document (``classes`` given) or a list (``classes`` None) of an open DSP that ``practitioner`` reaches: as
    its author (``author_param``), or through a grant of one of ``kinds`` in force — trusted circle and MR03 every
    level but hidden (V), a relationship and an emergency normal (N) documents only, an emergency only in the
    ``emergency_classes`` and unless the patient opted out — always within ``classes``.

    One correlated EXISTS over the document's patient and their DSP, the ways in as ORed sub-conditions: the
    planner's work (which dominates a patient's search) stays close to the plain search's.
    """
    paths: list[str] = []
    params: list[Any] = []
    if author_param is not None:
        sql, values = authored(practitioner, author_param, roles)
        paths.append(sql)
        params += values
    document = classes is not None
    usable = [k for k in kinds if k in (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP, Kind.EMERGENCY)]
    if document and classes is not None and not classes:
        usable = []
    if usable:
        grant = (
            "EXISTS (SELECT 1 FROM dsp_grant dsp_g WHERE dsp_g.patient_id = dsp_pt.target_id"
            f" AND dsp_g.practitioner_id = ? AND dsp_g.kind IN ({_kinds(usable)}) AND {_in_force('dsp_g')}"
        )
        params += [practitioner, now, now]
        if document:
            assert classes is not None
            class_sql, class_params = of_classes(classes)
            if class_sql != "1 = 1":
                grant += f" AND {class_sql}"
                params += class_params
            limited = [k for k in usable if k in (Kind.RELATIONSHIP, Kind.EMERGENCY)]
            restricted = f" OR (dsp_l.code = 'R' AND dsp_g.kind IN ({_kinds(limited)}))" if limited else ""
            grant += (
                " AND NOT EXISTS (SELECT 1 FROM idx_token dsp_l WHERE dsp_l.rid = {r}.rid"
                f" AND dsp_l.param = 'security-label' AND dsp_l.system = ? AND (dsp_l.code = 'V'{restricted}))"
            )
            params.append(CONFIDENTIALITY_SYSTEM)
        if Kind.EMERGENCY in usable:
            emergency = (
                "NOT EXISTS (SELECT 1 FROM dsp_grant dsp_o WHERE dsp_o.patient_id = dsp_pt.target_id"
                f" AND dsp_o.kind = '{Kind.EMERGENCY_OPT_OUT.value}' AND {_in_force('dsp_o')})"
            )
            emergency_params: list[Any] = [now, now]
            if document and emergency_classes is not None:
                essential_sql, essential_params = of_classes(emergency_classes)
                emergency = f"{emergency} AND {essential_sql}"
                emergency_params += essential_params
            grant += f" AND (dsp_g.kind <> '{Kind.EMERGENCY.value}' OR ({emergency}))"
            params += emergency_params
        paths.append(grant + ")")
    if not paths:
        return "1 = 0", ()
    return (
        "EXISTS (SELECT 1 FROM idx_reference dsp_pt JOIN dsp_record dsp_rec ON dsp_rec.patient_id = dsp_pt.target_id"
        f" WHERE {_PATIENT_OF} AND {ACTIVE_RECORD} AND ({' OR '.join(paths)}))",
        (now, *params),
    )


def of_classes(classes: Classes) -> Sql:
    """A DocumentReference of one of ``classes`` (every class, and none, when ``classes.everything``)."""
    if classes.everything:
        return "1 = 1", ()
    if not classes.codes:
        return "1 = 0", ()
    codes = sorted(classes.codes)
    marks = ", ".join("?" * len(codes))
    return (
        "EXISTS (SELECT 1 FROM idx_token dsp_c WHERE dsp_c.rid = {r}.rid AND dsp_c.param = 'category'"
        f" AND dsp_c.system = ? AND dsp_c.code IN ({marks}))",
        (DOCUMENT_CLASS_SYSTEM, *codes),
    )


def labelled(levels: Sequence[str]) -> Sql:
    """A DocumentReference carrying one of the confidentiality ``levels``."""
    marks = ", ".join("?" * len(levels))
    return (
        "EXISTS (SELECT 1 FROM idx_token dsp_l WHERE dsp_l.rid = {r}.rid AND dsp_l.param = 'security-label'"
        f" AND dsp_l.system = ? AND dsp_l.code IN ({marks}))",
        (CONFIDENTIALITY_SYSTEM, *levels),
    )


def not_(part: Sql) -> Sql:
    if part[0] == "1 = 1":
        return "1 = 0", ()
    if part[0] == "1 = 0":
        return "1 = 1", ()
    return f"NOT ({part[0]})", part[1]


def own_patient(patient: str, now: int) -> Sql:
    """A document or list of ``patient`` whose DSP is open (the patient's personal area)."""
    return (
        "EXISTS (SELECT 1 FROM idx_reference dsp_pt JOIN dsp_record dsp_rec ON dsp_rec.patient_id = dsp_pt.target_id"
        f" WHERE {_PATIENT_OF} AND dsp_pt.target_id = ? AND {ACTIVE_RECORD})",
        (patient, now),
    )


def of_binary(inner: Sql) -> Sql:
    """A Binary whose ``securityContext`` DocumentReference satisfies ``inner`` (written for ``{r}``)."""
    sql = inner[0].replace("{r}", "dsp_doc")
    return (
        "EXISTS (SELECT 1 FROM dsp_binary dsp_b JOIN resource dsp_doc ON dsp_doc.res_type = 'DocumentReference'"
        f" AND dsp_doc.res_id = dsp_b.document_id AND dsp_doc.is_current WHERE dsp_b.rid = {{r}}.rid AND ({sql}))",
        inner[1],
    )


def own_grant(practitioner: str, kinds: Sequence[Kind], now: int) -> Sql:
    """A DSP Consent granting ``practitioner`` one of ``kinds``, of a DSP open now."""
    return (
        "EXISTS (SELECT 1 FROM dsp_grant dsp_g JOIN dsp_record dsp_rec ON dsp_rec.patient_id = dsp_g.patient_id"
        f" WHERE dsp_g.rid = {{r}}.rid AND dsp_g.practitioner_id = ? AND dsp_g.kind IN ({_kinds(kinds)})"
        f" AND {ACTIVE_RECORD})",
        (practitioner, now),
    )


def dsp_consent() -> Sql:
    return "EXISTS (SELECT 1 FROM dsp_grant dsp_g WHERE dsp_g.rid = {r}.rid)", ()


def _open_record_of_patient() -> str:
    """The DSP of the Patient row ``{r}`` is open now (params: now)."""
    return f"EXISTS (SELECT 1 FROM dsp_record dsp_rec WHERE dsp_rec.patient_id = {{r}}.res_id AND {ACTIVE_RECORD})"


def patient_granted(practitioner: str, kinds: Sequence[Kind], now: int, *, no_opt_out: bool = False) -> Sql:
    """A Patient whose DSP is open and who granted ``practitioner`` one of ``kinds``.

    Correlated on the Patient row (primary-key probes of ``dsp_grant`` and ``dsp_record``), never a set of the
    practitioner's patients: as ``res_id IN (...)`` PostgreSQL hashed every open DSP of the country for each
    chained search (``DocumentReference?patient.identifier=...``: 25 ms of its 27 ms at 66,000 DSPs).
    """
    sql = (
        "EXISTS (SELECT 1 FROM dsp_grant dsp_g WHERE dsp_g.patient_id = {r}.res_id AND dsp_g.practitioner_id = ?"
        f" AND dsp_g.kind IN ({_kinds(kinds)}) AND {_in_force('dsp_g')}"
    )
    params: list[Any] = [practitioner, now, now]
    if no_opt_out:
        sql += (
            " AND NOT EXISTS (SELECT 1 FROM dsp_grant dsp_o WHERE dsp_o.patient_id = dsp_g.patient_id"
            f" AND dsp_o.kind = '{Kind.EMERGENCY_OPT_OUT.value}' AND {_in_force('dsp_o')})"
        )
        params += [now, now]
    return f"{sql}) AND {_open_record_of_patient()}", (*params, now)


def patient_authored(practitioner: str, now: int, roles: tuple[str, ...] | None = None) -> Sql:
    """A Patient whose DSP is open and holds a document ``practitioner`` authored (or one of their roles).

    Correlated on the Patient row: the patient's documents (index ``patient`` references to them) probed for the
    author, not every document the practitioner ever authored joined to every DSP.
    """
    condition, params = _author_condition(practitioner, "author", roles)
    return (
        "EXISTS (SELECT 1 FROM idx_reference dsp_pt JOIN idx_reference dsp_a ON dsp_a.rid = dsp_pt.rid"
        " WHERE dsp_pt.res_type = 'DocumentReference' AND dsp_pt.param = 'patient'"
        " AND dsp_pt.target_type = 'Patient' AND dsp_pt.target_id = {r}.res_id"
        f" AND {condition}) AND {_open_record_of_patient()}",
        (*params, now),
    )


def patient_blocked(practitioner: str, now: int) -> Sql:
    return (
        "EXISTS (SELECT 1 FROM dsp_grant dsp_g WHERE dsp_g.patient_id = {r}.res_id AND dsp_g.practitioner_id = ?"
        f" AND dsp_g.kind = '{Kind.BLOCK.value}' AND {_in_force('dsp_g')})",
        (practitioner, now, now),
    )


def not_practising(practitioner: str) -> Sql:
    return f"NOT ({practising_sql('?')})", (practitioner,)
