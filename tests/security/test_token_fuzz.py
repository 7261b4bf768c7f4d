"""Whatever arrives as a bearer token, verification refuses it with a TokenError (never another exception)."""

from __future__ import annotations

import base64
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esante.security.keys import KeyRing
from esante.security.tokens import TokenError, mint, verify
from tests.security.helpers import T0, FakeClock, settings_in

AUD, ISS = "https://esante.example/fhir", "https://esante.example"


def _ring(folder: Path) -> KeyRing:
    return KeyRing.load_or_create(settings_in(folder), clock=FakeClock())


def _refused(ring: KeyRing, token: str) -> None:
    try:
        verify(ring, token, audience=AUD, issuer=ISS, now=T0)
    except TokenError:
        return
    raise AssertionError("a mutated or random token was accepted")


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(max_size=300))
def test_random_text_is_refused(tmp_path: Path, text: str) -> None:
    _refused(_ring(tmp_path), text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(part=st.integers(0, 2), position=st.integers(0, 10_000), junk=st.text(min_size=1, max_size=8))
def test_mutated_tokens_are_refused(tmp_path: Path, part: int, position: int, junk: str) -> None:
    ring = _ring(tmp_path)
    token = mint(ring, issuer=ISS, audience=AUD, subject="patient:p", client_id="c", scope="openid", ttl=60, now=T0)
    parts = token.split(".")
    where = position % (len(parts[part]) + 1)
    mutated = parts[part][:where] + junk + parts[part][where:]
    if mutated == parts[part]:
        return
    original_signature = parts[2]
    parts[part] = mutated
    # junk a lenient base64 decoder drops leaves the same signature over the same signed text: not a forgery
    if part == 2 and _decoded(mutated) == _decoded(original_signature):
        return
    _refused(ring, ".".join(parts))


def _decoded(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        return None
