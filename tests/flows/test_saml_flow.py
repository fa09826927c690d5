"""The SAML IdP over real HTTP, driven by two independent service providers (python3-saml and a
pysaml2 Saml2Client) and a scripted browser (requests), as a film platform, a university library
and their patrons would use them. The SP toolkits verify our signatures, InResponseTo, audience
and NotOnOrAfter themselves; the tests look at what they accepted."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from idp.subjects import Subjects
from idp.registry import patrons
from idp.registry.models import ClaimRelease
from idp.saml import registry as sp_registry
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import register as register_oidc
from tests.flows.test_oidc_flow import rp_session, start
from tests.flows.test_oidc_flow import Browser as OidcBrowser, callback_params, login_and_consent
from tests.saml.sps import (EMAIL, PASSWORD, PERSISTENT, POST, TRANSIENT, Browser, Form, OneLoginSp, Pysaml2Sp,
                            decode_response, post_form)
from tests.unit.factories import library, patron

FILM = ["valid_patron", "age_over_15"]
UNIVERSITY = ["valid_patron", "name", "email"]
VALID_PATRON = "urn:x-patron-idp:attribute:valid_patron"
AGE_OVER_15 = "urn:x-patron-idp:attribute:age_over_15"
REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
SHA256 = ('SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"',
          'DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"')


@pytest.fixture
def card(live: LiveIdp) -> str:
    with live.services.registry("test") as reg:
        library(reg)
        _, c = patron(reg, password=PASSWORD)
        return c.number


def register(live: LiveIdp, sp: OneLoginSp | Pysaml2Sp, claims: list[str], *, dpa: date | None = date(2026, 1, 1),
             **policy: Any) -> str:
    with live.services.registry("test") as reg:
        (added,) = sp_registry.add(reg, sp.metadata(), claims=claims, dpa_signed=dpa, **policy)
        return added.client_id


def onelogin_sso(sp: OneLoginSp, browser: Browser, card: str, **login: Any) -> Any:
    """A full SP-initiated login at a python3-saml SP; returns its (verified, authenticated) auth."""
    url, request_id = sp.login_url(**login)
    page = browser.through(browser.go(url), card)
    auth = sp.acs(post_form(page.text), request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()
    return auth


def pysaml2_sso(sp: Pysaml2Sp, browser: Browser, card: str, binding: str = "redirect") -> Any:
    if binding == "redirect":
        url, _, request_id = sp.login_url()
        page = browser.through(browser.go(url), card)
    else:
        url, fields, request_id = sp.login_url(binding=POST)
        page = browser.through(browser.post(url, fields), card)
    return sp.acs(post_form(page.text), {request_id: "/"})


def status_of(form: Form) -> str:
    match = re.search(r'<(?:\w+:)?StatusCode Value="[^"]+"><(?:\w+:)?StatusCode Value="([^"]+)"', decode_response(form))
    assert match, decode_response(form)
    return match.group(1)


def assert_no_assertion(form: Form) -> None:
    xml = decode_response(form)
    assert "Assertion" not in xml and "Kari" not in xml and "AttributeValue" not in xml


# -- metadata and the happy paths -----------------------------------------------------------

def test_metadata_describes_a_signing_idp_with_both_bindings(live: LiveIdp) -> None:
    response = requests.get(f"{live.url}/saml/metadata", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/samlmetadata+xml")
    body = response.text
    assert f'entityID="{live.url}/saml/metadata"' in body and "X509Certificate" in body
    for binding in ("HTTP-Redirect", "HTTP-POST"):
        assert f'SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:{binding}"' in body
        assert f'SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:{binding}"' in body
    assert PERSISTENT in body and TRANSIENT in body
    assert "sha1" not in body and "md5" not in body


def test_a_film_platform_gets_valid_patron_and_age_over_15_only(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM)
    auth = onelogin_sso(sp, Browser(live.url), card)
    assert auth.get_attributes() == {VALID_PATRON: ["true"], AGE_OVER_15: ["true"]}
    assert auth.get_nameid_format() == PERSISTENT
    xml = auth.get_last_response_xml()
    assert all(algorithm in xml for algorithm in SHA256) and "rsa-sha1" not in xml
    assert len(re.findall(r"<(?:\w+:)?Signature[ >]", xml)) == 2  # the response and its assertion, each signed
    # python3-saml refuses an expired assertion; ours lives 5 minutes (plus pysaml2's rounding).
    not_on_or_after = datetime.fromtimestamp(auth.get_last_assertion_not_on_or_after(), UTC)
    assert timedelta(0) < not_on_or_after - datetime.now(UTC) <= timedelta(minutes=6)
    assert "Kari" not in xml and "kari@example.org" not in xml and "1985" not in xml


def test_a_university_gets_name_and_email_through_pysaml2(live: LiveIdp, card: str, tmp_path: Path) -> None:
    sp = Pysaml2Sp(live.url, "uni.example", tmp_path / "uni")
    register(live, sp, UNIVERSITY)
    response = pysaml2_sso(sp, Browser(live.url), card)
    assert response.ava == {VALID_PATRON: ["true"], "displayName": ["Kari Nordmann"], "mail": ["kari@example.org"]}
    assert response.assertion.conditions.audience_restriction[0].audience[0].text == sp.entity_id
    assert response.in_response_to in response.outstanding_queries
    assert response.name_id.format == PERSISTENT
    with live.services.registry("test") as reg:  # recorded for the patron, by name
        (entry,) = reg.session.query(ClaimRelease).all()
        assert (entry.protocol, entry.claims) == ("saml", ["valid_patron", "name", "email"])


def test_an_sp_whose_metadata_requests_attributes_gets_no_more(live: LiveIdp, card: str, tmp_path: Path) -> None:
    sp = Pysaml2Sp(live.url, "uni.example", tmp_path / "uni", requested=["mail"])
    register(live, sp, UNIVERSITY)
    response = pysaml2_sso(sp, Browser(live.url), card)
    assert response.ava == {"mail": ["kari@example.org"]}  # its policy would allow name and valid_patron too


def test_persistent_nameids_are_pairwise_stable_and_the_oidc_subject_of_the_entity_id(
        live: LiveIdp, card: str, tmp_path: Path) -> None:
    film, uni = OneLoginSp(live.url, "film.example"), Pysaml2Sp(live.url, "uni.example", tmp_path / "uni")
    register(live, film, FILM)
    register(live, uni, UNIVERSITY)
    first = onelogin_sso(film, Browser(live.url), card).get_nameid()
    again = onelogin_sso(film, Browser(live.url), card).get_nameid()
    at_uni = pysaml2_sso(uni, Browser(live.url), card).name_id.text
    assert first == again and first != at_uni
    with live.services.registry("test") as reg:
        patron_id = patrons.patron_by_card(reg, card).id
    subjects = Subjects(live.services.settings.data_key_bytes(), live.services.state)
    assert first == subjects.subject(patron_id, film.entity_id)
    assert at_uni == subjects.subject(patron_id, uni.entity_id)


def test_transient_nameids_differ_at_every_login(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example", name_id_format=TRANSIENT)
    register(live, sp, FILM)
    browser = Browser(live.url)
    first, second = (onelogin_sso(sp, browser, card) for _ in range(2))
    assert first.get_nameid_format() == second.get_nameid_format() == TRANSIENT
    assert first.get_nameid() != second.get_nameid()
    assert browser.password_prompts == 1  # single sign-on the second time


def test_signed_requests_over_redirect_and_post_are_accepted(live: LiveIdp, card: str, tmp_path: Path) -> None:
    film = OneLoginSp(live.url, "film.example", sign_requests=True)
    register(live, film, FILM)
    assert onelogin_sso(film, Browser(live.url), card).get_attributes()[VALID_PATRON] == ["true"]
    uni = Pysaml2Sp(live.url, "uni.example", tmp_path / "uni", sign_requests=True)
    register(live, uni, UNIVERSITY)
    assert pysaml2_sso(uni, Browser(live.url), card, binding="post").ava["mail"] == ["kari@example.org"]


def test_an_oidc_login_serves_a_saml_sp_without_a_second_password(live: LiveIdp, card: str) -> None:
    client = register_oidc(live)
    oidc_browser = OidcBrowser(requests.Session())
    url, _, _ = start(live, rp_session(live, client))
    assert "code" in callback_params(login_and_consent(oidc_browser, url, card))
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM)
    browser = Browser(live.url, http=oidc_browser.http)
    auth = onelogin_sso(sp, browser, card)
    assert browser.password_prompts == 0 and auth.get_attributes()[AGE_OVER_15] == ["true"]


def test_unsolicited_sso_only_for_sps_whose_policy_allows_it(live: LiveIdp, card: str, tmp_path: Path) -> None:
    allowed = Pysaml2Sp(live.url, "uni.example", tmp_path / "uni", allow_unsolicited=True)
    register(live, allowed, UNIVERSITY, allow_unsolicited=True)
    browser = Browser(live.url)
    page = browser.through(browser.go(f"{live.url}/saml/sso/unsolicited?providerId={allowed.entity_id}"
                                      "&RelayState=/shelf"), card)
    form = post_form(page.text)
    assert form.fields["RelayState"] == "/shelf" and "InResponseTo" not in decode_response(form)
    assert allowed.acs(form, None).ava["mail"] == ["kari@example.org"]
    refused = OneLoginSp(live.url, "film.example")
    register(live, refused, FILM)
    page = browser.go(f"{live.url}/saml/sso/unsolicited?providerId={refused.entity_id}")
    assert page.status_code == 403 and "does not accept logins started here" in page.text
    assert "SAMLResponse" not in page.text


# -- refusals the SP hears about as SAML status ------------------------------------------------

def test_an_sp_without_a_dpa_gets_a_page_and_a_request_denied_status(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM, dpa=None)
    url, request_id = sp.login_url()
    page = Browser(live.url).go(url)
    assert page.status_code == 403 and "not yet approved" in page.text and 'name="username"' not in page.text
    assert "form-action 'self' https://film.example;" in page.headers["Content-Security-Policy"]
    form = post_form(page.text)
    assert status_of(form) == REQUEST_DENIED
    assert_no_assertion(form)
    auth = sp.acs(form, request_id)
    assert not auth.is_authenticated()


def test_a_minimum_above_password_ends_in_no_authn_context(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM, min_acr="idporten-loa-high")
    url, _ = sp.login_url()
    form = post_form(Browser(live.url).go(url).text)
    assert status_of(form) == "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
    assert_no_assertion(form)


def test_a_requested_level_no_login_here_reaches_ends_in_no_authn_context(live: LiveIdp, card: str) -> None:
    # Without ID-porten set up, nothing here reaches its levels: a status, never a lower login.
    sp = OneLoginSp(live.url, "film.example")
    sp.settings["security"]["requestedAuthnContext"] = ["idporten-loa-substantial"]
    sp.settings["security"]["requestedAuthnContextComparison"] = "minimum"
    register(live, sp, FILM)
    url, _ = sp.login_url()
    page = Browser(live.url).go(url)
    assert 'name="password"' not in page.text
    form = post_form(page.text)
    assert status_of(form) == "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
    assert_no_assertion(form)


def test_a_nameid_format_the_sp_may_not_have_is_refused(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example", name_id_format=EMAIL)
    register(live, sp, FILM)
    url, _ = sp.login_url()
    form = post_form(Browser(live.url).go(url).text)
    assert status_of(form) == "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
    assert_no_assertion(form)


def test_declined_consent_and_passive_requests_get_statuses(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM)
    url, _ = sp.login_url(is_passive=True)
    passive = post_form(Browser(live.url).go(url).text)
    assert status_of(passive) == "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
    browser = Browser(live.url)
    url, _ = sp.login_url()
    declined = post_form(browser.through(browser.go(url), card, consent="deny").text)
    assert status_of(declined) == REQUEST_DENIED
    assert_no_assertion(declined)


# -- single logout -----------------------------------------------------------------------------

def oidc_asks_for_login(live: LiveIdp, browser: Browser) -> bool:
    client = register_oidc(live)
    url, _, _ = start(live, rp_session(live, client))
    return 'name="username"' in browser.go(url).text


def test_single_logout_over_redirect_ends_the_shared_session(live: LiveIdp, card: str) -> None:
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM)
    browser = Browser(live.url)
    auth = onelogin_sso(sp, browser, card)
    assert not oidc_asks_for_login(live, browser)  # logged in, for OIDC too
    answer = browser.go(sp.logout_url(auth.get_nameid(), auth.get_nameid_format(), auth.get_session_index()))
    assert answer.is_redirect
    assert sp.sls(answer.headers["Location"]) == []  # a signed Success LogoutResponse
    assert oidc_asks_for_login(live, browser)


def test_single_logout_over_post_ends_the_shared_session(live: LiveIdp, card: str, tmp_path: Path) -> None:
    sp = Pysaml2Sp(live.url, "uni.example", tmp_path / "uni")
    register(live, sp, UNIVERSITY)
    browser = Browser(live.url)
    response = pysaml2_sso(sp, browser, card)
    url, fields = sp.logout_form(response.name_id, response.assertion.authn_statement[0].session_index)
    page = browser.post(url, fields)
    form = post_form(page.text)
    assert form.fields["RelayState"] == "bye"
    answer = sp.slo(form)
    assert answer.status_ok()
    assert oidc_asks_for_login(live, browser)


def test_single_logout_ends_the_oidc_tokens_issued_in_that_login(live: LiveIdp, card: str) -> None:
    client = register_oidc(live)
    oidc_browser = OidcBrowser(requests.Session())
    rp = rp_session(live, client)
    url, _, verifier = start(live, rp)
    code = callback_params(login_and_consent(oidc_browser, url, card))["code"]
    tokens = rp.fetch_token(f"{live.url}/token", code=code, code_verifier=verifier)
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp, FILM)
    browser = Browser(live.url, http=oidc_browser.http)
    auth = onelogin_sso(sp, browser, card)
    browser.go(sp.logout_url(auth.get_nameid(), auth.get_nameid_format(), auth.get_session_index()))
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{live.url}/userinfo", headers=bearer, timeout=5).status_code == 401
    refreshed = requests.post(f"{live.url}/token", data={"grant_type": "refresh_token",
                                                         "refresh_token": tokens["refresh_token"]},
                              auth=(client.client_id, client.secret), timeout=5)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
