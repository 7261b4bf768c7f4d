"""DSP — Dossier de Soins Partagé, the shared care record (docs/dsp.md).

What lives where:

- ``model.py``: the vocabulary shared with the MHD side (document classes, confidentiality codes, Consent kinds) and
  the DSP's settings;
- ``lifecycle*.py``: the record's life — opened for every certified identity, the refusal window, activation,
  refusal, close/reopen, retention and destruction with its proof (``require_accepting_documents`` and
  ``on_destroy`` are what the MHD side calls);
- ``grants*.py``: the patient-controlled grants, stored as FHIR ``Consent`` resources written by operations
  (trusted circle, MR03, therapeutic relationships, blocks, emergency access and its opt-out, assistants);
- ``access_*.py`` and ``habilitation.py``: THE access rule of the policy seam (``access_rule.DspAccessRule``);
- ``plugin.py``: ``install_dsp(platform)``; ``cli.py``: ``esante dsp ...``.

The MHD document interfaces (ITI-65/66/67/68) live in ``dsp/mhd/``.
"""
