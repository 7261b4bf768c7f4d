"""Which searches may run on PostgreSQL's cached generic plans, and which must be planned with their values.

A search's SQL is planned either anew on every execution with its parameter values (a *custom* plan: right for
any value, but planning a DSP document search costs 1-2 ms, as much as running it) or once per connection (a
*generic* plan, reused whatever the values: no planning, but chosen for "average" values). Searches go by default
to the pool that forces custom plans (``db/engine.py``), because some generic plans are disastrous: a
DocumentReference search for one patient's documents of one LOINC type, newest first, took 25 ms instead of 2 on
its generic plan (it walks the date order and filters, as if every patient had few documents of that type).

A search scoped to one patient (``patient=`` or ``subject=`` with one value, chained ``patient.identifier=`` too,
or a Patient compartment search) has one good plan whatever the values: the patient's index rows first, then the
other conditions checked on those few rows. Its SQL says so (``compile.where_clause``'s ``probes``: every other index
condition is a probe of the candidate row that PostgreSQL cannot turn into a join to start from), so its cached
generic plan cannot go wrong where the values would have mattered: a common LOINC type looks rare without its value
(the index tables hold every parameter) and the ordinary form's generic plan of "this patient's documents of this
type, newest first" hashed the 175,795 documents of that type (25 ms, seconds in the worst case, instead of 2).
Measured on 1.46 M DocumentReferences (``bench.dsp_explain``, the ITI-67 mix, trusted-circle physician), the probes
and cached plans together took every shape down: the patient's 10 newest 10.0 → 3.2 ms (p50), by type newest first
5.3 → 1.8, by class 3.6 → 1.8, all current 3.8 → 2.9. So these, sorted or not, go to the pool of cached plans;
anything else (several or no patients, a modifier that leaves the patient, ``_has``, a POST ``_search`` whose
parameters are in the body) stays planned per execution. PostgreSQL itself still decides, after five custom plans,
whether the generic one is good enough.

The probes are written only where a generic plan may run the search (a connection of the ordinary pool): planned
with its values, PostgreSQL may rightly start from a rare code among a patient's many rows. What is left to the
planner: the access rule's conditions (the DSP rule's grants and record, written as correlated ``EXISTS``) may
still be joined in another order; measured, they are not. The setting ``search_cached_plans_for_one_patient =
false`` plans every search with its values again (and so without probes).
"""

from __future__ import annotations

from collections.abc import Sequence

from esante.fhir.search.compile import PATIENT_PARAMS


def _scopes_to_one_patient(name: str, value: str) -> bool | None:
    """True: the parameter names one patient; False: it defeats the scoping; None: it is about something else."""
    chain, _, modifier = name.partition(":")
    head, _, _rest = chain.partition(".")
    if head not in PATIENT_PARAMS:
        return None
    if modifier and modifier != "identifier" and not modifier[:1].isupper():  # :missing, :not, :text ...
        return False
    return bool(value) and "," not in value


def scoped_to_one_patient(query: Sequence[tuple[str, str]], *, in_patient_compartment: bool = False) -> bool:
    """Whether ``query`` (searched in one patient's compartment, or not) is about exactly one patient."""
    scoped = 1 if in_patient_compartment else 0
    for name, value in query:
        if name.startswith("_has"):
            return False
        verdict = _scopes_to_one_patient(name, value)
        if verdict is False:
            return False
        if verdict:
            scoped += 1
    return scoped == 1


def plan_depends_on_values(parts: Sequence[str], query: Sequence[tuple[str, str]]) -> bool:
    """Whether the search at path ``parts`` with ``query`` must be planned with its values (see the module)."""
    if not parts or parts[-1] == "_search":
        return True
    compartment = len(parts) == 3 and parts[0] == "Patient"  # Patient/{id}/{type}
    return not scoped_to_one_patient(query, in_patient_compartment=compartment)
