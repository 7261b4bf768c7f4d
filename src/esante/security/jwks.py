"""The ``/.well-known/jwks.json`` document: framework-agnostic, mounted by app.py."""

from __future__ import annotations

from typing import Any

from esante.security.keys import KeyRing

# Verifiers refetch on an unknown kid; a short cache keeps a rotation visible within minutes.
CACHE_CONTROL = "public, max-age=300"


def jwks_document(keyring: KeyRing) -> dict[str, Any]:
    """The JSON Web Key Set of the server's published public keys (active and retired within their grace period)."""
    return keyring.jwks()
