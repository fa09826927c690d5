"""E-mail over SMTP with the standard library's smtplib.

TLS is one of ``none`` (a relay on loopback only, in production), ``starttls`` (upgrade a
plain connection, usually port 587) or ``tls`` (implicit TLS, usually port 465); certificates
are verified against the system's trust store. Credentials are sent only when a username is set.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from idp.delivery.errors import DeliveryError

TIMEOUT = 10.0  # seconds for connecting and for each SMTP command


class Mailer(Protocol):
    def send_mail(self, to: str, subject: str, text: str, sender: str) -> None: ...


def build_email(to: str, subject: str, text: str, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # RFC 3834: no out-of-office replies to codes.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    return message


class SmtpMailer:
    def __init__(self, *, host: str, port: int, tls: str, username: str | None = None,
                 password: str | None = None, timeout: float = TIMEOUT) -> None:
        if tls not in {"none", "starttls", "tls"}:
            raise ValueError("tls is one of none, starttls, tls")
        self.host, self.port, self.tls = host, port, tls
        self._username, self._password = username, password
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<SmtpMailer {self.host}:{self.port} tls={self.tls}>"

    def _connect(self) -> smtplib.SMTP:
        if self.tls == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def send_mail(self, to: str, subject: str, text: str, sender: str) -> None:
        message = build_email(to, subject, text, sender)
        try:
            with self._connect() as smtp:
                if self.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError("the mail server refused our login (check IDP_SMTP_USERNAME and "
                                "IDP_SMTP_PASSWORD)") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError("the mail server does not offer what IDP_SMTP_TLS or IDP_SMTP_USERNAME ask for "
                                "(STARTTLS or AUTH)") from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("the mail server refused the recipient's address") from None
        except smtplib.SMTPSenderRefused:
            raise DeliveryError("the mail server refused the sender address (check IDP_MAIL_FROM)") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"the mail server refused the message (SMTP {exc.smtp_code})") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS with the mail server failed ({exc.reason or type(exc).__name__}; "
                                "check IDP_SMTP_TLS and IDP_SMTP_PORT)") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"the mail server at {self.host}:{self.port} could not be reached or dropped the "
                                f"connection ({type(exc).__name__}; check IDP_SMTP_HOST and IDP_SMTP_PORT)") from None
