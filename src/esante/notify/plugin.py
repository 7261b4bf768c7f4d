"""Plugs the notification service into a platform: the professionals' read rule, the operations, and — when an
SMTP server is configured and ``notify_worker_enabled`` — the background e-mail delivery task of this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from esante.notify.delivery import BackgroundDelivery, DeliveryWorker
from esante.notify.kinds import catalogue
from esante.notify.operations import notify_operations
from esante.notify.rule import NotificationRule
from esante.notify.settings import delivery_config, email_enabled

if TYPE_CHECKING:
    from esante.app import Platform


def install_notify(platform: Platform) -> BackgroundDelivery | None:
    """Register the notification service on ``platform``; the background delivery task when there is one.

    A bad e-mail setting (an SMTP host with an unknown security mode, an unreadable templates file) stops the
    start-up with a message naming it, rather than failing each delivery later.
    """
    settings = platform.settings
    platform.policy.add_rule(NotificationRule())
    for operation in notify_operations(platform.service, settings.notify_email_default):
        platform.operations.register(operation)
    texts = catalogue(settings.notify_templates_file)
    if not (email_enabled(settings) and settings.notify_worker_enabled):
        return None
    worker = DeliveryWorker(platform.database, delivery_config(settings), texts)
    background = BackgroundDelivery(worker, max(1, settings.notify_worker_interval))

    async def start() -> None:
        background.start()

    platform.startup.append(start)
    platform.shutdown.append(background.stop)
    return background
