"""The gate in front of pysaml2 (idp.saml.inbound): size, encoding, DTDs and message shape."""

from __future__ import annotations

import base64

import pytest

from idp.saml import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from idp.saml.errors import Reason, Rejected
from idp.saml.inbound import AUTHN_REQUEST, MAX_ENCODED, decode
from tests.saml.sps import post_value, redirect_query

ISSUER = "https://film.example/saml/metadata"
XML_LIMIT = 64 * 1024  # README: "XML over 64 KiB (inflated)" is refused


def request(body: str = "", *, request_id: str = "_r1", prolog: str = "") -> str:
    return (f'{prolog}<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
            f'ID="{request_id}" Version="2.0" IssueInstant="2026-11-23T12:00:00Z">'
            f'<saml:Issuer>{ISSUER}</saml:Issuer>{body}</samlp:AuthnRequest>')


def reason(binding: str, value: str) -> Reason:
    with pytest.raises(Rejected) as caught:
        decode(binding, value, AUTHN_REQUEST)
    return caught.value.reason


def test_a_plain_request_passes_over_both_bindings() -> None:
    for binding, value in ((BINDING_HTTP_REDIRECT, redirect_query(request())),
                           (BINDING_HTTP_POST, post_value(request()))):
        message = decode(binding, value, AUTHN_REQUEST)
        assert (message.issuer, message.message_id, message.enveloped_signature) == (ISSUER, "_r1", False)


@pytest.mark.parametrize("value", [None, "", "***", "A" * (MAX_ENCODED + 1),
                                   base64.b64encode(b"\xff\xfe not utf-8").decode()])
def test_unreadable_values_are_malformed(value: str | None) -> None:
    assert reason(BINDING_HTTP_POST, value) is Reason.MALFORMED  # type: ignore[arg-type]


def test_a_deflate_bomb_stops_at_the_cap() -> None:
    bomb = redirect_query(request("<!--" + "a" * 10_000_000 + "-->"))
    assert len(bomb) < MAX_ENCODED
    assert reason(BINDING_HTTP_REDIRECT, bomb) is Reason.MALFORMED


def test_xml_of_64_kib_passes_and_one_byte_more_is_refused() -> None:
    def of_size(size: int) -> str:
        xml = request("<!---->")
        return request("<!--" + "a" * (size - len(xml)) + "-->")
    assert len(of_size(XML_LIMIT).encode()) == XML_LIMIT
    assert decode(BINDING_HTTP_REDIRECT, redirect_query(of_size(XML_LIMIT)), AUTHN_REQUEST).issuer == ISSUER
    assert reason(BINDING_HTTP_REDIRECT, redirect_query(of_size(XML_LIMIT + 1))) is Reason.MALFORMED


@pytest.mark.parametrize("prolog", ['<!DOCTYPE x>', '<!DOCTYPE x [<!ENTITY e "e">]>',
                                    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'])
def test_dtds_are_refused(prolog: str) -> None:
    assert reason(BINDING_HTTP_POST, post_value(request(prolog=prolog))) is Reason.MALFORMED


def test_the_shape_is_checked() -> None:
    no_issuer = request().replace(f"<saml:Issuer>{ISSUER}</saml:Issuer>", "")
    two_issuers = request(f"<saml:Issuer>{ISSUER}</saml:Issuer>")
    bad_id = request(request_id="1 2")
    for xml in (no_issuer, two_issuers, bad_id, request().replace('Version="2.0"', 'Version="1.1"'),
                request().replace("AuthnRequest", "LogoutRequest")):
        assert reason(BINDING_HTTP_POST, post_value(xml)) is Reason.MALFORMED


def test_wrapping_shapes_are_signature_problems() -> None:
    signature = '<ds:Signature><ds:SignedInfo><ds:Reference URI="#{ref}"/></ds:SignedInfo></ds:Signature>'
    nested = request(f'<samlp:Extensions><x ID="_r2">{signature.format(ref="_r2")}</x></samlp:Extensions>')
    other_reference = request(signature.format(ref="_elsewhere"))
    repeated_id = request('<samlp:Extensions><x ID="_r1"/></samlp:Extensions>')
    two = request(signature.format(ref="_r1") * 2)
    for xml in (nested, other_reference, repeated_id, two):
        assert reason(BINDING_HTTP_POST, post_value(xml)) is Reason.SIGNATURE
    assert decode(BINDING_HTTP_POST, post_value(request(signature.format(ref="_r1"))),
                  AUTHN_REQUEST).enveloped_signature
