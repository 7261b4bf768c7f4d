"""The SQL of the CVE access rule: each fact as a condition on the row of the resource being decided. Pure.

``{r}`` stands for the resource row (``resource``: ``rid``, ``res_id``), ``?`` for parameters. The authorisations
are read from the search index of their Consents (``patient``, ``actor``, ``category``, ``status``, ``period``) —
index rows describe current versions only — so a search, its total, a chain, an include and a read by id all get
the same answer in one statement, and a revocation applies from the transaction that writes it.
"""

from __future__ import annotations

from typing import Any

from esante.cve.consent import CONSENT_SYSTEM, VACCINATOR

Sql = tuple[str, tuple[Any, ...]]

CATEGORY_SYSTEM = "urn:esante:cve:category"  # Condition/Observation.category of the CVE's health parameters
CATEGORY_CODE = "cve"


def authorising_patients(practitioner: str, now_micros: int) -> Sql:
    """SELECT of the ids of the patients whose CVE authorisation of ``practitioner`` is in force now."""
    return (
        "SELECT cve_cp.target_id FROM idx_reference cve_ca"
        " JOIN idx_reference cve_cp ON cve_cp.rid = cve_ca.rid AND cve_cp.res_type = 'Consent'"
        " AND cve_cp.param = 'patient' AND cve_cp.target_type = 'Patient'"
        " JOIN idx_token cve_cc ON cve_cc.rid = cve_ca.rid AND cve_cc.res_type = 'Consent'"
        " AND cve_cc.param = 'category' AND cve_cc.system = ? AND cve_cc.code = ?"
        " JOIN idx_token cve_cs ON cve_cs.rid = cve_ca.rid AND cve_cs.res_type = 'Consent'"
        " AND cve_cs.param = 'status' AND cve_cs.code = 'active'"
        " WHERE cve_ca.res_type = 'Consent' AND cve_ca.param = 'actor' AND cve_ca.target_type = 'Practitioner'"
        " AND cve_ca.target_id = ?"
        " AND NOT EXISTS (SELECT 1 FROM idx_date cve_cd WHERE cve_cd.rid = cve_ca.rid AND cve_cd.res_type = 'Consent'"
        " AND cve_cd.param = 'period' AND (cve_cd.lo > ? OR cve_cd.hi < ?))",
        (CONSENT_SYSTEM, VACCINATOR, practitioner, now_micros, now_micros),
    )


def of_authorising_patient(practitioner: str, now_micros: int, param: str = "patient") -> Sql:
    """A resource whose ``param`` reference names a patient who authorised ``practitioner``."""
    inner, params = authorising_patients(practitioner, now_micros)
    return (
        "EXISTS (SELECT 1 FROM idx_reference cve_pt WHERE cve_pt.rid = {r}.rid AND cve_pt.param = ?"
        f" AND cve_pt.target_type = 'Patient' AND cve_pt.target_id IN ({inner}))",
        (param, *params),
    )


def authorising_patient(practitioner: str, now_micros: int) -> Sql:
    """A Patient who authorised ``practitioner``."""
    inner, params = authorising_patients(practitioner, now_micros)
    return f"{{r}}.res_id IN ({inner})", params


def own_authorisation(practitioner: str) -> Sql:
    """A CVE authorisation naming ``practitioner`` (any status: they may see what was given and withdrawn)."""
    return (
        "EXISTS (SELECT 1 FROM idx_reference cve_oa JOIN idx_token cve_oc ON cve_oc.rid = cve_oa.rid"
        " AND cve_oc.param = 'category' AND cve_oc.system = ? AND cve_oc.code = ?"
        " WHERE cve_oa.rid = {r}.rid AND cve_oa.param = 'actor' AND cve_oa.target_type = 'Practitioner'"
        " AND cve_oa.target_id = ?)",
        (CONSENT_SYSTEM, VACCINATOR, practitioner),
    )


def cve_consent() -> Sql:
    """A Consent of the CVE (a vaccinator authorisation)."""
    return (
        "EXISTS (SELECT 1 FROM idx_token cve_k WHERE cve_k.rid = {r}.rid AND cve_k.param = 'category'"
        " AND cve_k.system = ?)",
        (CONSENT_SYSTEM,),
    )


def cve_category() -> Sql:
    """A Condition or Observation filed as a health parameter of the CVE."""
    return (
        "EXISTS (SELECT 1 FROM idx_token cve_g WHERE cve_g.rid = {r}.rid AND cve_g.param = 'category'"
        " AND cve_g.system = ? AND cve_g.code = ?)",
        (CATEGORY_SYSTEM, CATEGORY_CODE),
    )
