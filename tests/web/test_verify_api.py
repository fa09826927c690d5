"""POST /api/v1/verify as partners (and attackers) use it; its OpenAPI description kept true."""

from __future__ import annotations

import base64
import uuid
from datetime import date, timedelta
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from idp import create_app, relying_parties
from idp.registry import cards as card_rules
from idp.registry import loan_bans
from idp.registry.models import ClaimRelease, Notification
from idp.services import Services
from tests.unit.factories import library, patron
from tests.web.conftest import csrf_token

PASSWORD = "correct horse battery"
PIN = "4711"
WRONG_GUESSES_PER_DAY = 10  # README: "Each card's 10 wrong guesses a day are counted together with the login page"
ANY_TEXT = type("AnyText", (), {"__eq__": lambda self, other: isinstance(other, str) and bool(other)})()
FILM_POLICY = ["valid_patron", "age_over_06", "age_over_09", "age_over_12", "age_over_15", "age_over_18"]
DOOR_POLICY = ["valid_patron", "age_over_15", "loan_ban"]


class Partner:
    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id, self.secret = client_id, secret

    @property
    def auth(self) -> dict[str, str]:
        raw = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}


def _partner(services: Services, claims: list[str], *, pin_allowed: bool = False, public: bool = False,
             dpa: bool = True) -> Partner:
    with services.registry("test") as reg:
        rp, secret = relying_parties.add_oidc(
            reg, "Partner", ["https://partner.example/cb"], claims=claims, pin_allowed=pin_allowed, public=public,
            dpa_signed=reg.today() - timedelta(days=1) if dpa else None)
        return Partner(rp.client_id, secret or "")


@pytest.fixture
def cards(services: Services) -> dict[str, str]:
    """An adult, a 14-year-old and a patron with a loan ban, each with password and PIN."""
    today = services.clock().date()
    with services.registry("test") as reg:
        library(reg)
        _, adult = patron(reg, password=PASSWORD, pin=PIN)
        _, minor = patron(reg, born=date(today.year - 14, 1, 2), nth=1, password=PASSWORD, pin=PIN,
                          email="ung@example.org")
        banned_patron, banned = patron(reg, born=date(1990, 5, 5), nth=2, password=PASSWORD, pin=PIN,
                                       email="ban@example.org")
        loan_bans.set_loan_ban(reg, banned_patron, "NO-2030000")  # a ban of a library where they are a member
        return {"adult": adult.number, "minor": minor.number, "banned": banned.number}


@pytest.fixture
def film(services: Services) -> Partner:
    return _partner(services, FILM_POLICY)


def post(client: FlaskClient, partner: Partner | None, body: Any, **kwargs: Any) -> TestResponse:
    headers = partner.auth if partner else {}
    if "data" in kwargs:
        return client.post("/api/v1/verify", headers=headers, **kwargs)
    return client.post("/api/v1/verify", headers=headers, json=body, **kwargs)


_SERVED: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _served_document(client: FlaskClient) -> None:
    """The description as partners read it: served at /api/v1/openapi.json (generated from the code)."""
    if not _SERVED:
        _SERVED.update(client.get("/api/v1/openapi.json").get_json())


def openapi_document() -> dict[str, Any]:
    return _SERVED


def conforms(response: TestResponse) -> None:
    """The answer matches what the OpenAPI description promises for its status."""
    document = openapi_document()
    spec = document["paths"]["/verify"]["post"]["responses"][str(response.status_code)]
    schema = spec["content"]["application/json"]["schema"]
    jsonschema.validate(response.get_json(), {**schema, "components": document["components"]})
    for header in spec.get("headers", {}):
        assert header in response.headers, f"{header} is documented for {response.status_code}"


# -- what partners learn --------------------------------------------------------------------

def test_a_minor_and_an_adult_against_the_same_film_policy(client: FlaskClient, film: Partner,
                                                           cards: dict[str, str]) -> None:
    ask = {"age_over": [6, 15, 18]}
    adult = post(client, film, {"card_number": cards["adult"], "password": PASSWORD, **ask})
    minor = post(client, film, {"card_number": cards["minor"], "password": PASSWORD, **ask})
    assert adult.status_code == minor.status_code == 200
    assert adult.get_json() == {"valid_patron": True, "age_over_06": True, "age_over_15": True, "age_over_18": True}
    assert minor.get_json() == {"valid_patron": True, "age_over_06": True, "age_over_15": False,
                                "age_over_18": False}
    assert adult.headers["Cache-Control"] == "no-store"
    conforms(adult)
    conforms(minor)


def test_thresholds_and_claims_outside_the_policy_are_left_out(client: FlaskClient, film: Partner,
                                                               cards: dict[str, str]) -> None:
    answer = post(client, film, {"card_number": cards["banned"], "password": PASSWORD, "age_over": [18, 21]})
    # age_over_21 is not in the film policy and loan_ban is not either: neither is answered.
    assert answer.status_code == 200 and answer.get_json() == {"valid_patron": True, "age_over_18": True}


def test_a_door_with_pin_learns_the_loan_ban(client: FlaskClient, services: Services, cards: dict[str, str]) -> None:
    door = _partner(services, DOOR_POLICY, pin_allowed=True)
    banned = post(client, door, {"card_number": cards["banned"], "pin": PIN, "age_over": [15]})
    adult = post(client, door, {"card_number": cards["adult"], "pin": PIN})
    assert banned.get_json() == {"valid_patron": True, "age_over_15": True, "loan_ban": True}
    assert adult.get_json() == {"valid_patron": True, "loan_ban": False}


def test_every_failure_gets_the_same_answer(client: FlaskClient, services: Services, film: Partner,
                                           cards: dict[str, str]) -> None:
    with services.registry("test") as reg:
        card_rules.find_card(reg, cards["banned"]).patron.status = "blocked"  # type: ignore[union-attr]
    answers = [post(client, film, {"card_number": number, "password": secret, "age_over": [15]})
               for number, secret in ((cards["adult"], "wrong password"), ("N999999999", PASSWORD),
                                      ("not a card", PASSWORD), (cards["banned"], PASSWORD))]
    assert {a.status_code for a in answers} == {200}
    assert all(a.get_json() == {"valid_patron": False} for a in answers)


@pytest.mark.parametrize("pin", ["47110", "471100"], ids=["5-digits", "6-digits"])
def test_a_pin_of_five_or_six_digits_is_checked(client: FlaskClient, services: Services, pin: str) -> None:
    with services.registry("test") as reg:
        library(reg)
        _, card = patron(reg, password=PASSWORD, pin=pin)
    door = _partner(services, DOOR_POLICY, pin_allowed=True)
    assert post(client, door, {"card_number": card.number, "pin": pin}).get_json()["valid_patron"] is True
    wrong = post(client, door, {"card_number": card.number, "pin": pin[:-1] + "9"})
    assert wrong.status_code == 200 and wrong.get_json() == {"valid_patron": False}


def test_a_pin_is_refused_from_a_partner_not_allowed_pins(client: FlaskClient, film: Partner,
                                                          cards: dict[str, str]) -> None:
    answer = post(client, film, {"card_number": cards["adult"], "pin": PIN})
    assert answer.status_code == 403 and "PIN" in answer.get_json()["message"]
    conforms(answer)


def test_each_release_is_recorded_by_name_only(client: FlaskClient, services: Services, film: Partner,
                                               cards: dict[str, str]) -> None:
    post(client, film, {"card_number": cards["minor"], "password": PASSWORD, "age_over": [15]})
    post(client, film, {"card_number": cards["minor"], "password": "wrong password", "age_over": [15]})
    with services.registry("test") as reg:
        rows = list(reg.session.scalars(select(ClaimRelease)))
    assert len(rows) == 1  # the failed check released nothing
    assert rows[0].protocol == "api" and sorted(rows[0].claims) == ["age_over_15", "valid_patron"]


# -- client authentication ----------------------------------------------------------------

def test_partners_must_authenticate(client: FlaskClient, services: Services, film: Partner,
                                    cards: dict[str, str]) -> None:
    body = {"card_number": cards["adult"], "password": PASSWORD}
    public = _partner(services, FILM_POLICY, public=True)
    no_dpa = _partner(services, FILM_POLICY, dpa=False)
    cases = [None, Partner(film.client_id, "wrong"), Partner("nobody", "x"), public, no_dpa]
    for partner in cases:
        answer = post(client, partner, body)
        assert answer.status_code == 401, partner and partner.client_id
        assert answer.get_json()["error"] == "invalid_client" and answer.headers["WWW-Authenticate"].startswith("Basic")
        conforms(answer)
    garbled = client.post("/api/v1/verify", json=body, headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401


# -- bad bodies -----------------------------------------------------------------------------

BAD_BODIES: list[tuple[Any, str]] = [
    ({}, "card_number"),
    ({"password": PASSWORD}, "card_number"),
    ({"card_number": "", "password": PASSWORD}, "card_number"),
    ({"card_number": 12345678, "password": PASSWORD}, "card_number"),
    ({"card_number": "N" * 65, "password": PASSWORD}, "64"),
    ({"card_number": "N000000001"}, "exactly one of password and pin"),
    ({"card_number": "N000000001", "password": PASSWORD, "pin": PIN}, "exactly one of password and pin"),
    ({"card_number": "N000000001", "password": 1234}, "password"),
    ({"card_number": "N000000001", "password": "x" * 257}, "256"),
    ({"card_number": "N000000001", "pin": "123"}, "4 to 6 digits"),  # README: "PIN (4-6 digits)"
    ({"card_number": "N000000001", "pin": "1234567"}, "4 to 6 digits"),
    ({"card_number": "N000000001", "pin": "12ab"}, "4 to 6 digits"),
    ({"card_number": "N000000001", "pin": "１２３４"}, "4 to 6 digits"),  # noqa: RUF001 - full-width digits
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": 15}, "list"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": [0]}, "1 to 99"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": [100]}, "1 to 99"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": [15.5]}, "1 to 99"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": ["18"]}, "1 to 99"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": [True]}, "1 to 99"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": [10**40]}, "1 to 99"),
    ({"card_number": "N000000001", "password": PASSWORD, "age_over": list(range(1, 12))}, "at most 10"),
    ({"card_number": "N000000001", "password": PASSWORD, "birthdate": True}, "Unknown field(s): birthdate"),
    ([], "JSON object"),
    ("N000000001", "JSON object"),
]


@pytest.mark.parametrize(("body", "says"), BAD_BODIES)
def test_bad_bodies_get_400_with_a_clear_message(client: FlaskClient, services: Services, film: Partner,
                                                 body: Any, says: str) -> None:
    answer = post(client, film, body)
    assert answer.status_code == 400, answer.get_json()
    assert says in answer.get_json()["message"]
    assert PASSWORD not in answer.text
    conforms(answer)
    # The schema agrees that the body is wrong.
    request_schema = {**openapi_document()["components"]["schemas"]["VerifyRequest"],
                      "components": openapi_document()["components"]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, request_schema)
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(ClaimRelease)) == 0


def test_bodies_that_are_not_json_or_too_big(client: FlaskClient, film: Partner) -> None:
    not_json = post(client, film, None, data="card_number=1", content_type="application/x-www-form-urlencoded")
    broken = post(client, film, None, data="{not json", content_type="application/json")
    null = post(client, film, None, data="null", content_type="application/json")
    huge = post(client, film, None, data='{"card_number": "' + "1" * 70_000 + '"}', content_type="application/json")
    assert not_json.status_code == 400 and "JSON" in not_json.get_json()["message"]
    assert broken.status_code == null.status_code == 400
    assert "JSON object" in broken.get_json()["message"] and "JSON object" in null.get_json()["message"]
    assert huge.status_code == 413 and huge.get_json()["error"]
    for answer in (not_json, broken, null, huge):
        conforms(answer)


def test_the_documented_examples_are_valid_requests() -> None:
    document = openapi_document()
    operation = document["paths"]["/verify"]["post"]
    schema = {**operation["requestBody"]["content"]["application/json"]["schema"], "components": document["components"]}
    examples = document["components"]["schemas"]["VerifyRequest"]["examples"]
    assert len(examples) == 2  # the film platform's and the open-library door's
    for example in examples:
        jsonschema.validate(example, schema)
    answer = {**operation["responses"]["200"]["content"]["application/json"]["schema"],
              "components": document["components"]}
    for example in document["components"]["schemas"]["VerifyAnswer"]["examples"]:
        jsonschema.validate(example, answer)


def test_the_description_is_served_with_this_server(client: FlaskClient, services: Services) -> None:
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    body = served.get_json()
    assert body["openapi"].startswith("3.1")
    assert body["servers"] == [{"url": services.settings.issuer.rstrip("/") + "/api/v1"}]
    verify = body["paths"]["/verify"]["post"]
    assert verify["operationId"] == "verifyCard"
    assert verify["security"] == [{"partnerCredentials": []}]
    assert body["components"]["securitySchemes"]["partnerCredentials"] == {
        "type": "http", "scheme": "basic", "description": ANY_TEXT}


# -- brute force ----------------------------------------------------------------------------

@pytest.mark.backends
def test_wrong_secrets_lock_the_card_together_with_the_login_page(client: FlaskClient, services: Services,
                                                                  cards: dict[str, str]) -> None:
    door = _partner(services, DOOR_POLICY, pin_allowed=True)
    for guess in range(WRONG_GUESSES_PER_DAY):
        answer = post(client, door, {"card_number": cards["adult"], "pin": f"{1000 + guess}"})
        assert answer.get_json() == {"valid_patron": False}
    locked = post(client, door, {"card_number": cards["adult"], "pin": PIN})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    conforms(locked)
    # The web login page now refuses the same card, even with the right password.
    page = client.get("/login")
    web = client.post("/login", data={"username": cards["adult"], "password": PASSWORD,
                                      "csrf_token": csrf_token(page.text)})
    assert web.status_code == 429
    # Other cards still work, and the patron was told once.
    assert post(client, door, {"card_number": cards["minor"], "pin": PIN}).get_json()["valid_patron"] is True
    with services.registry("test") as reg:
        assert reg.session.scalar(select(func.count()).select_from(Notification)
                                  .where(Notification.kind == "login_locked")) == 1


@pytest.mark.backends
def test_successful_checks_do_not_use_up_the_allowance(client: FlaskClient, film: Partner,
                                                       cards: dict[str, str]) -> None:
    for _ in range(WRONG_GUESSES_PER_DAY + 2):
        answer = post(client, film, {"card_number": cards["adult"], "password": PASSWORD})
        assert answer.status_code == 200 and answer.get_json()["valid_patron"] is True


@pytest.mark.backends
def test_the_per_partner_limit_is_kept_apart_from_strangers_sending_its_id(services: Services,
                                                                          cards: dict[str, str]) -> None:
    settings = services.settings.model_copy(update={"verify_limit_per_client": "3 per minute"})
    app = create_app(settings, services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})
    film = _partner(services, FILM_POLICY)
    body = {"card_number": cards["adult"], "password": PASSWORD}
    with app.test_client() as client:
        stranger = [post(client, Partner(film.client_id, "guess"), body, environ_base={"REMOTE_ADDR": "198.51.100.7"})
                    for _ in range(4)]
        assert [a.status_code for a in stranger] == [401, 401, 401, 429]
        partner = [post(client, film, body, environ_base={"REMOTE_ADDR": "192.0.2.10"}) for _ in range(4)]
        assert [a.status_code for a in partner] == [200, 200, 200, 429]
        conforms(partner[-1])


def test_the_per_partner_limit_counts_each_partner_apart_on_a_shared_address(services: Services,
                                                                             cards: dict[str, str]) -> None:
    """README: the verify API "is also limited per partner and sending address": two partners
    behind one address each have their own allowance."""

    settings = services.settings.model_copy(update={"verify_limit_per_client": "3 per minute"})
    app = create_app(settings, services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})
    film, door = _partner(services, FILM_POLICY), _partner(services, DOOR_POLICY)
    body = {"card_number": cards["adult"], "password": PASSWORD}
    shared = {"REMOTE_ADDR": "192.0.2.10"}
    with app.test_client() as client:
        assert [post(client, film, body, environ_base=shared).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert post(client, door, body, environ_base=shared).status_code == 200


def test_a_stranger_varying_the_secret_still_fills_one_bucket_per_partner(services: Services,
                                                                          cards: dict[str, str]) -> None:
    """README: the verify API "is also limited per partner and sending address": per partner id,
    whatever secret comes with it, so guessing a partner's secret from one address is limited too."""

    settings = services.settings.model_copy(update={"verify_limit_per_client": "3 per minute"})
    app = create_app(settings, services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})
    film = _partner(services, FILM_POLICY)
    body = {"card_number": cards["adult"], "password": PASSWORD}
    with app.test_client() as client:
        answers = [post(client, Partner(film.client_id, f"guess {i}"), body,
                        environ_base={"REMOTE_ADDR": "198.51.100.7"}) for i in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]


def test_the_check_answers_valid_patron_even_where_the_policy_lists_only_ages(client: FlaskClient,
                                                                              services: Services,
                                                                              cards: dict[str, str]) -> None:
    # docs/verify-api.md: the partner learns "whether the card and secret belong to a valid patron"
    # ({"valid_patron": true, ...}); a wrong secret answers {"valid_patron": false}.
    ages_only = _partner(services, ["age_over_18"])
    right = post(client, ages_only, {"card_number": cards["adult"], "password": PASSWORD, "age_over": [18]})
    wrong = post(client, ages_only, {"card_number": cards["adult"], "password": "wrong password"})
    assert right.get_json() == {"valid_patron": True, "age_over_18": True}
    assert wrong.get_json() == {"valid_patron": False}


def test_ten_age_thresholds_are_answered_and_eleven_refused(client: FlaskClient, film: Partner,
                                                           cards: dict[str, str]) -> None:
    # The published description (/api/v1/openapi.json): age_over has "maxItems": 10.
    ten = post(client, film, {"card_number": cards["adult"], "password": PASSWORD, "age_over": list(range(9, 19))})
    eleven = post(client, film, {"card_number": cards["adult"], "password": PASSWORD, "age_over": list(range(8, 19))})
    assert ten.status_code == 200 and ten.get_json()["valid_patron"] is True
    assert eleven.status_code == 400


def test_a_card_number_of_64_characters_is_checked_and_65_refused(client: FlaskClient, film: Partner,
                                                                 cards: dict[str, str]) -> None:
    # The published description (/api/v1/openapi.json): card_number has "maxLength": 64.
    longest = post(client, film, {"card_number": "1" * 64, "password": PASSWORD})
    too_long = post(client, film, {"card_number": "1" * 65, "password": PASSWORD})
    assert longest.status_code == 200 and longest.get_json() == {"valid_patron": False}
    assert too_long.status_code == 400


def test_a_password_of_256_characters_is_checked_and_257_refused(client: FlaskClient, film: Partner,
                                                                cards: dict[str, str]) -> None:
    # docs/register.md: a password has 8-256 characters (and the description's "maxLength": 256).
    longest = post(client, film, {"card_number": cards["adult"], "password": "x" * 256})
    too_long = post(client, film, {"card_number": cards["adult"], "password": "x" * 257})
    assert longest.status_code == 200 and longest.get_json() == {"valid_patron": False}
    assert too_long.status_code == 400
