"""A library system's JWKS fetched from its URL (``idp library-system add ISIL --jwks URL``).

The keys are fetched with a timeout and a size cap, checked key by key as an inline JWKS is
(idp.registry.library_systems.clean_jwks), and cached in the state store for CACHE_SECONDS, so every
worker shares one copy. An assertion naming a kid the cached set lacks means the system rotated its
keys: the set is fetched again at once, but such a refetch happens at most once per FETCH_INTERVAL per
system, so assertions with made-up kids cannot make us hammer a library's server. A failed fetch is remembered
for that interval too (no new attempt until it passes), and told to the client as invalid_client with
the reason (never the body).
No Flask here.
"""

from __future__ import annotations

import hashlib
import logging
import time

import requests
from jwcrypto.jwk import JWKSet

from idp.errors import ValidationError
from idp.oidc.errors import InvalidClient
from idp.registry.library_systems import MAX_JWKS, clean_jwks
from idp.state import StateStore

CACHE_SECONDS = 300
FETCH_INTERVAL = 60
TIMEOUT = (3.0, 5.0)  # connecting, then each read
_TOTAL_SECONDS = 10.0  # a server dripping bytes cannot hold a token request longer than this
_CHUNK = 8192
log = logging.getLogger(__name__)


class _Unusable(Exception):
    """Why the JWKS at the URL cannot be used, in words fit for the client."""


class RemoteJwks:
    """The key sets of the systems whose JWKS is at a URL."""

    def __init__(self, state: StateStore, http: requests.Session | None = None) -> None:
        self._state, self._http = state, http or requests.Session()

    def keys(self, client_id: str, uri: str, kid: str | None) -> JWKSet:
        """The system's keys: cached, or fetched when the cache is empty or lacks ``kid`` (at most once per
        FETCH_INTERVAL for an unknown kid or after a failure). InvalidClient when there are none to be had."""
        slot = f"{client_id}:{hashlib.sha256(uri.encode()).hexdigest()[:32]}"
        cached = self._cached(slot)
        if cached is not None and (kid is None or cached.get_key(kid) is not None):
            return cached
        failure = self._state.get(f"cc:jwks-error:{slot}")
        if failure is not None:  # not tried again within the interval
            raise InvalidClient(f"this client's JWKS could not be fetched from its URL ({failure.decode()})")
        if cached is not None and self._state.incr(f"cc:jwks-refetch:{slot}", FETCH_INTERVAL) != 1:
            return cached  # fetched again a moment ago: the unknown kid is refused by the signature check
        try:
            text = self._download(uri)
        except _Unusable as exc:
            log.warning("JWKS of library system %s not fetched: %s", client_id, exc)
            self._state.put(f"cc:jwks-error:{slot}", str(exc).encode(), FETCH_INTERVAL)
            raise InvalidClient(f"this client's JWKS could not be fetched from its URL ({exc})") from None
        self._state.put(f"cc:jwks:{slot}", text.encode(), CACHE_SECONDS)
        return JWKSet.from_json(text)

    def _cached(self, slot: str) -> JWKSet | None:
        found = self._state.get(f"cc:jwks:{slot}")
        return JWKSet.from_json(found.decode()) if found is not None else None

    def _download(self, uri: str) -> str:
        deadline = time.monotonic() + _TOTAL_SECONDS
        body = bytearray()
        try:
            # No redirects: the registered URL is the one checked to be https (or loopback).
            with self._http.get(uri, timeout=TIMEOUT, stream=True, allow_redirects=False,
                                headers={"Accept": "application/jwk-set+json, application/json"}) as response:
                if response.status_code != 200:
                    raise _Unusable(f"it answered HTTP {response.status_code}")
                for chunk in response.iter_content(_CHUNK):
                    body += chunk
                    if len(body) > MAX_JWKS:
                        raise _Unusable(f"it is larger than {MAX_JWKS // 1024} KiB")
                    if time.monotonic() > deadline:
                        raise _Unusable("it did not answer in time")
        except requests.Timeout:
            raise _Unusable("it did not answer in time") from None
        except requests.RequestException:
            raise _Unusable("it could not be reached") from None
        try:
            return clean_jwks(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Unusable("it is not UTF-8 text") from None
        except ValidationError as exc:
            raise _Unusable(exc.message.rstrip(".")) from None
