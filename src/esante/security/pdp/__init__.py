"""The policy decision point: who may do what with which resources, decided in one place.

``engine.PolicyDecisionPoint.decide`` answers every (caller, action) with a :class:`decision.Decision` whose
``restriction`` says WHICH resources of the type the caller may touch; ``enforce`` applies it in SQL (searches,
totals, history, chains, ``_has``) and on loaded resources (read, vread, includes, writes). Rules live in
``rules/``, one module per kind of grant; a national service adds its rules there (e.g. a DSP rule module), never
in routes. See docs/security.md ("Policy decision point").
"""
