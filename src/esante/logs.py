"""Structured logs: one JSON object per line on stderr, with the request id — and never a secret or health datum.

What the platform logs is chosen where it logs (ids of accounts and requests, event names, error types; never
resource content, query values, names or tokens). As a second line of defence, :func:`redact` blanks any field whose
name says it holds a secret, whatever a future log call passes. Each HTTP request binds its ``request_id``
(``X-Request-Id``, the same id as in the audit trail) to every line logged while it is served.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_FIELDS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "authorization",
        "password",
        "new_password",
        "code",
        "code_verifier",
        "client_assertion",
        "totp",
        "totp_code",
        "secret",
        "assertion",
        "cookie",
    }
)
REDACTED = "[redacted]"


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Blank every field named like a secret (``token``, ``password``, ``code``, ...)."""
    for key in list(event):
        if key.lower() in SECRET_FIELDS:
            event[key] = REDACTED
    return event


def _current_stderr(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines on ``stream`` (default stderr) at ``level``; safe to call again (tests, CLI, each worker)."""
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric if isinstance(numeric, int) else logging.INFO),
        # without an explicit stream, stderr is looked up at each write: a stream captured at configuration time
        # (a CLI test runner's, a closed one) would fail every later log line
        logger_factory=structlog.PrintLoggerFactory(stream) if stream is not None else _current_stderr,
        cache_logger_on_first_use=False,
    )
