"""University login (UniMoRe-style) over real HTTP: the IdP is the SAML service provider of a
pysaml2 identity provider playing the university (tests/fakes/university.py); a scripted browser
(requests) carries the signed AuthnRequest there and posts the signed answer back, as a browser
does with the HTTP-Redirect and HTTP-POST bindings.

Covered: the first login linked by a matching national id; linking by a one-time code to the
card's e-mail address; the owned fields refreshed at every login and read-only in the register;
the level (``password``, or ``mfa`` for a mapped AuthnContext) reflected in a relying party's
``acr``; and every answer that must fail (unsigned, denied, from another IdP, replayed, pushed
into another browser, without the identifying attribute) refused with a clear page.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from argon2 import PasswordHasher
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256
from sqlalchemy import event, func, select

from idp import create_app
from idp.errors import NotAllowed
from idp.registry import cards, owned, upstream
from idp.registry import patrons as patrons_svc
from idp.registry.models import AuditEvent, Patron, UpstreamIdentity
from tests.fakes.university import REFEDS_MFA, FakeUniversity, form_fields, running_university
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import (Browser, Client, callback_params, csrf, register, rp_session, start,
                                        verify_id_token)
from tests.nin import person
from tests.unit.factories import ADULT_BORN, library, patron

EPPN = "giulia.rossi@unimore.it"
GIULIA_PASSWORD = "giulia-password-1"
UNKNOWN_CARD = "N000000999"
NIN_CODE = "urn:schac:personalUniqueCode:no:fnr:" + person(ADULT_BORN)


@dataclass
class Outbox:
    """Stands in for the mail server and SMS gateway: keeps what would have been sent."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def can_send(self, channel: Any) -> bool:
        return True

    def send(self, channel: Any, to: str, message: Any) -> None:
        self.sent.append((str(getattr(channel, "value", channel)), to, message.text))

    def last_code(self) -> str:
        match = re.search(r"\b(\d{6})\b", self.sent[-1][2])
        assert match, self.sent[-1][2]
        return match.group(1)


@pytest.fixture
def university(tmp_path: Path) -> Iterator[FakeUniversity]:
    with running_university(tmp_path) as fake:
        fake.attributes = {"eduPersonPrincipalName": [EPPN], "displayName": ["Giulia Rossi"],
                           "mail": ["giulia.rossi@unimore.it"]}
        yield fake


@pytest.fixture
def unimore(live: LiveIdp, university: FakeUniversity) -> str:
    """UniMoRe configured as an operator would (idp federation add), and told our SP metadata."""
    with live.services.registry("test") as reg:
        library(reg)
        upstream.add_federation(reg, upstream.FederationSpec(
            name="unimore", display_name="UniMoRe", entity_id=university.entity_id, metadata_xml=university.metadata(),
            link_attribute="eduPersonPrincipalName", national_id_attribute="schacPersonalUniqueCode",
            attribute_map={"name": "displayName", "email": "mail"}, authn_contexts={REFEDS_MFA: "mfa"}))
    metadata = requests.get(f"{live.url}/federation/metadata.xml", timeout=10)
    assert metadata.status_code == 200 and f'entityID="{live.url}/federation/sp"' in metadata.text
    university.trust_sp(metadata.text)
    return "unimore"


@pytest.fixture
def giulia(live: LiveIdp, unimore: str) -> int:
    with live.services.registry("test") as reg:
        p, _ = patron(reg, name="G. Rossi", email="old@example.org", phone="+39 059 123456",
                      password=GIULIA_PASSWORD)
        return p.id


def card_of(live: LiveIdp, patron_id: int) -> str:
    with live.services.registry("test") as reg:
        return reg.session.get(Patron, patron_id).cards[0].number


@dataclass
class Work:
    """What the server did while a request was answered: argon2 runs, SQL statements, state-store writes."""

    argon2: int = 0
    sql: int = 0
    writes: list[str] = field(default_factory=list)

    def take(self) -> tuple[int, int, list[str]]:
        done = (self.argon2, self.sql, self.writes)
        self.argon2, self.sql, self.writes = 0, 0, []
        return done


@pytest.fixture
def work(live: LiveIdp, monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    """Counts the work of the live server (it runs in this process): every argon2 hash and verify
    (the register's hasher runs them on its own threads, through argon2's PasswordHasher), every
    SQL statement on its engine, and every write to its state store (method and key prefix)."""
    counted = Work()

    def count_argon2(method: Any) -> Any:
        def run(self: PasswordHasher, *args: Any, **kwargs: Any) -> Any:
            counted.argon2 += 1
            return method(self, *args, **kwargs)
        return run

    def count_write(name: str, method: Any) -> Any:
        def run(key: str, *args: Any, **kwargs: Any) -> Any:
            counted.writes.append(f"{name} {key.split(':')[0]}")
            return method(key, *args, **kwargs)
        return run

    def count_sql(*_: Any) -> None:
        counted.sql += 1

    for name in ("hash", "verify"):
        monkeypatch.setattr(PasswordHasher, name, count_argon2(getattr(PasswordHasher, name)))
    state = live.services.state
    for name in ("put", "take", "delete", "consume", "incr", "index_add"):
        monkeypatch.setattr(state, name, count_write(name, getattr(state, name)))
    event.listen(live.services.engine, "before_cursor_execute", count_sql)
    try:
        yield counted
    finally:
        event.remove(live.services.engine, "before_cursor_execute", count_sql)


def as_seen(page: requests.Response, typed_card: str) -> tuple[int, str]:
    """Status and body, without what differs by design: the CSRF token, the card number typed and a
    lock's wait (counted from that card's first wrong guess)."""
    body = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1-", page.text)
    body = re.sub(r"Try again in \d+ minutes", "Try again in N minutes", body)
    return page.status_code, body.replace(typed_card, "CARD")


@pytest.fixture
def outbox(live: LiveIdp) -> Outbox:
    box = Outbox()
    live.services.messenger = box  # type: ignore[misc]
    return box


def browser() -> Browser:
    http = requests.Session()
    http.headers["Accept-Language"] = "en"
    return Browser(http)


def university_button(page: requests.Response) -> str:
    match = re.search(r'href="([^"]+)">Log in with UniMoRe account<', page.text)
    assert match, "no UniMoRe button on the login page"
    return requests.compat.urljoin(page.url, html.unescape(match.group(1)))


def at_the_university(b: Browser, live: LiveIdp, start_url: str | None = None) -> tuple[str, dict[str, str]]:
    """From our login page through the university's login: the form its answer comes back in."""
    if start_url is None:
        start_url = university_button(b.http.get(f"{live.url}/login", timeout=5))
    page = b.follow(start_url)
    assert page.status_code == 200 and "SAMLResponse" in page.text, page.text[:300]
    return form_fields(page.text)


def post_answer(b: Browser, action: str, fields: dict[str, str]) -> requests.Response:
    response = b.http.post(action, data=fields, allow_redirects=False, timeout=10)
    if response.is_redirect:
        return b.follow(requests.compat.urljoin(action, response.headers["Location"]))
    return response


def university_login(b: Browser, live: LiveIdp, start_url: str | None = None) -> requests.Response:
    action, fields = at_the_university(b, live, start_url)
    assert action == f"{live.url}/federation/acs"
    return post_answer(b, action, fields)


def logged_in(b: Browser, live: LiveIdp) -> bool:
    return "You are logged in." in b.http.get(f"{live.url}/", timeout=5).text


def stored(live: LiveIdp, patron_id: int) -> Patron:
    with live.services.registry("test") as reg:
        found = reg.session.get(Patron, patron_id)
        assert found is not None
        return found


# -- linking and logging in -------------------------------------------------------------------------

def test_the_first_login_links_by_national_id_and_takes_the_universitys_fields(
        live: LiveIdp, university: FakeUniversity, giulia: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    b = browser()
    landed = university_login(b, live)
    assert landed.status_code == 200 and logged_in(b, live)
    sso = university.requests_seen[-1]
    assert sso["SigAlg"].endswith("rsa-sha256") and sso["Signature"]  # our AuthnRequest is signed
    kept = stored(live, giulia)
    assert kept.name == "Giulia Rossi" and kept.email == "giulia.rossi@unimore.it"
    assert kept.phone == "+39059123456"  # not owned by the university: untouched
    with live.services.registry("test") as reg:
        link = reg.session.scalar(select(UpstreamIdentity).where(UpstreamIdentity.patron_id == giulia))
        assert link is not None and link.linked_by == "national_id" and EPPN.encode() not in link.subject_hash
        assert owned.owned_fields(reg, giulia) == {"name": "UniMoRe", "email": "UniMoRe"}
        assert reg.session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "login.federation")) == 1
    assert EPPN not in caplog.text and person(ADULT_BORN) not in caplog.text and "Giulia Rossi" not in caplog.text


def test_each_login_refreshes_the_fields_the_university_owns(live: LiveIdp, university: FakeUniversity,
                                                             giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university_login(browser(), live)
    university.attributes["displayName"] = ["Giulia Bianchi"]
    university.attributes["mail"] = ["not an address"]  # refused by the register: the old value stays
    del university.attributes["schacPersonalUniqueCode"]  # the link is found by the account now
    b = browser()
    university_login(b, live)
    assert logged_in(b, live)
    kept = stored(live, giulia)
    assert kept.name == "Giulia Bianchi" and kept.email == "giulia.rossi@unimore.it"


def test_the_owned_fields_are_read_only_for_patron_and_staff(live: LiveIdp, university: FakeUniversity,
                                                             giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university_login(browser(), live)
    with pytest.raises(NotAllowed, match="kept up to date by UniMoRe"), live.services.registry("test") as reg:
        patrons_svc.update_patron(reg, reg.session.get(Patron, giulia), name="Someone Else")
    with live.services.registry("test") as reg:
        assert patrons_svc.update_patron(reg, reg.session.get(Patron, giulia), phone="+47 999 99 999") == ["phone"]
        # Setting an owned field to the value it has is no change, and no refusal.
        assert patrons_svc.update_patron(reg, reg.session.get(Patron, giulia), name="Giulia Rossi") == []
    assert stored(live, giulia).name == "Giulia Rossi"


def rp_login_through_university(live: LiveIdp, university: FakeUniversity, client: Client
                                ) -> tuple[Browser, dict[str, Any]]:
    """A member logs in to a relying party with their university account; their browser and the
    relying party's tokens."""
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    rp = rp_session(live, client)
    url, _state, verifier = start(live, rp)
    b = browser()
    landed = university_login(b, live, university_button(b.follow(url)))
    if 'name="decision"' in landed.text:
        landed = b.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(landed.text)})
    return b, dict(rp.fetch_token(f"{live.url}/token", code=callback_params(landed)["code"], code_verifier=verifier))


def test_a_university_login_is_a_password_login_for_a_relying_party(live: LiveIdp, university: FakeUniversity,
                                                                     giulia: int) -> None:
    client = register(live)
    _b, tokens = rp_login_through_university(live, university, client)
    claims = verify_id_token(live, tokens["id_token"], client, "n-0S6")
    assert claims["acr"] == "password" and claims["amr"] == ["pwd"]


def test_a_fresh_login_asked_by_a_service_is_forced_at_the_university(live: LiveIdp, university: FakeUniversity,
                                                                       giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    client = register(live)
    rp = rp_session(live, client)
    url, _, _verifier = start(live, rp, prompt="login")
    b = browser()
    landed = university_login(b, live, university_button(b.follow(url)))
    request_xml = zlib.decompress(base64.b64decode(university.requests_seen[-1]["SAMLRequest"]), -15).decode()
    assert 'ForceAuthn="true"' in request_xml
    if 'name="decision"' in landed.text:
        landed = b.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(landed.text)})
    assert "code" in callback_params(landed)  # the fresh login satisfied prompt=login: no loop back to login


def test_a_mapped_authn_context_gives_mfa(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university.authn_class = REFEDS_MFA
    client = register(live, min_acr="mfa")
    rp = rp_session(live, client)
    url, _, verifier = start(live, rp)
    b = browser()
    login_page = b.follow(url)
    landed = university_login(b, live, university_button(login_page))  # offered: it can reach mfa
    if 'name="decision"' in landed.text:
        landed = b.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(landed.text)})
    claims = verify_id_token(live, rp.fetch_token(f"{live.url}/token", code=callback_params(landed)["code"],
                                                  code_verifier=verifier)["id_token"], client, "n-0S6")
    assert claims["acr"] == "mfa" and claims["amr"] == ["mfa"]


def test_a_federation_that_cannot_reach_the_level_is_not_offered(live: LiveIdp, unimore: str) -> None:
    with live.services.registry("test") as reg:
        upstream.update_federation(reg, "unimore", authn_contexts={})
    client = register(live, min_acr="mfa")
    page = browser().follow(start(live, rp_session(live, client))[0])
    assert "Log in with UniMoRe account" not in page.text


def test_an_unlinked_account_is_linked_with_the_cards_password_and_a_code(
        live: LiveIdp, university: FakeUniversity, giulia: int, outbox: Outbox) -> None:
    b = browser()
    link_page = university_login(b, live)
    assert link_page.url.endswith("/federation/link") and "Link your UniMoRe account" in link_page.text
    assert not logged_in(b, live)
    number = card_of(live, giulia)
    wrong = b.post(link_page.url, {"username": number, "password": "not-her-password",
                                   "csrf_token": csrf(link_page.text)})
    assert wrong.status_code == 401 and "The card number or password is not right" in wrong.text
    assert outbox.sent == []  # no code without the card's password
    pin = b.post(link_page.url, {"username": number, "password": "1234", "csrf_token": csrf(wrong.text)})
    assert pin.status_code == 400 and "A PIN cannot be used" in pin.text and outbox.sent == []
    code_page = b.post(link_page.url, {"username": number, "password": GIULIA_PASSWORD,
                                       "csrf_token": csrf(pin.text)})
    assert code_page.url.endswith("/federation/link/code")
    assert "We have sent a one-time code to o\u2022\u2022\u2022@example.org" in code_page.text
    assert outbox.sent[-1][:2] == ("email", "old@example.org")
    wrong = b.post(code_page.url, {"code": "000000" if outbox.last_code() != "000000" else "111111",
                                   "csrf_token": csrf(code_page.text)})
    assert wrong.status_code == 400 and "That code is not right" in wrong.text
    done = b.post(code_page.url, {"code": outbox.last_code(), "csrf_token": csrf(code_page.text)})
    assert done.status_code == 200 and logged_in(b, live)
    with live.services.registry("test") as reg:
        link = reg.session.scalar(select(UpstreamIdentity).where(UpstreamIdentity.patron_id == giulia))
        assert link is not None and link.linked_by == "one_time_code"
    assert stored(live, giulia).name == "Giulia Rossi"
    # The next login needs no code.
    again = browser()
    university_login(again, live)
    assert logged_in(again, live) and len(outbox.sent) == 1


def test_a_known_and_an_unknown_card_get_the_same_answer_after_the_same_work(
        live: LiveIdp, university: FakeUniversity, giulia: int, outbox: Outbox, work: Work) -> None:
    with live.services.registry("test") as reg:
        blocked, blocked_card = patron(reg, nth=1, email="blocked@example.org", password=GIULIA_PASSWORD)
        patrons_svc.update_patron(reg, blocked, status="blocked")
        blocked_number = blocked_card.number
    # Giulia's card with a wrong password, a card that does not exist, a blocked card with its right password.
    tries = {card_of(live, giulia): "wrong-password-1", UNKNOWN_CARD: "wrong-password-1",
             blocked_number: GIULIA_PASSWORD}
    browsers = {card: browser() for card in tries}
    pages = {card: university_login(b, live) for card, b in browsers.items()}
    # All ten wrong guesses a card has in a day (30 requests: the per-IP limit's minute, too).
    for attempt in range(1, 11):
        seen = {}
        for card, b in browsers.items():
            work.take()
            pages[card] = link_with(b, live, pages[card], card, tries[card])
            seen[card] = (*as_seen(pages[card], card), work.take())
        answers = {(status, body) for status, body, _work in seen.values()}
        assert len(answers) == 1, f"attempt {attempt}: the answers differ"
        status, body = answers.pop()
        assert status == 401 and "The card number or password is not right" in body
        done = {repr(w) for _status, _body, w in seen.values()}
        assert len(done) == 1, f"attempt {attempt}: the work differs: {done}"
        argon2, queries, _writes = next(iter(seen.values()))[2]
        assert argon2 == 1 and queries > 0  # the unknown card is checked against the dummy hash
    assert outbox.sent == []
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(UpstreamIdentity)) == 0


def link_with(b: Browser, live: LiveIdp, page: requests.Response, card: str, password: str) -> requests.Response:
    """Submit the linking form on ``page`` (the last page this browser got) with a card and password."""
    return b.post(f"{live.url}/federation/link", {"username": card, "password": password,
                                                  "csrf_token": csrf(page.text)})


def test_linking_shares_the_cards_wrong_guesses_with_the_login_page(
        live: LiveIdp, university: FakeUniversity, giulia: int, outbox: Outbox) -> None:
    number = card_of(live, giulia)
    pages = {}
    browsers = {number: browser(), UNKNOWN_CARD: browser()}
    for card, b in browsers.items():
        pages[card] = university_login(b, live)
        for _ in range(10):
            pages[card] = link_with(b, live, pages[card], card, "wrong-password-1")
            assert pages[card].status_code == 401
    login_page = browser().http.get(f"{live.url}/login", timeout=5)
    locked = requests.post(f"{live.url}/login", cookies=login_page.cookies, allow_redirects=False, timeout=10,
                           data={"username": number, "password": GIULIA_PASSWORD, "csrf_token": csrf(login_page.text)})
    assert locked.status_code == 429 and outbox.sent == []
    # The 11th at the linking page is refused as for a card that does not exist (the lock itself is
    # told to the patron the card belongs to, once a day: idp.web.limits).
    eleventh = {card: as_seen(link_with(b, live, pages[card], card, "wrong-password-1"), card)
                for card, b in browsers.items()}
    assert eleventh[number][0] == 429 and eleventh[number] == eleventh[UNKNOWN_CARD]


def test_a_code_is_void_after_five_wrong_tries_and_stays_void(live: LiveIdp, university: FakeUniversity,
                                                              giulia: int, outbox: Outbox) -> None:
    b = browser()
    link_page = university_login(b, live)
    code_page = b.post(link_page.url, {"username": card_of(live, giulia), "password": GIULIA_PASSWORD,
                                       "csrf_token": csrf(link_page.text)})
    right = outbox.last_code()
    wrong = "000000" if right != "000000" else "111111"
    answers = [b.post(code_page.url, {"code": wrong, "csrf_token": csrf(code_page.text)}) for _ in range(6)]
    assert [a.status_code for a in answers] == [400] * 6
    assert all("That code is not right" in a.text for a in answers[:4])
    assert all("Too many wrong codes. Ask for a new one." in a.text for a in answers[4:])  # the 5th and the 6th
    late = b.post(code_page.url, {"code": right, "csrf_token": csrf(code_page.text)})
    assert late.status_code == 400 and "Too many wrong codes" in late.text and not logged_in(b, live)


def test_the_code_page_sends_back_to_the_card_without_a_code_sent(live: LiveIdp, university: FakeUniversity,
                                                                  giulia: int) -> None:
    b = browser()
    university_login(b, live)
    page = b.follow(f"{live.url}/federation/link/code")
    assert page.url.endswith("/federation/link") and 'name="password"' in page.text


# -- what must be refused ---------------------------------------------------------------------------

def test_an_unsigned_answer_is_refused(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university.sign = False
    b = browser()
    page = university_login(b, live)
    assert page.status_code == 400 and "could not be verified" in page.text and not logged_in(b, live)


def test_a_tampered_answer_is_refused_and_nothing_of_it_is_logged(live: LiveIdp, university: FakeUniversity,
                                                                   giulia: int,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    b = browser()
    action, fields = at_the_university(b, live)
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert "Giulia Rossi" in xml
    fields["SAMLResponse"] = base64.b64encode(xml.replace("Giulia Rossi", "Mallory Rossi").encode()).decode()
    page = post_answer(b, action, fields)
    assert page.status_code == 400 and "could not be verified" in page.text and not logged_in(b, live)
    assert stored(live, giulia).name == "G. Rossi"
    for secret in ("Mallory", "Giulia Rossi", EPPN, person(ADULT_BORN)):
        assert secret not in caplog.text


@pytest.mark.parametrize(("sign_alg", "digest_alg", "sign_response"), [
    (SIG_RSA_SHA1, DIGEST_SHA256, False),   # an assertion signed with rsa-sha1
    (SIG_RSA_SHA256, DIGEST_SHA1, False),   # an assertion whose reference is digested with sha1
    (SIG_RSA_SHA1, DIGEST_SHA1, True),      # the Response signed so too
], ids=["rsa-sha1", "sha1-digest", "response-too"])
def test_an_answer_signed_with_sha1_is_refused(live: LiveIdp, university: FakeUniversity, giulia: int,
                                               caplog: pytest.LogCaptureFixture, sign_alg: str, digest_alg: str,
                                               sign_response: bool) -> None:
    caplog.set_level(logging.INFO)
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university.sign_alg, university.digest_alg, university.sign_response = sign_alg, digest_alg, sign_response
    b = browser()
    action, fields = at_the_university(b, live)
    xml = base64.b64decode(fields["SAMLResponse"]).decode()
    assert f'Algorithm="{sign_alg}"' in xml and f'Algorithm="{digest_alg}"' in xml  # really signed so
    assert xml.count("SignatureValue>") == (4 if sign_response else 2)
    page = post_answer(b, action, fields)
    assert page.status_code == 400 and "could not be verified" in page.text and not logged_in(b, live)
    refusals = [r.getMessage() for r in caplog.records if "answer refused" in r.getMessage()]
    assert len(refusals) == 1 and "sha1" in refusals[0]
    for secret in ("Giulia", EPPN, person(ADULT_BORN)):
        assert secret not in caplog.text
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(UpstreamIdentity)) == 0


@pytest.mark.parametrize("recipient", ["https://elsewhere.example/federation/acs", "{live}/federation/sp",
                                       "{live}/federation/acs/"], ids=["elsewhere", "our-entity-id", "acs-slash"])
def test_an_assertion_for_another_recipient_is_refused(live: LiveIdp, university: FakeUniversity, giulia: int,
                                                       caplog: pytest.LogCaptureFixture, recipient: str) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university.recipient = recipient.format(live=live.url)
    b = browser()
    action, fields = at_the_university(b, live)
    assert action == f"{live.url}/federation/acs"  # posted to us, the assertion signed for another place
    assert f'Recipient="{university.recipient}"' in base64.b64decode(fields["SAMLResponse"]).decode()
    page = post_answer(b, action, fields)
    assert page.status_code == 400 and "could not be verified" in page.text and not logged_in(b, live)
    assert "Recipient" in caplog.text


def test_an_assertion_for_our_acs_is_accepted(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university.recipient = f"{live.url}/federation/acs"
    b = browser()
    assert university_login(b, live).status_code == 200 and logged_in(b, live)


def test_our_metadata_advertises_sha256_and_stronger_only(live: LiveIdp) -> None:
    metadata = requests.get(f"{live.url}/federation/metadata.xml", timeout=10).text
    algorithms = re.findall(r'<[\w:]*(?:DigestMethod|SigningMethod) Algorithm="([^"]+)"', metadata)
    assert SIG_RSA_SHA256 in algorithms and DIGEST_SHA256 in algorithms
    assert [a for a in algorithms if "md5" in a or "sha1" in a] == []


def test_the_service_provider_runs_the_xmlsec1_the_setting_names(live: LiveIdp, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    assert shutil.which("xmlsec1")  # a working one is on PATH: it must not be used instead
    monkeypatch.setattr(live.services, "settings", live.services.settings.model_copy(
        update={"xmlsec_binary": tmp_path / "no-xmlsec1"}))
    page = browser().http.get(f"{live.url}/federation/metadata.xml", timeout=10)
    assert page.status_code == 503 and "does not work just now" in page.text
    assert "IDP_XMLSEC_BINARY" in caplog.text and str(tmp_path / "no-xmlsec1") in caplog.text


def test_a_denied_login_says_so(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.deny = True
    page = university_login(browser(), live)
    assert page.status_code == 400 and "did not log you in" in page.text


def test_an_answer_from_another_identity_provider_is_refused(live: LiveIdp, university: FakeUniversity,
                                                             giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university.other_issuer = True
    b = browser()
    page = university_login(b, live)
    assert page.status_code == 400 and not logged_in(b, live)


def test_a_replayed_answer_is_refused(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    b = browser()
    action, fields = at_the_university(b, live)
    assert post_answer(b, action, fields).status_code == 200 and logged_in(b, live)
    replay = post_answer(browser(), action, fields)
    assert replay.status_code == 400 and "expired or was already completed" in replay.text


def test_an_answer_cannot_be_pushed_into_another_browser(live: LiveIdp, university: FakeUniversity,
                                                         giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    attacker = browser()
    action, fields = at_the_university(attacker, live)
    victim = browser()
    victim.http.get(f"{live.url}/login", timeout=5)
    answered = victim.http.post(action, data=fields, allow_redirects=False, timeout=10)
    assert answered.status_code == 303  # verified, but only the browser that asked can finish it
    finished = victim.follow(requests.compat.urljoin(action, answered.headers["Location"]))
    assert finished.status_code == 400 and not logged_in(victim, live)


# README: the request's InResponseTo is "kept in the state store for 15 minutes"; the university's
# answer "waits encrypted in the state store for two minutes" on its way to /federation/complete.
REQUEST_WAIT = 15 * 60
ANSWER_WAIT = 2 * 60


@pytest.fixture
def lifetimes(live: LiveIdp, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The lifetime the live server asks of the state store for each kind of key ("federation:request",
    ...). The store's own clock cannot be moved on (Redis counts real time): what it was asked is checked."""
    asked: dict[str, int] = {}
    put = live.services.state.put

    def recording_put(key: str, value: bytes, ttl: int) -> None:
        asked[key.rsplit(":", 1)[0]] = ttl
        put(key, value, ttl)
    monkeypatch.setattr(live.services.state, "put", recording_put)
    return asked


def test_the_request_is_awaited_15_minutes(live: LiveIdp, university: FakeUniversity, giulia: int,
                                           lifetimes: dict[str, int]) -> None:
    at_the_university(browser(), live)
    assert lifetimes["federation:request"] == REQUEST_WAIT


def test_the_answer_waits_two_minutes_for_the_browser(live: LiveIdp, university: FakeUniversity, giulia: int,
                                                      lifetimes: dict[str, int]) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    b = browser()
    action, fields = at_the_university(b, live)
    answered = b.http.post(action, data=fields, allow_redirects=False, timeout=10)
    assert answered.status_code == 303 and "/federation/complete" in answered.headers["Location"]
    assert lifetimes["federation:result"] == ANSWER_WAIT
    b.follow(requests.compat.urljoin(action, answered.headers["Location"]))
    assert logged_in(b, live)  # the answer so kept is the one that logs the member in


def test_an_answer_without_the_identifying_attribute_is_refused(live: LiveIdp, university: FakeUniversity,
                                                                giulia: int) -> None:
    del university.attributes["eduPersonPrincipalName"]
    page = university_login(browser(), live)
    assert page.status_code == 400 and "did not tell us who you are" in page.text


def test_a_disabled_federation_is_not_offered(live: LiveIdp, unimore: str) -> None:
    with live.services.registry("test") as reg:
        upstream.update_federation(reg, "unimore", enabled=False)
    b = browser()
    assert "UniMoRe" not in b.http.get(f"{live.url}/login", timeout=5).text
    page = b.http.get(f"{live.url}/federation/unimore/login", timeout=5)
    assert page.status_code == 404 and "This login is not available." in page.text
    assert b.http.get(f"{live.url}/federation/nowhere/login", timeout=5).status_code == 404


def test_expired_metadata_stops_only_that_federations_logins(live: LiveIdp, university: FakeUniversity,
                                                             unimore: str) -> None:
    other = FakeUniversity(url="http://127.0.0.1:9", keys_dir=university.keys_dir)
    expired = university.metadata().replace(' entityID=', ' validUntil="2020-01-01T00:00:00Z" entityID=', 1)
    with live.services.registry("test") as reg:
        upstream.add_federation(reg, upstream.FederationSpec(
            name="kommune", display_name="Kommune", entity_id=other.entity_id, metadata_xml=other.metadata(),
            link_attribute="eduPersonPrincipalName"))
        upstream.update_federation(reg, "unimore", metadata_xml=expired, entity_id=university.entity_id)
    b = browser()
    page = b.http.get(f"{live.url}/federation/unimore/login", timeout=10)
    assert page.status_code == 503 and "does not work just now" in page.text
    going = b.http.get(f"{live.url}/federation/kommune/login", allow_redirects=False, timeout=10)
    assert going.status_code == 303 and going.headers["Location"].startswith("http://127.0.0.1:9/sso/redirect?")


def test_signed_metadata_with_its_certificate_logs_in_and_a_changed_copy_fails_closed(
        live: LiveIdp, university: FakeUniversity, unimore: str, caplog: pytest.LogCaptureFixture) -> None:
    signed = university.metadata(sign=True)
    cert = university.cert_file.read_text()
    with live.services.registry("test") as reg:
        upstream.update_federation(reg, "unimore", metadata_xml=signed, entity_id=university.entity_id,
                                   metadata_cert=cert)
    b = browser()
    going = b.http.get(f"{live.url}/federation/unimore/login", allow_redirects=False, timeout=10)
    assert going.status_code == 303 and going.headers["Location"].startswith(f"{university.url}/sso/redirect?")
    # The register's copy changed behind the operator's back: the signature no longer verifies.
    with live.services.registry("test") as reg:
        upstream.update_federation(reg, "unimore", entity_id=university.entity_id,
                                   metadata_xml=signed.replace(f"{university.url}/sso", "https://evil.example/sso"))
    page = b.http.get(f"{live.url}/federation/unimore/login", allow_redirects=False, timeout=10)
    assert page.status_code == 503 and "does not work just now" in page.text and "evil.example" not in page.text
    assert "federation unimore: its metadata is refused: The metadata's signature does not verify" in caplog.text


def test_a_federation_without_a_metadata_certificate_is_warned_about_at_start(
        live: LiveIdp, unimore: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="idp.web.federation")
    create_app(services=live.services, config={"RATELIMIT_KEY_PREFIX": "idp-test-start-warning"})
    assert "federation unimore: its metadata's signature is not verified" in caplog.text


def test_a_blocked_card_cannot_log_in_through_the_university(live: LiveIdp, university: FakeUniversity,
                                                             giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university_login(browser(), live)
    with live.services.registry("test") as reg:
        patrons_svc.update_patron(reg, reg.session.get(Patron, giulia), status="blocked")
    b = browser()
    page = university_login(b, live)
    assert page.status_code == 403 and "blocked" in page.text and not logged_in(b, live)


def test_a_national_id_of_another_country_is_not_matched(live: LiveIdp, university: FakeUniversity,
                                                         giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = ["urn:schac:personalUniqueCode:it:CF:RSSGLI85C52F257X"]
    page = university_login(browser(), live)
    assert page.url.endswith("/federation/link")


def test_deleting_the_patron_removes_the_link(live: LiveIdp, university: FakeUniversity, giulia: int) -> None:
    university.attributes["schacPersonalUniqueCode"] = [NIN_CODE]
    university_login(browser(), live)
    with live.services.registry("test") as reg:
        patrons_svc.delete_patron(reg, reg.session.get(Patron, giulia))
    with live.services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(UpstreamIdentity)) == 0


def test_a_merged_local_card_keeps_its_university_link(live: LiveIdp, university: FakeUniversity,
                                                       unimore: str) -> None:
    with live.services.registry("test") as reg:
        library(reg, "IT-MO0001", "BiblioMo")
        local, local_card = patrons_svc.register_patron(reg, patrons_svc.NewPatron(
            name="Giulia", home_library="IT-MO0001", local_card="U0003125", birth_date=date(1992, 4, 12)))
        national, national_card = patron(reg, born=date(1992, 4, 12))
        upstream.link(reg, upstream.get_federation(reg, "unimore"), EPPN, local, how="operator")
        numbers = (local_card.number, national_card.number)
        national_id = national.id
    with live.services.registry("test") as reg:
        cards.merge_local_card(reg, *numbers)
    with live.services.registry("test") as reg:
        link = reg.session.scalar(select(UpstreamIdentity))
        assert link is not None and link.patron_id == national_id
