"""What the SAML endpoints do with bad input: a clear page or a SAML error status, never an
assertion and never a 500. Over real HTTP, with requests crafted by hand or by the SP toolkits."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from idp.saml import registry as sp_registry
from tests.flows.conftest import LiveIdp
from tests.saml.sps import (POST, Browser, OneLoginSp, Pysaml2Sp, decode_response, post_form, post_value,
                            redirect_query)

REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"


def register(live: LiveIdp, sp: OneLoginSp | Pysaml2Sp) -> None:
    with live.services.registry("test") as reg:
        sp_registry.add(reg, sp.metadata(), claims=["valid_patron"], dpa_signed=date(2026, 1, 1))


def authn_request(live: LiveIdp, issuer: str, *, request_id: str = "_r1", acs: str | None = None,
                  issued: datetime | None = None, doctype: str = "", body: str = "", namespaces: str = "") -> str:
    instant = (issued or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    consumer = f' AssertionConsumerServiceURL="{acs}"' if acs else ""
    return (f'{doctype}<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"{namespaces} ID="{request_id}" Version="2.0" '
            f'IssueInstant="{instant}" Destination="{live.url}/saml/sso"{consumer}>'
            f'<saml:Issuer>{issuer}</saml:Issuer>{body}</samlp:AuthnRequest>')


def refused_with_page(response: requests.Response, status: int, words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html")
    assert words in response.text, response.text[:2000]
    assert "SAMLResponse" not in response.text and "Location" not in response.headers


def get_sso(live: LiveIdp, xml: str, **extra: str) -> requests.Response:
    return requests.get(f"{live.url}/saml/sso", params={"SAMLRequest": redirect_query(xml), **extra},
                        headers={"Accept-Language": "en"}, allow_redirects=False, timeout=10)


def post_sso(live: LiveIdp, value: str) -> requests.Response:
    return requests.post(f"{live.url}/saml/sso", data={"SAMLRequest": value}, headers={"Accept-Language": "en"},
                         allow_redirects=False, timeout=10)


CANNOT_READ = "login request we cannot read"
NOT_VERIFIED = "could not be verified"


@pytest.fixture
def film(live: LiveIdp) -> OneLoginSp:
    sp = OneLoginSp(live.url, "film.example")
    register(live, sp)
    return sp


# -- malformed and oversized -----------------------------------------------------------------

@pytest.mark.parametrize("value", ["%%%not base64%%%", base64.b64encode(b"not xml at all").decode(), "",
                                   base64.b64encode(b"<a><b></a>").decode()])
def test_unreadable_requests_get_a_page(live: LiveIdp, value: str) -> None:
    refused_with_page(post_sso(live, value), 400, CANNOT_READ)
    refused_with_page(requests.get(f"{live.url}/saml/sso", params={"SAMLRequest": value},
                                   headers={"Accept-Language": "en"}, timeout=10), 400, CANNOT_READ)


def test_a_saml_response_is_no_authn_request(live: LiveIdp, film: OneLoginSp) -> None:
    xml = ('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0" '
           'IssueInstant="2026-11-23T12:00:00Z"/>')
    refused_with_page(get_sso(live, xml), 400, CANNOT_READ)


def test_oversized_requests_are_refused_before_parsing(live: LiveIdp, film: OneLoginSp) -> None:
    padding = "<!-- " + "x" * (200 * 1024) + " -->"
    bomb = authn_request(live, film.entity_id, body=padding)  # deflates to a few hundred bytes
    refused_with_page(get_sso(live, bomb), 400, CANNOT_READ)
    too_large = requests.post(f"{live.url}/saml/sso", data={"SAMLRequest": post_value(bomb)},
                              headers={"Accept-Language": "en"}, timeout=10)
    assert too_large.status_code == 413 and too_large.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("doctype", [
    pytest.param('<!DOCTYPE r [<!ENTITY e "boom">]>', id="internal-entity"),
    pytest.param('<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>', id="external-entity"),
    pytest.param('<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
                 id="entity-expansion"),
    pytest.param('<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">', id="external-dtd"),
])
def test_dtds_and_entities_are_refused(live: LiveIdp, film: OneLoginSp, doctype: str) -> None:
    xml = authn_request(live, film.entity_id, doctype=doctype, body="<samlp:Extensions>&e;</samlp:Extensions>"
                        if "ENTITY e" in doctype else "")
    refused_with_page(get_sso(live, xml), 400, CANNOT_READ)
    refused_with_page(post_sso(live, post_value(xml)), 400, CANNOT_READ)


# -- who sent it, and how it is signed --------------------------------------------------------

def test_an_unknown_sp_gets_a_page(live: LiveIdp) -> None:
    stranger = OneLoginSp(live.url, "stranger.example")
    url, _ = stranger.login_url()
    refused_with_page(requests.get(url, headers={"Accept-Language": "en"}, timeout=10), 400, "not registered")


def test_an_unsigned_request_from_an_sp_that_declares_it_signs(live: LiveIdp) -> None:
    signing = OneLoginSp(live.url, "film.example", sign_requests=True)
    register(live, signing)
    unsigned = OneLoginSp(live.url, "film.example", sign_requests=False)  # the same entity id, no signature
    url, _ = unsigned.login_url()
    refused_with_page(requests.get(url, headers={"Accept-Language": "en"}, timeout=10), 400, NOT_VERIFIED)
    url, _ = signing.login_url()
    assert 'name="username"' in Browser(live.url).go(url).text  # the signed one is fine


def test_a_tampered_query_signature_is_refused(live: LiveIdp) -> None:
    signing = OneLoginSp(live.url, "film.example", sign_requests=True)
    register(live, signing)
    url, _ = signing.login_url()
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    query["RelayState"] = "https://film.example/elsewhere"
    tampered = f"{live.url}/saml/sso?{urlencode(query)}"
    refused_with_page(requests.get(tampered, headers={"Accept-Language": "en"}, timeout=10), 400, NOT_VERIFIED)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    query["SigAlg"] = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"  # a weaker algorithm is no signature
    refused_with_page(requests.get(f"{live.url}/saml/sso?{urlencode(query)}", headers={"Accept-Language": "en"},
                                   timeout=10), 400, NOT_VERIFIED)


def signed_post_request(live: LiveIdp, tmp_path: Path) -> tuple[Pysaml2Sp, str]:
    sp = Pysaml2Sp(live.url, "uni.example", tmp_path / "uni", sign_requests=True)
    register(live, sp)
    _, fields, _ = sp.login_url(binding=POST)
    return sp, base64.b64decode(fields["SAMLRequest"]).decode()


def test_signature_wrapping_is_refused(live: LiveIdp, tmp_path: Path) -> None:
    sp, signed = signed_post_request(live, tmp_path)
    original_id = re.search(r' ID="([^"]+)"', signed).group(1)
    inner = re.sub(r"^<\?xml[^>]*\?>", "", signed)
    signature = re.search(r"<(?:\w+:)?Signature\b.*?</(?:\w+:)?Signature>", inner, re.S).group(0)
    # The prefixes the signature uses are declared on the signed request's root: declare them outside too.
    declared = re.findall(r'xmlns:(\w+)="([^"]+)"', inner.split(">", 1)[0])
    prefixes = "".join(f' xmlns:{p}="{uri}"' for p, uri in declared if p not in ("saml", "samlp"))
    evil_acs = "https://evil.example/acs"
    wraps = {
        # The signed request tucked into an unsigned one that names another ACS.
        "nested": authn_request(live, sp.entity_id, request_id="_evil", acs=evil_acs,
                                body=f"<samlp:Extensions>{inner}</samlp:Extensions>"),
        # Its signature moved onto the unsigned outer request (it still points at the inner ID).
        "moved-signature": authn_request(live, sp.entity_id, request_id="_evil", acs=evil_acs, namespaces=prefixes,
                                         body=signature + f"<samlp:Extensions>{inner.replace(signature, '')}"
                                                          "</samlp:Extensions>"),
        # Outer and inner share the signed ID, hoping the verifier picks the inner one.
        "duplicate-id": authn_request(live, sp.entity_id, request_id=original_id, acs=evil_acs, namespaces=prefixes,
                                      body=signature + f"<samlp:Extensions>{inner.replace(signature, '')}"
                                                       "</samlp:Extensions>"),
        # The signed request itself, its ACS changed after signing.
        "altered": signed.replace("https://uni.example/acs", evil_acs),
    }
    for xml in wraps.values():
        refused_with_page(post_sso(live, post_value(xml)), 400, NOT_VERIFIED)
    assert post_sso(live, post_value(signed)).status_code == 303  # untouched, it is accepted


def test_an_acs_url_not_in_the_metadata_gets_a_page(live: LiveIdp, film: OneLoginSp) -> None:
    film.settings["sp"]["assertionConsumerService"]["url"] = "https://evil.example/acs"
    url, _ = film.login_url()
    refused_with_page(requests.get(url, headers={"Accept-Language": "en"}, timeout=10), 400,
                      "has not registered")
    xml = authn_request(live, film.entity_id, request_id="_idx", body="").replace(
        'Destination=', 'AssertionConsumerServiceIndex="7" Destination=')
    refused_with_page(get_sso(live, xml), 400, "has not registered")


def test_a_replayed_request_gets_request_denied(live: LiveIdp, film: OneLoginSp) -> None:
    url, _ = film.login_url()
    first = Browser(live.url).go(url)
    assert first.status_code == 200 and 'name="username"' in first.text
    replay = Browser(live.url).go(url)
    form = post_form(replay.text)
    assert form.url == "https://film.example/saml/acs"
    xml = decode_response(form)
    assert REQUEST_DENIED in xml and "Assertion" not in xml


def test_stale_and_future_requests_get_a_page(live: LiveIdp, film: OneLoginSp) -> None:
    for issued, request_id in ((datetime.now(UTC) - timedelta(hours=1), "_old"),
                               (datetime.now(UTC) + timedelta(hours=1), "_future")):
        refused_with_page(get_sso(live, authn_request(live, film.entity_id, request_id=request_id, issued=issued)),
                          400, "expired")


def test_a_request_for_another_endpoint_gets_a_page(live: LiveIdp, film: OneLoginSp) -> None:
    xml = authn_request(live, film.entity_id).replace(f"{live.url}/saml/sso", "https://other-idp.example/sso")
    refused_with_page(get_sso(live, xml), 400, CANNOT_READ)


def test_an_unsigned_logout_request_from_an_sp_with_a_key_is_refused(live: LiveIdp, film: OneLoginSp) -> None:
    instant = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = (f'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
           f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lo" Version="2.0" IssueInstant="{instant}" '
           f'Destination="{live.url}/saml/slo"><saml:Issuer>{film.entity_id}</saml:Issuer>'
           f'<saml:NameID>x</saml:NameID></samlp:LogoutRequest>')
    response = requests.get(f"{live.url}/saml/slo", params={"SAMLRequest": redirect_query(xml)},
                            headers={"Accept-Language": "en"}, allow_redirects=False, timeout=10)
    refused_with_page(response, 400, NOT_VERIFIED)
    no_request = requests.get(f"{live.url}/saml/slo", params={"SAMLResponse": "x"},
                              headers={"Accept-Language": "en"}, timeout=10)
    assert no_request.status_code == 400 and CANNOT_READ in no_request.text


# -- routing errors ---------------------------------------------------------------------------

def test_routing_errors_under_saml_are_pages_not_json(live: LiveIdp) -> None:
    for response in (requests.get(f"{live.url}/saml/nowhere", timeout=10),
                     requests.delete(f"{live.url}/saml/sso", timeout=10),
                     requests.post(f"{live.url}/saml/metadata", timeout=10)):
        assert response.status_code in (404, 405)
        assert response.headers["Content-Type"].startswith("text/html")
        assert not response.text.lstrip().startswith("{")


def test_expired_handovers_and_resumes_get_a_page(live: LiveIdp) -> None:
    for path in ("/saml/sso/continue/nothing-here", "/saml/slo/continue/nothing-here", "/saml/sso/resume",
                 "/saml/sso/unsolicited?providerId=https://nobody.example"):
        response = requests.get(f"{live.url}{path}", headers={"Accept-Language": "en"}, timeout=10)
        assert response.status_code == 400 and response.headers["Content-Type"].startswith("text/html")
    consent = requests.post(f"{live.url}/saml/sso/consent", data={"decision": "allow"}, timeout=10)
    assert consent.status_code == 400  # no CSRF token, no waiting request: never a 500
