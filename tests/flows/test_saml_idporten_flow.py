"""SAML service providers demanding ID-porten levels, over real HTTP: a python3-saml SP asks (by its
registered --min-acr or a RequestedAuthnContext), the IdP sends the patron to the fake ID-porten
(tests/fakes/idporten.py), and the SP's toolkit verifies the assertion and reads the level it names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from tests.conftest import FakeClock
from tests.fakes.idporten import HIGH, SUBSTANTIAL, FakeIdPorten
from tests.flows.conftest import LiveIdp
from tests.flows.test_idporten_flow import (PASSWORD, browser, idporten, idporten_link, kari,  # noqa: F401 - fixtures
                                            live, logged_in_with_password, oslo)
from tests.flows.test_oidc_flow import Browser, csrf
from tests.flows.test_saml_flow import FILM, register, status_of
from tests.nin import person
from tests.saml.sps import Form, OneLoginSp, post_form
from tests.unit.factories import ADULT_BORN

OURS_HIGH = "urn:x-patron-idp:ac:idporten-loa-high"
PASSWORD_REF = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"


@pytest.fixture(autouse=True)
def wall_clock(clock: FakeClock) -> None:
    clock.now = datetime.now(UTC)  # python3-saml stamps its AuthnRequest with the wall clock; we check its age


def film(live: LiveIdp, contexts: list[str] | None = None, comparison: str = "exact", **policy: Any) -> OneLoginSp:
    sp = OneLoginSp(live.url, "film.example")
    if contexts:
        sp.settings["security"]["requestedAuthnContext"] = contexts
        sp.settings["security"]["requestedAuthnContextComparison"] = comparison
    register(live, sp, FILM, **policy)
    return sp


def through_idporten(b: Browser, live: LiveIdp, login_page: requests.Response) -> Form:
    """The login page offers ID-porten alone; click it, consent, and return the form to the SP."""
    assert login_page.status_code == 200 and 'name="password"' not in login_page.text, login_page.text[:300]
    page = b.follow(idporten_link(login_page))
    if 'name="decision"' in page.text:
        page = b.post(f"{live.url}/saml/sso/consent", {"decision": "allow", "csrf_token": csrf(page.text)})
    return post_form(page.text)


def accepted_contexts(sp: OneLoginSp, form: Form, request_id: str) -> list[str]:
    auth = sp.acs(form, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    return list(auth.get_last_authn_contexts())


@pytest.mark.parametrize("ref", [SUBSTANTIAL, "urn:x-patron-idp:ac:idporten-loa-substantial"])
def test_a_requested_idporten_level_sends_the_patron_to_idporten(live: LiveIdp, idporten: FakeIdPorten, kari: int,
                                                                  ref: str) -> None:
    idporten.person = person(ADULT_BORN)
    sp = film(live, [ref], "minimum")
    url, request_id = sp.login_url()
    b = browser()
    form = through_idporten(b, live, b.follow(url))
    assert idporten.authorize_requests[-1]["acr_values"] == SUBSTANTIAL
    assert accepted_contexts(sp, form, request_id) == [ref]  # named as the SP named it


def test_a_password_session_steps_up_to_idporten_for_an_sp_registered_at_high(live: LiveIdp, idporten: FakeIdPorten,
                                                                               kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    b = logged_in_with_password(live, kari)
    sp = film(live, min_acr=HIGH)
    url, request_id = sp.login_url()
    form = through_idporten(b, live, b.follow(url))
    assert idporten.authorize_requests[-1]["acr_values"] == HIGH
    assert accepted_contexts(sp, form, request_id) == [OURS_HIGH]
    # The session now holds high: an SP asking exactly for a password login hears "password", the
    # level it named (high includes it), with no new login.
    exact = OneLoginSp(live.url, "library.example")
    exact.settings["security"]["requestedAuthnContext"] = [PASSWORD_REF]
    register(live, exact, FILM)
    url, request_id = exact.login_url()
    page = b.follow(url)
    if 'name="decision"' in page.text:
        page = b.post(f"{live.url}/saml/sso/consent", {"decision": "allow", "csrf_token": csrf(page.text)})
    assert accepted_contexts(exact, post_form(page.text), request_id) == [PASSWORD_REF]


def test_a_lower_level_from_idporten_is_no_login(live: LiveIdp, idporten: FakeIdPorten, kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    idporten.acr = SUBSTANTIAL  # asked for high, answered substantial
    sp = film(live, [HIGH], "exact")
    url, _ = sp.login_url()
    b = browser()
    page = b.follow(idporten_link(b.follow(url)))
    assert page.status_code == 403 and "SAMLResponse" not in page.text


@pytest.mark.parametrize(("contexts", "comparison", "minimum"), [
    ([PASSWORD_REF], "exact", SUBSTANTIAL),  # exact below the SP's minimum
    ([PASSWORD_REF], "maximum", HIGH),  # a ceiling below it
    ([HIGH], "better", "password"),  # nothing is above the top
])
def test_a_demand_that_cannot_be_met_is_no_authn_context(live: LiveIdp, idporten: FakeIdPorten, contexts: list[str],
                                                         comparison: str, minimum: str) -> None:
    sp = film(live, contexts, comparison, min_acr=minimum)
    url, _ = sp.login_url()
    page = browser().follow(url)
    form = post_form(page.text)
    assert status_of(form) == NO_AUTHN_CONTEXT
    assert "Assertion" not in str(form.fields)


def test_a_logout_ends_idporten_first_then_the_service_providers(live: LiveIdp, idporten: FakeIdPorten,
                                                                  kari: int) -> None:
    idporten.person = person(ADULT_BORN)
    sp = film(live, min_acr=SUBSTANTIAL)
    url, request_id = sp.login_url()
    b = browser()
    assert accepted_contexts(sp, through_idporten(b, live, b.follow(url)), request_id)
    landing = b.http.get(f"{live.url}/", timeout=5)
    page = b.post(f"{live.url}/logout", {"csrf_token": csrf(landing.text)})
    # Through ID-porten's logout and back to our logout page, whose frame sends the SP its LogoutRequest.
    assert len(idporten.logouts) == 1
    assert page.url.startswith(f"{live.url}/logout/progress/") and "/saml/slo/send/" in page.text
