"""ID-porten (the Norwegian national eID) as an upstream OpenID provider: we are its client.

Authorization code flow with PKCE (S256), ``state`` and ``nonce``, and ``acr_values``
``idporten-loa-substantial`` or ``idporten-loa-high``. Discovery and the JWKS are fetched from
the configured issuer over https (plain http only on loopback, for test providers), with
timeouts and a size cap; both are cached in the process (a cache only: every request can
refetch them), and the JWKS is refetched when a token names a key we have not seen, at most
once a minute. The id_token's signature is verified with jwcrypto; its ``iss``, ``aud``
(and ``azp``), ``exp``, ``iat``, ``nonce`` and ``acr`` are checked here, each failure with its
own reason (``IdPortenError.kind``) so the page can say what went wrong.

``pid`` (fødselsnummer or D-nummer) is personal data: it never appears in a message, a log line
or a ``repr``. No Flask here; the views are in ``idp.web.idporten``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import requests
from jwcrypto import jwk, jws, jwt
from jwcrypto.common import JWException

from idp.assurance import IDPORTEN_HIGH as HIGH
from idp.assurance import IDPORTEN_SUBSTANTIAL as SUBSTANTIAL
from idp.assurance import rank
from idp.errors import IdpError, InvalidNationalId
from idp.net import is_loopback
from idp.registry.national_id import NationalId, parse_national_id

log = logging.getLogger("idp.auth.idporten")

LEVELS = (SUBSTANTIAL, HIGH)
# Asymmetric algorithms only: "none" and HMAC (keyed with our own client secret) are refused.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
TIMEOUT = (3.05, 10)  # connect, read (seconds)
MAX_DOCUMENT = 512 * 1024  # discovery, JWKS and token responses are a few kB
METADATA_TTL = 3600
JWKS_TTL = 3600
JWKS_MIN_REFRESH = 60  # an unknown kid refetches the JWKS, but never more often than this
CLOCK_LEEWAY = 60
LOGIN_TTL = 600  # seconds a patron may spend at ID-porten before the started login expires


class IdPortenFailure(StrEnum):
    """Why a login through ID-porten failed (the page's wording and status: idp.web.idporten)."""

    UNAVAILABLE = "unavailable"  # ID-porten did not answer usably
    REFUSED = "refused"  # ID-porten answered with an error, e.g. the person cancelled
    STATE = "state"  # an unknown, expired or replayed login
    TOKEN = "token"  # noqa: S105 - a failure kind: the token endpoint refused the code
    SIGNATURE = "signature"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    EXPIRED = "expired"
    NONCE = "nonce"
    ACR = "acr"  # a lower level than asked for
    PID = "pid"  # no usable identity number


class IdPortenError(IdpError):
    """A login through ID-porten failed. ``kind`` says why, for the page; the message never holds personal data."""

    code = "idporten_error"
    http_status = 400

    def __init__(self, kind: IdPortenFailure, message: str) -> None:
        super().__init__(message)
        self.kind = IdPortenFailure(kind)


def level_for_need(needed: str | None) -> str:
    """The acr_values to ask for: high when the relying party needs high, else substantial."""
    return HIGH if needed == HIGH else SUBSTANTIAL


def is_idporten_level(level: str | None) -> bool:
    return level in LEVELS


def check_url(url: str, what: str) -> str:
    """https, or plain http on a loopback address (a test or development provider)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname:
        raise IdPortenError(IdPortenFailure.UNAVAILABLE, f"ID-porten's {what} is not an absolute URL")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return url
    raise IdPortenError(IdPortenFailure.UNAVAILABLE, f"ID-porten's {what} must use https")


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    token_endpoint_auth_methods: tuple[str, ...]


@dataclass(frozen=True, repr=False)
class PendingLogin:
    """What a started login must remember until ID-porten sends the patron back (single-use)."""

    state: str
    nonce: str
    code_verifier: str
    acr: str
    started: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingLogin:
        return cls(state=str(data["state"]), nonce=str(data["nonce"]), code_verifier=str(data["code_verifier"]),
                   acr=str(data["acr"]), started=int(data["started"]))

    def __repr__(self) -> str:
        return f"<PendingLogin acr={self.acr}>"


@dataclass(frozen=True, repr=False)
class IdPortenIdentity:
    """A person ID-porten vouched for: verified identity number, level, methods, session id."""

    national_id: NationalId
    acr: str
    amr: list[str]
    sid: str | None
    auth_time: int
    id_token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"<IdPortenIdentity acr={self.acr}>"


class IdPortenClient:
    """One per app; thread-safe. ``http`` and ``clock`` are injectable for tests."""

    def __init__(self, issuer: str, client_id: str, client_secret: str, redirect_uri: str, *,
                 http: requests.Session | None = None, clock: Callable[[], float] = time.time) -> None:
        self.issuer = check_url(issuer.rstrip("/"), "issuer")
        self.client_id = client_id
        self._secret = client_secret
        self.redirect_uri = redirect_uri
        self._http = http or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, jwk.JWKSet] | None = None

    def __repr__(self) -> str:
        return f"<IdPortenClient issuer={self.issuer}>"

    # -- fetching ---------------------------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, timeout=TIMEOUT, allow_redirects=False, stream=True,
                                      headers={"Accept": "application/json"})
            with response:
                body = response.raw.read(MAX_DOCUMENT + 1, decode_content=True)
                status = response.status_code
        except requests.RequestException as exc:
            log.warning("ID-porten %s unreachable: %s", what, type(exc).__name__)
            raise IdPortenError(IdPortenFailure.UNAVAILABLE, f"ID-porten's {what} could not be fetched") from None
        if status != 200 or len(body) > MAX_DOCUMENT:
            log.warning("ID-porten %s answered HTTP %s (%d bytes)", what, status, len(body))
            raise IdPortenError(IdPortenFailure.UNAVAILABLE, f"ID-porten's {what} could not be fetched")
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise IdPortenError(IdPortenFailure.UNAVAILABLE, f"ID-porten's {what} is not a JSON object")
        return data

    def metadata(self) -> ProviderMetadata:
        now = self._clock()
        with self._lock:
            cached = self._metadata
        if cached is not None and now - cached[0] < METADATA_TTL:
            return cached[1]
        data = self._get_json(f"{self.issuer}/.well-known/openid-configuration", "discovery document")
        if data.get("issuer") != self.issuer:
            # OpenID Connect Discovery 4.3: the document must name exactly the issuer it was fetched for.
            raise IdPortenError(IdPortenFailure.UNAVAILABLE, "ID-porten's discovery document names another issuer")
        try:
            methods = data.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            metadata = ProviderMetadata(
                issuer=self.issuer,
                authorization_endpoint=check_url(data["authorization_endpoint"], "authorization endpoint"),
                token_endpoint=check_url(data["token_endpoint"], "token endpoint"),
                jwks_uri=check_url(data["jwks_uri"], "JWKS address"),
                end_session_endpoint=(check_url(data["end_session_endpoint"], "logout endpoint")
                                      if data.get("end_session_endpoint") else None),
                token_endpoint_auth_methods=tuple(str(m) for m in methods))
        except (KeyError, TypeError):
            raise IdPortenError(IdPortenFailure.UNAVAILABLE,
                                "ID-porten's discovery document lacks an endpoint") from None
        with self._lock:
            self._metadata = (now, metadata)
        return metadata

    def _keys(self, *, refresh: bool = False) -> jwk.JWKSet:
        now = self._clock()
        with self._lock:
            cached = self._jwks
        if cached is not None and now - cached[0] < JWKS_TTL and not (refresh and now - cached[0] >= JWKS_MIN_REFRESH):
            return cached[1]
        data = self._get_json(self.metadata().jwks_uri, "signing keys")
        try:
            keys = jwk.JWKSet.from_json(json.dumps({"keys": [k for k in data.get("keys", []) if isinstance(k, dict)
                                                             and "d" not in k and k.get("use", "sig") == "sig"]}))
        except (JWException, ValueError, TypeError):
            raise IdPortenError(IdPortenFailure.UNAVAILABLE, "ID-porten's signing keys could not be read") from None
        with self._lock:
            self._jwks = (now, keys)
        return keys

    # -- the login ----------------------------------------------------------------------------

    def begin(self, acr: str, *, ui_locales: str | None = None, prompt: str | None = None) -> tuple[str, PendingLogin]:
        """The authorization URL to send the browser to, and what to remember until it returns."""
        if acr not in LEVELS:
            raise ValueError("unknown ID-porten level")
        metadata = self.metadata()
        pending = PendingLogin(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                               code_verifier=secrets.token_urlsafe(64), acr=acr, started=int(self._clock()))
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": "openid", "state": pending.state, "nonce": pending.nonce, "acr_values": acr,
                  "code_challenge": pkce_challenge(pending.code_verifier), "code_challenge_method": "S256"}
        if ui_locales:
            params["ui_locales"] = ui_locales
        if prompt:
            params["prompt"] = prompt
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + urlencode(params), pending

    def complete(self, pending: PendingLogin, params: Mapping[str, str]) -> IdPortenIdentity:
        """Check the callback, exchange the code, verify the id_token: the verified person or IdPortenError."""
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise IdPortenError(IdPortenFailure.STATE, "the login's state does not match the one we sent")
        if self._clock() - pending.started > LOGIN_TTL:
            raise IdPortenError(IdPortenFailure.STATE, "the login took too long and has expired")
        if params.get("error"):
            # e.g. access_denied when the person cancels; the description is ID-porten's, not shown.
            raise IdPortenError(IdPortenFailure.REFUSED, "ID-porten did not log the person in")
        code = params.get("code")
        if not code or len(code) > 2048:
            raise IdPortenError(IdPortenFailure.REFUSED, "ID-porten sent no authorization code")
        id_token = self._exchange(code, pending.code_verifier)
        return self.verify_id_token(id_token, nonce=pending.nonce, acr=pending.acr)

    def _exchange(self, code: str, verifier: str) -> str:
        metadata = self.metadata()
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": verifier}
        headers = {"Accept": "application/json"}
        if "client_secret_basic" in metadata.token_endpoint_auth_methods:
            # RFC 6749 2.3.1: id and secret are form-encoded before they are joined and base64-encoded.
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            body.update(client_id=self.client_id, client_secret=self._secret)
        try:
            response = self._http.post(metadata.token_endpoint, data=body, headers=headers, timeout=TIMEOUT,
                                       allow_redirects=False, stream=True)
            with response:
                raw = response.raw.read(MAX_DOCUMENT + 1, decode_content=True)
                status = response.status_code
        except requests.RequestException as exc:
            log.warning("ID-porten token endpoint unreachable: %s", type(exc).__name__)
            raise IdPortenError(IdPortenFailure.UNAVAILABLE,
                                "ID-porten's token endpoint could not be reached") from None
        try:
            data = json.loads(raw) if len(raw) <= MAX_DOCUMENT else None
        except ValueError:
            data = None
        if status != 200 or not isinstance(data, dict):
            said = data.get("error") if isinstance(data, dict) else None
            error = said if isinstance(said, str) else "-"
            log.warning("ID-porten token endpoint refused the code: HTTP %s, error %s", status, error[:40])
            raise IdPortenError(IdPortenFailure.TOKEN, "ID-porten's token endpoint refused the authorization code")
        token = data.get("id_token")
        if not isinstance(token, str) or not token:
            raise IdPortenError(IdPortenFailure.TOKEN, "ID-porten's token response holds no id_token")
        return token

    def verify_id_token(self, token: str, *, nonce: str, acr: str) -> IdPortenIdentity:
        claims = self._verified_claims(token)
        now = self._clock()
        if claims.get("iss") != self.issuer:
            raise IdPortenError(IdPortenFailure.ISSUER, "the id_token was issued by someone else")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.client_id not in audiences or (len(audiences) > 1 and claims.get("azp") != self.client_id):
            raise IdPortenError(IdPortenFailure.AUDIENCE, "the id_token was issued to another client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or exp < now - CLOCK_LEEWAY:
            raise IdPortenError(IdPortenFailure.EXPIRED, "the id_token has expired")
        if isinstance(iat, (int, float)) and iat > now + CLOCK_LEEWAY:
            raise IdPortenError(IdPortenFailure.EXPIRED, "the id_token was issued in the future")
        got_nonce = claims.get("nonce")
        if not isinstance(got_nonce, str) or not hmac.compare_digest(got_nonce.encode(), nonce.encode()):
            raise IdPortenError(IdPortenFailure.NONCE, "the id_token does not answer this login (wrong nonce)")
        got_acr = claims.get("acr")
        if got_acr not in LEVELS or rank(got_acr) < rank(acr):
            raise IdPortenError(IdPortenFailure.ACR,
                                "ID-porten authenticated the person at a lower level than asked for")
        pid = claims.get("pid")
        try:
            national_id = parse_national_id(pid if isinstance(pid, str) else None)  # type: ignore[arg-type]
        except InvalidNationalId:
            raise IdPortenError(IdPortenFailure.PID, "the id_token holds no valid national identity number") from None
        if not national_id.allows_national_card:
            raise IdPortenError(IdPortenFailure.PID, "the id_token holds no valid national identity number")
        amr = claims.get("amr")
        methods = [m for m in amr if isinstance(m, str) and 0 < len(m) <= 64][:10] if isinstance(amr, list) else []
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) and len(claims["sid"]) <= 256 else None
        auth_time = claims.get("auth_time")
        return IdPortenIdentity(national_id=national_id, acr=got_acr, amr=methods, sid=sid,
                                auth_time=int(auth_time) if isinstance(auth_time, (int, float)) else int(now),
                                id_token=token)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > 16 * 1024 or token.count(".") != 2:
            raise IdPortenError(IdPortenFailure.SIGNATURE, "the id_token is not a signed JWT")
        try:
            unverified = jws.JWS()
            unverified.deserialize(token)
            header = unverified.jose_header
        except (JWException, ValueError, TypeError):
            raise IdPortenError(IdPortenFailure.SIGNATURE, "the id_token is not a signed JWT") from None
        kid = header.get("kid") if isinstance(header, dict) else None
        keys = self._keys()
        if isinstance(kid, str) and keys.get_key(kid) is None:
            keys = self._keys(refresh=True)  # a key ID we have not seen: ID-porten may have rotated
        try:
            verified = jwt.JWT(jwt=token, key=keys, algs=ALGORITHMS, check_claims=False)
            claims = json.loads(verified.claims)
        except (JWException, ValueError, TypeError):
            raise IdPortenError(IdPortenFailure.SIGNATURE, "the id_token's signature is not valid") from None
        if not isinstance(claims, dict):
            raise IdPortenError(IdPortenFailure.SIGNATURE, "the id_token holds no claims")
        return claims

    # -- logout -----------------------------------------------------------------------------

    def end_session_url(self, id_token_hint: str | None, post_logout_redirect_uri: str, state: str) -> str | None:
        """Where to send the browser to end the ID-porten session too, or None if ID-porten has no logout."""
        endpoint = self.metadata().end_session_endpoint
        if endpoint is None:
            return None
        params = {"post_logout_redirect_uri": post_logout_redirect_uri, "state": state}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def frontchannel_sid(self, params: Mapping[str, str]) -> str | None:
        """The ID-porten session a front-channel logout ends, or None if the request is not ID-porten's."""
        if params.get("iss") != self.issuer:
            return None
        sid = params.get("sid")
        return sid if isinstance(sid, str) and 0 < len(sid) <= 256 else None

    def allowed_frame_ancestors(self) -> list[str]:
        """Origins that may frame our front-channel logout page (ID-porten's logout page)."""
        origins = {self.issuer}
        try:
            metadata = self.metadata()
            origins.update({metadata.end_session_endpoint or self.issuer, metadata.authorization_endpoint})
        except IdPortenError:
            pass
        return sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in origins})


def sid_key(sid: str) -> str:
    """A state-store key for an ID-porten session id (hashed: the sid itself is a bearer value)."""
    return "idporten:ended:" + hashlib.sha256(sid.encode()).hexdigest()


__all__ = ["HIGH", "IdPortenClient", "IdPortenError", "IdPortenIdentity", "LEVELS", "PendingLogin",
           "ProviderMetadata", "SUBSTANTIAL", "check_url", "is_idporten_level", "level_for_need", "pkce_challenge",
           "sid_key"]
