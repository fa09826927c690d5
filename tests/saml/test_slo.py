"""Single logout's SAML messages against independent SPs (python3-saml and pysaml2), no web server.

What the SPs check is theirs: python3-saml verifies our Redirect query signature and reads the
NameID and SessionIndex; pysaml2 verifies our enveloped signature over POST. Their signed
LogoutResponses come back through ``accept_response``. Rules as SAML core states them: a
LogoutRequest carries the NameID and SessionIndex of the assertion (3.7.1), Reason
``urn:oasis:names:tc:SAML:2.0:logout:user`` for a user's own logout (3.7.3); a responder that
could not log out every other participant answers Success with PartialLogout (3.7.3.2).
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from idp.registry.models import RelyingParty
from idp.saml import SamlParts, build_saml
from idp.saml.errors import Reason, Rejected
from idp.saml.given import GivenSubject
from idp.saml.inbound import AUTHN_REQUEST, LOGOUT_REQUEST, LOGOUT_RESPONSE, decode
from idp.saml.nameid import allowed_formats
from idp.saml.registry import service_providers
from idp.saml.slo import LogoutRequestInfo, RedirectTo
from idp.saml.sso import PostForm, SsoAnswer
from idp.services import Services
from tests.conftest import FakeClock
from tests.saml.sps import (
    PERSISTENT, POST, REDIRECT, TRANSIENT, Form, OneLoginSp, Pysaml2Sp, post_value, redirect_query, sp_entity,
)

SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
USER_LOGOUT = "urn:oasis:names:tc:SAML:2.0:logout:user"
SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


@pytest.fixture
def clock() -> FakeClock:
    """The real time: python3-saml and pysaml2 check IssueInstant and NotOnOrAfter against it."""
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def parts(services: Services) -> SamlParts:
    return build_saml(services)


@pytest.fixture
def film(parts: SamlParts) -> OneLoginSp:
    return OneLoginSp(issuer(parts), "film.example", idp_metadata=parts.metadata())


def issuer(parts: SamlParts) -> str:
    return parts.endpoints.entity_id.removesuffix("/saml/metadata")


def relying_party(metadata: bytes, client_id: str) -> RelyingParty:
    """The SP as registration stores it (idp.saml.registry), without a database."""
    described = service_providers(metadata, datetime.now(UTC))[0]
    return RelyingParty(client_id=client_id, name=client_id, protocol="saml", entity_id=described.entity_id,
                        saml_metadata=described.xml, name_id_formats=allowed_formats(described.name_id_formats),
                        min_acr="password", allow_unsolicited=False, claims=[])


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def answer(parts: SamlParts, rp: RelyingParty, url: str) -> SsoAnswer:
    """The IdP's side of one login from an AuthnRequest by Redirect: accept, settle, respond for patron 7."""
    message = decode(REDIRECT, query_of(url)["SAMLRequest"], AUTHN_REQUEST)
    request = parts.sso.accept(message, rp, received_at=parts.endpoints.sso, raw_query=urlsplit(url).query.encode(),
                               relay_state=None)
    request = parts.sso.settle(request, rp, reachable=lambda level: True)
    return parts.sso.respond(request, rp, patron_id=7, acr="password", auth_time=int(time.time()),
                             values={"valid_patron": True})


def onelogin_login(parts: SamlParts, sp: OneLoginSp, rp: RelyingParty) -> tuple[Any, GivenSubject]:
    url, request_id = sp.login_url()
    given = answer(parts, rp, url)
    auth = sp.acs(Form(given.form.url, given.form.fields), request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    return auth, given.subject


def pysaml2_login(parts: SamlParts, sp: Pysaml2Sp, rp: RelyingParty) -> tuple[Any, GivenSubject]:
    url, _, request_id = sp.login_url()
    given = answer(parts, rp, url)
    return sp.acs(Form(given.form.url, given.form.fields), {request_id: "/"}), given.subject


def onelogin_logout_response(sp: OneLoginSp, in_response_to: str, *, status: str = SUCCESS,
                             signed: bool = True) -> str:
    """The URL by which the python3-saml SP sends its LogoutResponse (Redirect, signed over the query)."""
    from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response  # noqa: PLC0415 - see sps.OneLoginSp

    auth = sp._auth("/saml/sls")
    builder = OneLogin_Saml2_Logout_Response(auth.get_settings())
    builder.build(in_response_to, status=status)
    parameters = {"SAMLResponse": builder.get_response()}
    if signed:
        auth.add_response_signature(parameters, SHA256)
    return str(auth.redirect_to(auth.get_slo_response_url(), parameters))


def accept_redirect(parts: SamlParts, rp: RelyingParty, url: str) -> Any:
    query = urlsplit(url).query
    message = decode(REDIRECT, query_of(url)["SAMLResponse"], LOGOUT_RESPONSE)
    return parts.slo.accept_response(message, rp, received_at=parts.endpoints.slo, raw_query=query.encode())


def rejected(call: Any) -> Reason:
    with pytest.raises(Rejected) as caught:
        call()
    return caught.value.reason


# -- what the SP was given at sign-on -----------------------------------------------------------

def test_our_metadata_offers_single_logout_over_redirect_and_post(parts: SamlParts) -> None:
    from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser  # noqa: PLC0415 - see sps.OneLoginSp

    for binding in (REDIRECT, POST):
        idp = OneLogin_Saml2_IdPMetadataParser.parse(parts.metadata(), required_slo_binding=binding)["idp"]
        assert idp["singleLogoutService"] == {"url": f"{issuer(parts)}/saml/slo", "binding": binding}


def test_the_nameid_and_session_index_respond_returns_are_those_the_sps_read(
        parts: SamlParts, film: OneLoginSp, tmp_path: Path) -> None:
    auth, subject = onelogin_login(parts, film, relying_party(film.metadata(), "film"))
    assert (auth.get_nameid(), auth.get_nameid_format(), auth.get_session_index()) == \
        (subject.name_id, subject.name_id_format, subject.session_index)
    assert subject.name_id_format == PERSISTENT and subject.session_index

    uni = Pysaml2Sp(issuer(parts), "uni.example", tmp_path, idp_metadata=parts.metadata())
    response, other = pysaml2_login(parts, uni, relying_party(uni.metadata(), "uni"))
    assert response.name_id.text == other.name_id
    assert response.assertion.authn_statement[0].session_index == other.session_index != subject.session_index
    assert GivenSubject.from_dict(json.loads(json.dumps(other.as_dict()))) == other


# -- our LogoutRequest ------------------------------------------------------------------------

def test_python3_saml_validates_our_logout_request_over_redirect_and_we_accept_its_response(
        parts: SamlParts, film: OneLoginSp) -> None:
    from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request  # noqa: PLC0415 - see sps.OneLoginSp
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML  # noqa: PLC0415

    rp = relying_party(film.metadata(), "film")
    _, subject = onelogin_login(parts, film, rp)
    outgoing = parts.slo.request(rp, subject, relay_state="round-1")
    assert outgoing is not None and isinstance(outgoing.message, RedirectTo)
    assert (outgoing.entity_id, outgoing.destination) == (film.entity_id, f"{film.base}/saml/sls")
    assert outgoing.message.url.startswith(f"{film.base}/saml/sls?")

    sent = query_of(outgoing.message.url)
    xml = zlib.decompress(base64.b64decode(sent["SAMLRequest"]), -15).decode()
    forged = {**sent, "SAMLRequest": redirect_query(xml.replace(subject.name_id, "someone-else"))}
    auth = film._auth("/saml/sls", get=forged)
    auth.process_slo(keep_local_session=True)
    assert "invalid_logout_request_signature" in auth.get_errors()  # the SP does check our signature

    auth = film._auth("/saml/sls", get=sent)
    response_url = auth.process_slo(keep_local_session=True)
    assert auth.get_errors() == [], auth.get_last_error_reason()  # its signature check included
    xml = auth.get_last_request_xml()
    assert OneLogin_Saml2_Logout_Request.get_id(xml) == outgoing.request_id
    assert OneLogin_Saml2_Logout_Request.get_nameid_data(xml) == {
        "Value": subject.name_id, "Format": PERSISTENT, "NameQualifier": parts.endpoints.entity_id,
        "SPNameQualifier": film.entity_id}
    assert OneLogin_Saml2_Logout_Request.get_session_indexes(xml) == [subject.session_index]
    assert OneLogin_Saml2_Logout_Request.get_issuer(xml) == parts.endpoints.entity_id
    root = OneLogin_Saml2_XML.to_etree(xml)
    assert root.get("Reason") == USER_LOGOUT and root.get("Destination") == f"{film.base}/saml/sls"
    expires = datetime.fromisoformat(root.get("NotOnOrAfter").replace("Z", "+00:00"))
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(minutes=10)

    assert query_of(response_url)["RelayState"] == "round-1"
    outcome = accept_redirect(parts, rp, response_url)
    assert (outcome.in_response_to, outcome.success, outcome.status) == (outgoing.request_id, True, SUCCESS)


def test_over_post_the_request_carries_a_signature_both_sps_verify(
        parts: SamlParts, tmp_path: Path) -> None:
    from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request  # noqa: PLC0415 - see sps.OneLoginSp
    from onelogin.saml2.settings import OneLogin_Saml2_Settings  # noqa: PLC0415
    from onelogin.saml2.utils import OneLogin_Saml2_Utils  # noqa: PLC0415

    sp = OneLoginSp(issuer(parts), "film.example", slo_binding=POST, idp_metadata=parts.metadata())
    rp = relying_party(sp.metadata(), "film")
    _, subject = onelogin_login(parts, sp, rp)
    outgoing = parts.slo.request(rp, subject, relay_state=None)
    assert outgoing is not None and isinstance(outgoing.message, PostForm)
    assert outgoing.message.url == f"{sp.base}/saml/sls"
    encoded = outgoing.message.fields["SAMLRequest"]
    xml = base64.b64decode(encoded)
    # python3-saml has no SLO over POST in its Auth; its parts: the enveloped signature with our
    # certificate from metadata, then the request's own checks (its query-signature demand aside).
    signature = "/samlp:LogoutRequest/ds:Signature"
    assert OneLogin_Saml2_Utils.validate_sign(xml, cert=sp.settings["idp"]["x509cert"], xpath=signature,
                                              raise_exceptions=True)
    settings = OneLogin_Saml2_Settings({**sp.settings, "security": {**sp.settings["security"],
                                                                   "wantMessagesSigned": False}})
    request = OneLogin_Saml2_Logout_Request(settings, request=encoded)
    assert request.is_valid({"https": "on", "http_host": sp.host, "script_name": "/saml/sls",
                             "post_data": outgoing.message.fields}, raise_exceptions=True)
    assert OneLogin_Saml2_Logout_Request.get_nameid(xml) == subject.name_id
    assert OneLogin_Saml2_Logout_Request.get_session_indexes(xml) == [subject.session_index]
    forged = xml.replace(subject.name_id.encode(), b"someone-else")
    assert not OneLogin_Saml2_Utils.validate_sign(forged, cert=sp.settings["idp"]["x509cert"], xpath=signature)

    uni = Pysaml2Sp(issuer(parts), "uni.example", tmp_path, idp_metadata=parts.metadata())
    uni_rp = relying_party(uni.metadata(), "uni")
    _, given = pysaml2_login(parts, uni, uni_rp)
    outgoing = parts.slo.request(uni_rp, given, relay_state="r")
    assert outgoing is not None and isinstance(outgoing.message, PostForm)
    assert outgoing.message.url == f"{uni.base}/slo" and outgoing.message.fields["RelayState"] == "r"
    parsed = uni.client.parse_logout_request(outgoing.message.fields["SAMLRequest"], POST)
    assert parsed.message.signature is not None
    assert parsed.message.name_id.text == given.name_id
    assert parsed.message.name_id.sp_name_qualifier == uni.entity_id
    assert [index.text for index in parsed.message.session_index] == [given.session_index]
    assert parsed.message.reason == USER_LOGOUT
    forged_value = post_value(base64.b64decode(outgoing.message.fields["SAMLRequest"]).decode()
                              .replace(given.name_id, "someone-else"))
    with pytest.raises(Exception):  # noqa: B017 - pysaml2's signature error, whatever its class
        uni.client.parse_logout_request(forged_value, POST)

    outcome = parts.slo.accept_response(decode(POST, pysaml2_logout_response(uni, parsed.message), LOGOUT_RESPONSE),
                                        uni_rp,
                                        received_at=parts.endpoints.slo, raw_query=None)
    assert (outcome.in_response_to, outcome.success) == (outgoing.request_id, True)


def pysaml2_logout_response(sp: Pysaml2Sp, request: Any, *, sign: bool = True) -> str:
    """The pysaml2 SP's LogoutResponse as the POST binding carries it (SAMLResponse, base64)."""
    response = sp.client.create_logout_response(request, [POST], sign=sign, sign_alg=SHA256,
                                                digest_alg="http://www.w3.org/2001/04/xmlenc#sha256")
    return post_value(str(response))


def test_no_request_for_an_sp_without_a_single_logout_service(parts: SamlParts) -> None:
    rp = relying_party(sp_entity("https://plain.example/sp", "https://plain.example/acs").encode(), "plain")
    assert parts.slo.request(rp, GivenSubject("x", PERSISTENT, "_s1"), relay_state=None) is None


# -- the SP's LogoutResponse --------------------------------------------------------------------

def test_a_responder_status_is_no_success(parts: SamlParts, film: OneLoginSp) -> None:
    rp = relying_party(film.metadata(), "film")
    outgoing = parts.slo.request(rp, GivenSubject("x", PERSISTENT, "_s1"), relay_state=None)
    assert outgoing is not None
    outcome = accept_redirect(parts, rp, onelogin_logout_response(film, outgoing.request_id, status=RESPONDER))
    assert (outcome.in_response_to, outcome.success, outcome.status) == (outgoing.request_id, False, RESPONDER)


@pytest.mark.backends  # the replay check lives in the state store (memory or Redis)
def test_tampered_unsigned_misissued_misaddressed_and_replayed_responses_are_rejected(
        parts: SamlParts, film: OneLoginSp, tmp_path: Path) -> None:
    rp = relying_party(film.metadata(), "film")
    good = onelogin_logout_response(film, "_ours1")
    query = query_of(good)
    xml = zlib.decompress(base64.b64decode(query["SAMLResponse"]), -15).decode()
    tampered = urlsplit(good)._replace(query=urlencode(
        {**query, "SAMLResponse": redirect_query(xml.replace("_ours1", "_ours2"))})).geturl()
    assert rejected(lambda: accept_redirect(parts, rp, tampered)) is Reason.SIGNATURE
    unsigned = onelogin_logout_response(film, "_ours1", signed=False)
    assert rejected(lambda: accept_redirect(parts, rp, unsigned)) is Reason.SIGNATURE

    other = OneLoginSp(issuer(parts), "other.example", idp_metadata=parts.metadata())  # signs with the same key
    assert rejected(lambda: accept_redirect(parts, rp, onelogin_logout_response(other, "_ours1"))) \
        is Reason.UNKNOWN_SP
    film.settings["idp"]["singleLogoutService"]["responseUrl"] = "https://elsewhere.example/saml/slo"
    misaddressed = onelogin_logout_response(film, "_ours1")
    assert rejected(lambda: accept_redirect(parts, rp, misaddressed)) is Reason.MALFORMED

    assert accept_redirect(parts, rp, good).success
    assert rejected(lambda: accept_redirect(parts, rp, good)) is Reason.EXPIRED

    uni = Pysaml2Sp(issuer(parts), "uni.example", tmp_path, idp_metadata=parts.metadata())
    uni_rp = relying_party(uni.metadata(), "uni")
    outgoing = parts.slo.request(uni_rp, GivenSubject("x", PERSISTENT, "_s1"), relay_state=None)
    assert outgoing is not None and isinstance(outgoing.message, PostForm)
    request = uni.client.parse_logout_request(outgoing.message.fields["SAMLRequest"], POST).message
    signed = base64.b64decode(pysaml2_logout_response(uni, request)).decode()
    forged = signed.replace(SUCCESS, RESPONDER)
    assert forged != signed
    for value in (post_value(forged), pysaml2_logout_response(uni, request, sign=False)):
        message = decode(POST, value, LOGOUT_RESPONSE)
        assert rejected(lambda m=message: parts.slo.accept_response(
            m, uni_rp, received_at=parts.endpoints.slo, raw_query=None)) is Reason.SIGNATURE


def test_a_logout_request_is_not_read_as_a_logout_response() -> None:
    request = ('<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
               'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" '
               'IssueInstant="2026-11-23T12:00:00Z"><saml:Issuer>https://film.example/saml/metadata</saml:Issuer>'
               '</samlp:LogoutRequest>')
    with pytest.raises(Rejected) as caught:
        decode(POST, post_value(request), LOGOUT_RESPONSE)
    assert caught.value.reason is Reason.MALFORMED
    assert decode(POST, post_value(request), LOGOUT_REQUEST).message_id == "_r1"


# -- an SP's LogoutRequest, and our answer ----------------------------------------------------

def accept_logout(parts: SamlParts, sp: OneLoginSp, rp: RelyingParty, subject: GivenSubject, *,
                  session_index: str | None, name_id: str | None = None,
                  name_id_format: str | None = None) -> LogoutRequestInfo:
    url = sp.logout_url(name_id or subject.name_id, name_id_format or subject.name_id_format, session_index)
    message = decode(REDIRECT, query_of(url)["SAMLRequest"], LOGOUT_REQUEST)
    return parts.slo.accept(message, rp, received_at=parts.endpoints.slo, raw_query=urlsplit(url).query.encode(),
                            relay_state=query_of(url).get("RelayState"))


def test_a_logout_request_names_the_session_only_with_our_nameid_and_its_session_index(
        parts: SamlParts, film: OneLoginSp) -> None:
    rp = relying_party(film.metadata(), "film")
    _, subject = onelogin_login(parts, film, rp)
    info = accept_logout(parts, film, rp, subject, session_index=subject.session_index)
    assert (info.name_id, info.name_id_format, info.session_indexes) == \
        (subject.name_id, PERSISTENT, (subject.session_index,))
    assert info.names(subject)
    assert LogoutRequestInfo.from_dict(json.loads(json.dumps(info.as_dict()))) == info
    assert accept_logout(parts, film, rp, subject, session_index=None).names(subject)  # every session of it

    assert not info.names(None)
    assert not info.names(replace(subject, name_id="someone-else"))
    assert not info.names(replace(subject, name_id_format=TRANSIENT))
    assert not info.names(replace(subject, session_index="_another_login"))
    assert not accept_logout(parts, film, rp, subject, session_index="_another_login").names(subject)
    assert not accept_logout(parts, film, rp, subject, session_index=subject.session_index,
                             name_id_format=TRANSIENT).names(subject)
    assert replace(info, name_id_format=None).names(subject)  # no format stated: the value decides


def test_python3_saml_reads_success_and_partial_logout(parts: SamlParts, film: OneLoginSp) -> None:
    from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response  # noqa: PLC0415 - see sps.OneLoginSp
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML  # noqa: PLC0415

    rp = relying_party(film.metadata(), "film")
    _, subject = onelogin_login(parts, film, rp)
    for partial, second_level in ((False, []), (True, [PARTIAL_LOGOUT])):
        info = accept_logout(parts, film, rp, subject, session_index=subject.session_index)
        sent = parts.slo.respond(info, rp, partial=partial)
        assert isinstance(sent, RedirectTo)
        assert film.sls(sent.url) == []  # signature, destination, InResponseTo and top-level Success
        response = OneLogin_Saml2_Logout_Response(film._auth("/saml/sls").get_settings(),
                                                  query_of(sent.url)["SAMLResponse"])
        assert response.get_status() == SUCCESS and response.get_in_response_to() == info.request_id
        codes = OneLogin_Saml2_XML.query(response.document,
                                         "/samlp:LogoutResponse/samlp:Status/samlp:StatusCode/samlp:StatusCode")
        assert [code.get("Value") for code in codes] == second_level
