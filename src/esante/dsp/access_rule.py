"""THE DSP access rule: who may see and write what of a patient's shared care record (PLATFORM.md "Who sees what").

One rule of the policy seam (``platform.policy.add_rule``), so every path — read, vread, search and its total,
chains, ``_include``/``_revinclude``, history, Binary, batch entries, operations' reads — gets the same answer. It
governs the rows of ``DocumentReference``, ``List`` (SubmissionSet, Folder) and ``Binary`` (through its
``securityContext`` DocumentReference) about a patient who has a DSP, and the DSP's grant ``Consent``\\ s; every
fact is read in SQL (``access_sql.py``), so searches filter in one statement and totals never count what the caller
may not see.

Who gets what (docs/dsp.md has the table mapped to PLATFORM.md):

- patients and assistants: their compartment (the platform's patient rule; hidden documents included); creating
  in their personal area (class ``patient-provided``) while the DSP is open;
- a professional, or a system client acting for one (IUA ``national_provider_identifier``):

  * the documents they authored (``DocumentReference.author``, ``List.source``: their Practitioner or one of
    their PractitionerRoles), to read and correct;
  * trusted circle and MR03: read/write every document but the hidden ones (V);
  * a therapeutic relationship in force: read/write normal (N) documents;
  * an emergency access in force, unless the patient opted out: read-only, normal documents of the essential
    classes;
  * always within the classes their profession is habilitated for; their own grant Consents; the Patient of a
    DSP they reach (for chains and includes);

- vetoes: a DSP that is not open (pending, refused, closed, destroyed) gives nothing at all, authored documents
  included; a block gives nothing but what they authored; a lost right to practise gives nothing;
- a system client acting as the establishment (no professional named): writes by its scopes, no read of DSP
  documents, lists, Binaries or grants (unless the ``dsp_establishment_reads`` setting lets it read by its scopes);
- everyone through the API: no delete of a DSP document, no write of a DSP grant Consent (the DSP's operations
  write them).

Each consent-based and emergency grant is *notable*: the decision gets its own AuthZ-Consent AuditEvent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from esante.dsp import access_sql as q
from esante.dsp.context import DspContext
from esante.dsp.grants_model import Kind, kind_of
from esante.dsp.habilitation import Classes
from esante.dsp.model import DOCUMENT_TYPES, PATIENT_PROVIDED
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import (
    EVERYTHING,
    NOTHING,
    AllOf,
    Not,
    Restriction,
    SqlCondition,
    all_of,
    any_of,
    none_of,
)
from esante.security.policy import Caller

PRACTITIONER = "dsp_practitioner"  # caller attribute: the professional's Practitioner id ("" when unknown)
PROFESSIONS = "dsp_professions"  # caller attribute: their profession codes (urn:esante:hpd:profession)
ROLES = "dsp_roles"  # caller attribute: their PractitionerRoles' ids
KINDS = "dsp_kinds"  # caller attribute: the grant kinds (codes) they hold in force for some patient
PATIENT_KINDS = frozenset({"patient", "assistant"})
READ_WRITE = (Kind.TRUSTED_CIRCLE, Kind.REFERENT)
GRANT_KINDS = (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP, Kind.EMERGENCY)


@dataclass(frozen=True)
class Professional:
    practitioner: str  # "" when the token's professional is not in the directory
    professions: tuple[str, ...]
    roles: tuple[str, ...] | None = None  # their PractitionerRoles' ids (None: unknown, the SQL looks them up)
    kinds: frozenset[Kind] | None = None  # the grant kinds they hold in force anywhere (None: unknown, all)

    def holds(self, *kinds: Kind) -> list[Kind]:
        return [k for k in kinds if self.kinds is None or k in self.kinds]


def acting_professional(caller: Caller) -> Professional | None:
    """The professional a caller speaks for: a professional's token, or a system client's token naming one."""
    if caller.kind == "professional" or (
        caller.kind == "system" and caller.attributes.get("national_provider_identifier")
    ):
        practitioner = caller.attributes.get(PRACTITIONER)
        professions = caller.attributes.get(PROFESSIONS) or ()
        roles = caller.attributes.get(ROLES)
        kinds = caller.attributes.get(KINDS)
        return Professional(
            practitioner if isinstance(practitioner, str) else "",
            tuple(professions),
            tuple(roles) if isinstance(roles, tuple | list) else None,
            frozenset(Kind(k) for k in kinds) if isinstance(kinds, tuple | list | frozenset) else None,
        )
    return None


def _condition(name: str, sql: q.Sql) -> Restriction:
    if sql[0] == "1 = 1":
        return EVERYTHING
    if sql[0] == "1 = 0":
        return NOTHING
    return SqlCondition(name, sql[0], sql[1])


class DspAccessRule:
    name = "dsp-access"

    def __init__(self, context: DspContext) -> None:
        self.context = context

    # --- the rule's two questions ---------------------------------------------------------------------------------
    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        caller, res_type, letter = request.caller, request.resource_type, request.letter
        if caller.kind in PATIENT_KINDS:
            yield from self._personal_area(caller, res_type, letter)
            return
        professional = acting_professional(caller)
        if professional is not None and professional.practitioner:
            yield from self._professional(professional, res_type, letter)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        caller, res_type, letter = request.caller, request.resource_type, request.letter
        if res_type == "Consent" and letter in "cud":
            yield self._dsp_consent()  # only the DSP's operations write its grants
        if res_type in DOCUMENT_TYPES and letter == "d":
            yield self._governed(res_type)  # a DSP document is destroyed with its DSP, never deleted by the API
        professional = acting_professional(caller)
        if professional is not None:
            yield from self._professional_vetoes(caller, professional, res_type, letter)
        elif (
            caller.kind == "system"
            and letter in "rs"
            and res_type in DOCUMENT_TYPES | {"Consent"}
            and not self.context.settings.establishment_reads
        ):
            # the establishment itself (no professional named): the DSP grants professionals, not institutions
            yield self._dsp_consent() if res_type == "Consent" else self._governed(res_type)

    # --- patients and assistants -------------------------------------------------------------------------------
    def _personal_area(self, caller: Caller, res_type: str, letter: str) -> Iterable[Grant]:
        person = caller.attributes.get("person_id")
        if letter != "c" or res_type not in DOCUMENT_TYPES or not isinstance(person, str) or not person:
            return
        now = self.context.now()
        own = q.own_patient(person, now)
        if res_type == "List":
            yield Grant("dsp-personal-area", _condition("own DSP", own))
            return
        document = q.and_(own, q.of_classes(Classes(frozenset({PATIENT_PROVIDED}))))
        if res_type == "Binary":
            document = q.of_binary(document)
        yield Grant("dsp-personal-area", _condition("own patient-provided document", document))

    # --- professionals -------------------------------------------------------------------------------------------
    def _professional(self, pro: Professional, res_type: str, letter: str) -> Iterable[Grant]:
        now = self.context.now()
        p = pro.practitioner
        if res_type == "Patient":
            if letter in "rs":
                yield from self._patients(pro, now)
            return
        if res_type == "Consent":
            if letter in "rs":
                yield Grant("dsp-own-grants", _condition("own DSP grants", q.own_grant(p, GRANT_KINDS, now)))
            return
        if res_type not in DOCUMENT_TYPES:
            return
        restriction = _condition("DSP documents", self._documents(pro, res_type, letter, now))
        if restriction is NOTHING:
            return
        # one restriction; a grant per capacity the professional holds, so the decision names them (audit) and
        # is notable when a consent (or an emergency) may be what lets them in
        names: list[tuple[str, bool]] = []
        if letter in "rsu":
            names.append(("dsp-author", False))
        if pro.holds(Kind.TRUSTED_CIRCLE, Kind.REFERENT):
            names.append(("dsp-consent:trusted-circle-referent", True))
        if pro.holds(Kind.RELATIONSHIP):
            names.append(("dsp-consent:relationship", True))
        if letter in "rs" and pro.holds(Kind.EMERGENCY):
            names.append(("dsp-emergency-consent", True))
        for name, notable in names:
            yield Grant(name, restriction, notable=notable)

    def _documents(self, pro: Professional, res_type: str, letter: str, now: int) -> q.Sql:
        """The SQL of what ``pro`` reaches of a document type for ``letter`` (authored, or by their grants)."""
        if letter not in "rscu":
            return "1 = 0", ()
        doc_type = "DocumentReference" if res_type == "Binary" else res_type
        habilitation = self.context.habilitation
        reading = letter in "rs"
        kinds = pro.holds(Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP)
        if reading:
            kinds += pro.holds(Kind.EMERGENCY)
        classes = habilitation.reads(pro.professions) if reading else habilitation.writes(pro.professions)
        sql = q.document_access(
            pro.practitioner,
            now=now,
            kinds=kinds,
            classes=classes if doc_type == "DocumentReference" else None,
            emergency_classes=classes.intersect(habilitation.essential),
            # what they authored: read and correct, whatever the grants (not create)
            author_param=("source" if doc_type == "List" else "author") if letter in "rsu" else None,
            roles=pro.roles,
        )
        return q.of_binary(sql) if res_type == "Binary" and sql[0] != "1 = 0" else sql

    def _patients(self, pro: Professional, now: int) -> Iterable[Grant]:
        """The Patients of the DSPs ``pro`` reaches (for chains such as ``patient.identifier`` and includes)."""
        p = pro.practitioner
        kinds = pro.holds(Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP)
        if kinds:
            condition = _condition("DSP patient by grant", q.patient_granted(p, kinds, now))
            yield Grant("dsp-consent:patient", condition, notable=True)
        if pro.holds(Kind.EMERGENCY):
            emergency = q.patient_granted(p, (Kind.EMERGENCY,), now, no_opt_out=True)
            yield Grant("dsp-emergency-consent", _condition("DSP patient by emergency access", emergency), notable=True)
        authored = q.patient_authored(p, now, pro.roles)
        yield Grant("dsp-author", _condition("DSP patient of an authored document", authored))

    def _professional_restriction(self, pro: Professional, res_type: str, letter: str) -> Restriction:
        """Everything ``pro`` may reach of ``res_type`` for ``letter`` (grants and their vetoes), as one
        restriction (a system client acting for them gets no more)."""
        if not pro.practitioner:
            return NOTHING
        request_grants = list(self._professional(pro, res_type, letter))
        granted = any_of(g.restriction for g in request_grants)
        return all_of([granted, none_of(list(self._own_vetoes(pro, res_type, letter)))])

    def _professional_vetoes(
        self, caller: Caller, pro: Professional, res_type: str, letter: str
    ) -> Iterable[Restriction]:
        if caller.kind == "professional":
            yield from self._own_vetoes(pro, res_type, letter)
            return
        # a system client acting for a professional: its scopes grant everything; the DSP's rows only as far as
        # the professional may reach them
        if res_type in DOCUMENT_TYPES or res_type == "Consent":
            governed = self._dsp_consent() if res_type == "Consent" else self._governed(res_type)
            allowed = self._professional_restriction(pro, res_type, letter)
            if allowed is NOTHING:
                yield governed
            elif allowed is not EVERYTHING:
                yield AllOf((governed, Not(allowed)))

    def _own_vetoes(self, pro: Professional, res_type: str, letter: str) -> Iterable[Restriction]:
        if not pro.practitioner or res_type not in DOCUMENT_TYPES | {"Consent", "Patient"}:
            return
        p = pro.practitioner
        now = self.context.now()
        yield _condition("right to practise not active", q.not_practising(p))
        if not pro.holds(Kind.BLOCK):
            return  # blocked by nobody
        if res_type == "Patient":
            yield _condition("blocked by the patient", q.patient_blocked(p, now))
        elif res_type in DOCUMENT_TYPES:
            doc_type = "DocumentReference" if res_type == "Binary" else res_type
            param = "source" if doc_type == "List" else "author"
            # a blocked professional keeps what they authored (to read and correct), and adds nothing
            own = q.authored(p, param, pro.roles)
            sql = q.blocked(p, now) if letter == "c" else q.and_(q.blocked(p, now), q.not_(own))
            yield _condition("blocked by the patient", q.of_binary(sql) if res_type == "Binary" else sql)

    # --- what the rule governs -----------------------------------------------------------------------------------
    @staticmethod
    def _governed(res_type: str) -> Restriction:
        sql = q.governed()
        if res_type == "Binary":
            sql = q.of_binary(sql)
        return SqlCondition("DSP document", sql[0], sql[1])

    @staticmethod
    def _dsp_consent() -> Restriction:
        sql, params = q.dsp_consent()
        return SqlCondition("DSP grant", sql, params, check=lambda resource: kind_of(resource) is not None)
