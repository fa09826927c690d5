"""`idp patron reset-password CARD [--print-temporary]`: the librarian's "reset password".

By default a single-use reset link goes by e-mail (here through a real SMTP server on loopback);
the link is then followed in the web app. With --print-temporary a temporary password is printed
once, and the patron must change it at first login. Both leave an audit event with ids only.
"""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse
from sqlalchemy import select

from idp import create_app
from idp.registry.models import AuditEvent, Credential, PasswordResetToken
from idp.services import Services, build_services
from idp.settings import Settings
from tests.cli.test_cli import Idp, add_patron, failed, succeeded
from tests.cli.test_cli import cli_env, idp, oslo  # noqa: F401 - fixtures
from tests.conftest import FakeClock
from tests.nin import person
from tests.unit.test_otp_delivery import SmtpSink, free_port
from tests.unit.test_otp_delivery import smtp_sink  # noqa: F401 - fixture
from tests.web.conftest import csrf_token

OLD_PASSWORD = "the old passphrase"
NEW_PASSWORD = "a brand new passphrase"
EN = {"Accept-Language": "en"}


def smtp_env(sink: SmtpSink) -> dict[str, str]:
    return {"IDP_SMTP_HOST": sink.host, "IDP_SMTP_PORT": str(sink.port), "IDP_SMTP_TLS": "none",
            "IDP_MAIL_FROM": "noreply@bibliotekkortet.no"}


@pytest.fixture
def web(services: Services) -> FlaskClient:
    return create_app(services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"}).test_client()


def log_in(web: FlaskClient, card: str, password: str) -> str:
    page = web.get("/login", headers=EN)
    response = web.post("/login", data={"username": card, "password": password, "csrf_token": csrf_token(page.text)},
                        headers=EN)
    return response.location if response.status_code == 303 else str(response.status_code)


def reset_link(sink: SmtpSink, count: int = 1) -> tuple[str, str]:
    """The page and the code of the reset link in the ``count``-th mail: ``page#code``."""
    mail = sink.wait_for("kari@example.org", count)
    match = re.search(r"(http://\S+/password/reset)#(\S+)", mail.text)
    assert match, mail.text
    return match.group(1), match.group(2)


def enter_code(web: FlaskClient, code: str) -> TestResponse:
    """What a patron without JavaScript does: open /password/reset and paste the code from the e-mail."""
    page = web.get("/password/reset", headers=EN)
    assert page.status_code in {200, 400} and 'name="code"' in page.text
    return web.post("/password/reset", data={"code": code, "csrf_token": csrf_token(page.text)}, headers=EN)


def test_a_reset_link_by_email_sets_a_new_password_once(idp: Idp, oslo: object, smtp_sink: SmtpSink,
                                                        web: FlaskClient, services: Services) -> None:
    card = add_patron(idp, password=OLD_PASSWORD)
    shown = succeeded(idp("patron", "reset-password", card.lower(), env=smtp_env(smtp_sink)))
    assert shown["card_number"] == card and shown["reset_link_sent_to"] == "k\u2022\u2022\u2022@example.org"
    assert "valid_until" in shown and "temporary_password" not in shown
    page, token = reset_link(smtp_sink)
    mail = smtp_sink.received[0]
    assert mail.mail_from == "noreply@bibliotekkortet.no" and mail.message["Subject"] == "Nytt passord / New password"
    assert "60 minutter" in mail.text and "60 minutes" in mail.text
    with services.registry("test") as reg:
        stored = reg.session.scalars(select(PasswordResetToken.token_hash)).all()
        assert len(stored) == 1 and token.encode() not in stored[0]

    # The token rides in the fragment, which no browser sends; the mail gives it as a code as well.
    assert page == f"{services.settings.issuer}/password/reset" and len(token) >= 43
    assert f"open {page} and paste this code:\r\n{token}\r\n" in mail.text
    assert re.search(r"/password/reset/", mail.text) is None
    taken = enter_code(web, token)
    assert taken.status_code == 303 and taken.location == "/password/reset"
    form = web.get("/password/reset", headers=EN)
    assert form.status_code == 200 and "Choose a new password" in form.text and 'name="new"' in form.text
    short = web.post("/password/reset", data={"new": "short", "confirm": "short", "csrf_token": csrf_token(form.text)},
                     headers=EN)
    assert short.status_code == 400  # a bad password does not use up the link
    done = web.post("/password/reset", data={"new": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                                             "csrf_token": csrf_token(form.text)}, headers=EN)
    assert done.status_code == 200 and "Your new password is saved" in done.text
    assert log_in(web, card, OLD_PASSWORD) == "401"
    assert log_in(web, card, NEW_PASSWORD) == "/"
    web.post("/logout", data={"csrf_token": csrf_token(web.get("/", headers=EN).text)})

    used = enter_code(web, token)
    assert used.status_code == 400 and "expired or was already used" in used.text
    with services.registry("test") as reg:
        events = [(e.action, e.detail) for e in reg.session.scalars(select(AuditEvent).where(
            AuditEvent.action.like("patron.reset_password%")))]
        assert events == [("patron.reset_password", {"method": "link"}),
                          ("patron.reset_password_done", {"method": "link"})]


def test_only_the_newest_link_works_and_links_expire(idp: Idp, oslo: object, smtp_sink: SmtpSink, web: FlaskClient,
                                                     services: Services, clock: FakeClock) -> None:
    card = add_patron(idp, password=OLD_PASSWORD)
    succeeded(idp("patron", "reset-password", card, env=smtp_env(smtp_sink)))
    first = reset_link(smtp_sink, 1)[1]
    succeeded(idp("patron", "reset-password", card, env=smtp_env(smtp_sink)))
    second = reset_link(smtp_sink, 2)[1]
    assert enter_code(web, first).status_code == 400
    assert enter_code(web, second).status_code == 303
    assert web.get("/password/reset", headers=EN).status_code == 200
    with services.registry("test") as reg:  # the web app's clock to the link's end (the CLI used the real one)
        row = reg.session.scalar(select(PasswordResetToken))
        clock.now = row.expires_at  # type: ignore[union-attr]
    expired = web.get("/password/reset", headers=EN)
    assert expired.status_code == 400 and "expired or was already used" in expired.text


def test_a_link_of_the_old_shape_is_refused_and_its_token_used_up(idp: Idp, oslo: object, smtp_sink: SmtpSink,
                                                                   web: FlaskClient) -> None:
    """/password/reset/<token> put the token in every access log on the way: it no longer opens the form."""
    card = add_patron(idp, password=OLD_PASSWORD)
    succeeded(idp("patron", "reset-password", card, env=smtp_env(smtp_sink)))
    token = reset_link(smtp_sink)[1]
    old = web.get(f"/password/reset/{token}", headers=EN)
    assert old.status_code == 404 and "This link no longer works. Ask your library for a new one." in old.text
    assert enter_code(web, token).status_code == 400  # whoever reads the log cannot use it
    assert log_in(web, card, OLD_PASSWORD) == "/"


@pytest.mark.parametrize("change", ["idp patron set-password", "a temporary password", "/password/change"])
def test_any_password_change_voids_an_outstanding_link(idp: Idp, oslo: object, smtp_sink: SmtpSink,
                                                       web: FlaskClient, change: str) -> None:
    card = add_patron(idp, password=OLD_PASSWORD)
    succeeded(idp("patron", "reset-password", card, env=smtp_env(smtp_sink)))
    token = reset_link(smtp_sink)[1]
    if change == "idp patron set-password":
        succeeded(idp("patron", "set-password", card, input=NEW_PASSWORD + "\n"))
    elif change == "a temporary password":
        succeeded(idp("patron", "reset-password", card, "--print-temporary"))
    else:
        assert log_in(web, card, OLD_PASSWORD) == "/"
        form = web.get("/password/change", headers=EN)
        changed = web.post("/password/change", data={"current": OLD_PASSWORD, "new": NEW_PASSWORD,
                                                     "confirm": NEW_PASSWORD, "csrf_token": csrf_token(form.text)})
        assert changed.status_code == 303
        web.post("/logout", data={"csrf_token": csrf_token(form.text)})
    refused = enter_code(web, token)
    assert refused.status_code == 400 and "expired or was already used" in refused.text


@pytest.mark.backends
@pytest.mark.parametrize("command", [("set-password",), ("reset-password", "--print-temporary")])
def test_a_password_set_by_the_librarian_ends_the_patrons_sessions(idp: Idp, oslo: object, settings: Settings,
                                                                    command: tuple[str, ...]) -> None:
    if not settings.redis_url:
        # The running server's memory is out of the CLI's reach: the operator is told so, and what to do.
        card = add_patron(idp, password=OLD_PASSWORD)
        said = succeeded(idp("patron", *command, card, input=NEW_PASSWORD + "\n"))
        assert said["sessions_ended"].startswith("no:") and "restart" in said["sessions_ended"]
        return
    # The CLI uses the state store's default key prefix: a Redis database of its own keeps this test apart.
    shared = settings.redis_url.rsplit("/", 1)[0] + "/11"
    served = build_services(settings.model_copy(update={"redis_url": shared}))
    try:
        web = create_app(services=served, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"}).test_client()
        card = add_patron(idp, password=OLD_PASSWORD)
        assert log_in(web, card, OLD_PASSWORD) == "/"
        assert web.get("/account", headers=EN).status_code == 200
        said = succeeded(idp("patron", *command, card, input=NEW_PASSWORD + "\n", env={"IDP_REDIS_URL": shared}))
        assert said["sessions_ended"] == "yes"
        ended = web.get("/account", headers=EN)
        assert ended.status_code == 303 and ended.location.startswith("/login")
    finally:
        served.close()


def test_print_temporary_prints_a_password_that_must_be_changed(idp: Idp, oslo: object, web: FlaskClient,
                                                                services: Services) -> None:
    card = add_patron(idp, password=OLD_PASSWORD)
    shown = succeeded(idp("patron", "reset-password", card, "--print-temporary"))
    temporary = shown["temporary_password"]
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", temporary) and shown["must_change"] == "yes"
    assert log_in(web, card, OLD_PASSWORD) == "401"
    assert log_in(web, card, temporary).startswith("/password/change")
    with services.registry("test") as reg:
        assert reg.session.scalar(select(Credential.must_change).where(Credential.kind == "password")) is True
        details = [e.detail for e in reg.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "patron.reset_password"))]
        assert details == [{"method": "temporary"}]
        assert temporary not in str([e.detail for e in reg.session.scalars(select(AuditEvent))])


def test_no_email_address_means_a_clear_error_and_no_change(idp: Idp, oslo: object, services: Services) -> None:
    result = idp("patron", "add", "--national-id", _nin(), "--name", "Ola",
                 "--home-library", "NO-2030000", input="the old passphrase\n")
    card = re.search(r"card_number: (\S+)", result.stdout).group(1)  # type: ignore[union-attr]
    line = failed(idp("patron", "reset-password", card))
    assert "no e-mail address" in line and "--print-temporary" in line
    with services.registry("test") as reg:
        assert reg.session.scalar(select(PasswordResetToken)) is None


def test_an_unreachable_mail_server_is_one_error_line_and_no_link(idp: Idp, oslo: object, services: Services) -> None:
    card = add_patron(idp, password=OLD_PASSWORD)
    line = failed(idp("patron", "reset-password", card, env={"IDP_SMTP_HOST": "127.0.0.1",
                                                              "IDP_SMTP_PORT": str(free_port()),
                                                              "IDP_SMTP_TLS": "none"}))
    assert "could not be reached" in line and "IDP_SMTP_HOST" in line
    with services.registry("test") as reg:
        assert reg.session.scalar(select(PasswordResetToken)) is None
        assert reg.session.scalar(select(AuditEvent).where(AuditEvent.action == "patron.reset_password")) is None


def test_development_without_smtp_puts_the_link_in_the_outbox(idp: Idp, oslo: object, services: Services) -> None:
    card = add_patron(idp, password=OLD_PASSWORD)
    succeeded(idp("patron", "reset-password", card))
    files = sorted((services.settings.home / "var" / "outbox").glob("*.eml"))
    assert len(files) == 1 and files[0].read_text().startswith("X-Comment: DEVELOPMENT OUTBOX")


def _nin() -> str:
    return person(date(1990, 5, 17))
