"""Delivery of patron messages: SMTP against a real SMTP server on loopback (aiosmtpd), the HTTP
SMS gateway against a real HTTP server on loopback, the development outbox, and the settings.

``SmtpSink`` (and the ``smtp_sink`` fixture) is used by the flow and CLI tests too: they read the
one-time codes and reset links from what the server received, as a patron reads their e-mail.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from idp.delivery import Channel, DeliveryError, DevOutbox, HttpSmsGateway, Message, SmtpMailer, \
    Unconfigured, build_messenger
from idp.delivery import texts
from idp.errors import ConfigError
from idp.settings import load_settings

SMTP_USER, SMTP_PASSWORD = "patron-idp", "smtp secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated: bool

    @property
    def text(self) -> str:
        return self.message.get_content()


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it is sent."""

    host: str
    port: int
    require_auth: bool = False
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.require_auth and not session.authenticated:
            return "530 Authentication required"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed,  # type: ignore[arg-type]
                                      bool(session.authenticated)))
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]

    def wait_for(self, address: str, count: int = 1, timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.to(address)
            if len(got) >= count:
                return got[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no message number {count} to {address} within {timeout} s")


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() \
        and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def one_time_code_in(text: str) -> str:
    match = re.search(r"(?:code is|koden din er): (\d{6})", text)
    assert match, "no one-time code in the message"
    return match.group(1)


# -- SMTP -------------------------------------------------------------------------------------------

def test_smtp_delivers_a_bilingual_code_mail_with_login(smtp_sink: SmtpSink) -> None:
    smtp_sink.require_auth = True
    mailer = SmtpMailer(host=smtp_sink.host, port=smtp_sink.port, tls="none", username=SMTP_USER,
                        password=SMTP_PASSWORD)
    message = texts.one_time_code_email("042917", 10, "nb")
    mailer.send_mail("kari@example.org", message.subject, message.text, "noreply@bibliotekkortet.no")
    got = smtp_sink.wait_for("kari@example.org")
    assert got.authenticated and got.mail_from == "noreply@bibliotekkortet.no"
    assert got.message["Auto-Submitted"] == "auto-generated"
    assert got.message["Subject"].startswith("Engangskode")
    body = got.text
    assert body.index("Engangskoden din er: 042917") < body.index("Your one-time code is: 042917")
    assert "10 minutter" in body and "10 minutes" in body
    english_first = texts.one_time_code_email("042917", 10, "en")
    assert english_first.text.index("Your one-time") < english_first.text.index("Engangskoden")


@pytest.mark.parametrize(("settings", "expected"), [
    pytest.param({"username": SMTP_USER, "password": "wrong"}, "refused our login", id="wrong-password"),
    pytest.param({"tls": "starttls"}, "STARTTLS", id="no-starttls-offered"),
    pytest.param({"tls": "tls"}, "TLS with the mail server failed", id="tls-to-a-plain-port"),
])
def test_smtp_failures_name_the_setting_not_the_recipient(smtp_sink: SmtpSink, settings: dict[str, str],
                                                          expected: str) -> None:
    mailer = SmtpMailer(host=smtp_sink.host, port=smtp_sink.port, **{"tls": "none", **settings}, timeout=3)
    with pytest.raises(DeliveryError) as info:
        mailer.send_mail("kari@example.org", "S", "123456", "noreply@example.no")
    assert expected in info.value.message
    assert "kari" not in info.value.message and "123456" not in info.value.message
    assert smtp_sink.received == []


def test_an_unreachable_mail_server_is_reported_clearly() -> None:
    mailer = SmtpMailer(host="127.0.0.1", port=free_port(), tls="none", timeout=2)
    with pytest.raises(DeliveryError) as info:
        mailer.send_mail("kari@example.org", "S", "t", "noreply@example.no")
    assert "IDP_SMTP_HOST" in info.value.message and "could not be reached" in info.value.message


# -- SMS over HTTP --------------------------------------------------------------------------------

@dataclass
class Gateway:
    url: str
    requests: list[dict[str, Any]]
    answer: dict[str, Any]


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    seen: list[dict[str, Any]] = []
    answer: dict[str, Any] = {"status": 202, "delay": 0.0, "location": None}

    @Request.application
    def app(request: Request) -> Response:
        seen.append({"method": request.method, "path": request.path, "json": request.get_json(silent=True),
                     "authorization": request.headers.get("Authorization"),
                     "content_type": request.mimetype})
        time.sleep(answer["delay"])
        headers = {"Location": answer["location"]} if answer["location"] else {}
        return Response(json.dumps({"id": "m1"}), status=answer["status"], headers=headers,
                        mimetype="application/json")

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Gateway(f"http://127.0.0.1:{port}/v1/sms", seen, answer)
    finally:
        server.shutdown()
        thread.join(5)


def test_the_http_gateway_gets_a_json_post_with_the_bearer_token(gateway: Gateway) -> None:
    HttpSmsGateway(gateway.url, "gw-token").send_sms("+4799999999", "123456 er engangskoden din")
    (sent,) = gateway.requests
    assert sent == {"method": "POST", "path": "/v1/sms", "json": {"to": "+4799999999",
                                                                  "message": "123456 er engangskoden din"},
                    "authorization": "Bearer gw-token", "content_type": "application/json"}


@pytest.mark.parametrize(("status", "location", "expected"), [
    pytest.param(500, None, "refused the message (HTTP 500)", id="server-error"),
    pytest.param(401, None, "HTTP 401) (check IDP_SMS_TOKEN)", id="bad-token"),
    pytest.param(307, "http://127.0.0.1:9/elsewhere", "HTTP 307", id="redirect-not-followed"),
])
def test_gateway_errors_are_reported_without_the_number(gateway: Gateway, status: int, location: str | None,
                                                        expected: str) -> None:
    gateway.answer.update(status=status, location=location)
    with pytest.raises(DeliveryError) as info:
        HttpSmsGateway(gateway.url, "gw-token").send_sms("+4799999999", "123456")
    assert expected in info.value.message
    assert "99999999" not in info.value.message and "123456" not in info.value.message
    assert len(gateway.requests) == 1


def test_a_slow_gateway_times_out_with_a_clear_error(gateway: Gateway) -> None:
    gateway.answer["delay"] = 1.0
    with pytest.raises(DeliveryError) as info:
        HttpSmsGateway(gateway.url, None, timeout=0.3).send_sms("+4799999999", "x")
    assert "could not be reached" in info.value.message and "IDP_SMS_URL" in info.value.message


def test_an_unreachable_gateway_is_reported() -> None:
    with pytest.raises(DeliveryError) as info:
        HttpSmsGateway(f"http://127.0.0.1:{free_port()}/sms", None, timeout=2).send_sms("+4799999999", "x")
    assert "could not be reached" in info.value.message


# -- the messenger, the outbox and the settings ---------------------------------------------------

def test_development_without_settings_writes_to_a_labelled_outbox(tmp_path: Path) -> None:
    settings = load_settings({}, mode="development", home=str(tmp_path))
    messenger = build_messenger(settings)
    messenger.send(Channel.EMAIL, "kari@example.org", texts.one_time_code_email("123456", 10))
    messenger.send(Channel.SMS, "+4799999999", texts.one_time_code_sms("654321", 10, "en"))
    outbox = DevOutbox(tmp_path / "var" / "outbox")
    mail, sms = _by_kind(outbox)
    assert mail.read_text().startswith("X-Comment: DEVELOPMENT OUTBOX: this message was NOT sent")
    parsed = email.message_from_bytes(mail.read_bytes().split(b"\n", 1)[1], policy=email.policy.default)
    assert parsed["To"] == "kari@example.org" and parsed["X-Patron-IdP-Dev-Outbox"] == "NOT SENT"
    assert "123456" in parsed.get_content()  # type: ignore[union-attr]
    assert sms.read_text().startswith("DEVELOPMENT OUTBOX: this message was NOT sent")
    assert "654321 is your one-time code" in sms.read_text()
    assert (tmp_path / "var" / "outbox").stat().st_mode & 0o077 == 0
    assert mail.stat().st_mode & 0o077 == 0


def _by_kind(outbox: DevOutbox) -> tuple[Path, Path]:
    files = outbox.messages()
    mail = next(p for p in files if p.name.endswith(".eml"))
    sms = next(p for p in files if p.name.endswith(".sms.txt"))
    return mail, sms


def test_production_without_settings_refuses_to_send_and_names_the_setting(tmp_path: Path) -> None:
    settings = load_settings({"IDP_SECRET_KEY": "s" * 40, "IDP_DATA_KEY": "A" * 43}, home=str(tmp_path))
    messenger = build_messenger(settings)
    assert isinstance(messenger.mailer, Unconfigured) and not messenger.can_send("email")
    assert not messenger.can_send(Channel.SMS)
    for channel, setting in ((Channel.EMAIL, "IDP_SMTP_HOST"), (Channel.SMS, "IDP_SMS_URL")):
        with pytest.raises(DeliveryError) as info:
            messenger.send(channel, "kari@example.org", Message("s", "t"))
        assert setting in info.value.message
    assert not (tmp_path / "var" / "outbox").exists()


def test_configured_channels_use_smtp_and_the_gateway(tmp_path: Path, smtp_sink: SmtpSink, gateway: Gateway) -> None:
    settings = load_settings({}, mode="development", home=str(tmp_path), smtp_host="127.0.0.1",
                             smtp_port=str(smtp_sink.port), smtp_tls="none", smtp_username=SMTP_USER,
                             smtp_password=SMTP_PASSWORD, mail_from="noreply@bibliotekkortet.no",
                             sms_url=gateway.url, sms_token="gw-token")
    messenger = build_messenger(settings)
    assert isinstance(messenger.mailer, SmtpMailer) and isinstance(messenger.sms, HttpSmsGateway)
    messenger.send("email", "kari@example.org", texts.one_time_code_email("111222", 10))
    messenger.send("sms", "+4799999999", texts.one_time_code_sms("333444", 10))
    assert smtp_sink.wait_for("kari@example.org").mail_from == "noreply@bibliotekkortet.no"
    assert gateway.requests[0]["json"]["message"].startswith("333444 er engangskoden din")
    assert not (tmp_path / "var" / "outbox").exists()
    assert "smtp secret" not in repr(settings) and "gw-token" not in repr(settings)


@pytest.mark.parametrize(("env", "expected"), [
    pytest.param({"IDP_SMTP_HOST": "mail.example.no", "IDP_SMTP_TLS": "none"}, "IDP_SMTP_TLS=none", id="clear-smtp"),
    pytest.param({"IDP_SMTP_TLS": "ssl"}, "IDP_SMTP_TLS", id="unknown-tls-mode"),
    pytest.param({"IDP_SMS_URL": "http://sms.example.no/send"}, "IDP_SMS_URL must use https", id="http-gateway"),
    pytest.param({"IDP_SMS_URL": "sms.example.no"}, "IDP_SMS_URL", id="not-a-url"),
    pytest.param({"IDP_MAIL_FROM": "nobody"}, "IDP_MAIL_FROM", id="not-an-address"),
    pytest.param({"IDP_OTP_LIMIT_PER_ACCOUNT": "lots"}, "IDP_OTP_LIMIT_PER_ACCOUNT", id="bad-limit"),
    pytest.param({"IDP_OTP_SENDS_PER_HOUR": "0"}, "IDP_OTP_SENDS_PER_HOUR", id="no-sends"),
])
def test_delivery_settings_are_checked_in_production(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"IDP_SECRET_KEY": "s" * 40, "IDP_DATA_KEY": "A" * 43, "IDP_HOME": str(tmp_path), **env})
    assert expected in info.value.message


def test_clear_smtp_to_a_loopback_relay_is_allowed_in_production(tmp_path: Path) -> None:
    settings = load_settings({"IDP_SECRET_KEY": "s" * 40, "IDP_DATA_KEY": "A" * 43, "IDP_HOME": str(tmp_path),
                              "IDP_SMTP_HOST": "127.0.0.1", "IDP_SMTP_TLS": "none", "IDP_SMTP_PORT": "25",
                              "IDP_SMTP_PASSWORD": "pw"})
    assert settings.smtp_tls == "none" and settings.smtp_port == 25
    assert settings.smtp_password is not None and "pw" not in repr(settings)
