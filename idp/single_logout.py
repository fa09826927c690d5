"""Single logout across protocols: what one login session reached, and ending it everywhere.

A login session (the ``sid`` a browser's login keeps, idp.web.login_session) reaches OIDC relying
parties, each given a code in it (idp.oidc.flow indexes their grants by it), and SAML service
providers, each given an assertion (recorded here with the NameID and SessionIndex it carried).
``SingleLogout.end`` ends the login session for all of them at once: its OIDC tokens stop
working, each relying party with a back-channel logout URI gets a logout token from a queue
(idp.oidc.backchannel: a slow or dead one never holds the patron up), and what only the browser
can do comes back as front-channel work: the front-channel logout URIs of OIDC relying parties
and a LogoutRequest to each SAML service provider with a SingleLogoutService.

A ``LogoutRun`` follows that front-channel work for a few minutes: which service providers
confirmed, and the answer to whoever asked for the logout, given at its end. No Flask here.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from idp import relying_parties
from idp.errors import NotFound
from idp.oidc import backchannel
from idp.oidc.flow import client_session_id
from idp.registry.context import Registry
from idp.saml.given import GivenSubject
from idp.state import StateStore

if TYPE_CHECKING:
    from idp.services import Services

log = logging.getLogger("idp.single_logout")

# What a login session reached is kept as long as the session could live (each SSO refreshes its
# own entry); a logout forgets it at once.
PARTICIPANT_TTL = 31 * 24 * 3600
# A logout's front-channel work: a browser that leaves the logout page comes back within minutes or not at all.
RUN_TTL = 600


@dataclass(frozen=True)
class SamlParticipant:
    """A SAML service provider the login session reached, and the subject it was given."""

    client_id: str
    subject: GivenSubject

    def to_json(self) -> str:
        return json.dumps({"client_id": self.client_id, "subject": self.subject.as_dict()}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> SamlParticipant:
        data = json.loads(raw)
        return cls(client_id=str(data["client_id"]), subject=GivenSubject.from_dict(data["subject"]))


class SessionParticipants:
    """The SAML service providers each login session reached (OIDC's are the grants' index)."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def joined(self, sid: str, participant: SamlParticipant) -> None:
        self._state.index_add(_participants_key(sid), participant.to_json(), PARTICIPANT_TTL)

    def of(self, sid: str) -> list[SamlParticipant]:
        """One per service provider, with the subject of its latest login in this session (a
        transient NameID is new at each one)."""
        latest: dict[str, SamlParticipant] = {}
        for raw in self._state.index_members(_participants_key(sid)):  # oldest first
            participant = SamlParticipant.from_json(raw)
            latest.pop(participant.client_id, None)
            latest[participant.client_id] = participant
        return list(latest.values())

    def subjects_given(self, sid: str, client_id: str) -> list[GivenSubject]:
        """Every subject this service provider was given in login session ``sid``."""
        return [p.subject for raw in self._state.index_members(_participants_key(sid))
                if (p := SamlParticipant.from_json(raw)).client_id == client_id]

    def forget(self, sid: str) -> None:
        self._state.delete(_participants_key(sid))


def _participants_key(sid: str) -> str:
    return f"slo:saml-participants:{sid}"


# -- the front-channel work ---------------------------------------------------------------------

@dataclass(frozen=True)
class FrontChannel:
    """One service the browser must visit to end its session there: an OIDC relying party, whose
    front-channel logout URI (with ``iss`` and ``sid``) a frame loads, or a SAML service provider
    (``subject``: what it was given) that a frame sends a LogoutRequest."""

    protocol: str
    client_id: str
    name: str
    reaches: str  # the service's logout URL: its origin is the one the logout page's frame visits
    subject: dict[str, Any] | None = None


@dataclass(frozen=True)
class Ended:
    """What ending a login session left for the browser."""

    frontchannel: tuple[FrontChannel, ...] = ()


@dataclass
class LogoutRun:
    """One logout's front-channel work, and ``finish``: the answer to whoever asked, given when the
    work is done (a protocol's own, e.g. ``{"saml": LogoutRequestInfo}`` for a SAML LogoutResponse,
    or ``{"target": URL or None}``: a page)."""

    id: str
    frontchannel: list[FrontChannel]
    finish: dict[str, Any]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LogoutRun:
        data = json.loads(raw)
        data["frontchannel"] = [FrontChannel(**entry) for entry in data["frontchannel"]]
        return cls(**data)

    def saml_indexes(self) -> list[int]:
        return [i for i, entry in enumerate(self.frontchannel) if entry.protocol == relying_parties.PROTOCOL_SAML]


class LogoutRuns:
    """Logout runs in the state store. A service provider's answer is its own key, so answers
    arriving at once in several frames never overwrite each other."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(24)

    def save(self, run: LogoutRun) -> None:
        self._state.put(_run_key(run.id), run.to_json(), RUN_TTL)

    def get(self, run_id: str) -> LogoutRun | None:
        raw = self._state.get(_run_key(run_id)) if 0 < len(run_id) <= 64 else None
        return LogoutRun.from_json(raw) if raw else None

    def take(self, run_id: str) -> LogoutRun | None:
        """The run, at its end (single use: its answer goes out once)."""
        raw = self._state.take(_run_key(run_id)) if 0 < len(run_id) <= 64 else None
        return LogoutRun.from_json(raw) if raw else None

    def request_sent(self, request_id: str, run_id: str, index: int) -> None:
        self._state.put(_request_key(request_id), json.dumps([run_id, index]).encode(), RUN_TTL)

    def answered(self, request_id: str, *, success: bool) -> tuple[str, int] | None:
        """Record a service provider's LogoutResponse to ``request_id``: the run and the index it
        answers for, or None for a request we did not send (or already answered)."""
        raw = self._state.take(_request_key(request_id)) if 0 < len(request_id) <= 256 else None
        if raw is None:
            return None
        run_id, index = json.loads(raw)
        if success:
            self._state.put(_confirmed_key(run_id, index), b"1", RUN_TTL)
        return str(run_id), int(index)

    def confirmed(self, run: LogoutRun) -> set[int]:
        """The SAML service providers of ``run`` that confirmed their logout."""
        return {i for i in run.saml_indexes() if self._state.get(_confirmed_key(run.id, i)) is not None}


def _run_key(run_id: str) -> str:
    return f"slo:run:{run_id}"


def _request_key(request_id: str) -> str:
    return f"slo:request:{request_id}"


def _confirmed_key(run_id: str, index: int) -> str:
    return f"slo:confirmed:{run_id}:{index}"


# -- ending a login session ---------------------------------------------------------------------

class SingleLogout:
    def __init__(self, services: Services) -> None:
        self._services = services
        self.participants = SessionParticipants(services.state)
        self.runs = LogoutRuns(services.state)

    def __repr__(self) -> str:
        return "<SingleLogout>"

    def end(self, sid: str, *, initiator: str | None = None) -> Ended:
        """End login session ``sid`` at every service it reached except ``initiator`` (the
        client_id of the relying party that asked for the logout, which knows already).

        Its OIDC tokens stop working now; logout tokens are queued for back-channel delivery;
        the front-channel work is returned for the browser."""
        oidc, issuer = self._services.oidc, self._services.settings.issuer
        families = oidc.grants.families_of_session(sid)
        saml = [p for p in self.participants.of(sid) if p.client_id != initiator]
        oidc.grants.revoke_session(sid)
        self.participants.forget(sid)
        if not families and not saml:  # a login that reached no service: nothing to look up
            return Ended()
        front: list[FrontChannel] = []
        queued = False
        with self._services.registry("logout") as reg:
            for family in families:
                if family.client_id == initiator:
                    continue
                rp = _relying_party(reg, family.client_id)
                if rp is None:
                    continue
                session_id = client_session_id(sid, rp.client_id)
                if rp.backchannel_logout_uri:
                    sub = oidc.provider.authz_state.get_subject_identifier(rp.subject_type, str(family.patron_id),
                                                                           rp.client_id)
                    backchannel.enqueue(reg, client_id=rp.client_id, sub=sub, sid=session_id)
                    queued = True
                if rp.frontchannel_logout_uri:
                    front.append(FrontChannel(relying_parties.PROTOCOL_OIDC, rp.client_id, rp.name,
                                              reaches=frontchannel_url(rp.frontchannel_logout_uri, issuer, session_id)))
            for participant in saml:
                sp = _relying_party(reg, participant.client_id)
                location = self._services.saml.slo.logout_location(sp) if sp is not None else None
                if sp is not None and location is not None:
                    front.append(FrontChannel(relying_parties.PROTOCOL_SAML, sp.client_id, sp.name, reaches=location,
                                              subject=participant.subject.as_dict()))
        if queued:
            self._services.backchannel.notify()
        return Ended(frontchannel=tuple(front))


def _relying_party(reg: Registry, client_id: str) -> relying_parties.RelyingParty | None:
    try:
        rp = relying_parties.get(reg, client_id)
    except NotFound:  # removed since the login
        return None
    reg.session.expunge(rp)
    return rp


def frontchannel_url(uri: str, issuer: str, session_id: str) -> str:
    """The relying party's front-channel logout URI with ``iss`` and ``sid`` (Front-Channel
    Logout 1.0 section 2: added to any query it has)."""
    query = urlencode({"iss": issuer, "sid": session_id})
    return uri + ("&" if "?" in uri else "?") + query

