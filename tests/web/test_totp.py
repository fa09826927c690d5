"""Two-step login in the browser pages: TOTP enrolment (QR code, key, first code, recovery codes),
removal only after re-authentication, and the step-up page (/login/second-factor)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import create_app
from idp.auth import totp
from idp.registry.models import AuditEvent, TotpCredential
from idp.services import Services
from tests.conftest import FakeClock
from tests.unit.test_otp import Recorder
from tests.unit.test_totp import RECOVERY_CODES, STEP_SECONDS
from tests.web.test_account import PASSWORD, get, log_in, post, prove
from tests.web.test_account import kari, logged_in, outbox  # noqa: F401 - fixtures


def enrol_in_browser(client: FlaskClient, outbox: Recorder, clock: FakeClock,
                     next_: str = "") -> tuple[pyotp.TOTP, list[str]]:
    """Enrol with the authenticator "app" at the register's (fake) time; the clock then moves a step on."""
    path = "/account/totp/setup" + (f"?next={next_}" if next_ else "")
    get(client, path)  # remembers next
    prove(client, outbox, "totp-setup", "/account/totp/setup")
    page = get(client, "/account/totp/setup")
    key = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")  # type: ignore[union-attr]
    app = pyotp.TOTP(key)
    done = post(client, "/account/totp/setup", {"code": app.at(clock.now)}, page)
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", done.text)
    assert len(codes) == RECOVERY_CODES
    clock.advance(seconds=STEP_SECONDS)
    return app, codes


# -- enrolment -------------------------------------------------------------------------------------

def test_the_enrolment_page_has_a_qr_code_with_a_text_alternative_and_the_key(logged_in: FlaskClient,
                                                                              outbox: Recorder,
                                                                              services: Services) -> None:
    status = get(logged_in, "/account/totp")
    assert "Two-step login is off." in status.text and 'href="/account/totp/setup"' in status.text
    prove(logged_in, outbox, "totp-setup", "/account/totp/setup")
    page = get(logged_in, "/account/totp/setup")
    assert page.status_code == 200
    qr = re.search(r'<div class="qr" role="img" id="totp-qr" aria-label="([^"]+)"><svg aria-hidden="true"', page.text)
    assert qr and "QR code" in qr.group(1) and "type the key" in qr.group(1)
    assert "<path" in page.text and "<script" not in page.text
    key = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page.text)
    assert key and len(key.group(1).replace(" ", "")) == 32
    assert "30 seconds either way" in page.text  # the clock window, stated
    # No inline script or style and no data: URL, so the CSP stays as strict as on every page.
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self';")
    assert "style=" not in page.text and "data:" not in page.text
    # Reloading shows the same key; nothing is stored before the first code.
    assert key.group(1) in get(logged_in, "/account/totp/setup").text
    with services.registry("test") as reg:
        assert reg.session.scalar(select(TotpCredential)) is None


def test_a_wrong_first_code_enrols_nothing(logged_in: FlaskClient, outbox: Recorder, services: Services) -> None:
    prove(logged_in, outbox, "totp-setup", "/account/totp/setup")
    page = get(logged_in, "/account/totp/setup")
    refused = post(logged_in, "/account/totp/setup", {"code": "000000"}, page)
    assert refused.status_code == 401 and "That code does not match" in refused.text
    assert 'id="totp-qr"' in refused.text  # the same page again, to try the next code
    with services.registry("test") as reg:
        assert reg.session.scalar(select(TotpCredential)) is None


def test_enrolment_shows_recovery_codes_once_and_turns_two_step_login_on(logged_in: FlaskClient, outbox: Recorder,
                                                                        services: Services, clock: FakeClock) -> None:
    _, codes = enrol_in_browser(logged_in, outbox, clock)
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c) for c in codes)
    assert "Two-step login is on." in get(logged_in, "/account/totp").text
    assert "10 unused recovery codes" in get(logged_in, "/account/totp").text
    assert 'id="totp-state">on<' in get(logged_in, "/account").text
    # The setup page now sends the patron to the status page: one authenticator at a time.
    assert get(logged_in, "/account/totp/setup").status_code == 303
    with services.registry("test") as reg:
        actions = [e.action for e in reg.session.scalars(select(AuditEvent))]
        assert "totp.enrol" in actions and "totp.recovery_codes" in actions


def test_new_recovery_codes_need_a_code_and_replace_the_old(logged_in: FlaskClient, outbox: Recorder,
                                                            clock: FakeClock) -> None:
    _, old = enrol_in_browser(logged_in, outbox, clock)
    prove(logged_in, outbox, "recovery-codes", "/account/totp/recovery-codes")
    page = get(logged_in, "/account/totp/recovery-codes")
    assert "The ones you have now stop working" in page.text
    new_page = post(logged_in, "/account/totp/recovery-codes", {}, page)
    new = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", new_page.text)
    assert len(new) == 10 and not set(new) & set(old)


# -- removal ----------------------------------------------------------------------------------------

def test_removal_needs_a_code_the_password_and_the_second_factor(logged_in: FlaskClient, outbox: Recorder,
                                                                 services: Services, clock: FakeClock) -> None:
    _app, codes = enrol_in_browser(logged_in, outbox, clock)
    assert "we first send you a one-time code" in get(logged_in, "/account/totp/remove").text
    prove(logged_in, outbox, "totp-remove", "/account/totp/remove")
    page = get(logged_in, "/account/totp/remove")
    wrong_password = post(logged_in, "/account/totp/remove", {"password": "not my password", "code": codes[0]}, page)
    assert wrong_password.status_code == 401 and "Nothing was changed" in wrong_password.text
    wrong_code = post(logged_in, "/account/totp/remove", {"password": PASSWORD, "code": "000000"}, page)
    assert wrong_code.status_code == 401
    with services.registry("test") as reg:
        assert totp.is_enrolled(reg, reg.session.scalar(select(TotpCredential.patron_id)))  # type: ignore[arg-type]
    # The wrong password did not spend the recovery code: it still removes.
    done = post(logged_in, "/account/totp/remove", {"password": PASSWORD, "code": codes[0]}, page)
    assert done.status_code == 303
    assert "Two-step login has been removed." in get(logged_in, "/account").text
    with services.registry("test") as reg:
        assert reg.session.scalar(select(TotpCredential)) is None
        assert "totp.remove" in [e.action for e in reg.session.scalars(select(AuditEvent))]


def test_removal_with_a_code_from_the_app(logged_in: FlaskClient, outbox: Recorder, clock: FakeClock) -> None:
    app, _ = enrol_in_browser(logged_in, outbox, clock)
    prove(logged_in, outbox, "totp-remove", "/account/totp/remove")
    page = get(logged_in, "/account/totp/remove")
    used = app.at(clock.now - timedelta(seconds=STEP_SECONDS))  # the code that confirmed the enrolment
    assert post(logged_in, "/account/totp/remove", {"password": PASSWORD, "code": used}, page).status_code == 401
    done = post(logged_in, "/account/totp/remove", {"password": PASSWORD,
                                                      "code": app.at(clock.now)}, page)
    assert done.status_code == 303  # the code used at enrolment is refused; the next one works


# -- the step-up page -------------------------------------------------------------------------------

def test_step_up_sets_mfa_and_a_new_session_id(logged_in: FlaskClient, outbox: Recorder, services: Services,
                                               clock: FakeClock) -> None:
    app, _ = enrol_in_browser(logged_in, outbox, clock)
    page = get(logged_in, "/login/second-factor?next=/account")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    assert '<label for="code">Code from your authenticator app</label>' in page.text
    before = logged_in.get_cookie("idp_session").value  # type: ignore[union-attr]
    done = post(logged_in, "/login/second-factor", {"code": app.at(clock.now),
                                                   "next": "/account"}, page)
    assert done.status_code == 303 and done.location == "/account"
    assert logged_in.get_cookie("idp_session").value != before  # type: ignore[union-attr]
    with logged_in.session_transaction() as session:
        assert session["acr"] == "mfa" and session["amr"] == ["pwd", "otp"]
    # Already at mfa: the page steps aside.
    assert get(logged_in, "/login/second-factor?next=/account").location == "/account"


def test_a_replayed_code_is_refused_on_the_step_up_page(logged_in: FlaskClient, outbox: Recorder,
                                                        services: Services, kari: tuple[int, str],
                                                        clock: FakeClock) -> None:
    app, _ = enrol_in_browser(logged_in, outbox, clock)
    code = app.at(clock.now)
    page = get(logged_in, "/login/second-factor")
    assert post(logged_in, "/login/second-factor", {"code": code}, page).status_code == 303
    # Another browser of the same patron (a stolen code, a second tab) gets nowhere with it.
    other = create_app(services=services,
                       config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"}).test_client()
    log_in(other, kari[1])
    page = get(other, "/login/second-factor")
    replay = post(other, "/login/second-factor", {"code": code}, page)
    assert replay.status_code == 401 and "used already" in replay.text
    with other.session_transaction() as session:
        assert session["acr"] == "password"


def test_a_recovery_code_steps_up_once(logged_in: FlaskClient, outbox: Recorder, services: Services,
                                       kari: tuple[int, str], clock: FakeClock) -> None:
    _, codes = enrol_in_browser(logged_in, outbox, clock)
    page = get(logged_in, "/login/second-factor")
    assert post(logged_in, "/login/second-factor", {"code": codes[3].upper()}, page).status_code == 303
    post(logged_in, "/logout", {})
    log_in(logged_in, kari[1])
    page = get(logged_in, "/login/second-factor")
    assert post(logged_in, "/login/second-factor", {"code": codes[3]}, page).status_code == 401
    with services.registry("test") as reg:
        methods = [e.detail.get("method") for e in reg.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "login.second_factor"))]
        assert methods == ["recovery_code"]


def test_without_totp_the_patron_is_shown_how_to_set_it_up(logged_in: FlaskClient) -> None:
    page = get(logged_in, "/login/second-factor?next=/authorize/resume")
    assert page.status_code == 200
    assert "You have not set it up yet" in page.text and 'role="alert"' not in page.text
    assert 'href="/account/totp/setup?next=/authorize/resume"' in page.text


def test_the_step_up_page_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/login/second-factor?next=/authorize/resume")
    assert response.status_code == 303 and response.location.startswith("/login?next=")


def test_wrong_second_factors_are_limited_per_account(services: Services, outbox: Recorder,
                                                      kari: tuple[int, str], clock: FakeClock) -> None:
    services.settings = services.settings.model_copy(update={"totp_limit_per_account": "3 per hour"})
    flask_app = create_app(services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})
    client = flask_app.test_client()
    log_in(client, kari[1])
    app, _ = enrol_in_browser(client, outbox, clock)
    page = get(client, "/login/second-factor")
    statuses = [post(client, "/login/second-factor", {"code": "000000"}, page).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    locked = post(client, "/login/second-factor", {"code": app.at(clock.now)}, page)
    assert locked.status_code == 429 and "Retry-After" in locked.headers


@pytest.mark.parametrize("lang", ["nb", "en"])
def test_the_pages_speak_both_languages(logged_in: FlaskClient, outbox: Recorder, lang: str,
                                        clock: FakeClock) -> None:
    enrol_in_browser(logged_in, outbox, clock)
    page = logged_in.get("/login/second-factor", headers={"Accept-Language": lang})
    expected = "Kode fra autentiseringsappen din" if lang == "nb" else "Code from your authenticator app"
    assert expected in page.text and f'<html lang="{lang}">' in page.text
