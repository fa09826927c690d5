"""The ID-porten client (idp/auth/idporten.py) against the fake ID-porten over HTTP, without the
web app: discovery and keys (https only, except loopback), key rotation, the token endpoint's
refusals, and the settings that switch it on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from idp.auth.idporten import (HIGH, SUBSTANTIAL, IdPortenClient, IdPortenError, check_url, level_for_need,
                               pkce_challenge)
from idp.errors import ConfigError
from idp.settings import load_settings
from tests.fakes.idporten import FakeIdPorten, running_idporten
from tests.nin import duf, person

CALLBACK = "http://127.0.0.1:9/idporten/callback"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeIdPorten]:
    with running_idporten() as idporten:
        idporten.person = person(date(1985, 3, 12))
        yield idporten


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(fake: FakeIdPorten, clock: Clock) -> IdPortenClient:
    registered = fake.register(CALLBACK, "http://127.0.0.1:9/idporten/logged-out")
    return IdPortenClient(fake.url, registered.client_id, registered.secret, CALLBACK, clock=clock)


def log_in(client: IdPortenClient, acr: str = SUBSTANTIAL) -> object:
    url, pending = client.begin(acr)
    back = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    return client.complete(pending, {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()})


def test_a_login_yields_the_verified_person(client: IdPortenClient) -> None:
    identity = log_in(client, HIGH)
    assert identity.acr == HIGH and identity.amr == ["TestID"] and identity.sid
    assert identity.national_id.value == person(date(1985, 3, 12))
    assert person(date(1985, 3, 12)) not in repr(identity)


def test_a_rotated_key_is_fetched_once_it_is_used(client: IdPortenClient, fake: FakeIdPorten, clock: Clock) -> None:
    log_in(client)
    fake.rotate_key()
    clock.now += 61  # an unknown kid refetches the JWKS, at most once a minute
    assert log_in(client).acr == SUBSTANTIAL


def test_a_key_id_never_published_is_refused(client: IdPortenClient,
                                                                         fake: FakeIdPorten) -> None:
    log_in(client)
    fake.unknown_kid = True
    with pytest.raises(IdPortenError) as refused:
        log_in(client)
    assert refused.value.kind == "signature"


def test_the_token_endpoint_refusing_the_code_is_a_clear_error(client: IdPortenClient, fake: FakeIdPorten) -> None:
    url, pending = client.begin(SUBSTANTIAL)
    back = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    tampered = type(pending)(pending.state, pending.nonce, "another-verifier-" + "x" * 40, pending.acr, pending.started)
    with pytest.raises(IdPortenError) as refused:
        client.complete(tampered, params)  # PKCE: the fake refuses a verifier that does not match
    assert refused.value.kind == "token"
    with pytest.raises(IdPortenError) as again:
        client.complete(pending, params)  # the code was used up by the first attempt
    assert again.value.kind == "token"


def test_a_state_that_does_not_match_is_refused(client: IdPortenClient) -> None:
    _url, pending = client.begin(SUBSTANTIAL)
    with pytest.raises(IdPortenError) as refused:
        client.complete(pending, {"state": "forged", "code": "x"})
    assert refused.value.kind == "state"


def test_a_login_that_took_too_long_is_refused(client: IdPortenClient, clock: Clock) -> None:
    url, pending = client.begin(SUBSTANTIAL)
    back = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    clock.now += 601
    with pytest.raises(IdPortenError) as refused:
        client.complete(pending, {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()})
    assert refused.value.kind == "state"


def test_an_identity_number_that_is_no_national_id_is_refused(client: IdPortenClient, fake: FakeIdPorten) -> None:
    fake.person = duf(2015, 123456)
    with pytest.raises(IdPortenError) as refused:
        log_in(client)
    assert refused.value.kind == "pid"


def test_a_discovery_document_for_another_issuer_is_refused(fake: FakeIdPorten) -> None:
    client = IdPortenClient(fake.url.replace("127.0.0.1", "localhost"), "c", "s", CALLBACK)
    with pytest.raises(IdPortenError) as refused:
        client.metadata()
    assert refused.value.kind == "unavailable"


def test_only_https_or_loopback_is_fetched() -> None:
    assert check_url("https://idporten.no/jwks", "x") and check_url("http://127.0.0.1:5/jwks", "x")
    for bad in ("http://idporten.no/jwks", "file:///etc/passwd", "ftp://idporten.no/", "/relative"):
        with pytest.raises(IdPortenError):
            check_url(bad, "x")


def test_pkce_and_levels() -> None:
    # RFC 7636, appendix B.
    verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce_challenge(verifier) == challenge
    assert level_for_need(HIGH) == HIGH
    assert level_for_need("password") == SUBSTANTIAL and level_for_need(None) == SUBSTANTIAL


def test_idporten_settings_come_all_together(tmp_path: Path) -> None:
    base = {"mode": "development", "home": str(tmp_path)}
    on = load_settings({}, **base, idporten_issuer="https://idporten.no/", idporten_client_id="c",
                       idporten_client_secret="topsecret-value")
    assert on.idporten_enabled and on.idporten_issuer == "https://idporten.no"
    assert "topsecret-value" not in repr(on) and "topsecret-value" not in str(on.model_dump())
    assert not load_settings({}, **base).idporten_enabled
    with pytest.raises(ConfigError, match="IDP_IDPORTEN_CLIENT_ID and IDP_IDPORTEN_CLIENT_SECRET together"):
        load_settings({}, **base, idporten_issuer="https://idporten.no")
    with pytest.raises(ConfigError, match="IDP_IDPORTEN_ISSUER must use https"):
        load_settings({}, **base, idporten_issuer="http://idporten.example", idporten_client_id="c",
                      idporten_client_secret="s")
    from_env = load_settings({"IDP_MODE": "development", "IDP_HOME": str(tmp_path), "IDP_IDPORTEN_ISSUER": "",
                              "IDP_IDPORTEN_CLIENT_ID": "", "IDP_IDPORTEN_CLIENT_SECRET": ""})
    assert not from_env.idporten_enabled  # blank is unset
