"""The e-mail of a notification. Pure: builds the message, sends nothing.

E-mail is not a secure channel (it crosses servers in clear, sits in mailboxes others may read, is forwarded), so
the message says only that something is waiting and where to sign in: the kind's fixed text in the configured
languages, the portal's address and a footer. No name, no document title, no vaccine, no professional, no
identifier: the service's own text stays in the stored notification. Headers:

- ``Message-ID`` ``<notification id@sender's domain>``: the same for every attempt, so a message sent twice
  (a worker that stopped between sending and recording) can be recognised as one by the receiving side;
- ``Auto-Submitted: auto-generated`` (RFC 3834) so that out-of-office replies are not sent back;
- ``X-Esante-Notification-Kind`` for the operator's mail filters (the kind is already in the subject's wording).

Built with the ``compat32`` message classes (text/plain, UTF-8, quoted-printable): the modern ``EmailMessage``
parses every header it is given through the header registry, 4 ms a message, which capped delivery at ~150
e-mails/s; this takes a tenth of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr, parseaddr

from esante.notify.kinds import KindCatalogue


@dataclass(frozen=True)
class EmailSettings:
    from_address: str
    portal_url: str
    languages: tuple[str, ...]
    reply_to: str = ""


def domain_of(address: str) -> str:
    _name, email = parseaddr(address)
    return email.rsplit("@", 1)[1] if "@" in email else "localhost"


def compose(
    catalogue: KindCatalogue,
    settings: EmailSettings,
    *,
    notification_id: str,
    kind: str,
    to: str,
    date: float,
) -> Message:
    """The message for notification ``notification_id`` of ``kind`` to address ``to``."""
    definition = catalogue.get(kind)
    if definition is None:
        raise KeyError(f"no e-mail text for kind {kind!r}")
    languages = [lang for lang in settings.languages if lang in definition.email] or sorted(definition.email)[:1]
    if not languages:
        raise KeyError(f"no e-mail text for kind {kind!r}")
    subjects = list(dict.fromkeys(definition.email[lang].subject for lang in languages))
    sections = []
    for lang in languages:
        body = definition.email[lang].body.format(portal_url=settings.portal_url)
        footer = catalogue.footer.get(lang)
        sections.append(body + (f"\n\n{footer}" if footer else ""))
    charset = Charset("utf-8")
    charset.body_encoding = QP
    message = Message()
    message["MIME-Version"] = "1.0"
    message.set_payload("\n\n-----\n\n".join(sections) + "\n", charset)  # text/plain; charset="utf-8", QP
    message["From"] = formataddr(parseaddr(settings.from_address))  # a non-ASCII name is RFC 2047-encoded
    message["To"] = to
    if settings.reply_to:
        message["Reply-To"] = formataddr(parseaddr(settings.reply_to))
    subject = " / ".join(subjects)
    # a Header object, not its encoded text: the generator then folds the encoded words itself (a pre-encoded
    # string is folded again and decodes with a leading space)
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")  # type: ignore[assignment]
    message["Date"] = format_datetime(datetime.fromtimestamp(date, tz=UTC))
    message["Message-ID"] = f"<{notification_id}@{domain_of(settings.from_address)}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Esante-Notification-Kind"] = kind
    return message


def valid_address(address: str) -> bool:
    """A plausible single address (the accounts module stores what people typed)."""
    _name, email = parseaddr(address)
    if not email or email != address.strip() or any(c in email for c in " \r\n,;<>"):
        return False
    local, _, domain = email.rpartition("@")
    return bool(local) and "." in domain and not domain.startswith(".") and not domain.endswith(".")
