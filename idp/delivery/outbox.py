"""The development outbox: messages written to files under ``var/outbox/`` instead of sent.

Used only in development mode when no SMTP host or SMS gateway is configured. Every file says
in its first lines that it was NOT sent; the directory is owner-only, as the files hold codes.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from idp.delivery.mail import build_email

BANNER = "DEVELOPMENT OUTBOX: this message was NOT sent (patron-idp in development mode, no {what} configured)"


class DevOutbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"<DevOutbox {self.directory}>"

    def _write(self, suffix: str, content: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{secrets.token_hex(3)}.{suffix}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        return path

    def send_mail(self, to: str, subject: str, text: str, sender: str) -> None:
        message = build_email(to, subject, text, sender)
        message["X-Patron-IdP-Dev-Outbox"] = "NOT SENT"
        banner = BANNER.format(what="IDP_SMTP_HOST")
        self._write("eml", f"X-Comment: {banner}\n".encode() + message.as_bytes())

    def send_sms(self, to: str, text: str) -> None:
        banner = BANNER.format(what="IDP_SMS_URL")
        self._write("sms.txt", f"{banner}\nTo: {to}\n\n{text}\n".encode())

    def messages(self) -> list[Path]:
        """The files in the outbox, oldest first (for tests and the curious developer)."""
        return sorted(self.directory.glob("*")) if self.directory.is_dir() else []
