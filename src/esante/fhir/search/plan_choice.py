"""Which searches may run on PostgreSQL's cached generic plans, and which must be planned with their values.

A search's SQL is planned either anew on every execution with its parameter values (a *custom* plan: right for
any value, but planning a DSP document search costs 1-2 ms, as much as running it) or once per connection (a
*generic* plan, reused whatever the values: no planning, but chosen for "average" values). Searches go by default
to the pool that forces custom plans (``db/engine.py``), because some generic plans are disastrous: a
DocumentReference search for one patient's documents of one LOINC type, newest first, took 25 ms instead of 2 on
its generic plan (it walks the date order and filters, as if every patient had few documents of that type).

A search scoped to one patient (``patient=`` or ``subject=`` with one value, chained ``patient.identifier=`` too,
or a Patient compartment search) and left in the default order has one good plan whatever the values: the
patient's index rows first, then the other conditions on those few rows. Measured on 1.46 M DocumentReferences
(``bench.dsp_explain``, the ITI-67 mix), generic plans halve those searches (a patient's current documents
3.5 → 1.7 ms, by matricule 5.7 → 2.1 ms, by class 2.5 → 1.7 ms) and lose on none but the sorted one. So these,
and only these, go to the pool of cached plans; anything else (a ``_sort``, several or no patients, a modifier
that leaves the patient, ``_has``, a POST ``_search`` whose parameters are in the body) stays planned per
execution. PostgreSQL itself still decides, after five custom plans, whether the generic one is good enough.

The risk kept: PostgreSQL picks the generic plan by its *estimated* cost, and an estimate made without the values
can be wrong — the sorted shape above went bad because a generic token equality (one LOINC type) is estimated as
rare while it matches a tenth of the documents. The unsorted shapes measured (the ITI-67 mix, the REST benchmark's
Observation searches) all kept the patient first; on other data a shape could not. The setting
``search_cached_plans_for_one_patient = false`` plans every search with its values again.
"""

from __future__ import annotations

from collections.abc import Sequence

PATIENT_PARAMS = frozenset({"patient", "subject"})


def _scopes_to_one_patient(name: str, value: str) -> bool | None:
    """True: the parameter names one patient; False: it defeats the scoping; None: it is about something else."""
    chain, _, modifier = name.partition(":")
    head, _, _rest = chain.partition(".")
    if head not in PATIENT_PARAMS:
        return None
    if modifier and modifier != "identifier" and not modifier[:1].isupper():  # :missing, :not, :text ...
        return False
    return bool(value) and "," not in value


def plan_depends_on_values(parts: Sequence[str], query: Sequence[tuple[str, str]]) -> bool:
    """Whether the search at path ``parts`` with ``query`` must be planned with its values (see the module)."""
    if not parts or parts[-1] == "_search":
        return True
    scoped = 1 if len(parts) == 3 and parts[0] == "Patient" else 0  # Patient/{id}/{type}: the compartment
    for name, value in query:
        if name.startswith(("_sort", "_has")):
            return True
        verdict = _scopes_to_one_patient(name, value)
        if verdict is False:
            return True
        if verdict:
            scoped += 1
    return scoped != 1
