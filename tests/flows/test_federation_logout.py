"""Single logout towards a university over real HTTP: the member logs in through the federation
(tests/fakes/university.py, a pysaml2 identity provider), logs out here, and the browser carries
our signed LogoutRequest to the university's SingleLogoutService, which verifies it against our
SP metadata and answers with a signed LogoutResponse that the browser brings back to
``/federation/slo``; from there it goes on to where the logout was going.

The rules, as docs/upstream.md states them: the request names the NameID and SessionIndex of the
member's assertion and is signed with RSA-SHA256; HTTP-Redirect is used when the university
offers it, else HTTP-POST; the answer must be signed, come from that university and answer a
request we sent (once); anything else ends on a page of ours saying the logout there was not
confirmed, and a university without single logout is simply not asked.
"""

from __future__ import annotations

import base64
import logging
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from defusedxml import ElementTree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.samlp import STATUS_RESPONDER
from saml2.xmldsig import SIG_RSA_SHA256

from idp.registry import upstream
from tests.fakes.university import FakeUniversity, form_fields
from tests.flows.conftest import LiveIdp
from tests.flows.test_federation_flow import (EPPN, NIN_CODE, browser, giulia, lifetimes, logged_in,
                                              rp_login_through_university, unimore, university, university_login)
from tests.flows.test_oidc_flow import CALLBACK, Browser, csrf, register, rp_session, start, userinfo_status

__all__ = ["giulia", "lifetimes", "unimore", "university"]  # fixtures used here

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
LOGOUT_WAIT = 10 * 60  # docs/upstream.md: "kept in the state store for ten minutes"


def logged_in_member(live: LiveIdp, university: FakeUniversity) -> Browser:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    b = browser()
    assert university_login(b, live).status_code == 200 and logged_in(b, live)
    return b


def press_logout(b: Browser, live: LiveIdp) -> requests.Response:
    """The logout button on our start page (a POST with its CSRF token), not followed."""
    landing = b.http.get(f"{live.url}/", timeout=5)
    return b.http.post(f"{live.url}/logout", data={"csrf_token": csrf(landing.text)}, allow_redirects=False,
                       timeout=10)


def asks_for_a_password(b: Browser, live: LiveIdp) -> bool:
    """A relying party's login in this browser shows the login form again (no session carries it through)."""
    page = b.follow(start(live, rp_session(live, register(live)))[0])
    return 'name="password"' in page.text and "code=" not in page.url


def logout_request_xml(url: str) -> str:
    query = parse_qs(urlsplit(url).query)
    return zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()


def test_our_metadata_offers_single_logout_over_redirect_and_post(live: LiveIdp) -> None:
    metadata = ElementTree.fromstring(requests.get(f"{live.url}/federation/metadata.xml", timeout=10).content)
    services = {(e.get("Binding"), e.get("Location")) for e in metadata.iter(f"{{{MD}}}SingleLogoutService")}
    assert services == {(BINDING_HTTP_REDIRECT, f"{live.url}/federation/slo"),
                        (BINDING_HTTP_POST, f"{live.url}/federation/slo")}


@pytest.mark.backends  # single-use records and marks in the state store: Redis and memory
def test_logging_out_ends_the_university_session_too(live: LiveIdp, university: FakeUniversity, giulia: int,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    b = logged_in_member(live, university)
    issued = university.issued[-1]
    landing = b.http.get(f"{live.url}/", timeout=5)
    # The logout form leads on to the university's logout: the page lets its forms end there.
    assert university.url in landing.headers["Content-Security-Policy"]
    out = press_logout(b, live)
    assert out.status_code == 303 and out.headers["Location"].startswith(f"{university.url}/slo/redirect?")
    query = parse_qs(urlsplit(out.headers["Location"]).query)
    assert query["SigAlg"] == [SIG_RSA_SHA256] and query["Signature"] and query["RelayState"]
    xml = logout_request_xml(out.headers["Location"])
    assert str(issued["name_id"]) in xml and str(issued["session_index"]) in xml
    done = b.follow(out.headers["Location"])
    # The university verified the request with our SP metadata's key, and it named the member's session there.
    seen = university.logouts[-1]
    assert seen["binding"] == BINDING_HTTP_REDIRECT and seen["issuer"] == f"{live.url}/federation/sp"
    assert seen["name_id"] == issued["name_id"] and seen["format"] == issued["format"]
    assert seen["session_indexes"] == [issued["session_index"]]
    # Our SLO accepted the university's answer (a refused one ends on a page of its own, 400).
    assert done.url == f"{live.url}/logged-out"
    assert done.status_code == 200 and "You are logged out" in done.text
    assert not logged_in(b, live) and asks_for_a_password(b, live)
    for secret in (str(issued["name_id"]), EPPN):
        assert secret not in caplog.text


def test_a_relying_partys_logout_goes_through_the_university_and_back(live: LiveIdp, university: FakeUniversity,
                                                                      giulia: int) -> None:
    b, tokens = rp_login_through_university(live, university, register(live))
    id_token = tokens["id_token"]
    done = b.follow(f"{live.url}/logout/oidc?" + requests.compat.urlencode(
        {"id_token_hint": id_token, "post_logout_redirect_uri": CALLBACK, "state": "bye"}))
    assert done.is_redirect and done.headers["Location"] == f"{CALLBACK}?state=bye"
    assert len(university.logouts) == 1 and not logged_in(b, live)


def test_a_university_with_post_only_gets_an_auto_posted_request_and_may_answer_by_post(
        live: LiveIdp, university: FakeUniversity, unimore: str, giulia: int) -> None:
    university.slo_bindings = (BINDING_HTTP_POST,)
    university.slo_answer_binding = BINDING_HTTP_POST
    with live.services.registry("test") as reg:
        upstream.update_federation(reg, unimore, metadata_xml=university.metadata(), entity_id=university.entity_id)
    b = logged_in_member(live, university)
    issued = university.issued[-1]
    page = press_logout(b, live)
    assert page.status_code == 200 and "saml-post.js" in page.text
    action, fields = form_fields(page.text)
    assert action == f"{university.url}/slo/post" and set(fields) == {"SAMLRequest", "RelayState"}
    assert university.url in page.headers["Content-Security-Policy"]
    xml = base64.b64decode(fields["SAMLRequest"]).decode()
    assert f'Algorithm="{SIG_RSA_SHA256}"' in xml and "SignatureValue" in xml
    answer = b.http.post(action, data=fields, timeout=10)
    assert answer.status_code == 200, answer.text
    assert university.logouts[-1]["session_indexes"] == [issued["session_index"]]
    back_action, back_fields = form_fields(answer.text)
    assert back_action == f"{live.url}/federation/slo"
    done = b.http.post(back_action, data=back_fields, timeout=10)  # a cross-site POST: our cookie is not needed
    assert done.status_code == 200 and "You are logged out" in done.text
    assert not logged_in(b, live)


def test_a_university_without_single_logout_is_not_asked(live: LiveIdp, university: FakeUniversity, unimore: str,
                                                         giulia: int) -> None:
    university.slo_bindings = ()
    with live.services.registry("test") as reg:
        upstream.update_federation(reg, unimore, metadata_xml=university.metadata(), entity_id=university.entity_id)
    b = logged_in_member(live, university)
    out = press_logout(b, live)
    assert out.status_code == 303 and out.headers["Location"] == "/logged-out"  # ends here
    assert university.logouts == [] and not logged_in(b, live) and asks_for_a_password(b, live)


def the_universitys_answer(b: Browser, live: LiveIdp) -> str:
    """Log out, let the university answer; the URL of its answer at our /federation/slo, not yet visited."""
    out = press_logout(b, live)
    answered = b.http.get(out.headers["Location"], allow_redirects=False, timeout=10)
    assert answered.status_code == 303, answered.text
    location = answered.headers["Location"]
    assert location.startswith(f"{live.url}/federation/slo?")
    return location


def test_an_unsigned_answer_is_not_trusted(live: LiveIdp, university: FakeUniversity, giulia: int,
                                           caplog: pytest.LogCaptureFixture) -> None:
    b = logged_in_member(live, university)
    university.slo_sign = False
    location = the_universitys_answer(b, live)
    assert "Signature=" not in location
    page = b.http.get(location, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "Logout not confirmed" in page.text
    assert "could not be verified" in page.text and not logged_in(b, live)  # logged out here all the same
    assert "logout answer refused: invalid" in caplog.text


def test_an_unsigned_posted_answer_is_not_trusted(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.slo_answer_binding = BINDING_HTTP_POST
    university.slo_sign = False
    b = logged_in_member(live, university)
    out = press_logout(b, live)
    action, fields = form_fields(b.http.get(out.headers["Location"], timeout=10).text)
    assert "SignatureValue" not in base64.b64decode(fields["SAMLResponse"]).decode()
    page = b.http.post(action, data=fields, timeout=10)
    assert page.status_code == 400 and "Logout not confirmed" in page.text


@pytest.mark.parametrize("forgery", ["status-changed", "signature-of-another-answer"])
def test_a_forged_answer_is_not_trusted(live: LiveIdp, university: FakeUniversity, giulia: int, forgery: str) -> None:
    b = logged_in_member(live, university)
    location = the_universitys_answer(b, live)
    parts = urlsplit(location)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    if forgery == "status-changed":
        xml = zlib.decompress(base64.b64decode(query["SAMLResponse"]), -15).decode()
        assert "status:Success" in xml
        changed = xml.replace("status:Success", "status:Responder").encode()
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        query["SAMLResponse"] = base64.b64encode(deflate.compress(changed) + deflate.flush()).decode()
    else:
        other = logged_in_member(live, university)
        other_query = parse_qs(urlsplit(the_universitys_answer(other, live)).query)
        query["Signature"] = other_query["Signature"][0]
    page = b.http.get(f"{live.url}/federation/slo?" + requests.compat.urlencode(query), allow_redirects=False,
                      timeout=10)
    assert page.status_code == 400 and "Logout not confirmed" in page.text


@pytest.mark.backends  # single-use records and marks in the state store: Redis and memory
def test_a_replayed_answer_is_not_trusted(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    b = logged_in_member(live, university)
    location = the_universitys_answer(b, live)
    assert "You are logged out" in b.http.get(location, timeout=10).text
    again = browser().http.get(location, allow_redirects=False, timeout=10)
    assert again.status_code == 400 and "Logout not confirmed" in again.text


def test_an_answer_to_a_request_we_never_sent_is_not_trusted(live: LiveIdp, university: FakeUniversity,
                                                             giulia: int) -> None:
    logged_in_member(live, university)  # the university knows our SP
    url = university.unsolicited_logout_response("_never-sent-by-us", f"{live.url}/federation/slo")
    assert "Signature=" in url
    page = browser().http.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "Logout not confirmed" in page.text


def test_a_university_that_did_not_log_out_is_logged_and_the_member_goes_on(
        live: LiveIdp, university: FakeUniversity, giulia: int, caplog: pytest.LogCaptureFixture) -> None:
    university.slo_status = STATUS_RESPONDER
    b = logged_in_member(live, university)
    done = b.follow(press_logout(b, live).headers["Location"])
    assert done.status_code == 200 and "You are logged out" in done.text and not logged_in(b, live)
    assert "federation unimore: the logout there did not succeed" in caplog.text


def test_the_way_back_is_awaited_ten_minutes(live: LiveIdp, university: FakeUniversity, giulia: int,
                                             lifetimes: dict[str, int]) -> None:
    b = logged_in_member(live, university)
    press_logout(b, live)
    asked = lifetimes
    assert asked["federation:logout"] == LOGOUT_WAIT and asked["federation:logout-request"] == LOGOUT_WAIT


# -- the university logs the member out (IdP-initiated) ------------------------------------------------

def test_the_universitys_logout_ends_the_login_in_that_browser_and_is_answered(live: LiveIdp,
                                                                              university: FakeUniversity,
                                                                              giulia: int) -> None:
    b = logged_in_member(live, university)
    request_id, url = university.logout_request(f"{live.url}/federation/slo", university.issued[-1])
    assert isinstance(url, str) and url.startswith(f"{live.url}/federation/slo?SAMLRequest=")
    done = b.follow(url)
    assert done.url.startswith(f"{university.url}/slo/redirect?SAMLResponse=") and done.status_code == 200
    answer = university.logout_answers[-1]
    assert answer["signed"] and answer["sigalg"] == SIG_RSA_SHA256 and answer["in_response_to"] == request_id
    assert answer["status"].endswith(":Success") and answer["relay_state"] == "back-to-the-portal"
    assert not logged_in(b, live) and asks_for_a_password(b, live)
    assert university.logouts == []  # it asked: no LogoutRequest of ours went back


def test_the_universitys_logout_of_someone_else_leaves_this_browser_logged_in(live: LiveIdp,
                                                                               university: FakeUniversity,
                                                                               giulia: int) -> None:
    b = logged_in_member(live, university)
    someone_else = {**university.issued[-1], "name_id": "transient-someone-else"}
    _request_id, url = university.logout_request(f"{live.url}/federation/slo", someone_else)
    assert isinstance(url, str)
    b.follow(url)
    assert university.logout_answers[-1]["signed"] and logged_in(b, live)


@pytest.mark.backends  # single-use records and marks in the state store: Redis and memory
def test_the_universitys_posted_logout_without_our_cookie_ends_the_login_at_its_next_request(
        live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    b = logged_in_member(live, university)
    _request_id, fields = university.logout_request(f"{live.url}/federation/slo", university.issued[-1],
                                                    binding=BINDING_HTTP_POST)
    assert isinstance(fields, dict)
    answered = requests.post(f"{live.url}/federation/slo", data=fields, allow_redirects=False, timeout=10)
    assert answered.status_code == 303 and answered.headers["Location"].startswith(f"{university.url}/slo/redirect?")
    assert not logged_in(b, live)
    replayed = requests.post(f"{live.url}/federation/slo", data=fields, allow_redirects=False, timeout=10)
    assert replayed.status_code == 400


@pytest.mark.backends  # the index of logins by the university's session lives in the state store
def test_the_universitys_posted_logout_ends_that_logins_tokens_at_once(live: LiveIdp, university: FakeUniversity,
                                                                       giulia: int) -> None:
    _b, tokens = rp_login_through_university(live, university, register(live))
    assert userinfo_status(live, tokens["access_token"]) == 200
    _request_id, fields = university.logout_request(f"{live.url}/federation/slo", university.issued[-1],
                                                    binding=BINDING_HTTP_POST)
    assert isinstance(fields, dict)
    answered = requests.post(f"{live.url}/federation/slo", data=fields, allow_redirects=False, timeout=10)
    assert answered.status_code == 303
    # The member's browser has not come back, and the relying party's tokens are dead already.
    assert userinfo_status(live, tokens["access_token"]) == 401


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST], ids=["redirect", "post"])
def test_an_unsigned_logout_request_changes_nothing(live: LiveIdp, university: FakeUniversity, giulia: int,
                                                    binding: str) -> None:
    b = logged_in_member(live, university)
    _request_id, sent = university.logout_request(f"{live.url}/federation/slo", university.issued[-1],
                                                  binding=binding, sign=False)
    if isinstance(sent, str):
        page = b.http.get(sent, allow_redirects=False, timeout=10)
    else:
        page = b.http.post(f"{live.url}/federation/slo", data=sent, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and "could not be verified. Nothing was changed." in page.text
    assert logged_in(b, live) and university.logout_answers == []
