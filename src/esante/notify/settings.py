"""The notification settings (``notify_*`` in config.py) turned into the delivery worker's configuration."""

from __future__ import annotations

from esante.config import Settings
from esante.notify.delivery import DeliveryConfig
from esante.notify.email import EmailSettings, valid_address
from esante.notify.model import RetryPolicy
from esante.notify.smtp import SmtpConfig


class NotifySettingsError(ValueError):
    """A notification setting that cannot work (the message names the setting)."""


def email_enabled(settings: Settings) -> bool:
    return bool(settings.notify_smtp_host.strip())


def delivery_config(settings: Settings) -> DeliveryConfig:
    """The worker's configuration; raises :class:`NotifySettingsError` naming a bad setting."""
    from email.utils import parseaddr

    if not email_enabled(settings):
        raise NotifySettingsError("notify_smtp_host is not set: no SMTP server to send e-mail through")
    try:
        smtp = SmtpConfig(
            host=settings.notify_smtp_host.strip(),
            port=int(settings.notify_smtp_port),
            security=settings.notify_smtp_security.strip().lower(),
            username=settings.notify_smtp_username,
            password=settings.notify_smtp_password,
            timeout=float(settings.notify_smtp_timeout),
            ca_file=settings.notify_smtp_ca_file,
        )
    except ValueError as exc:
        raise NotifySettingsError(str(exc)) from exc
    _name, sender = parseaddr(settings.notify_from_address)
    if not valid_address(sender):
        raise NotifySettingsError(f"notify_from_address is not an e-mail address: {settings.notify_from_address!r}")
    languages = tuple(lang.strip() for lang in settings.notify_email_languages.split(",") if lang.strip())
    if not languages:
        raise NotifySettingsError("notify_email_languages names no language")
    positive = {
        "notify_rate_per_run": settings.notify_rate_per_run,
        "notify_max_attempts": settings.notify_max_attempts,
        "notify_retry_base": settings.notify_retry_base,
        "notify_retry_max": settings.notify_retry_max,
        "notify_email_max_age": settings.notify_email_max_age,
        "notify_smtp_timeout": settings.notify_smtp_timeout,
    }
    for name, value in positive.items():
        if int(value) <= 0:
            raise NotifySettingsError(f"{name} must be positive, not {value}")
    portal = settings.notify_portal_url.strip() or settings.effective_issuer
    return DeliveryConfig(
        smtp=smtp,
        email=EmailSettings(settings.notify_from_address, portal, languages, settings.notify_reply_to),
        retry=RetryPolicy(settings.notify_max_attempts, settings.notify_retry_base, settings.notify_retry_max),
        rate=settings.notify_rate_per_run,
        max_age=settings.notify_email_max_age,
        email_default=settings.notify_email_default,
    )
