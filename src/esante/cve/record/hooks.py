"""The CVE's storage hooks on Immunization: what must hold whoever writes (the API, an import, the CVE's jobs).

Before a version is stored (``STORAGE_PRESTORAGE_CREATE/UPDATE``):

1. the record origin is settled (validate.py ``settle_origin``);
2. **who writes** — an imported record comes from the import (a system client, staff or the platform itself), not
   from a professional; a professional (or a system client acting for one) writes only for a patient who authorised
   them *as a vaccinator*: checked here with the access rule's own SQL, before anything is said about the patient,
   so a refusal (403) tells an unauthorised writer nothing (existence, birth date) that the policy would hide;
3. the patient is a Patient of the platform (422 otherwise) and its birth date is read;
4. validate.py ``check_record`` fills (GS1 fields, product, manufacturer, ``primarySource``, ``reportOrigin``) and
   checks; all problems → one 422 OperationOutcome; ``recorded`` is set when absent; a performed act written by
   a vaccinator without a performer names them.

After the write (``STORAGE_PRECOMMIT_*``, same transaction) the context's record listeners are told which patient's
record changed.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson

from esante.cve import access_sql as q
from esante.cve.access_rule import acting_vaccinator
from esante.cve.consent import instant
from esante.cve.context import CveContext
from esante.cve.record.profile import Origin, patient_id_of
from esante.cve.record.validate import Facts, check_record, settle_origin
from esante.fhir.errors import FhirError, Issue
from esante.fhir.hooks import HookEvent, HookRegistry, Pointcut
from esante.fhir.store import StoreSession

__all__ = ["CveRecordHooks"]

_WRITERS_OF_IMPORTS = frozenset({"system", "staff"})
PERFORMER_FUNCTION = "http://terminology.hl7.org/CodeSystem/v2-0443"


def _acts_for_professional(caller: Any) -> bool:
    kind = getattr(caller, "kind", None)
    attributes = getattr(caller, "attributes", {}) or {}
    return kind == "professional" or (kind == "system" and bool(attributes.get("national_provider_identifier")))


async def authorised(session: StoreSession, practitioner: str, patient_id: str, now_micros: int) -> bool:
    """Whether ``patient_id`` authorised ``practitioner`` as a vaccinator, in force now (the rule's own SQL)."""
    inner, params = q.authorising_patients(practitioner, now_micros)
    await session.flush()
    row = await session.conn.fetchrow(f"SELECT 1 WHERE ? IN ({inner})", (patient_id, *params))
    return row is not None


class CveRecordHooks:
    def __init__(self, context: CveContext) -> None:
        self.context = context

    def install(self, hooks: HookRegistry) -> None:
        types = {"Immunization"}
        hooks.register(Pointcut.STORAGE_PRESTORAGE_CREATE, self.written, types)
        hooks.register(Pointcut.STORAGE_PRESTORAGE_UPDATE, self.written, types)
        hooks.register(Pointcut.STORAGE_PRECOMMIT_CREATED, self.changed, types)
        hooks.register(Pointcut.STORAGE_PRECOMMIT_UPDATED, self.changed, types)
        hooks.register(Pointcut.STORAGE_PRECOMMIT_DELETED, self.changed, types)

    async def written(self, event: HookEvent) -> None:
        resource = event.resource
        assert resource is not None
        previous = _content(event)
        origin, issues = settle_origin(resource, previous)
        caller = event.caller
        kind = getattr(caller, "kind", None)
        if origin is Origin.IMPORTED and caller is not None and kind not in _WRITERS_OF_IMPORTS:
            raise FhirError(
                403,
                [
                    Issue(
                        "forbidden",
                        "imported records are written by the import (a system client or staff), not by a "
                        "professional or a patient",
                        expression=("Immunization.extension",),
                    )
                ],
            )
        patient_id = patient_id_of(resource)
        practitioner = acting_vaccinator(caller) if caller is not None and _acts_for_professional(caller) else None
        if caller is not None and _acts_for_professional(caller):
            now = int(self.context.clock() * 1_000_000)
            if (
                practitioner is None
                or patient_id is None
                or not await authorised(event.session, practitioner, patient_id, now)
            ):
                raise FhirError(
                    403,
                    [Issue("forbidden", "access denied: not a vaccinator this patient authorised for their CVE")],
                )
        birth_date = None
        if patient_id is None:
            issues.append(
                Issue(
                    "required",
                    "patient must reference a Patient of the platform (Patient/<id>)",
                    expression=("Immunization.patient",),
                )
            )
        else:
            patient = await event.session.read("Patient", patient_id)
            if patient is None or patient.deleted or patient.content is None:
                issues.append(
                    Issue("not-found", f"Patient/{patient_id} is not known", expression=("Immunization.patient",))
                )
            else:
                birth = orjson.loads(patient.content).get("birthDate")
                birth_date = birth if isinstance(birth, str) else None
        if origin is not None:
            if origin is Origin.PERFORMED and practitioner is not None and not resource.get("performer"):
                resource["performer"] = [
                    {
                        "function": {"coding": [{"system": PERFORMER_FUNCTION, "code": "AP"}]},
                        "actor": {"reference": f"Practitioner/{practitioner}"},
                    }
                ]
            facts = Facts(
                today=self.context.today(),
                now=self.context.now().astimezone(UTC),
                birth_date=birth_date,
                known_cvx=await self.context.known_cvx(),
                products=self.context.products,
            )
            issues.extend(check_record(resource, origin, facts))
        if issues:
            raise FhirError(422, issues)
        if not resource.get("recorded"):
            resource["recorded"] = instant(self.context.now())

    async def changed(self, event: HookEvent) -> None:
        if not self.context.listeners:
            return
        patients: list[str] = []
        for content in (event.resource, _content(event)):
            patient = patient_id_of(content) if isinstance(content, dict) else None
            if patient is not None and patient not in patients:
                patients.append(patient)
        for patient in patients:
            for listener in self.context.listeners:
                await listener(event.session, patient)


def _content(event: HookEvent) -> dict[str, Any] | None:
    previous = event.previous
    if previous is None or previous.content is None:
        return None
    loaded = orjson.loads(previous.content)
    return loaded if isinstance(loaded, dict) else None
