"""Delivering messages to patrons: e-mail over SMTP and SMS through an HTTP gateway (no Flask).

One ``Messenger`` is built from the settings (``build_messenger``) and used for everything a
patron is sent: one-time codes, password reset links, notices (idp.notifications). Each
channel has three implementations: the real one (``SmtpMailer``, ``HttpSmsGateway``), the
development outbox (``DevOutbox``: files under ``var/outbox/``, clearly marked as not sent) when
nothing is configured in development, and ``Unconfigured``, which refuses with an error naming
the missing setting in production.

Failures raise ``DeliveryError`` with a message for the operator that names the setting or the
answer at fault, never the recipient's address or the message text (which may hold a code).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlsplit

from idp.delivery.errors import DeliveryError
from idp.delivery.mail import Mailer, SmtpMailer
from idp.delivery.outbox import DevOutbox
from idp.delivery.sms import HttpSmsGateway, SmsGateway
from idp.settings import Settings

log = logging.getLogger("idp.delivery")

__all__ = ["Channel", "DeliveryError", "DevOutbox", "HttpSmsGateway", "Mailer", "Message", "Messenger",
           "SmsGateway", "SmtpMailer", "Unconfigured", "build_messenger"]


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


@dataclass(frozen=True)
class Message:
    """What to send. ``subject`` is used by e-mail only; an SMS carries ``text`` alone."""

    subject: str
    text: str
    kind: str = "message"  # for logs: "one_time_code", "reset_link" (never the text itself)

    def __repr__(self) -> str:
        return f"<Message kind={self.kind}>"


class Unconfigured:
    """A channel with no settings in production: every send fails, naming what to set."""

    def __init__(self, setting: str, what: str) -> None:
        self.setting = setting
        self.what = what

    def send_mail(self, to: str, subject: str, text: str, sender: str) -> None:
        raise DeliveryError(f"{self.what} is not configured: set {self.setting}")

    def send_sms(self, to: str, text: str) -> None:
        raise DeliveryError(f"{self.what} is not configured: set {self.setting}")


class _MailSender(Protocol):
    def send_mail(self, to: str, subject: str, text: str, sender: str) -> None: ...


class Messenger:
    """Sends a ``Message`` to an address over a channel; the one door out for patron messages."""

    def __init__(self, mailer: _MailSender, sms: SmsGateway, sender: str) -> None:
        self.mailer = mailer
        self.sms = sms
        self.sender = sender

    def __repr__(self) -> str:
        return f"<Messenger mail={type(self.mailer).__name__} sms={type(self.sms).__name__}>"

    def can_send(self, channel: Channel | str) -> bool:
        """False when the channel is not configured (production without its settings)."""
        return not isinstance(self.mailer if Channel(channel) is Channel.EMAIL else self.sms, Unconfigured)

    def send(self, channel: Channel | str, to: str, message: Message) -> None:
        channel = Channel(channel)
        try:
            if channel is Channel.EMAIL:
                self.mailer.send_mail(to, message.subject, message.text, self.sender)
            else:
                self.sms.send_sms(to, message.text)
        except DeliveryError as exc:
            # The operator's words only: they name settings and answers, never the recipient.
            log.warning("could not send %s by %s: %s", message.kind, channel.value, exc.message)
            raise
        log.info("sent %s by %s", message.kind, channel.value)


def build_messenger(settings: Settings) -> Messenger:
    outbox = DevOutbox(settings.home / "var" / "outbox")
    if settings.smtp_host:
        mailer: _MailSender = SmtpMailer(
            host=settings.smtp_host, port=settings.smtp_port, tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None)
    elif settings.is_development:
        mailer = outbox
    else:
        mailer = Unconfigured("IDP_SMTP_HOST", "e-mail delivery")
    if settings.sms_url:
        sms: SmsGateway = HttpSmsGateway(settings.sms_url,
                                         settings.sms_token.get_secret_value() if settings.sms_token else None)
    elif settings.is_development:
        sms = outbox
    else:
        sms = Unconfigured("IDP_SMS_URL", "SMS delivery")
    sender = settings.mail_from or f"noreply@{urlsplit(settings.issuer).hostname}"
    return Messenger(mailer, sms, sender)
