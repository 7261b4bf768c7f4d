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
from esante.dsp.model import DOCUMENT_TYPES, HIDDEN, PATIENT_PROVIDED, RESTRICTED
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
PATIENT_KINDS = frozenset({"patient", "assistant"})
READ_WRITE = (Kind.TRUSTED_CIRCLE, Kind.REFERENT)
GRANT_KINDS = (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP, Kind.EMERGENCY)


@dataclass(frozen=True)
class Professional:
    practitioner: str  # "" when the token's professional is not in the directory
    professions: tuple[str, ...]


def acting_professional(caller: Caller) -> Professional | None:
    """The professional a caller speaks for: a professional's token, or a system client's token naming one."""
    if caller.kind == "professional" or (
        caller.kind == "system" and caller.attributes.get("national_provider_identifier")
    ):
        practitioner = caller.attributes.get(PRACTITIONER)
        professions = caller.attributes.get(PROFESSIONS) or ()
        return Professional(practitioner if isinstance(practitioner, str) else "", tuple(professions))
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
        for name, sql, notable in self._document_paths(pro, res_type, letter, now):
            yield Grant(name, _condition(name, sql), notable=notable)

    def _document_paths(self, pro: Professional, res_type: str, letter: str, now: int) -> list[tuple[str, q.Sql, bool]]:
        """(rule name, SQL on the document row, notable) of each way ``pro`` reaches a document for ``letter``."""
        doc_type = "DocumentReference" if res_type == "Binary" else res_type
        p = pro.practitioner
        habilitation = self.context.habilitation
        reading = letter in "rs"
        if letter not in "rscu":
            return []
        classes = habilitation.reads(pro.professions) if reading else habilitation.writes(pro.professions)
        paths: list[tuple[str, q.Sql, bool]] = []

        def document(grant: q.Sql, refused_levels: tuple[str, ...]) -> q.Sql:
            """``grant`` for a list; for a document also its class and its confidentiality."""
            if doc_type != "DocumentReference":
                return grant
            return q.and_(grant, q.of_classes(classes), q.not_(q.labelled(refused_levels)))

        if letter in "rsu":  # what they authored: read and correct, whatever the grants (not create)
            param = "source" if doc_type == "List" else "author"
            paths.append(("dsp-author", q.and_(q.authored(p, param), q.open_dsp(now)), False))
        paths.append(("dsp-consent:trusted-circle-referent", document(q.granted(p, READ_WRITE, now), (HIDDEN,)), True))
        paths.append(
            ("dsp-consent:relationship", document(q.granted(p, (Kind.RELATIONSHIP,), now), (RESTRICTED, HIDDEN)), True)
        )
        if reading:
            essential = habilitation.essential
            emergency = q.granted(p, (Kind.EMERGENCY,), now, no_opt_out=True)
            if doc_type == "DocumentReference":
                essential_classes = q.of_classes(classes.intersect(essential))
                emergency = q.and_(emergency, essential_classes, q.not_(q.labelled((RESTRICTED, HIDDEN))))
            paths.append(("dsp-emergency-consent", emergency, True))
        if res_type == "Binary":
            paths = [(name, q.of_binary(sql), notable) for name, sql, notable in paths]
        return [(name, sql, notable) for name, sql, notable in paths if sql[0] != "1 = 0"]

    def _patients(self, pro: Professional, now: int) -> Iterable[Grant]:
        p = pro.practitioner
        yield Grant(
            "dsp-consent:patient",
            _condition(
                "DSP patient by grant",
                q.patient_granted(p, (Kind.TRUSTED_CIRCLE, Kind.REFERENT, Kind.RELATIONSHIP), now),
            ),
            notable=True,
        )
        yield Grant(
            "dsp-emergency-consent",
            _condition(
                "DSP patient by emergency access", q.patient_granted(p, (Kind.EMERGENCY,), now, no_opt_out=True)
            ),
            notable=True,
        )
        yield Grant("dsp-author", _condition("DSP patient of an authored document", q.patient_authored(p, now)))

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
        if res_type == "Patient":
            yield _condition("blocked by the patient", q.patient_blocked(p, now))
        elif res_type in DOCUMENT_TYPES:
            doc_type = "DocumentReference" if res_type == "Binary" else res_type
            param = "source" if doc_type == "List" else "author"
            # a blocked professional keeps what they authored (to read and correct), and adds nothing
            sql = q.blocked(p, now) if letter == "c" else q.and_(q.blocked(p, now), q.not_(q.authored(p, param)))
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
