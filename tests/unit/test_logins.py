"""A waiting protocol request as the session stores it (idp.auth.logins): the shapes stored before
the typed request still read, so a deploy does not lose the logins in progress."""

from __future__ import annotations

from idp.auth.logins import PendingRequest


def test_a_saml_request_stored_before_the_typed_shape_keeps_its_level_and_forced_login() -> None:
    stored = {"request": {"client_id": "sp", "needed": "mfa", "force_authn": True}, "since": 1_700_000_000}
    request = PendingRequest.from_dict("saml", stored)
    assert request is not None
    assert (request.needed, request.fresh, request.since, request.resume) == ("mfa", True, 1_700_000_000, "saml.resume")
    assert request.payload["request"]["client_id"] == "sp"


def test_an_oidc_request_stored_before_the_typed_shape_keeps_its_max_age_so_upstream_is_asked_fresh() -> None:
    stored = {"params": {"client_id": "rp", "max_age": "60"}, "needed": "password", "since": 5, "fresh": False}
    request = PendingRequest.from_dict("oidc", stored)
    assert request is not None and request.max_age == 60 and not request.fresh and request.fresh_upstream


def test_a_stored_request_reads_back_with_the_claims_added_while_it_waited() -> None:
    request = PendingRequest("oidc", "password", 5, payload={"params": {"client_id": "rp"}})
    again = PendingRequest.from_dict("oidc", request.with_payload(released=["name"]).to_dict())
    assert again == PendingRequest("oidc", "password", 5, payload={"params": {"client_id": "rp"}, "released": ["name"]})


def test_a_waiting_request_that_asks_for_a_fresh_login_or_a_max_age_still_asks_after_the_session_stores_it() -> None:
    # prompt=login / ForceAuthn ask for the password again, max_age bounds the last login's age
    # (docs/login.md, docs/saml.md): both must survive the trip through the session.
    cases = (("oidc", True, None), ("oidc", False, 300), ("oidc", True, 0), ("saml", True, None))
    for protocol, fresh, max_age in cases:
        stored = PendingRequest(protocol, "password", 7, fresh=fresh, max_age=max_age).to_dict()
        again = PendingRequest.from_dict(protocol, stored)
        assert again is not None
        assert (again.fresh, again.max_age, again.since) == (fresh, max_age, 7)
