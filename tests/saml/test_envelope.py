"""The age of an inbound SAML message, as the README states it: "an `IssueInstant` more than 10
minutes old or in the future" gets a page. A request exactly 10 minutes old passes; the refused
ones are 90 seconds beyond an edge, past the minute of clock difference any SP is allowed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from idp.saml import BINDING_HTTP_REDIRECT
from idp.saml.errors import Reason, Rejected
from idp.saml.inbound import AUTHN_REQUEST, InboundMessage
from idp.saml.sso import check_envelope

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SSO = "https://login.example.no/saml/sso"
MAX_AGE = timedelta(minutes=10)  # README: "an IssueInstant more than 10 minutes old"
MARGIN = timedelta(seconds=90)


def issued(at: datetime) -> InboundMessage:
    return InboundMessage(kind=AUTHN_REQUEST, binding=BINDING_HTTP_REDIRECT, xml="", message_id="_r1",
                          issuer="https://film.example/saml/metadata", issue_instant=at, destination=SSO,
                          enveloped_signature=False)


@pytest.mark.parametrize("age", [timedelta(0), MAX_AGE], ids=["now", "10-minutes"])
def test_a_request_up_to_10_minutes_old_passes(age: timedelta) -> None:
    check_envelope(issued(NOW - age), SSO, NOW, signed=False)


@pytest.mark.parametrize("age", [MAX_AGE + MARGIN, -MARGIN], ids=["over-10-minutes", "in-the-future"])
def test_an_older_or_future_request_is_refused(age: timedelta) -> None:
    with pytest.raises(Rejected) as caught:
        check_envelope(issued(NOW - age), SSO, NOW, signed=False)
    assert caught.value.reason is Reason.EXPIRED
