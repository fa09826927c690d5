"""Step-up to two-step login over real HTTP, driven by an independent relying party (authlib) and a
scripted browser (requests): a service that needs ``mfa`` (its minimum, or ``acr_values``) gets
an id_token whose ``acr`` is ``mfa`` and whose ``amr`` is ``["pwd", "otp"]``."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
import requests

from idp.auth import totp
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import (CALLBACK, PASSWORD, Browser, Client, callback_params, csrf, register,
                                        rp_session, start, verify_id_token)
from tests.unit.factories import library, patron
from tests.unit.test_totp import STEP_SECONDS


@pytest.fixture
def kari(live: LiveIdp) -> tuple[str, int]:
    with live.services.registry("test") as reg:
        library(reg)
        p, c = patron(reg, password=PASSWORD)
        return c.number, p.id


def enrol(live: LiveIdp, patron_id: int) -> pyotp.TOTP:
    """The patron's authenticator app, enrolled (and its first code used) at the real time."""
    with live.services.registry("test") as reg:
        enrolment = totp.start_enrolment(reg, live.services.state, patron_id, account="N", issuer="test")
    app = pyotp.TOTP(enrolment.secret)
    with live.services.registry("test") as reg:
        assert totp.confirm_enrolment(reg, live.services.state, patron_id, app.at(time.time())) is not None
    return app


def english_browser() -> Browser:
    http = requests.Session()
    http.headers["Accept-Language"] = "en"
    return Browser(http)


def next_code(app: pyotp.TOTP) -> str:
    """A code not used yet: the next time step's, which the one-step window accepts already."""
    return app.at(time.time() + STEP_SECONDS)


def log_in(browser: Browser, url: str, card: str) -> requests.Response:
    page = browser.follow(url)
    assert page.status_code == 200 and 'name="username"' in page.text
    next_ = re.search(r'name="next"[^>]*value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    return browser.post(page.url, {"username": card, "password": PASSWORD, "csrf_token": csrf(page.text),
                                   "next": next_})


def second_factor(browser: Browser, page: requests.Response, code: str) -> requests.Response:
    assert "/login/second-factor" in page.url and 'name="code"' in page.text, page.text[:2000]
    next_ = re.search(r'name="next"[^>]*value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    return browser.post(page.url.split("?")[0], {"code": code, "next": next_, "csrf_token": csrf(page.text)})


def consent(browser: Browser, live: LiveIdp, page: requests.Response) -> requests.Response:
    if page.status_code == 200 and 'name="decision"' in page.text:
        return browser.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(page.text)})
    return page


def step_up_login(live: LiveIdp, client: Client, card: str, app: pyotp.TOTP, **params: str) -> dict[str, object]:
    rp = rp_session(live, client)
    url, state, verifier = start(live, rp, **params)
    browser = english_browser()
    after_password = log_in(browser, url, card)
    done = consent(browser, live, second_factor(browser, after_password, next_code(app)))
    back = callback_params(done)
    assert back["state"] == state
    token = rp.fetch_token(f"{live.url}/token", code=back["code"], code_verifier=verifier)
    return verify_id_token(live, token["id_token"], client, "n-0S6")


def test_a_service_whose_minimum_is_mfa_gets_password_plus_totp(live: LiveIdp, kari: tuple[str, int]) -> None:
    card, patron_id = kari
    app = enrol(live, patron_id)
    claims = step_up_login(live, register(live, min_acr="mfa"), card, app)
    assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "otp"]
    assert abs(int(claims["auth_time"]) - time.time()) < 60  # type: ignore[call-overload]


def test_acr_values_mfa_raises_the_level_for_one_login(live: LiveIdp, kari: tuple[str, int]) -> None:
    card, patron_id = kari
    app = enrol(live, patron_id)
    client = register(live)
    claims = step_up_login(live, client, card, app, acr_values="mfa")
    assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "otp"]


def test_single_sign_on_steps_up_without_the_password_again(live: LiveIdp, kari: tuple[str, int]) -> None:
    card, patron_id = kari
    app = enrol(live, patron_id)
    browser = english_browser()
    plain, strict = register(live), register(live, min_acr="mfa")
    url, _, _ = start(live, rp_session(live, plain))
    first = consent(browser, live, log_in(browser, url, card))
    assert "code" in callback_params(first)
    rp = rp_session(live, strict)
    url, _, verifier = start(live, rp)
    prompt = browser.follow(url)
    # Logged in already: straight to the second factor, not to the password page.
    assert prompt.status_code == 200 and "/login/second-factor" in prompt.url and 'name="password"' not in prompt.text
    done = consent(browser, live, second_factor(browser, prompt, next_code(app)))
    token = rp.fetch_token(f"{live.url}/token", code=callback_params(done)["code"], code_verifier=verifier)
    claims = verify_id_token(live, token["id_token"], strict, "n-0S6")
    assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "otp"]


def test_a_replayed_totp_code_is_refused(live: LiveIdp, kari: tuple[str, int]) -> None:
    card, patron_id = kari
    app = enrol(live, patron_id)
    client = register(live, min_acr="mfa")
    code = next_code(app)
    url, _, _ = start(live, rp_session(live, client))
    browser = english_browser()
    assert "code" in callback_params(consent(browser, live, second_factor(browser, log_in(browser, url, card), code)))
    # The same code again, from another browser that knows the password: refused, no code for the service.
    url, _, _ = start(live, rp_session(live, client))
    other = english_browser()
    replay = second_factor(other, log_in(other, url, card), code)
    assert replay.status_code == 401 and "used already" in replay.text
    assert "Location" not in replay.headers


def test_a_patron_without_totp_is_told_how_to_set_it_up(live: LiveIdp, kari: tuple[str, int]) -> None:
    card, _ = kari
    client = register(live, min_acr="mfa")
    url, _, _ = start(live, rp_session(live, client))
    browser = english_browser()
    login_page = browser.follow(url)
    assert "This service requires two-step login" in login_page.text
    page = log_in(browser, url, card)
    assert page.status_code == 200 and "/login/second-factor" in page.url
    assert "You have not set it up yet" in page.text and 'role="alert"' not in page.text
    assert 'href="/account/totp/setup?next=/authorize/resume"' in page.text


def test_prompt_none_below_the_level_says_login_required(live: LiveIdp, kari: tuple[str, int]) -> None:
    card, patron_id = kari
    enrol(live, patron_id)
    browser = english_browser()
    url, _, _ = start(live, rp_session(live, register(live)))
    callback_params(consent(browser, live, log_in(browser, url, card)))
    url, state, _ = start(live, rp_session(live, register(live, min_acr="mfa")), prompt="none")
    params = callback_params(browser.follow(url))
    assert params["error"] == "login_required" and params["state"] == state


def test_levels_above_mfa_are_still_refused_without_id_porten(live: LiveIdp) -> None:
    client = register(live, min_acr="idporten-loa-substantial")
    url, state, _ = start(live, rp_session(live, client))
    params = callback_params(requests.get(url, allow_redirects=False, timeout=5))
    assert params["error"] == "unmet_authentication_requirements" and params["state"] == state
    assert CALLBACK.startswith("http://127.0.0.1")
