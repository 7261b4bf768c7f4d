"""Fixtures of the security tests: a running authorization server (see oauth_support.py)."""

from tests.security.oauth_support import auth, start_server

__all__ = ["auth", "start_server"]
