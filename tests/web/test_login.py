"""The login page as a patron (and an attacker) meets it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, Response, request
from flask.globals import request_ctx
from flask.testing import FlaskClient
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp import create_app
from idp.registry.models import AuditEvent, Notification
from idp.services import Services
from idp.web.limits import _only_where_limited
from tests.unit.factories import library, patron
from tests.web.conftest import csrf_token

PASSWORD = "correct horse battery"
WRONG_GUESSES_PER_DAY = 10  # README: "per card at most 10 wrong guesses in any 24 hours"
Login = Callable[..., TestResponse]


@pytest.fixture
def card(services: Services) -> str:
    with services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password=PASSWORD, pin="4711")
        return c.number


@pytest.fixture
def login(client: FlaskClient) -> Login:
    def submit(username: str, password: str, next_: str = "", ip: str = "192.0.2.1",
               lang: str = "en") -> TestResponse:
        page = client.get("/login", headers={"Accept-Language": lang})
        return client.post("/login", data={"username": username, "password": password, "next": next_,
                                           "csrf_token": csrf_token(page.text)},
                           environ_base={"REMOTE_ADDR": ip}, headers={"Accept-Language": lang})
    return submit


def test_the_form_has_the_fields_password_managers_expect(client: FlaskClient) -> None:
    page = client.get("/login", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    for needle in ('name="username"', 'autocomplete="username"', 'name="password"', 'type="password"',
                   'autocomplete="current-password"', 'name="csrf_token"', '<label for="username">Card number'):
        assert needle in page.text


def test_a_post_without_the_csrf_token_is_refused(client: FlaskClient, card: str) -> None:
    response = client.post("/login", data={"username": card, "password": PASSWORD})
    assert response.status_code == 400
    assert "patron_id" not in response.text


def test_success_sets_a_new_session_id_with_safe_cookie_flags(client: FlaskClient, login: Login, card: str) -> None:
    client.get("/login")
    before = client.get_cookie("idp_session")
    response = login(card.lower(), PASSWORD, next_="/")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    after = client.get_cookie("idp_session")
    assert after is not None and (before is None or after.value != before.value)
    assert after.http_only and after.same_site == "Lax"
    assert "You are logged in." in client.get("/", headers={"Accept-Language": "en"}).text


def test_every_failure_reads_the_same(login: Login, card: str) -> None:
    wrong_password = login(card, "not the password")
    unknown_card = login("N999999999", "not the password")
    malformed = login("#!?", "not the password")
    assert wrong_password.status_code == unknown_card.status_code == malformed.status_code == 401
    for response in (wrong_password, unknown_card, malformed):
        assert 'role="alert"' in response.text and "Login failed." in response.text


def test_a_pin_on_the_web_is_explained_not_checked(login: Login, card: str) -> None:
    response = login(card, "4711")
    assert response.status_code == 400
    assert "A PIN cannot be used to log in on the web" in response.text and "ID-porten" in response.text
    assert "patron_id" not in response.text
    # The same words for a wrong PIN: nothing tells whether the PIN was right.
    assert login(card, "1234").text.count("A PIN cannot be used") == 1


# README: "A PIN is never accepted on the web: a 4-6 digit entry gets an explanation and is not checked."
PIN_EXPLAINED = "A PIN cannot be used to log in on the web"


@pytest.mark.parametrize("pin", ["4711", "47110", "471100"], ids=["4-digits", "5-digits", "6-digits"])
def test_every_pin_length_is_explained_and_never_checked(login: Login, card: str, pin: str) -> None:
    # More PIN-shaped entries than the day's wrong guesses: none is checked, so none counts.
    for i in range(WRONG_GUESSES_PER_DAY + 1):
        response = login(card, pin, ip=f"198.51.100.{i}")
        assert response.status_code == 400 and PIN_EXPLAINED in response.text
        assert "Login failed." not in response.text
    assert login(card, PASSWORD, ip="203.0.113.9").status_code == 303


@pytest.mark.parametrize("entry", ["471", "4711000"], ids=["3-digits", "7-digits"])
def test_fewer_or_more_digits_are_a_wrong_password(login: Login, card: str, entry: str) -> None:
    response = login(card, entry)
    assert response.status_code == 401 and "Login failed." in response.text
    assert PIN_EXPLAINED not in response.text


def test_next_never_leaves_the_site(login: Login, card: str) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert login(card, PASSWORD, next_=target).headers["Location"] == "/"


def test_a_must_change_password_comes_before_anything_else(client: FlaskClient, services: Services,
                                                           login: Login) -> None:
    with services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password="12/04/1992", password_must_change=True)
    response = login(c.number, "12/04/1992", next_="/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/password/change")
    assert client.get("/").headers["Location"].startswith("/password/change")
    page = client.get("/password/change", headers={"Accept-Language": "en"})
    assert "Your password must be changed before you continue." in page.text
    token = csrf_token(page.text)
    same = client.post("/password/change", data={"current": "12/04/1992", "new": "12/04/1992",
                                                  "confirm": "12/04/1992", "csrf_token": token})
    assert same.status_code == 400
    done = client.post("/password/change", data={"current": "12/04/1992", "new": "a much better one",
                                                  "confirm": "a much better one", "csrf_token": token})
    assert done.status_code == 303
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": token})
    assert login(c.number, "a much better one").status_code == 303
    assert login(c.number, "12/04/1992").status_code == 401


@pytest.mark.backends
def test_the_lock_stops_guessing_from_any_address_and_notifies_once(app: Flask, services: Services,
                                                                    login: Login, card: str) -> None:
    for i in range(WRONG_GUESSES_PER_DAY):
        assert login(card, f"wrong guess {i}", ip=f"198.51.100.{i}").status_code == 401
    locked = login(card, PASSWORD, ip="203.0.113.9")  # the right password, from a new address
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 3600
    assert "Too many attempts" in locked.text
    assert login(card, "again", ip="203.0.113.10").status_code == 429
    with services.registry("test") as reg:
        kinds = list(reg.session.scalars(select(Notification.kind)))
    assert kinds.count("login_locked") == 1


def test_each_locked_patron_is_told_once_at_the_lock_and_the_lock_is_audited(services: Services,
                                                                             login: Login) -> None:
    """README, Brute force: after 10 wrong guesses the card is locked "and the patron gets one
    notification", whether the card is national or a library's local card; the notice names the
    10 guesses, and the audit says the web login locked that patron."""
    with services.registry("test") as reg:
        library(reg)
        national_patron, national = patron(reg, password=PASSWORD)
        local_patron, local = patron(reg, nth=1, national_id=None, local_card="L-77", password=PASSWORD,
                                     email="ola@example.org")
        accounts = {national_patron.id: national.number, local_patron.id: local.number}

    def notices(patron_id: int) -> list[Notification]:
        with services.registry("test") as reg:
            return list(reg.session.scalars(select(Notification).where(
                Notification.patron_id == patron_id, Notification.kind == "login_locked")))

    for n, (patron_id, number) in enumerate(accounts.items()):
        for i in range(10):
            assert login(number, f"wrong guess {i}", ip=f"198.51.{100 + n}.{i}").status_code == 401
        assert login(number, PASSWORD, ip="203.0.113.9").status_code == 429
        told = notices(patron_id)
        assert len(told) == 1, "the patron is told at the lock itself"
        assert told[0].data["failures"] == 10
        for retry in range(3):
            assert login(number, PASSWORD, ip=f"203.0.113.{20 + retry}").status_code == 429
        assert len(notices(patron_id)) == 1, "and only once"
    with services.registry("test") as reg:
        audited = list(reg.session.execute(select(AuditEvent.actor, AuditEvent.patron_id)
                                           .where(AuditEvent.action == "login.locked")))
    assert sorted(audited) == sorted(("web", patron_id) for patron_id in accounts)


@pytest.mark.backends
def test_the_lock_does_not_tell_whether_a_card_exists(login: Login) -> None:
    for i in range(WRONG_GUESSES_PER_DAY):
        assert login("N999999999", f"wrong guess {i}", ip=f"198.51.100.{i}").status_code == 401
    assert login("N999999999", "wrong", ip="203.0.113.9").status_code == 429


@pytest.mark.backends
def test_correct_logins_do_not_use_up_the_allowance(login: Login, card: str) -> None:
    for i in range(WRONG_GUESSES_PER_DAY + 2):
        assert login(card, PASSWORD, ip=f"198.51.100.{i}").status_code == 303


@pytest.mark.backends
def test_one_address_is_limited_across_cards(login: Login, card: str) -> None:
    statuses = [login(f"N{900000000 + i}", "wrong password", ip="198.51.100.7").status_code for i in range(31)]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429


def test_the_page_speaks_bokmal_or_english(client: FlaskClient) -> None:
    assert "Logg inn" in client.get("/login", headers={"Accept-Language": "nb-NO,nb;q=0.9"}).text
    assert "Log in with your library card" in client.get("/login", headers={"Accept-Language": "en"}).text
    client.get("/language/nb?next=/login")
    assert "Logg inn" in client.get("/login", headers={"Accept-Language": "en"}).text


@pytest.mark.backends
def test_another_worker_continues_the_session(services: Services, login: Login, client: FlaskClient,
                                              card: str) -> None:
    """Two app instances share nothing but the state store (Redis on the production backend):
    the session cookie issued by one is honoured by the other, as by another worker or host."""
    other = create_app(services=services, config={"RATELIMIT_KEY_PREFIX": "idp-test-other"}).test_client()
    assert login(card, PASSWORD, next_="/").status_code == 303
    cookie = client.get_cookie("idp_session")
    assert cookie is not None
    other.set_cookie("idp_session", cookie.value)
    assert "You are logged in." in other.get("/", headers={"Accept-Language": "en"}).text
    # The cookie is only a key: logging out on one instance ends the session on every instance.
    page = client.get("/", headers={"Accept-Language": "en"})
    client.post("/logout", data={"csrf_token": csrf_token(page.text)})
    assert "You are logged in." not in other.get("/", headers={"Accept-Language": "en"}).text


@pytest.mark.backends
def test_the_limiter_works_only_on_the_views_that_carry_limits(app: Flask, client: FlaskClient, login: Login,
                                                                card: str) -> None:
    # Flask-Limiter keeps its per-request state on the request context once it looks at a request.
    looked_at: dict[str, bool] = {}

    @app.after_request
    def note(response: Response) -> Response:
        looked_at[request.endpoint or "-"] = hasattr(request_ctx._get_current_object(), "_limiter_request_context")
        return response

    client.get("/jwks")
    client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
    login(card, "wrong password")
    assert looked_at == {"oidc.jwks": False, "oidc.token": False, "login.login_form": False,
                         "login.login_submit": True}


def test_a_limiter_release_that_hooks_requests_differently_stops_the_start() -> None:
    unhooked = Flask(__name__)
    with pytest.raises(RuntimeError, match="three request hooks, found 0"):
        _only_where_limited(unhooked, Limiter(get_remote_address), set())


@pytest.mark.backends
def test_closing_the_services_closes_the_limiters_redis_connections(app: Flask, services: Services, login: Login,
                                                                    card: str) -> None:
    login(card, "wrong password")  # the limiter counts in its storage
    storage = app.extensions["idp-limiter"].storage
    if not hasattr(storage, "get_connection"):
        pytest.skip("the embedded default keeps limits in memory: nothing to close")
    pool = storage.get_connection().connection_pool

    def open_sockets() -> int:
        return sum(c._sock is not None for c in [*pool._available_connections, *pool._in_use_connections])

    assert open_sockets() > 0
    services.close()
    assert open_sockets() == 0
