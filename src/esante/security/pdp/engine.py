"""The decision point: one function, :meth:`PolicyDecisionPoint.decide`, answers every (caller, action, type).

    rules' grants (OR)  AND  the token's SMART scopes (OR of the scopes that cover it)  AND NOT  the rules' vetoes

Default deny: no grant, no access. A rule says what a kind of person may do (a patient: their compartment); the
scopes say what this token may do (a patient app granted ``patient/Observation.rs`` reads only Observations).
A caller without a token gets only what a rule declaring ``serves_anonymous`` grants to an operation (the public
directory search), never a plain FHIR interaction.
Pure: no I/O, so every path (REST, bundles, operations, later MLLP and CLI) gets the same answer; enforcement is
``enforce.py``.
"""

from __future__ import annotations

from functools import lru_cache

from esante.fhir.definitions import Registry
from esante.security.pdp.decision import AccessRequest, Decision, Grant, Rule, letter_of
from esante.security.pdp.restrictions import (
    EVERYTHING,
    NOTHING,
    InCompartment,
    MatchesQuery,
    Restriction,
    all_of,
    any_of,
    describe,
    none_of,
)
from esante.security.policy import Action, Caller
from esante.security.scopes import ScopeError, ScopeSet, parse_scopes

# The SMART scope contexts a kind of caller may use. Patients' and assistants' "user" is themselves.
CONTEXTS: dict[str, tuple[str, ...]] = {
    "patient": ("patient", "user"),
    "assistant": ("patient", "user"),
    "professional": ("user", "patient"),
    "staff": ("user", "patient"),
    "system": ("system",),
}
_WORDS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@lru_cache(maxsize=4096)
def _scopes(raw: tuple[str, ...]) -> ScopeSet | None:
    try:
        return parse_scopes(raw)
    except ScopeError:
        return None


class PolicyDecisionPoint:
    """Holds the rules; answers decisions."""

    def __init__(self, registry: Registry, rules: list[Rule]) -> None:
        self.registry = registry
        self.rules = list(rules)

    def add_rule(self, rule: Rule) -> None:
        """Where a service plugs its rules in (e.g. the DSP access model)."""
        self.rules.append(rule)

    def decide(
        self, caller: Caller, action: Action, resource_type: str | None = None, letter: str | None = None
    ) -> Decision:
        """May ``caller`` perform ``action`` on resources of ``resource_type`` (default ``action.resource_type``)?

        ``letter`` overrides the permission the interaction needs (operations declare theirs).
        """
        res_type = resource_type or action.resource_type
        if res_type is None:
            raise ValueError("decide() needs a resource type; system-level actions are decided per type")
        letter = letter or letter_of(action)
        words = f"{_WORDS.get(letter, letter)} {res_type}"
        if caller.kind == "anonymous":
            return self._decide_anonymous(AccessRequest(caller, action, letter, res_type), words)
        if caller.kind not in CONTEXTS:
            return Decision(action, res_type, letter, NOTHING, reason=f"an authenticated account may {words}")
        request = AccessRequest(caller, action, letter, res_type)
        grants: list[Grant] = [g for rule in self.rules for g in rule.grants(request)]
        usable = [g for g in grants if not g.count_only] or grants
        granted = any_of(g.restriction for g in usable)
        if granted is NOTHING:
            return Decision(action, res_type, letter, NOTHING, reason=f"a {caller.kind} may not {words}")
        scope_limit = self._scope_limit(caller, letter, res_type)
        if scope_limit is NOTHING:
            context = CONTEXTS[caller.kind][0]
            return Decision(
                action,
                res_type,
                letter,
                NOTHING,
                reason=f"the access token's scopes do not allow to {words}",
                scope_denied=True,
                required_scope=f"{context}/{res_type}.{letter}",
            )
        vetoes = [(rule.name, v) for rule in self.rules for v in rule.vetoes(request)]
        restriction = all_of([granted, scope_limit, none_of([v for _, v in vetoes])])
        rules = tuple(dict.fromkeys(g.rule for g in usable))
        if restriction is NOTHING:
            vetoed = tuple(dict.fromkeys(name for name, _ in vetoes))
            return Decision(
                action, res_type, letter, NOTHING, rules, f"{words} is refused ({', '.join(vetoed)})", vetoed_by=vetoed
            )
        return Decision(
            action,
            res_type,
            letter,
            restriction,
            rules,
            reason=describe(restriction),
            count_only=all(g.count_only for g in usable),
            notable=any(g.notable for g in usable),
        )

    def _decide_anonymous(self, request: AccessRequest, words: str) -> Decision:
        """A caller without a token: only the rules that declare ``serves_anonymous`` may grant (the public
        directory search), never for a plain FHIR interaction; there are no scopes; every rule's vetoes apply."""
        action, res_type, letter = request.action, request.resource_type, request.letter
        grants = [
            g
            for rule in self.rules
            if getattr(rule, "serves_anonymous", False) and action.interaction == "operation"
            for g in rule.grants(request)
            if not g.count_only
        ]
        granted = any_of(g.restriction for g in grants)
        if granted is NOTHING:
            return Decision(action, res_type, letter, NOTHING, reason=f"an authenticated account may {words}")
        vetoes = [(rule.name, v) for rule in self.rules for v in rule.vetoes(request)]
        restriction = all_of([granted, none_of([v for _, v in vetoes])])
        rules = tuple(dict.fromkeys(g.rule for g in grants))
        if restriction is NOTHING:
            vetoed = tuple(dict.fromkeys(name for name, _ in vetoes))
            return Decision(
                action, res_type, letter, NOTHING, rules, f"{words} is refused ({', '.join(vetoed)})", vetoed_by=vetoed
            )
        return Decision(action, res_type, letter, restriction, rules, reason=describe(restriction))

    def _scope_limit(self, caller: Caller, letter: str, res_type: str) -> Restriction:
        """What the token's scopes allow of ``res_type`` for ``letter`` (EVERYTHING, a restriction or NOTHING)."""
        scopes = _scopes(tuple(caller.scopes))
        if scopes is None:
            return NOTHING
        parts: list[Restriction] = []
        for context in CONTEXTS[caller.kind]:
            limit: Restriction = EVERYTHING
            if context == "patient" and caller.kind not in ("patient", "assistant"):
                # a professional's or staff's patient/ scopes only reach the patient in the token's context
                person = caller.attributes.get("person_id")
                in_compartment = res_type == "Patient" or bool(self.registry.patient_compartment(res_type))
                if in_compartment:
                    limit = InCompartment((person,)) if isinstance(person, str) and person else NOTHING
            if scopes.allows(letter, res_type, context):
                parts.append(limit)
            for query in scopes.filters(letter, res_type, context):
                parts.append(all_of([limit, MatchesQuery(query)]))
        return any_of(parts)
