"""What a federation login keeps for single logout, and which login a federation's LogoutRequest ends.

The rules (docs/upstream.md): the login keeps the assertion's NameID (value, Format, NameQualifier,
SPNameQualifier) and SessionIndex; a LogoutRequest from the federation ends a login only when it
names that NameID, and, when it names any SessionIndex, that login's.
"""

from __future__ import annotations

from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, NameID

from idp.auth.federation import IncomingLogout, UpstreamSession

KEPT = UpstreamSession(name_id="abc-123", format=NAMEID_FORMAT_PERSISTENT, name_qualifier="https://uni.example/idp",
                       sp_name_qualifier="https://lib.example/federation/sp", session_index="_s1")


def name_id(text: str = "abc-123", fmt: str = NAMEID_FORMAT_PERSISTENT) -> NameID:
    return NameID(text=text, format=fmt, name_qualifier="https://uni.example/idp",
                  sp_name_qualifier="https://lib.example/federation/sp")


def test_what_is_kept_survives_the_session_store_and_nothing_else_is_added() -> None:
    assert UpstreamSession.from_dict(KEPT.to_dict()) == KEPT
    bare = UpstreamSession(name_id="t-1")
    assert bare.to_dict() == {"v": "t-1"} and UpstreamSession.from_dict(bare.to_dict()) == bare
    assert UpstreamSession.from_dict(None) is None and UpstreamSession.from_dict({"f": "x"}) is None
    assert "abc-123" not in repr(KEPT)


def test_a_logout_request_ends_the_login_it_names_and_no_other() -> None:
    assert IncomingLogout("_r", name_id()).names(KEPT)  # no SessionIndex: all of that NameID's sessions
    assert IncomingLogout("_r", name_id(), ("_s0", "_s1")).names(KEPT)
    assert not IncomingLogout("_r", name_id(), ("_s2",)).names(KEPT)  # another of that member's sessions
    assert not IncomingLogout("_r", name_id("someone-else")).names(KEPT)
    assert not IncomingLogout("_r", name_id(fmt=NAMEID_FORMAT_TRANSIENT)).names(KEPT)
    other_sp = NameID(text="abc-123", format=NAMEID_FORMAT_PERSISTENT, name_qualifier="https://uni.example/idp",
                      sp_name_qualifier="https://other.example/sp")
    assert not IncomingLogout("_r", other_sp).names(KEPT)
