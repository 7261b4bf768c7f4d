"""The platform's access rules, one module per kind of grant. ``default_rules`` is what the platform starts with;
services append theirs (``PolicyDecisionPoint.add_rule``)."""

from __future__ import annotations

from esante.fhir.definitions import Registry
from esante.security.pdp.decision import Rule
from esante.security.pdp.rules.patient import PatientRule
from esante.security.pdp.rules.professional import ProfessionalRule
from esante.security.pdp.rules.staff import StaffRule, load_role_table
from esante.security.pdp.rules.system import SystemClientRule


def default_rules(registry: Registry, roles_file: str | None = None) -> list[Rule]:
    return [
        PatientRule(registry),
        ProfessionalRule(),
        StaffRule(load_role_table(roles_file)),
        SystemClientRule(),
    ]
