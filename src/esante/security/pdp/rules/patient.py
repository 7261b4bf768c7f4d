"""Patients and their DSP assistants: their own compartment (read and search), and the public directory.

A patient's token names the patient it is about (IHE IUA ``person_id``): their own Patient for a patient, the
assisted patient for an assistant (subject role ``assistant``; the resource server checks on every request that
the delegation is still active). Patients do not write through the FHIR API in this release: their writes (own
documents, consents) come with the services that define them.
"""

from __future__ import annotations

from collections.abc import Iterable

from esante.fhir.definitions import Registry
from esante.security.pdp.decision import AccessRequest, Grant
from esante.security.pdp.restrictions import EVERYTHING, InCompartment, Restriction, ViaSecurityContext
from esante.security.pdp.rules.directory import DIRECTORY_TYPES, READ_LETTERS

KINDS = frozenset({"patient", "assistant"})


class PatientRule:
    name = "patient-compartment"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def grants(self, request: AccessRequest) -> Iterable[Grant]:
        caller = request.caller
        if caller.kind not in KINDS or request.letter not in READ_LETTERS:
            return
        if request.resource_type in DIRECTORY_TYPES:
            yield Grant("public-directory", EVERYTHING)
            return
        person = caller.attributes.get("person_id")
        if not isinstance(person, str) or not person:
            return
        notable = caller.kind == "assistant"  # acting for another person is recorded as a decision of its own
        rule = "assistant-delegation" if notable else self.name
        if request.resource_type == "Binary":
            yield Grant(rule, ViaSecurityContext(), notable=notable)
        elif request.resource_type == "Patient" or self.registry.patient_compartment(request.resource_type):
            yield Grant(rule, InCompartment((person,)), notable=notable)

    def vetoes(self, request: AccessRequest) -> Iterable[Restriction]:
        return ()
