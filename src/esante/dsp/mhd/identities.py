"""Who a submission is about and who wrote it: the patient resolved to a certified identity of the MPI, the authors to
professionals of the HPD (docs/dsp-mhd.md, "Patient" and "Authors").

These are the Document Recipient's own look-ups (the MPI's and the HPD's registers, read without the caller's
policy: nothing read here is returned to the caller); what the caller may write is decided by the policy when the
resources are written.

Patient: a reference to a Patient of this server (``Patient/id``, an absolute URL on our base, a conditional
``Patient?identifier=``), a logical reference by identifier (matricule ``urn:oid:1.3.182.4.4``, eSanté id
``urn:oid:1.3.182.2.4.2`` or an establishment domain of the MPI), or a Patient carried in the Bundle or contained in
the DocumentReference (``sourcePatientInfo``), resolved by its identifiers, else by the MPI's matching engine
(exactly one candidate at the grade ``mhd_patient_match_grade`` or better; ``certain`` by default). A merged identity
leads to its survivor, a validated local identity to its certified one; a provisional identity (linked to nobody)
or an unknown one is refused (422 XDSUnknownPatientId).

Authors (``DocumentReference.author``, ``List.source``): a Practitioner or PractitionerRole must be known to the HPD
(by reference, by identifier — the eHealthID ``urn:oid:1.3.182.2.8.1`` or any identifier the HPD holds — or, for a
contained one with no identifier, by its e-mail or phone) and may practise (an active Practitioner whose right to
practise is neither suspended nor withdrawn, an active role); references to Organizations, Devices and
RelatedPersons must exist; a Patient author is the patient the document is about. Contained Organizations and
Devices are descriptive (XDS authorInstitution) and kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from esante.db.engine import Connection
from esante.dsp.mhd.model import Xds, xds_error
from esante.fhir.errors import FhirError
from esante.fhir.model import StoredResource
from esante.identifiers.ehealth_id import EHEALTH_ID_SYSTEM
from esante.mpi.model import ESANTE_ID_SYSTEM, LOCAL_DOMAIN_PREFIX, MATRICULE_SYSTEM, IdentityLevel
from esante.mpi.people import level_of

if TYPE_CHECKING:
    from esante.mpi.engine import MatchingEngine

GRADES = {"certain": 3, "probable": 2, "possible": 1}
_MAX_HOPS = 5
_PATIENT_SYSTEMS = (MATRICULE_SYSTEM, ESANTE_ID_SYSTEM)
_PROFESSIONAL_TYPES = ("Practitioner", "PractitionerRole")
_DESCRIPTIVE_TYPES = ("Organization", "Device")


def unknown_patient(text: str, where: str) -> FhirError:
    return xds_error(422, Xds.UNKNOWN_PATIENT, text, expression=where)


def unknown_author(text: str, where: str) -> FhirError:
    return xds_error(422, Xds.REGISTRY_METADATA, text, expression=where, issue_type="processing")


@dataclass(frozen=True)
class Person:
    """A certified identity of the MPI."""

    patient_id: str
    identifiers: tuple[tuple[str, str], ...]  # (system, value) of its national identifiers

    @property
    def reference(self) -> str:
        return f"Patient/{self.patient_id}"


@dataclass(frozen=True)
class Professional:
    """A Practitioner or PractitionerRole of the HPD an author reference resolved to."""

    res_type: str
    res_id: str
    ehealth_id: str | None

    def reference(self) -> dict[str, Any]:
        reference: dict[str, Any] = {"reference": f"{self.res_type}/{self.res_id}"}
        if self.ehealth_id and self.res_type == "Practitioner":
            reference["identifier"] = {"system": EHEALTH_ID_SYSTEM, "value": self.ehealth_id}
        return reference


class Registers:
    """The MPI's and the HPD's registers as the Document Recipient reads them (one connection)."""

    def __init__(
        self, conn: Connection, base_url: str, engine: MatchingEngine | None, match_grade: str = "certain"
    ) -> None:
        if match_grade not in (*GRADES, "none"):
            raise ValueError(
                f"mhd_patient_match_grade must be certain, probable, possible or none, not {match_grade!r}"
            )
        self.conn = conn
        self.base_url = base_url.rstrip("/")
        self.engine = engine
        self.match_grade = match_grade

    # ----------------------------------------------------------------------------------------- reads
    async def _current(self, res_type: str, res_id: str) -> dict[str, Any] | None:
        row = await self.conn.fetchrow(
            "SELECT content FROM resource WHERE res_type = ? AND res_id = ? AND is_current AND NOT deleted",
            (res_type, res_id),
        )
        if row is None or row[0] is None:
            return None
        content: dict[str, Any] = orjson.loads(bytes(row[0]))
        return content

    async def _by_token(self, res_type: str, param: str, system: str | None, code: str) -> list[str]:
        """Ids of the current resources of ``res_type`` with ``param`` = ``system|code`` (any system if None)."""
        sql = (
            "SELECT DISTINCT r.res_id FROM idx_token t JOIN resource r ON r.rid = t.rid AND r.is_current"
            " AND NOT r.deleted WHERE t.res_type = ? AND t.param = ? AND t.code = ?"
        )
        params: list[Any] = [res_type, param, code]
        if system is not None:
            sql += " AND t.system = ?"
            params.append(system)
        rows = await self.conn.fetch(sql + " LIMIT 3", params)
        return [str(row[0]) for row in rows]

    def local_id(self, reference: str, res_type: str) -> str | None:
        """The id of ``Type/id`` or of an absolute URL on this server's base; None for anything else."""
        if reference.startswith(("http://", "https://")):
            split = urlsplit(reference)
            base = urlsplit(self.base_url)
            if (split.scheme, split.netloc) != (base.scheme, base.netloc) or not split.path.startswith(base.path):
                return None
            reference = split.path[len(base.path) :].strip("/")
        parts = reference.split("/")
        if len(parts) in (2, 4) and parts[0] == res_type and parts[1] and (len(parts) == 2 or parts[2] == "_history"):
            return parts[1]
        return None

    # ----------------------------------------------------------------------------------------- patients
    async def patient_by_reference(
        self, reference: dict[str, Any], where: str, carried: dict[str, dict[str, Any]]
    ) -> Person:
        """The certified person a Reference(Patient) designates; ``carried``: Patients in the Bundle (by fullUrl)
        and contained ones (by ``#id``)."""
        literal = reference.get("reference")
        if isinstance(literal, str):
            if literal in carried:
                return await self.patient_by_resource(carried[literal], where)
            if literal.startswith("Patient?"):
                criteria = dict(parse_qsl(literal.split("?", 1)[1]))
                if set(criteria) != {"identifier"} or "|" not in criteria["identifier"]:
                    raise unknown_patient(
                        f"{literal}: a conditional patient reference is Patient?identifier=system|value", where
                    )
                system, _, value = criteria["identifier"].partition("|")
                return await self.patient_by_identifier(system, value, where)
            patient_id = self.local_id(literal, "Patient")
            if patient_id is None:
                raise unknown_patient(
                    f"{literal} is not a Patient of this server: refer to the patient's identity in the MPI "
                    "(Patient/id, or its matricule or eSanté identifier)",
                    where,
                )
            return await self.patient_by_id(patient_id, where)
        identifier = reference.get("identifier")
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            return await self.patient_by_identifier(str(identifier["system"]), str(identifier["value"]), where)
        raise unknown_patient("the patient reference names no Patient (reference or identifier)", where)

    async def patient_by_id(self, patient_id: str, where: str) -> Person:
        resource = await self._current("Patient", patient_id)
        if resource is None:
            raise unknown_patient(f"Patient/{patient_id} is not known to the MPI", where)
        return await self._person_of(resource, where)

    async def patient_by_identifier(self, system: str, value: str, where: str) -> Person:
        if system not in _PATIENT_SYSTEMS and not system.startswith(LOCAL_DOMAIN_PREFIX):
            raise unknown_patient(
                f"{system} is not a patient identifier domain of the MPI (matricule {MATRICULE_SYSTEM}, eSanté id "
                f"{ESANTE_ID_SYSTEM}, or an establishment's domain)",
                where,
            )
        found = await self._by_token("Patient", "identifier", system, value)
        if not found:
            raise unknown_patient(f"no identity of the MPI has the identifier {system}|{value}", where)
        persons = {person.patient_id: person for person in [await self.patient_by_id(i, where) for i in found]}
        if len(persons) > 1:
            raise unknown_patient(f"the identifier {system}|{value} designates several persons", where)
        return next(iter(persons.values()))

    async def patient_by_resource(self, patient: dict[str, Any], where: str) -> Person:
        """A Patient sent in the Bundle (or contained): by its identifiers the MPI knows, else by matching."""
        persons: dict[str, Person] = {}
        for identifier in patient.get("identifier") or []:
            system, value = identifier.get("system"), identifier.get("value")
            if not (isinstance(system, str) and isinstance(value, str)):
                continue
            if system in _PATIENT_SYSTEMS or system.startswith(LOCAL_DOMAIN_PREFIX):
                try:
                    person = await self.patient_by_identifier(system, value, where)
                except FhirError:
                    continue  # an identifier the MPI does not know: others may tell
                persons[person.patient_id] = person
        if len(persons) > 1:
            raise xds_error(
                422, Xds.PATIENT_MISMATCH, "the Patient's identifiers designate different persons", expression=where
            )
        if persons:
            return next(iter(persons.values()))
        return await self._matched(patient, where)

    async def _matched(self, patient: dict[str, Any], where: str) -> Person:
        if self.engine is None or self.match_grade == "none":
            raise unknown_patient(
                "the Patient carries no identifier of the MPI (matricule, eSanté id or an establishment's domain)",
                where,
            )
        from esante.mpi.matching import RecordError

        probe = {k: v for k, v in patient.items() if k not in ("id", "meta", "text", "contained")}
        probe["resourceType"] = "Patient"
        try:
            candidates = await self.engine.lookup(self.conn, probe, 5)
        except RecordError as exc:
            raise unknown_patient(f"the Patient's traits cannot be matched: {exc}", where) from exc
        floor = GRADES[self.match_grade]
        good = [c for c in candidates if GRADES.get(c.grade, 0) >= floor]
        if len(good) != 1:
            found = "no identity" if not good else f"{len(good)} identities"
            raise unknown_patient(
                f"the Patient's traits match {found} of the MPI at the grade '{self.match_grade}' or better: "
                "send the matricule or the eSanté identifier",
                where,
            )
        return await self.patient_by_id(good[0].record_id, where)

    async def _person_of(self, resource: dict[str, Any], where: str) -> Person:
        """Follow a merge to the survivor and a validated identity to its certified one."""
        for _ in range(_MAX_HOPS):
            survivor = _linked(resource, "replaced-by")
            if survivor is None:
                break
            next_resource = await self._current("Patient", survivor)
            if next_resource is None:
                break
            resource = next_resource
        level = level_of(resource)
        if level is not IdentityLevel.CERTIFIED:
            certified = _linked(resource, "seealso") if level is IdentityLevel.VALIDATED else None
            linked = await self._current("Patient", certified) if certified else None
            if linked is None or level_of(linked) is not IdentityLevel.CERTIFIED:
                raise unknown_patient(
                    f"Patient/{resource.get('id')} is not linked to a certified identity of the MPI "
                    "(a DSP belongs to a certified person)",
                    where,
                )
            resource = linked
        identifiers = tuple(
            (str(i["system"]), str(i["value"]))
            for i in resource.get("identifier") or []
            if i.get("system") in _PATIENT_SYSTEMS and i.get("value")
        )
        return Person(str(resource["id"]), identifiers)

    # ----------------------------------------------------------------------------------------- authors
    async def author(
        self, reference: dict[str, Any], where: str, contained: dict[str, dict[str, Any]], person: Person
    ) -> dict[str, Any]:
        """Check one author reference; returns it normalised (a resolved professional becomes a literal
        reference to the HPD's resource with its eHealthID), or unchanged when it is descriptive."""
        literal = reference.get("reference")
        if isinstance(literal, str) and literal.startswith("#"):
            resource = contained.get(literal[1:])
            if resource is None:
                raise unknown_author(f"{literal} is not a contained resource of this resource", where)
            kind = resource.get("resourceType")
            if kind in _PROFESSIONAL_TYPES:
                found = await self._professional_of_contained(resource, where)
                return _merge(reference, found.reference())
            if kind in _DESCRIPTIVE_TYPES:
                return reference
            if kind == "Patient":
                return reference  # the patient as the source of a patient-provided document (descriptive)
            raise unknown_author(f"an author is a professional, an organisation or a device, not a {kind}", where)
        if isinstance(literal, str):
            for res_type in (*_PROFESSIONAL_TYPES, *_DESCRIPTIVE_TYPES, "Patient", "RelatedPerson"):
                res_id = self.local_id(literal, res_type)
                if res_id is None:
                    continue
                if res_type in _PROFESSIONAL_TYPES:
                    return _merge(reference, (await self._professional(res_type, res_id, where)).reference())
                return await self._other_author(res_type, res_id, reference, where, person)
            if literal.startswith(("Practitioner?", "PractitionerRole?")):
                res_type, criteria = literal.split("?", 1)
                query = dict(parse_qsl(criteria))
                system, _, value = query.get("identifier", "").partition("|")
                if set(query) != {"identifier"} or not value:
                    raise unknown_author(
                        f"{literal}: a conditional author reference is Type?identifier=system|value", where
                    )
                return _merge(reference, (await self._by_identifier(res_type, system, value, where)).reference())
            raise unknown_author(f"{literal} is not a professional of the HPD (not a resource of this server)", where)
        identifier = reference.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value"):
            types = [reference["type"]] if reference.get("type") in _PROFESSIONAL_TYPES else list(_PROFESSIONAL_TYPES)
            for res_type in types:
                try:
                    found = await self._by_identifier(
                        res_type, identifier.get("system"), str(identifier["value"]), where
                    )
                except FhirError:
                    continue
                return _merge(reference, found.reference())
            raise unknown_author(
                f"no professional of the HPD has the identifier {identifier.get('system')}|{identifier['value']}", where
            )
        raise unknown_author("an author reference names a resource or an identifier", where)

    async def _other_author(
        self, res_type: str, res_id: str, reference: dict[str, Any], where: str, person: Person
    ) -> dict[str, Any]:
        resource = await self._current(res_type, res_id)
        if resource is None:
            raise unknown_author(f"{res_type}/{res_id} is not known to this server", where)
        if res_type == "Patient":
            if (await self._person_of(resource, where)).patient_id != person.patient_id:
                raise unknown_author("a patient may author documents of their own DSP only", where)
            return {**reference, "reference": person.reference}
        if res_type == "RelatedPerson":
            patient = (resource.get("patient") or {}).get("reference", "")
            related = self.local_id(str(patient), "Patient")
            if related is None or (await self.patient_by_id(related, where)).patient_id != person.patient_id:
                raise unknown_author("a related person may author documents of the DSP of their patient only", where)
        return reference

    async def _professional_of_contained(self, resource: dict[str, Any], where: str) -> Professional:
        res_type = str(resource["resourceType"])
        identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
        identifiers.sort(key=lambda i: i.get("system") != EHEALTH_ID_SYSTEM)  # the eHealthID first
        for identifier in identifiers:
            try:
                return await self._by_identifier(res_type, identifier.get("system"), str(identifier["value"]), where)
            except FhirError:
                continue
        if identifiers:
            raise unknown_author(f"no professional of the HPD has the identifiers of this contained {res_type}", where)
        if res_type == "PractitionerRole":
            practitioner = (resource.get("practitioner") or {}).get("reference")
            res_id = self.local_id(str(practitioner), "Practitioner") if practitioner else None
            if res_id is None:
                raise unknown_author("a contained PractitionerRole names its practitioner or an identifier", where)
            return await self._professional("Practitioner", res_id, where)
        for telecom in resource.get("telecom") or []:
            if isinstance(telecom, dict) and telecom.get("system") in ("email", "phone") and telecom.get("value"):
                found = await self._by_token("Practitioner", "telecom", str(telecom["system"]), str(telecom["value"]))
                if len(found) == 1:
                    return await self._professional("Practitioner", found[0], where)
        raise unknown_author(
            "this contained Practitioner is no professional of the HPD: give its eHealthID "
            f"({EHEALTH_ID_SYSTEM}) or reference the HPD's Practitioner",
            where,
        )

    async def _by_identifier(self, res_type: str, system: Any, value: str, where: str) -> Professional:
        found = await self._by_token(res_type, "identifier", str(system) if system else None, value)
        if len(found) != 1:
            which = "no" if not found else "more than one"
            raise unknown_author(f"{which} {res_type} of the HPD has the identifier {system}|{value}", where)
        return await self._professional(res_type, found[0], where)

    async def _professional(self, res_type: str, res_id: str, where: str) -> Professional:
        """A Practitioner or PractitionerRole of the HPD whose professional may practise now (the right first: a
        withdrawal also makes the Practitioner and their roles inactive, and that is the reason to say)."""
        from esante.hpd.practise import has_right_to_practise

        resource = await self._current(res_type, res_id)
        if resource is None:
            raise unknown_author(f"{res_type}/{res_id} is not a professional of the HPD", where)
        practitioner_id, practitioner = res_id, resource
        if res_type == "PractitionerRole":
            reference = (resource.get("practitioner") or {}).get("reference")
            practitioner_id = (self.local_id(str(reference), "Practitioner") or "") if reference else ""
            loaded = await self._current("Practitioner", practitioner_id) if practitioner_id else None
            if loaded is None:
                raise unknown_author(f"PractitionerRole/{res_id} names no Practitioner of the HPD", where)
            practitioner = loaded
        if not await has_right_to_practise(self.conn, practitioner_id=practitioner_id):
            raise unknown_author(
                f"Practitioner/{practitioner_id} may not practise (right to practise suspended or withdrawn)", where
            )
        for name, checked in ((f"{res_type}/{res_id}", resource), (f"Practitioner/{practitioner_id}", practitioner)):
            if checked.get("active") is False:
                raise unknown_author(f"{name} is not active in the HPD", where)
        ehealth_id = next(
            (
                str(i["value"])
                for i in practitioner.get("identifier") or []
                if i.get("system") == EHEALTH_ID_SYSTEM and i.get("value")
            ),
            None,
        )
        return Professional(res_type, res_id, ehealth_id)


def _merge(original: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved reference, keeping the original's extensions (e.g. ihe-authorOrg) and display."""
    merged = {k: v for k, v in original.items() if k in ("extension", "display")}
    merged.update(resolved)
    return merged


def _linked(resource: dict[str, Any], link_type: str) -> str | None:
    for link in resource.get("link") or []:
        reference = (link.get("other") or {}).get("reference", "")
        if link.get("type") == link_type and isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


def stored_json(stored: StoredResource) -> dict[str, Any]:
    assert stored.content is not None
    content: dict[str, Any] = orjson.loads(stored.content)
    return content
