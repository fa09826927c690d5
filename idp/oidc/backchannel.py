"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the queue and its delivery. No Flask here.

When a patron's session ends, the orchestration calls ``enqueue`` for each OIDC relying party with a
back-channel logout URI that the session logged in to, in the same transaction, and
``services.backchannel.notify()`` after its commit. Logging out therefore never waits for a partner:
a ``BackchannelDelivery`` thread in each ``idp serve`` worker POSTs the logout tokens.

Guarantees (docs/oidc.md says the same to operators):
- At least once, normally exactly once: a row is claimed by an UPDATE that moves its
  ``next_attempt_at`` forward by ``lease`` (only if it is still due), so two workers or processes
  never send it at the same time, on SQLite or PostgreSQL. A worker that dies mid-send leaves the
  row due again when the lease runs out, and another sends it again.
- Each attempt reads the partner's current URI (a row whose partner is gone or has no URI any more
  is dropped, logged at INFO), checks it again with the registration rule (https, http only on
  loopback), POSTs ``logout_token=...`` with no redirect followed and a timeout of
  IDP_BACKCHANNEL_LOGOUT_TIMEOUT seconds, and signs a fresh token (fresh jti and exp): the queue
  stores no token.
- 200 or 204 is delivered: the row is deleted. Anything else (another status, a redirect, a timeout,
  a refused connection, a refused URI) is logged at WARNING with the client id, the attempt and the
  reason (never the token or the subject), and tried again after BACKOFF; after the last attempt the
  logout is given up, logged at ERROR, and the row deleted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import requests
from sqlalchemy import delete, select, update

from idp import relying_parties
from idp.errors import ValidationError
from idp.keys import KeyRing
from idp.oidc.logout_token import logout_token
from idp.registry.context import Registry
from idp.registry.models import BackchannelLogout, RelyingParty
from idp.settings import Settings

log = logging.getLogger(__name__)

# Waits after the 1st, 2nd, ... failed attempt; the attempt after the last wait is the last one
# (five in all, over about 1 h 13 min): a partner down longer than that has lost its sessions anyway.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1))
MAX_ATTEMPTS = len(BACKOFF) + 1
# How often the thread looks for due rows when nobody calls notify() (retries come due this way).
POLL_SECONDS = 5.0
# Rows claimed per pass at most, so one pass ends and the next sees new work in order.
BATCH = 100
MAX_SUB, MAX_SID = 255, 255
_MAX_ERROR = 200

RegistryFactory = Callable[[str], AbstractContextManager[Registry]]


def enqueue(reg: Registry, *, client_id: str, sub: str, sid: str) -> None:
    """Queue a back-channel logout of session ``sid`` of subject ``sub`` (both as ``client_id`` knows them).

    Written in the caller's transaction, so it is sent only if the logout commits; call the
    deliverer's ``notify()`` after the commit to have it sent at once.
    """
    if not sub or len(sub) > MAX_SUB or not sid or len(sid) > MAX_SID:
        raise ValidationError(f"A back-channel logout needs a sub and a sid of 1 to {MAX_SUB} characters.")
    now = reg.now()
    reg.session.add(BackchannelLogout(client_id=client_id, sub=sub, sid=sid, created_at=now, attempts=0,
                                      next_attempt_at=now))


class BackchannelDelivery:
    """Sends the queued logout tokens: ``deliver_due()`` once, or a daemon thread (``start()``)."""

    def __init__(self, *, settings: Settings, registry: RegistryFactory, keyring: KeyRing, issuer: str,
                 clock: Callable[[], datetime], http: requests.Session | None = None) -> None:
        self._registry, self._keyring, self._issuer, self._clock = registry, keyring, issuer, clock
        self.timeout = float(settings.backchannel_logout_timeout)
        # Longer than any one send can take, so a row is never claimed again while it is being sent.
        self.lease = timedelta(seconds=max(60.0, 4 * self.timeout))
        self._http = http or requests.Session()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (a daemon: it never holds up a worker's exit). Idempotent."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            # An event per thread: a thread still finishing a send after stop() never sees a later start's.
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stopping,), name="backchannel-logout",
                                            daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """Wake the thread now (after a commit that queued logouts); harmless when it is not running."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread after the send in progress (waits at most ``timeout`` seconds for it)."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if timeout is not None else self.timeout + 5)

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            if stopping.is_set():
                return
            try:
                self._deliver_due(stopping)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive a database outage
                # The type only: a database error's text can quote the row (a subject).
                log.error("back-channel logout delivery pass failed (%s); trying again in %.0f s",
                          type(exc).__name__, POLL_SECONDS)

    # -- one pass -----------------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Send the rows due now (at most BATCH), one after the other; the number delivered.

        After a client's endpoint fails, its other rows wait for a later pass: a dead endpoint costs
        one timeout per pass, not one per queued logout, so it cannot hold up everyone else's."""
        return self._deliver_due(None)

    def _deliver_due(self, stopping: threading.Event | None) -> int:
        with self._registry("backchannel") as reg:
            due = reg.session.execute(
                select(BackchannelLogout.id, BackchannelLogout.client_id)
                .where(BackchannelLogout.next_attempt_at <= self._clock())
                .order_by(BackchannelLogout.next_attempt_at, BackchannelLogout.id).limit(BATCH)).all()
        delivered, failing = 0, set()
        for row_id, client_id in due:
            if stopping is not None and stopping.is_set():
                break
            if client_id in failing:
                continue
            outcome = self._attempt(row_id)
            if outcome is True:
                delivered += 1
            elif outcome is False:
                failing.add(client_id)
        return delivered

    def _attempt(self, row_id: int) -> bool | None:
        """True delivered, False failed, None not sent (claimed by another deliverer, or dropped)."""
        claimed = self._claim(row_id)
        if claimed is None:
            return None
        client_id, uri, alg, sub, sid, attempt = claimed
        reason = self._post(uri, logout_token(self._keyring, issuer=self._issuer, client_id=client_id, alg=alg,
                                              sub=sub, sid=sid, now=int(self._clock().timestamp())))
        with self._registry("backchannel") as reg:
            if reason is None:
                reg.session.execute(delete(BackchannelLogout).where(BackchannelLogout.id == row_id))
                return True
            if attempt >= MAX_ATTEMPTS:
                reg.session.execute(delete(BackchannelLogout).where(BackchannelLogout.id == row_id))
                log.error("back-channel logout to client %s given up after %d attempts: %s",
                          client_id, attempt, reason)
                return False
            wait = BACKOFF[attempt - 1]
            reg.session.execute(update(BackchannelLogout).where(BackchannelLogout.id == row_id).values(
                attempts=attempt, next_attempt_at=self._clock() + wait, last_error=reason[:_MAX_ERROR]))
        log.warning("back-channel logout to client %s failed (attempt %d of %d): %s; trying again in %s",
                    client_id, attempt, MAX_ATTEMPTS, reason, _words(wait))
        return False

    def _claim(self, row_id: int) -> tuple[str, str, str, str, str, int] | None:
        """Take the row for one attempt if it is still due (no other deliverer took it): what to send,
        or None. A row whose partner is gone or has no back-channel URI any more is dropped here."""
        with self._registry("backchannel") as reg:
            now = self._clock()
            # The lease: only one deliverer's UPDATE finds the row still due (PostgreSQL re-checks the
            # condition after waiting for the other's commit; SQLite runs one writer at a time).
            taken = reg.session.execute(
                update(BackchannelLogout)
                .where(BackchannelLogout.id == row_id, BackchannelLogout.next_attempt_at <= now)
                .values(next_attempt_at=now + self.lease)
                .execution_options(synchronize_session=False))
            if getattr(taken, "rowcount", 0) != 1:
                return None
            row = reg.session.get(BackchannelLogout, row_id)
            if row is None:
                return None
            rp = reg.session.scalar(select(RelyingParty).where(RelyingParty.client_id == row.client_id,
                                                               RelyingParty.protocol == relying_parties.PROTOCOL_OIDC))
            uri = rp.backchannel_logout_uri if rp is not None else None
            if rp is None or not uri:
                log.info("back-channel logout to client %s dropped: %s", row.client_id,
                         "no such OIDC client any more" if rp is None else "it has no back-channel logout URI any more")
                reg.session.delete(row)
                return None
            return row.client_id, uri, rp.id_token_alg, row.sub, row.sid, row.attempts + 1

    def _post(self, uri: str, token: str) -> str | None:
        """POST the token; None when the partner took it (200 or 204), else why not, in words for the log."""
        try:
            relying_parties.clean_logout_uri(uri, relying_parties.BACKCHANNEL_LOGOUT_URI)
        except ValidationError as exc:
            # Registered under other rules, or written around them: never sent to (http leaves the machine).
            return f"its URI is refused ({exc.message.rstrip('.')})"
        try:
            # No redirects: the URI checked above is the only place the token goes. stream=True: the
            # body is never read (a partner's answer carries nothing for us), only the status line.
            with self._http.post(uri, data={"logout_token": token}, timeout=(self.timeout, self.timeout),
                                 allow_redirects=False, stream=True,
                                 headers={"Cache-Control": "no-store"}) as response:
                status = response.status_code
        except requests.Timeout:
            return f"it did not answer within {self.timeout:g} s"
        except requests.RequestException as exc:
            return f"it could not be reached ({type(exc).__name__})"
        if status in (200, 204):
            return None
        if 300 <= status < 400:
            return f"it answered HTTP {status} (a redirect, not followed)"
        return f"it answered HTTP {status}"


def _words(wait: timedelta) -> str:
    seconds = int(wait.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
