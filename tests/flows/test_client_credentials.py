"""Library systems get access tokens with the client credentials grant, over real HTTP, with authlib
as the independent client (issue 15, "Who calls it and how they authenticate").

The rules: a library system authenticates with private_key_jwt (RFC 7523: iss = sub = client_id, aud
our issuer or our token endpoint, exp at most 5 minutes ahead, a jti used once, RS256/ES256/PS256
only) or client_secret_basic; the scopes are register.read, register.write, cards and series, and a
request naming none gets register.read; the token is opaque, lives 300 seconds and is bound to the
library; a disabled system, an address outside its allow-list, an unknown scope, a relying party
asking for the grant and a library system asking for another grant are refused.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from datetime import date
from typing import Any

import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc.jwk import OctKey, import_key
from jwcrypto.jwk import JWK
from jwcrypto.jwt import JWT
from sqlalchemy import select

from idp import relying_parties
from idp.errors import NotFound
from idp.oidc.client_credentials import LibraryAccess
from idp.registry import libraries, library_systems
from idp.registry.models import AuditEvent
from tests.flows.conftest import LiveIdp

with warnings.catch_warnings():
    # authlib.jose announces its move to joserfc at import; here it signs the client's assertions.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.oauth2.rfc7523 import PrivateKeyJWT, client_secret_jwt_sign, private_key_jwt_sign

OSLO = "NO-2030000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class System:
    def __init__(self, client_id: str, secret: str | None, key: JWK | None) -> None:
        self.client_id, self.secret, self.key = client_id, secret, key

    @property
    def pem(self) -> Any:
        """The private key as authlib takes it (a joserfc key)."""
        assert self.key is not None
        return private(self.key)


def private(key: JWK) -> Any:
    return import_key(key.export_private(as_dict=True))


def add_system(live: LiveIdp, *, kty: str = "RSA", secret: bool = False, allowed_ips: tuple[str, ...] = ()) -> System:
    key = None if secret else (JWK.generate(kty="RSA", size=2048, kid="desk-1") if kty == "RSA"
                               else JWK.generate(kty="EC", crv="P-256", kid="desk-1"))
    jwks = json.dumps({"keys": [key.export_public(as_dict=True)]}) if key is not None else None
    with live.services.registry("test") as reg:
        try:
            libraries.get_library(reg, OSLO)
        except NotFound:  # the test's first system adds the library
            libraries.add_library(reg, OSLO, "Oslo public library")
    with live.services.registry("test") as reg:
        system, drawn = library_systems.add(reg, OSLO, "Bibliofil", jwks=jwks, allowed_ips=allowed_ips)
        return System(system.client_id, drawn, key)


def jwt_session(live: LiveIdp, system: System, scope: str | None = None, **claims: Any) -> OAuth2Session:
    session = OAuth2Session(system.client_id, system.pem, scope=scope, token_endpoint_auth_method="private_key_jwt")
    # A fresh jti per assertion (authlib adds one to the claims it is given), exp a minute ahead.
    session.register_client_auth_method(PrivateKeyJWT(f"{live.url}/token",
                                                      claims={"exp": int(time.time()) + 60, **claims}))
    return session


def secret_session(system: System, scope: str | None = None) -> OAuth2Session:
    return OAuth2Session(system.client_id, system.secret, scope=scope, token_endpoint_auth_method="client_secret_basic")


def fetch(live: LiveIdp, session: OAuth2Session) -> dict[str, Any]:
    return dict(session.fetch_token(f"{live.url}/token", grant_type="client_credentials"))


def post_assertion(live: LiveIdp, assertion: str, **fields: str) -> requests.Response:
    return requests.post(f"{live.url}/token", timeout=5, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion, **fields})


def signed(live: LiveIdp, system: System, *, alg: str = "RS256", key: Any = None, aud: str | None = None,
           exp_in: int = 60, **claims: Any) -> str:
    return private_key_jwt_sign(key or system.pem, system.client_id, aud or f"{live.url}/token", alg=alg,
                                claims={"exp": int(time.time()) + exp_in, "jti": uuid.uuid4().hex, **claims})


def assert_invalid_client(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"


def introspect(live: LiveIdp, token: str) -> LibraryAccess | None:
    return live.services.oidc.library_clients.introspect(token)


def test_private_key_jwt_gets_a_300_second_token_bound_to_the_library(live: LiveIdp) -> None:
    system = add_system(live)
    before = time.time()
    response = requests.post(f"{live.url}/token", timeout=5, data={
        "grant_type": "client_credentials", "scope": "register.read cards", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed(live, system)})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 300
    assert set(token["scope"].split()) == {"register.read", "cards"}
    assert token["access_token"].count(".") == 0 and len(token["access_token"]) >= 40  # opaque, not a JWT
    access = introspect(live, token["access_token"])
    assert access is not None and access.client_id == system.client_id and access.isil == OSLO
    assert set(access.scopes) == {"register.read", "cards"}
    assert before + 299 <= access.expires_at <= time.time() + 301
    with live.services.registry("test") as reg:
        event = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "library_system.token")).one()
        assert event.detail["client_id"] == system.client_id and event.library_id == access.library_id
        assert token["access_token"] not in json.dumps(event.detail)


def test_authlib_private_key_jwt_with_an_ec_key_and_all_four_scopes(live: LiveIdp) -> None:
    system = add_system(live, kty="EC")
    session = OAuth2Session(system.client_id, system.pem, scope="register.read register.write cards series",
                            token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(PrivateKeyJWT(f"{live.url}/token", alg="ES256",
                                                      claims={"exp": int(time.time()) + 60}))
    token = fetch(live, session)
    assert set(token["scope"].split()) == {"register.read", "register.write", "cards", "series"}


def test_client_secret_basic_gets_a_token_and_no_scope_means_register_read(live: LiveIdp) -> None:
    system = add_system(live, secret=True)
    token = fetch(live, secret_session(system))
    assert token["scope"] == "register.read" and token["expires_in"] == 300
    access = introspect(live, token["access_token"])
    assert access is not None and access.scopes == ("register.read",) and access.isil == OSLO


def test_a_wrong_secret_is_invalid_client(live: LiveIdp) -> None:
    system = add_system(live, secret=True)
    response = requests.post(f"{live.url}/token", data={"grant_type": "client_credentials"},
                             auth=(system.client_id, "not-the-secret"), timeout=5)
    assert_invalid_client(response)


@pytest.mark.backends
def test_a_replayed_assertion_is_refused(live: LiveIdp) -> None:
    system = add_system(live)
    assertion = signed(live, system)
    assert post_assertion(live, assertion).status_code == 200
    assert_invalid_client(post_assertion(live, assertion))
    # authlib reusing one jti (its claims dict keeps the first): the second fetch is refused too.
    session = jwt_session(live, system, jti="one-jti-" + uuid.uuid4().hex)
    fetch(live, session)
    with pytest.raises(OAuthError) as refused:
        fetch(live, session)
    assert refused.value.error == "invalid_client"


def test_aud_may_be_the_issuer_but_nothing_else(live: LiveIdp) -> None:
    system = add_system(live)
    assert post_assertion(live, signed(live, system, aud=live.url)).status_code == 200
    assert_invalid_client(post_assertion(live, signed(live, system, aud="https://elsewhere.example/token")))


def test_an_expired_assertion_or_one_valid_beyond_5_minutes_is_refused(live: LiveIdp) -> None:
    system = add_system(live)
    assert_invalid_client(post_assertion(live, signed(live, system, exp_in=-120)))
    assert_invalid_client(post_assertion(live, signed(live, system, exp_in=3600)))
    assert post_assertion(live, signed(live, system, exp_in=290)).status_code == 200


def test_an_assertion_without_jti_is_refused(live: LiveIdp) -> None:
    system = add_system(live)
    header = {"alg": "RS256", "kid": "desk-1"}
    assert system.key is not None
    # authlib always adds a jti, so this assertion is built with jwcrypto.
    token = JWT(header=header, claims={"iss": system.client_id, "sub": system.client_id, "aud": f"{live.url}/token",
                                       "exp": int(time.time()) + 60})
    token.make_signed_token(system.key)
    assert_invalid_client(post_assertion(live, token.serialize()))


def test_alg_none_and_hs256_are_refused(live: LiveIdp) -> None:
    system = add_system(live)

    def b64(part: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    claims = {"iss": system.client_id, "sub": system.client_id, "aud": f"{live.url}/token",
              "exp": int(time.time()) + 60, "jti": uuid.uuid4().hex}
    assert_invalid_client(post_assertion(live, f"{b64({'alg': 'none'})}.{b64(claims)}."))
    # HS256 keyed with the public key's modulus, the classic confusion: still refused.
    assert system.key is not None
    modulus = OctKey.import_key(system.key.export_public(as_dict=True)["n"])
    hs = client_secret_jwt_sign(modulus, system.client_id, f"{live.url}/token", claims={"exp": int(time.time()) + 60})
    assert_invalid_client(post_assertion(live, hs))


def test_a_key_not_in_the_jwks_is_refused(live: LiveIdp) -> None:
    system = add_system(live)
    stranger = JWK.generate(kty="RSA", size=2048, kid="desk-1")
    assert_invalid_client(post_assertion(live, signed(live, system, key=private(stranger))))


def test_a_disabled_system_gets_no_token_and_its_tokens_stop_at_once(live: LiveIdp) -> None:
    keyed, secret = add_system(live), add_system(live, secret=True)
    token = fetch(live, jwt_session(live, keyed))["access_token"]
    assert introspect(live, token) is not None
    for system in (keyed, secret):
        with live.services.registry("test") as reg:
            library_systems.disable(reg, system.client_id)
    assert introspect(live, token) is None
    assert_invalid_client(post_assertion(live, signed(live, keyed)))
    with pytest.raises(OAuthError) as refused:
        fetch(live, secret_session(secret))
    assert refused.value.error == "invalid_client"


def test_an_unknown_scope_is_invalid_scope(live: LiveIdp) -> None:
    system = add_system(live, secret=True)
    response = requests.post(f"{live.url}/token", data={"grant_type": "client_credentials",
                                                         "scope": "register.read patrons.everything"},
                             auth=(system.client_id, system.secret), timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_an_address_outside_the_allow_list_is_refused(live: LiveIdp) -> None:
    outside = add_system(live, secret=True, allowed_ips=("192.0.2.0/24",))
    inside = add_system(live, secret=True, allowed_ips=("127.0.0.0/8",))
    with pytest.raises(OAuthError) as refused:
        fetch(live, secret_session(outside))
    assert refused.value.error == "invalid_client"
    assert fetch(live, secret_session(inside))["token_type"] == "Bearer"


def test_a_relying_party_may_not_use_client_credentials(live: LiveIdp) -> None:
    with live.services.registry("test") as reg:
        rp, secret = relying_parties.add_oidc(reg, "E-books", ["http://127.0.0.1:8765/callback"],
                                               dpa_signed=date(2026, 1, 1))
        client_id = rp.client_id
    response = requests.post(f"{live.url}/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, secret), timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    # A wrong secret is still invalid_client: nothing tells whether the client exists.
    response = requests.post(f"{live.url}/token", data={"grant_type": "client_credentials"},
                             auth=(client_id, "wrong"), timeout=5)
    assert_invalid_client(response)


def test_a_library_system_may_not_use_authorization_code(live: LiveIdp) -> None:
    system = add_system(live, secret=True)
    response = requests.post(f"{live.url}/token", data={"grant_type": "authorization_code", "code": "x",
                                                        "redirect_uri": "http://127.0.0.1:8765/callback"},
                             auth=(system.client_id, system.secret), timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_discovery_advertises_the_grant_and_private_key_jwt(live: LiveIdp) -> None:
    document = requests.get(f"{live.url}/.well-known/openid-configuration", timeout=5).json()
    assert "client_credentials" in document["grant_types_supported"]
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    algs = set(document["token_endpoint_auth_signing_alg_values_supported"])
    assert {"RS256", "ES256", "PS256"} <= algs and not algs & {"none", "HS256", "HS384", "HS512"}
