"""My account (/account): every change behind a fresh one-time code sent by e-mail or SMS.

Driven in-process with the Flask test client (embedded backend); messages are caught by the
``Recorder`` (tests/unit/test_otp.py), which stands in for the mail server and the SMS gateway.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp import create_app, notifications
from idp.auth import otp
from idp.registry.models import AuditEvent, Credential, Notification, Patron
from idp.services import Services
from tests.conftest import FakeClock
from tests.unit.factories import detached, library, patron
from tests.unit.test_otp import Recorder, install_recorder
from tests.web.conftest import csrf_token

PASSWORD = "correct horse battery"
EN = {"Accept-Language": "en"}
SENDS_PER_HOUR = 5  # README: IDP_OTP_SENDS_PER_HOUR, 5 codes per patron in an hour by default
CHANGE_WINDOW = 10 * 60  # README: with the code the patron "may then make that one change within 10 minutes"


@pytest.fixture
def outbox(services: Services) -> Recorder:
    return install_recorder(services)


@pytest.fixture
def kari(services: Services) -> tuple[int, str]:
    with services.registry("test") as reg:
        library(reg)
        p, c = patron(reg, password=PASSWORD, pin="4711")
        return p.id, c.number


def log_in(client: FlaskClient, card: str, password: str = PASSWORD) -> TestResponse:
    page = client.get("/login", headers=EN)
    response = client.post("/login", data={"username": card, "password": password,
                                           "csrf_token": csrf_token(page.text)}, headers=EN)
    assert response.status_code == 303, response.text
    return response


@pytest.fixture
def logged_in(client: FlaskClient, kari: tuple[int, str], outbox: Recorder) -> FlaskClient:
    log_in(client, kari[1])
    return client


def get(client: FlaskClient, path: str) -> TestResponse:
    return client.get(path, headers=EN)


def post(client: FlaskClient, path: str, data: dict[str, str], page: TestResponse | None = None) -> TestResponse:
    token = csrf_token((page or get(client, "/account")).text)
    return client.post(path, data={**data, "csrf_token": token}, headers=EN)


def prove(client: FlaskClient, outbox: Recorder, action: str, page_path: str, channel: str = "email") -> None:
    """Get and type the one-time code that opens ``action``'s page."""
    page = get(client, page_path)
    assert page.status_code == 200 and "we first send you a one-time code" in page.text
    sent = post(client, "/account/code/send", {"action": action, "channel": channel}, page)
    assert sent.status_code == 303 and sent.location == page_path
    page = get(client, page_path)
    assert "We have sent a one-time code to" in page.text
    checked = post(client, "/account/code/check", {"action": action, "code": outbox.last().code}, page)
    assert checked.status_code == 303 and checked.location == page_path


def db_patron(services: Services, patron_id: int) -> Patron:
    return detached(services, Patron, patron_id)


# -- the overview -----------------------------------------------------------------------------------

def test_my_account_needs_a_login(client: FlaskClient) -> None:
    for path in ("/account", "/account/password", "/account/pin", "/account/email", "/account/phone",
                 "/account/totp", "/account/totp/setup"):
        response = client.get(path)
        assert response.status_code == 303 and response.location.startswith("/login?next=")


def test_the_overview_shows_masked_contact_details_and_the_links(logged_in: FlaskClient, kari: tuple[int, str]) -> None:
    page = get(logged_in, "/account")
    assert page.status_code == 200
    for needle in ("My account", kari[1], "k\u2022\u2022\u2022@example.org", "\u2022\u2022\u2022\u2022\u2022999",
                   'href="/account/password"', 'href="/account/pin"', 'href="/account/email"',
                   'href="/account/phone"', 'href="/account/totp"', 'href="/account/services"'):
        assert needle in page.text
    assert "kari@example.org" not in page.text and "99999999" not in page.text
    assert get(logged_in, "/account/services").status_code == 200  # the consent list is still there


def test_in_bokmal_by_default(logged_in: FlaskClient) -> None:
    page = logged_in.get("/account/pin", headers={"Accept-Language": "nb"})
    assert "Hvor skal vi sende koden?" in page.text and "Send koden" in page.text


# -- the one-time code gate ------------------------------------------------------------------------

def test_a_change_page_first_asks_for_a_code(logged_in: FlaskClient, outbox: Recorder) -> None:
    page = get(logged_in, "/account/password")
    assert 'name="channel"' in page.text and "E-mail to k\u2022\u2022\u2022@example.org" in page.text
    assert "Text message (SMS) to" in page.text and 'name="new"' not in page.text
    # The form cannot be skipped: a change without the code changes nothing.
    response = post(logged_in, "/account/password", {"current": PASSWORD, "new": "a new passphrase here",
                                                     "confirm": "a new passphrase here"}, page)
    assert response.status_code == 403 and outbox.sent == []


def test_a_wrong_code_is_refused_and_the_right_one_opens_the_page_once(logged_in: FlaskClient, outbox: Recorder,
                                                                      services: Services) -> None:
    page = get(logged_in, "/account/pin")
    post(logged_in, "/account/code/send", {"action": "pin", "channel": "sms"}, page)
    assert outbox.last().channel == "sms" and outbox.last().to == "+4799999999"
    code = outbox.last().code
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    refused = post(logged_in, "/account/code/check", {"action": "pin", "code": wrong}, page)
    assert refused.status_code == 401 and "That is not the code we sent" in refused.text
    # A code for one change does not open another.
    other = post(logged_in, "/account/code/check", {"action": "email", "code": code}, page)
    assert other.status_code == 400
    assert post(logged_in, "/account/code/check", {"action": "pin", "code": code}, page).status_code == 303
    form = get(logged_in, "/account/pin")
    assert 'name="new"' in form.text
    done = post(logged_in, "/account/pin", {"new": "2580", "confirm": "2580"}, form)
    assert done.status_code == 303 and done.location == "/account"
    assert "Your PIN has been changed." in get(logged_in, "/account").text
    # The code was used up by that change: the next one needs a new code.
    assert "we first send you a one-time code" in get(logged_in, "/account/pin").text
    again = post(logged_in, "/account/code/check", {"action": "pin", "code": code}, form)
    assert again.status_code == 400
    with services.registry("test") as reg:
        assert reg.hasher.verify(reg.session.get(Credential, (db_id(services), "pin")).hash, "2580").ok


@pytest.mark.parametrize(("later", "opens"), [(CHANGE_WINDOW - 5, True), (CHANGE_WINDOW + 5, False)],
                         ids=["within-10-minutes", "after-10-minutes"])
def test_a_code_opens_its_change_for_10_minutes(logged_in: FlaskClient, outbox: Recorder, clock: FakeClock,
                                                 later: int, opens: bool) -> None:
    prove(logged_in, outbox, "pin", "/account/pin")
    clock.advance(seconds=later)  # the services' clock times the proof
    assert ('name="new"' in get(logged_in, "/account/pin").text) is opens


def db_id(services: Services) -> int:
    with services.registry("test") as reg:
        return reg.session.scalar(select(Patron.id))  # type: ignore[return-value]


def test_change_password_needs_the_code_and_the_current_password(logged_in: FlaskClient, outbox: Recorder,
                                                                 kari: tuple[int, str]) -> None:
    prove(logged_in, outbox, "password", "/account/password")
    form = get(logged_in, "/account/password")
    wrong = post(logged_in, "/account/password", {"current": "not my password", "new": "a new passphrase",
                                                  "confirm": "a new passphrase"}, form)
    assert wrong.status_code == 401 and "The current password is wrong." in wrong.text
    short = post(logged_in, "/account/password", {"current": PASSWORD, "new": "short", "confirm": "short"}, form)
    assert short.status_code == 400 and 'aria-invalid="true"' in short.text
    # Mistakes do not use up the code: the form is still open.
    done = post(logged_in, "/account/password", {"current": PASSWORD, "new": "a new passphrase",
                                                 "confirm": "a new passphrase"}, form)
    assert done.status_code == 303
    post(logged_in, "/logout", {})
    log_in(logged_in, kari[1], "a new passphrase")


def test_change_email_confirms_the_new_address_with_its_own_code(logged_in: FlaskClient, outbox: Recorder,
                                                                 services: Services, kari: tuple[int, str]) -> None:
    prove(logged_in, outbox, "email", "/account/email")
    first_code = outbox.last().code
    form = get(logged_in, "/account/email")
    assert 'name="value"' in form.text
    bad = post(logged_in, "/account/email", {"value": "not-an-address"}, form)
    assert bad.status_code == 400 and "That is not an e-mail address" in bad.text
    same = post(logged_in, "/account/email", {"value": "kari@example.org"}, form)
    assert same.status_code == 400 and "already" in same.text
    sent = post(logged_in, "/account/email", {"value": "kari.new@example.org"}, form)
    assert sent.status_code == 303
    assert outbox.last().to == "kari.new@example.org"
    page = get(logged_in, "/account/email")
    assert "To check the new address, we have sent a code to k\u2022\u2022\u2022@example.org" in page.text
    # The first code (sent to the old address) does not confirm the new one.
    assert post(logged_in, "/account/email/confirm", {"code": first_code}, page).status_code == 401
    assert db_patron(services, kari[0]).email == "kari@example.org"
    done = post(logged_in, "/account/email/confirm", {"code": outbox.last().code}, page)
    assert done.status_code == 303
    assert db_patron(services, kari[0]).email == "kari.new@example.org"
    assert "Your e-mail address has been changed." in get(logged_in, "/account").text
    with services.registry("test") as reg:
        events = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "patron.update")).all()
        assert [e.detail for e in events] == [{"fields": ["email"]}]
        assert "kari.new" not in str([e.detail for e in reg.session.scalars(select(AuditEvent))])
        kinds = [n.data for n in reg.session.scalars(
            select(Notification).where(Notification.kind == "account_changed"))]
        assert kinds == [{"what": "email"}]
    # The notice goes to the old address: if this was a takeover, that is where the owner reads.
    assert notifications.deliver_pending(lambda: services.registry("notifier"), services.messenger).email == 1
    notice = outbox.last()
    assert notice.to == "kari@example.org" and "E-postadressen for bibliotekinnloggingen din er endret" in notice.text


def test_change_phone_by_sms_to_the_new_number(logged_in: FlaskClient, outbox: Recorder, services: Services,
                                               kari: tuple[int, str]) -> None:
    old_phone = db_patron(services, kari[0]).phone
    assert old_phone and old_phone != "+4791234567"
    prove(logged_in, outbox, "phone", "/account/phone", channel="sms")
    form = get(logged_in, "/account/phone")
    bad = post(logged_in, "/account/phone", {"value": "12"}, form)
    assert bad.status_code == 400 and "A phone number has 5 to 15 digits" in bad.text
    post(logged_in, "/account/phone", {"value": "+47 912 34 567"}, form)
    assert (outbox.last().channel, outbox.last().to) == ("sms", "+4791234567")
    page = get(logged_in, "/account/phone")
    assert post(logged_in, "/account/phone/confirm", {"code": outbox.last().code}, page).status_code == 303
    assert db_patron(services, kari[0]).phone == "+4791234567"
    # The notice goes by SMS to the old number, not the new one.
    assert notifications.deliver_pending(lambda: services.registry("notifier"), services.messenger).sms == 1
    assert (outbox.last().channel, outbox.last().to) == ("sms", old_phone)
    assert "Telefonnummeret for bibliotekinnloggingen din er endret" in outbox.last().text


def test_a_patron_without_email_or_phone_is_told_what_to_do(client: FlaskClient, services: Services,
                                                           outbox: Recorder) -> None:
    with services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password=PASSWORD, email=None, phone=None)
        number = c.number
    log_in(client, number)
    page = get(client, "/account/password")
    assert page.status_code == 200 and "no e-mail address or phone number registered" in page.text
    assert 'name="channel"' not in page.text


def test_too_many_codes_in_an_hour_are_refused_with_a_clear_page(logged_in: FlaskClient, outbox: Recorder) -> None:
    page = get(logged_in, "/account/pin")
    for _ in range(SENDS_PER_HOUR):
        assert post(logged_in, "/account/code/send", {"action": "pin", "channel": "email"}, page).status_code == 303
    refused = post(logged_in, "/account/code/send", {"action": "pin", "channel": "email"}, page)
    assert refused.status_code == 429 and "several codes in the last hour" in refused.text
    assert len(outbox.sent) == SENDS_PER_HOUR


def test_a_failing_mail_server_gets_a_clear_page(logged_in: FlaskClient, outbox: Recorder) -> None:
    outbox.fail = True
    page = get(logged_in, "/account/pin")
    response = post(logged_in, "/account/code/send", {"action": "pin", "channel": "email"}, page)
    assert response.status_code == 502 and "We could not send the code just now" in response.text
    assert "could not be reached (test)" not in response.text


def test_a_made_up_action_or_channel_is_refused(logged_in: FlaskClient, outbox: Recorder) -> None:
    page = get(logged_in, "/account/pin")
    assert post(logged_in, "/account/code/send", {"action": "admin", "channel": "email"}, page).status_code == 400
    assert post(logged_in, "/account/code/send", {"action": "pin", "channel": "fax"}, page).status_code == 400
    assert outbox.sent == []


def test_wrong_codes_are_limited_per_account(services: Services, outbox: Recorder, kari: tuple[int, str]) -> None:
    services.settings = services.settings.model_copy(update={"otp_limit_per_account": "3 per hour"})
    app = create_app(services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})
    with app.test_client() as client:
        log_in(client, kari[1])
        page = get(client, "/account/pin")
        post(client, "/account/code/send", {"action": "pin", "channel": "email"}, page)
        code = outbox.last().code
        wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
        statuses = [post(client, "/account/code/check", {"action": "pin", "code": wrong}, page).status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 401]
        locked = post(client, "/account/code/check", {"action": "pin", "code": code}, page)
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


def test_codes_and_addresses_never_reach_the_logs(logged_in: FlaskClient, outbox: Recorder,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    prove(logged_in, outbox, "email", "/account/email")
    form = get(logged_in, "/account/email")
    post(logged_in, "/account/email", {"value": "kari.new@example.org"}, form)
    logged = caplog.text
    assert outbox.sent and all(s.code not in logged for s in outbox.sent)
    assert "kari@example.org" not in logged and "kari.new@example.org" not in logged
    assert "one-time code issued" in logged


def test_the_channel_must_be_one_the_patron_has(client: FlaskClient, services: Services, outbox: Recorder) -> None:
    with services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password=PASSWORD, phone=None)
        number = c.number
    log_in(client, number)
    page = get(client, "/account/pin")
    assert "Text message" not in page.text
    assert post(client, "/account/code/send", {"action": "pin", "channel": "sms"}, page).status_code == 400
    assert outbox.sent == []


def test_otp_api_is_what_other_features_use(services: Services, outbox: Recorder, kari: tuple[int, str]) -> None:
    # The federation-linking flow calls exactly these two functions.
    issued = otp.issue_code(services, patron_id=kari[0], purpose="link:unimore", channel="email")
    assert otp.use_code(services, challenge=issued.challenge, code=outbox.last().code, patron_id=kari[0],
                        purpose="link:unimore").ok

