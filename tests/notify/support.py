"""A real SMTP server on loopback (aiosmtpd) and helpers to create notifications and accounts in a database."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from esante.db.engine import Database
from esante.fhir.store import ResourceStore
from esante.notify import Notified, notify
from tests.live_server import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """What the SMTP server accepted, and how it answers the next messages (``answers``: RCPT replies queue)."""

    messages: list[Received] = field(default_factory=list)
    rcpt_answers: list[str] = field(default_factory=list)  # e.g. "550 5.1.1 mailbox unknown"; empty: accept

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.mailbox.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.mailbox.messages)


@contextmanager
def smtp_server(port: int | None = None, **options: Any) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 (in its own thread) until the block ends."""
    mailbox = Mailbox()
    chosen = port or free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=chosen, ready_timeout=10, **options)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", chosen, mailbox)
    finally:
        controller.stop()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the certificate is its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def tls_options(folder: Path, username: str, password: str) -> dict[str, Any]:
    """aiosmtpd options: STARTTLS required, then AUTH with one login."""
    cert, key = self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == username.encode() and data.password == password.encode()
        return AuthResult(success=ok, handled=False)

    return {
        "tls_context": context,
        "require_starttls": True,
        "auth_required": True,
        "authenticator": authenticator,
        "server_hostname": "127.0.0.1",
    }


async def add_account(
    database: Database,
    account_id: str,
    *,
    patient: str | None = None,
    practitioner: str | None = None,
    email: str | None = None,
    status: str = "active",
) -> None:
    now = int(time.time()) - 5
    kind = "patient" if patient else "professional"
    async with database.transaction() as conn:
        await conn.execute(
            "INSERT INTO account (id, kind, username, status, patient_id, practitioner_id, email, roles, "
            "totp_enabled, failed_logins, tokens_valid_after, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, 0, 0, ?, ?)",
            (account_id, kind, account_id, status, patient, practitioner, email, True, now, now),
        )


async def create_notification(database: Database, clock: Any = time.time, **request: Any) -> Notified:
    """One notification in its own committed transaction (as a service's transaction would)."""
    store = ResourceStore(database)
    async with database.transaction() as conn:
        session = store.session(conn)
        result = await notify(session, clock=clock, **request)
        await session.flush()
        return result


class Clock:
    """A clock the tests move."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
