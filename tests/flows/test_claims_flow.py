"""Claim minimisation over real HTTP, as partners see it: authlib as the OIDC relying party,
requests as the verify API's client. A film platform learns yes/no facts, never the person."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime

import requests

from idp import relying_parties
from idp.registry.dates import oslo_date
from idp.registry.patrons import Address
from tests.flows.conftest import LiveIdp
from tests.flows.test_oidc_flow import (PASSWORD, Browser, Client, callback_params, csrf, register,
                                        rp_session, start, verify_id_token)
from tests.nin import person
from tests.unit.factories import ADULT_BORN, library, patron

FILM = ["valid_patron", "age_over_06", "age_over_09", "age_over_12", "age_over_15", "age_over_18"]
FILM_SCOPE = "openid patron age_over_15 age_over_18"
EVERYTHING = ["valid_patron", *(f"age_over_{n:02d}" for n in range(1, 100)), "loan_ban", "home_library", "libraries",
              "name", "email"]


def _born_years_ago(years: int) -> date:
    """Exactly ``years`` old today in Oslo: born on 1 January, so this year's birthday is behind."""
    return date(oslo_date(datetime.now(UTC)).year - years, 1, 1)


def _login(live: LiveIdp, client: Client, card: str, *, scope: str = FILM_SCOPE,
           **params: str) -> tuple[dict, dict, str, str]:
    """A full login; returns the token response, the userinfo answer, the consent page and the raw userinfo."""
    rp = rp_session(live, client, scope=scope)
    url, _, verifier = start(live, rp, **params)
    browser = Browser(requests.Session())
    browser.http.headers["Accept-Language"] = "en"
    page = browser.follow(url)
    consent = browser.post(page.url, {"username": card, "password": PASSWORD, "csrf_token": csrf(page.text),
                                      "next": re.search(r'name="next"[^>]*value="([^"]*)"', page.text).group(1)})
    assert consent.status_code == 200 and 'name="decision"' in consent.text
    back = browser.post(f"{live.url}/authorize/consent", {"decision": "allow", "csrf_token": csrf(consent.text)})
    token = rp.fetch_token(f"{live.url}/token", code=callback_params(back)["code"], code_verifier=verifier)
    userinfo = rp.get(f"{live.url}/userinfo")
    return token, userinfo.json(), consent.text, userinfo.text


def test_a_minor_and_an_adult_against_the_same_film_policy(live: LiveIdp) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        _, adult = patron(reg, password=PASSWORD)
        _, minor = patron(reg, born=_born_years_ago(14), nth=1, password=PASSWORD)
    film = register(live, claims=FILM)
    answers = {}
    for who, card in (("adult", adult.number), ("minor", minor.number)):
        token, info, consent, _ = _login(live, film, card)
        claims = verify_id_token(live, token["id_token"], film, "n-0S6")
        answers[who] = ({k: claims[k] for k in claims if k in FILM}, {k: v for k, v in info.items() if k != "sub"})
        assert "that you are at least 15 years old" in consent and "that you are at least 18 years old" in consent
        assert "that you hold a valid library card" in consent
    assert answers["adult"] == 2 * ({"valid_patron": True, "age_over_15": True, "age_over_18": True},)
    assert answers["minor"] == 2 * ({"valid_patron": True, "age_over_15": False, "age_over_18": False},)


def test_what_is_outside_the_policy_is_dropped_and_never_released(live: LiveIdp) -> None:
    with live.services.registry("test") as reg:
        library(reg)
        _, card = patron(reg, password=PASSWORD, phone="+47 912 34 567")
    film = register(live, claims=["valid_patron", "age_over_15", "age_over_18"])
    asked = {"id_token": {"birthdate": None, "address": None, "age_over_21": None, "name": None},
             "userinfo": {"birthdate": {"essential": False}, "phone_number": None, "email": None}}
    token, info, consent, _ = _login(live, film, card.number, scope=f"{FILM_SCOPE} age_over_21 profile email address",
                                     claims=json.dumps(asked))
    claims = verify_id_token(live, token["id_token"], film, "n-0S6")
    for released in (claims, info):
        assert not {"birthdate", "address", "age_over_21", "name", "email", "phone_number"} & set(released)
        assert released["valid_patron"] is True and released["age_over_18"] is True
    assert "at least 21" not in consent and "your name" not in consent and "e-mail" not in consent


def test_an_essential_claim_the_policy_forbids_fails_before_any_login(live: LiveIdp) -> None:
    film = register(live, claims=FILM)
    rp = rp_session(live, film, scope=FILM_SCOPE)
    url, state, _ = start(live, rp, claims=json.dumps({"id_token": {"name": {"essential": True}}}))
    response = requests.get(url, allow_redirects=False, timeout=5)
    params = callback_params(response)  # straight back to the platform: no login page first
    assert params["error"] == "access_denied" and "name" in params["error_description"]
    assert params["state"] == state and params["iss"] == live.url


def test_no_personal_data_beyond_the_policy_for_a_patron_with_a_secret_address(live: LiveIdp) -> None:
    street, postal_code, city, phone = "Hemmeligveien 17", "0987", "Skjultvik", "+47 915 55 321"
    with live.services.registry("test") as reg:
        library(reg)
        _, card = patron(reg, password=PASSWORD, phone=phone, address=Address(street, postal_code, city),
                         address_secret=True)
    # The broadest policy there is: everything but the person's identifying data may go out.
    partner = register(live, claims=EVERYTHING)
    with live.services.registry("test") as reg:
        relying_parties.get(reg, partner.client_id).pin_allowed = True
    token, _, _, raw_userinfo = _login(live, partner, card.number,
                                       scope="openid patron library profile email age_over_15 age_over_18")
    verify = requests.post(f"{live.url}/api/v1/verify", auth=(partner.client_id, partner.secret or ""), timeout=5,
                           json={"card_number": card.number, "password": PASSWORD, "age_over": [15, 18, 40]})
    assert verify.status_code == 200 and verify.json()["age_over_40"] is True
    id_token_payload = base64.urlsafe_b64decode(token["id_token"].split(".")[1] + "==").decode()
    bodies = {"id_token": id_token_payload, "token response": json.dumps(token), "userinfo": raw_userinfo,
              "verify": verify.text}
    born = ADULT_BORN
    forbidden = [born.isoformat(), born.strftime("%d.%m.%Y"), born.strftime("%d%m%y"), born.strftime("%Y%m%d"),
                 person(born), street, "Hemmeligveien", postal_code, city, phone, phone.replace(" ", ""), "91555321"]
    for where, body in bodies.items():
        found = [needle for needle in forbidden if re.search(rf"(?<![0-9]){re.escape(needle)}(?![0-9])", body)]
        assert not found, f"{where} reveals {found}"
    # What the policy does allow did go out, so the search above looked at real answers.
    assert "Kari Nordmann" in raw_userinfo and '"loan_ban": false' in raw_userinfo.replace('":false', '": false')
