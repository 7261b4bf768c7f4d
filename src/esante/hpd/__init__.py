"""HPD — the healthcare provider directory (IHE mCSD): professionals, their right to practise, places of practice.

Modules: ``model`` (identifier systems, right-to-practise status), ``codes`` (professions code system),
``csv_source`` / ``ndjson_source`` (import formats) → ``lines`` → ``directory_import`` (the writer),
``ehealth_ledger`` (eHealthIDs, never reused), ``terminology`` (CodeSystems in the store), ``synthetic`` (a synthetic
national directory), ``cli`` (``esante hpd …``), ``plugin`` (wiring). See docs/hpd.md.
"""
