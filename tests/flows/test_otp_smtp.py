"""A one-time code delivered through a real SMTP server (aiosmtpd on loopback) and used once, over
real HTTP: the patron changes their PIN at My account, reads the code from their "mailbox" (what
the server received), types it, and the same code typed again is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import select

from idp import notifications
from idp.registry.models import Credential
from idp.settings import Settings
from tests.flows.conftest import LiveIdp
from tests.unit.factories import library, patron
from tests.unit.test_otp_delivery import SMTP_PASSWORD, SMTP_USER, SmtpSink, one_time_code_in
from tests.unit.test_otp_delivery import smtp_sink  # noqa: F401 - fixture

PASSWORD = "correct horse battery"
WRONG_GUESSES_PER_DAY = 10  # README: "per card at most 10 wrong guesses in any 24 hours"


@pytest.fixture
def settings(settings: Settings, smtp_sink: SmtpSink) -> Settings:
    """The suite's settings, with mail going to the SMTP server on loopback (with a login)."""
    smtp_sink.require_auth = True
    return settings.model_copy(update={"smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port, "smtp_tls": "none",
                                       "smtp_username": SMTP_USER, "smtp_password": _secret(SMTP_PASSWORD),
                                       "mail_from": "noreply@bibliotekkortet.no"})


def _secret(value: str) -> object:
    return SecretStr(value)


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["Accept-Language"] = "en"
        yield http


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_a_code_sent_over_smtp_changes_the_pin_once(live: LiveIdp, smtp_sink: SmtpSink,
                                                   browser: requests.Session) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        kari, card = patron(reg, password=PASSWORD, pin="4711", email="kari@example.org")
        patron_id, number = kari.id, card.number
    page = browser.get(f"{live.url}/login?next=/account/pin")
    done = browser.post(f"{live.url}/login", data={"username": number, "password": PASSWORD, "next": "/account/pin",
                                                     "csrf_token": csrf(page.text)})
    assert done.url == f"{live.url}/account/pin" and "we first send you a one-time code" in done.text

    sent = browser.post(f"{live.url}/account/code/send", data={"action": "pin", "channel": "email",
                                                                "csrf_token": csrf(done.text)})
    assert sent.status_code == 200 and "We have sent a one-time code to k\u2022\u2022\u2022@example.org" in sent.text
    mail = smtp_sink.wait_for("kari@example.org")
    assert mail.authenticated and mail.mail_from == "noreply@bibliotekkortet.no"
    assert mail.message["Subject"] == "One-time code / Engangskode"  # the page was in English
    code = one_time_code_in(mail.text)
    assert code not in sent.text  # the page never shows it

    used = browser.post(f"{live.url}/account/code/check", data={"action": "pin", "code": code,
                                                                 "csrf_token": csrf(sent.text)})
    assert used.status_code == 200 and 'name="new"' in used.text
    again = browser.post(f"{live.url}/account/code/check", data={"action": "pin", "code": code,
                                                                  "csrf_token": csrf(sent.text)})
    assert again.status_code == 400 and "That code has expired or was already used" in again.text

    changed = browser.post(f"{live.url}/account/pin", data={"new": "2580", "confirm": "2580",
                                                             "csrf_token": csrf(used.text)})
    assert changed.url == f"{live.url}/account" and "Your PIN has been changed." in changed.text
    with live.services.registry("test") as reg:
        stored = reg.session.scalar(select(Credential.hash).where(Credential.patron_id == patron_id,
                                                                  Credential.kind == "pin"))
        assert reg.hasher.verify(stored, "2580").ok
    # The next change needs a new code: the old one opens nothing.
    assert "we first send you a one-time code" in browser.get(f"{live.url}/account/pin").text
    assert len(smtp_sink.received) == 1
    # The change is reported to the patron by the notice deliverer, through the same mail server.
    assert deliver_notices(live).email == 1
    notice = smtp_sink.wait_for("kari@example.org", count=2)
    assert "PIN-koden for bibliotekinnloggingen din er endret" in notice.text
    assert "The PIN of your library login has been changed" in notice.text


def test_a_locked_card_is_reported_to_its_patron_by_mail(live: LiveIdp, smtp_sink: SmtpSink,
                                                         browser: requests.Session) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        _, card = patron(reg, password=PASSWORD, email="ola@example.org")
        number = card.number
    for attempt in range(WRONG_GUESSES_PER_DAY + 1):
        page = browser.get(f"{live.url}/login")
        answer = browser.post(f"{live.url}/login", data={"username": number, "password": f"guess {attempt}",
                                                         "csrf_token": csrf(page.text)})
    assert answer.status_code == 429
    assert smtp_sink.received == []  # the login itself sends nothing: the deliverer does
    assert deliver_notices(live).email == 1
    assert deliver_notices(live).email == 0
    mail = smtp_sink.wait_for("ola@example.org")
    assert "locked after 10 wrong passwords or PINs" in mail.text


def deliver_notices(live: LiveIdp) -> notifications.DeliveryReport:
    return notifications.deliver_pending(lambda: live.services.registry("notifier"), live.services.messenger)
