"""The yearly identity-vigilance report (``esante mpi report --year Y``): HTML + CSV with inline SVG charts.

``collect`` reads the database (the only I/O), ``records`` turns stored resources into small records, ``figures``
aggregates them (pure), ``charts`` draws SVG (pure), ``render`` writes HTML and CSV, ``run`` ties them together and
audits the run. What each figure means and where it comes from: docs/mpi-report.md.
"""
