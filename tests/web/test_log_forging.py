"""Request values reach the log (pyop logs an unknown client id, ours log paths): none may start a
line of its own, so no one can write a forged entry into the log with a CR/LF in a parameter."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from idp import logsafe

FORGED = "\r\nFAKE LOG LINE: admin logged in"


def forged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith("FAKE")]


def test_a_client_id_and_redirect_uri_with_crlf_write_no_line_of_their_own(client: FlaskClient,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client.get("/authorize", query_string={"client_id": "nobody" + FORGED, "redirect_uri": "https://x" + FORGED,
                                           "response_type": "code", "scope": "openid"})
    assert "FAKE LOG LINE" in caplog.text, "the test needs a log line carrying the value"
    assert forged_lines(caplog.text) == []


def test_an_exceptions_text_is_escaped_but_the_traceback_keeps_its_lines(caplog: pytest.LogCaptureFixture) -> None:
    logsafe.install()  # as create_app and the CLI do
    try:
        try:
            raise KeyError("inner" + FORGED)
        except KeyError as exc:
            raise ValueError("outer" + FORGED) from exc
    except ValueError:
        logging.getLogger("idp.test").exception("failed for %s", "client" + FORGED + "\x1b[2J\x85\u2028")
    assert forged_lines(caplog.text) == []
    assert "Traceback (most recent call last):\n" in caplog.text and "direct cause" in caplog.text
    assert "ValueError: outer\\r\\nFAKE LOG LINE" in caplog.text and "\\x1b[2J\\x85\\u2028" in caplog.text
