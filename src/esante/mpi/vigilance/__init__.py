"""Identity-vigilance decisions: link, unlink, merge, unmerge and dismiss, as FHIR operations for the agency's cell.

``inputs`` reads the operations' Parameters, ``decisions`` plans the writes of each decision (pure: identities in,
new Patient versions out), ``notices`` builds the establishments' Communications, ``operations`` does the I/O:
loads, plans, writes everything of one decision in one transaction and answers. See docs/mpi-vigilance.md.
"""
