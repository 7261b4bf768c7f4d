"""Sending e-mail through the operator's SMTP server (standard library ``smtplib``, run in a worker thread).

One connection per delivery run carries its messages one after the other. Each message's outcome is classified
so that the worker knows what to do with it:

- ``sent``: the server accepted it;
- ``refused`` (permanent): the server answered 5xx for this recipient or this message (mailbox unknown, message
  rejected) — retrying would get the same answer, the row goes to the dead letters at once;
- ``retry`` (transient): a 4xx answer for this message (greylisting, mailbox full, rate limit);
- ``unreachable``: the server could not be used at all (connection refused or lost, TLS or STARTTLS failure,
  login refused, sender refused, time-out). The run stops; every message it had not yet sent is retried later.

Security (``notify_smtp_security``): ``starttls`` (default; port 587), ``tls`` (implicit TLS, port 465) or
``none`` (a relay on a trusted network or loopback). Certificates are verified against the system's CAs or
``notify_smtp_ca_file``; a login is only sent over TLS unless the security is ``none``.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message

SECURITY_MODES = ("starttls", "tls", "none")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    ca_file: str = ""
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"notify_smtp_security must be one of {', '.join(SECURITY_MODES)}, not {self.security!r}")


@dataclass(frozen=True)
class SendResult:
    key: str  # the caller's key of the message (the notification id)
    outcome: str  # sent | refused | retry | unreachable
    reason: str = ""  # SMTP code and a short text, or the error class; never the address or the content


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=config.ca_file or None)


def _open(config: SmtpConfig) -> smtplib.SMTP:
    if config.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host,
            config.port,
            timeout=config.timeout,
            context=_tls_context(config),
            local_hostname=config.local_hostname,
        )
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout, local_hostname=config.local_hostname)
    try:
        client.ehlo()
        if config.security == "starttls":
            client.starttls(context=_tls_context(config))
            client.ehlo()
        if config.username:
            client.login(config.username, config.password)
    except BaseException:
        _quit(client)
        raise
    return client


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _short(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    first = message.splitlines()[0] if message else ""
    return f"{code} {first}"[:200]


def _unreachable(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {_short(exc.smtp_code, exc.smtp_error)}"
    return type(exc).__name__


def send_all(config: SmtpConfig, messages: Sequence[tuple[str, Message]]) -> list[SendResult]:
    """Send ``messages`` (key, message) over one connection; one result per message, in order. Blocking."""
    results: list[SendResult] = []
    try:
        client = _open(config)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        reason = _unreachable(exc)
        return [SendResult(key, "unreachable", reason) for key, _ in messages]
    try:
        for index, (key, message) in enumerate(messages):
            try:
                refused = client.send_message(message)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()), (550, b"refused"))
                results.append(SendResult(key, "refused" if code >= 500 else "retry", _short(code, text)))
                continue
            except smtplib.SMTPDataError as exc:
                outcome = "refused" if exc.smtp_code >= 500 else "retry"
                results.append(SendResult(key, outcome, _short(exc.smtp_code, exc.smtp_error)))
                _reset(client)
                continue
            except (smtplib.SMTPException, OSError) as exc:  # sender refused, disconnected, time-out: stop here
                reason = _unreachable(exc)
                results.extend(SendResult(k, "unreachable", reason) for k, _ in messages[index:])
                return results
            if refused:  # several recipients and some refused: ours have one, so this does not happen
                code, text = next(iter(refused.values()))
                results.append(SendResult(key, "refused" if code >= 500 else "retry", _short(code, text)))
            else:
                results.append(SendResult(key, "sent"))
    finally:
        _quit(client)
    return results


def _reset(client: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        client.rset()
