"""The OIDC authorization flow, between pyop and the pages: no Flask here.

Keeps what pyop forgets (acr/amr/auth_time and the released claims per code), makes codes
single-use under concurrency (a replayed code revokes what it issued). Consents are register
data (idp.registry.consents).

A grant's *family* is everything one code led to: its tokens now (after any number of
rotations) under ``oidc:issued:<code>``. Each family is indexed by the login session it was
issued in and by its patron, so that a logout, a password change or a withdrawn consent ends it
(``revoke_session``, ``revoke_patron``, ``revoke_client``), as does a replayed code or a replayed
spent refresh token (RFC 9700 section 4.14.2). A revoked family stays dead: its code is gone
and its tokens are deleted, and an exchange or refresh under way when it is revoked conflicts
at its commit, which consumes the code (exchange) or the family's token record (refresh).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from idp.oidc.provider import REFRESH_TOKEN_LIFETIME, RegisterAuthorizationState
from idp.state import StateStore

GRANT_TTL = 31 * 24 * 3600
# A family lives at most REFRESH_TOKEN_LIFETIME after its code exchange (idp.oidc.provider), and
# its last access token an hour more: its records and index entries outlive both.
FAMILY_TTL = REFRESH_TOKEN_LIFETIME + 24 * 3600


@dataclass(frozen=True)
class CodeGrant:
    patron_id: int
    client_id: str
    acr: str
    amr: list[str]
    auth_time: int
    claims: list[str]
    # The released claims' values, computed when the code is issued: the token endpoint then
    # answers from the state store alone, and the id_token says what the patron consented to.
    values: dict[str, Any]
    # The login session (the browser session's session["sid"]) the code was issued in.
    sid: str | None = None


@dataclass(frozen=True)
class Family:
    """Who a grant's family belongs to, kept as long as the family may live."""

    patron_id: int
    client_id: str
    sid: str | None


class Grants:
    def __init__(self, state: StateStore, tokens: RegisterAuthorizationState | None = None) -> None:
        # ``tokens`` deletes a family's tokens; without it nothing is revoked.
        self._state = state
        self._tokens = tokens

    def remember(self, code: str, grant: CodeGrant, ttl: int) -> None:
        """Keep a freshly issued code's grant (``ttl``) and its family's owner, indexed by login
        session and patron (FAMILY_TTL)."""
        self._state.put(_grant_key(code), json.dumps(grant.__dict__).encode(), ttl)
        family = Family(grant.patron_id, grant.client_id, grant.sid)
        self._state.put(_family_key(code), json.dumps(family.__dict__).encode(), FAMILY_TTL)
        if grant.sid:
            self._state.index_add(_session_index(grant.sid), code, FAMILY_TTL)
        self._state.index_add(_patron_index(grant.patron_id), code, FAMILY_TTL)

    def claim(self, code: str, client_id: str, prefetch: Sequence[str] = ()) -> bool:
        """True for ``client_id``'s first exchange of ``code`` only, even when two arrive at once.
        Counted per client, so that another client presenting the code spends nothing (its
        answer depends on ``family``, read here). Inside a state batch, the code's grant, family
        and issued tokens and the keys in ``prefetch`` are read in the same round trip."""
        reads = [_grant_key(code), _family_key(code), _issued_key(code), *prefetch]
        return self._state.incr(f"oidc:claimed:{client_id}:{code}", GRANT_TTL, prefetch=reads) == 1

    def grant(self, code: str) -> CodeGrant | None:
        raw = self._state.get(_grant_key(code))
        return CodeGrant(**json.loads(raw)) if raw else None

    def family(self, code: str) -> Family | None:
        raw = self._state.get(_family_key(code))
        return Family(**json.loads(raw)) if raw else None

    def record_tokens(self, code: str, access_token: str | None, refresh_token: str | None,
                      *, replacing: str | None = None) -> None:
        """The family's tokens now. At a rotation, ``replacing`` is the refresh token it spent:
        the write then needs the family's record still there (StateStore.consume: not revoked
        meanwhile), and the spent token is remembered as a replay marker of the family."""
        if replacing is not None:
            self._state.consume(_issued_key(code))
            self._state.put(_spent_key(replacing), code.encode(), REFRESH_TOKEN_LIFETIME)
        self._state.put(_issued_key(code), json.dumps([access_token, refresh_token]).encode(), GRANT_TTL)

    def issued_for(self, code: str) -> tuple[str | None, str | None]:
        raw = self._state.get(_issued_key(code))
        access, refresh = json.loads(raw) if raw else (None, None)
        return access, refresh

    def spent_family(self, refresh_token: str) -> str | None:
        """The family (its code) of a refresh token that a rotation spent, else None."""
        raw = self._state.get(_spent_key(refresh_token)) if len(refresh_token) <= 512 else None
        return raw.decode() if raw else None

    # -- revocation: outside a state batch, each step at once and in this order ------------------
    def revoke_family(self, code: str) -> None:
        """End a family for good: a pending exchange of its code, then its current tokens.

        The code goes first, then the token record is taken (read and deleted in one step): an
        exchange or refresh that commits before either is seen here and undone, one that commits
        after finds its consumed key gone and writes nothing (idp.state.Conflict)."""
        if self._tokens is None:
            raise RuntimeError("this Grants object cannot revoke tokens (built without them)")
        self._tokens.forget_code(code)
        raw = self._state.take(_issued_key(code))
        if raw:
            self._tokens.revoke(*json.loads(raw))

    def families_of_session(self, sid: str) -> list[Family]:
        """One family per relying party given a code in login session ``sid``, in the order they
        got one (read before ``revoke_session``, which forgets them)."""
        families: dict[str, Family] = {}
        for code in self._state.index_members(_session_index(sid)):
            family = self.family(code)
            if family is not None:
                families.setdefault(family.client_id, family)
        return list(families.values())

    def revoke_session(self, sid: str) -> None:
        """Every family issued in login session ``sid`` (at logout)."""
        for code in self._state.index_members(_session_index(sid)):
            self.revoke_family(code)
        self._state.delete(_session_index(sid))

    def revoke_patron(self, patron_id: int, keep_sid: str | None = None) -> None:
        """Every family of the patron except those issued in login session ``keep_sid``."""
        self._revoke_where(patron_id, lambda family: keep_sid is None or family.sid != keep_sid)

    def revoke_client(self, patron_id: int, client_id: str) -> None:
        """Every family of the patron at ``client_id`` (a withdrawn consent)."""
        self._revoke_where(patron_id, lambda family: family.client_id == client_id)

    def _revoke_where(self, patron_id: int, chosen: Callable[[Family], bool]) -> None:
        for code in self._state.index_members(_patron_index(patron_id)):
            family = self.family(code)
            if family is not None and chosen(family):
                self.revoke_family(code)


def _grant_key(code: str) -> str:
    return f"oidc:grant:{code}"


def _issued_key(code: str) -> str:
    return f"oidc:issued:{code}"


def _family_key(code: str) -> str:
    return f"oidc:family:{code}"


def _session_index(sid: str) -> str:
    return f"oidc:families-of-session:{sid}"


def _patron_index(patron_id: int) -> str:
    return f"oidc:families-of-patron:{patron_id}"


def _spent_key(refresh_token: str) -> str:
    # A digest, not the token: a copy of the store yields no token (spent ones are dead anyway).
    return "oidc:spent:" + hashlib.sha256(refresh_token.encode()).hexdigest()


def describe(grant: CodeGrant) -> dict[str, Any]:
    """The login's claims in the grant's id_tokens, at the code exchange and every refresh."""
    login: dict[str, Any] = {"acr": grant.acr, "amr": grant.amr, "auth_time": grant.auth_time}
    if grant.sid:
        login["sid"] = client_session_id(grant.sid, grant.client_id)
    return login


def client_session_id(login_session: str, client_id: str) -> str:
    """The ``sid`` a relying party knows this login session by (Front- and Back-Channel Logout 1.0).

    One per relying party, as our subjects are pairwise: two relying parties comparing ``sid``s
    must not learn that two pseudonyms are one patron. A digest, so the ``sid`` does not reveal
    the login session's own id, which is the key to its tokens here."""
    digest = hashlib.sha256(f"sid/v1\0{client_id}\0{login_session}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")
