"""API tests: the ``platform`` and ``client`` fixtures are in tests/conftest.py (shared by every test package)."""
