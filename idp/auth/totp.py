"""TOTP (RFC 6238) as the second factor: enrolment, verification, removal (no Flask).

Parameters: 6 digits, 30-second steps, SHA-1 (what every authenticator app supports), a
160-bit seed from ``pyotp.random_base32``.

Clock window: ``VALID_WINDOW = 1``. Besides the current 30-second step, the code of the step
before and the step after is accepted, so a phone whose clock is up to 30 s off, or a patron who
types a code just as it changes, still gets in. Nothing wider: each further step would add two
more valid codes per guess. A guess thus has 3 chances in a million, and the web layer limits
wrong guesses per account (``IDP_TOTP_LIMIT_PER_ACCOUNT``).

Replay: a code is accepted once. Used time steps are remembered per patron in the state store
(Redis in production, so this holds across workers and hosts): claiming a step is an atomic
increment that only one request can win, and a code from a step older than the newest one used
is refused as well. The memory outlives the window (``STEP_MEMORY`` seconds).

At rest: the seed is encrypted with the register's FieldCipher (AES-256-GCM under a key derived
from ``IDP_DATA_KEY``), bound to the patron, in ``totp_credential``. A seed being enrolled waits,
encrypted the same way, in the state store for ``PENDING_TTL`` seconds until the patron confirms
it with a first code; nothing reaches the database before that.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import pyotp

from idp.auth import recovery
from idp.errors import Conflict, NotFound
from idp.registry.context import Registry
from idp.registry.models import Patron, TotpCredential
from idp.state import StateStore

DIGITS = 6
INTERVAL = 30
VALID_WINDOW = 1
PENDING_TTL = 15 * 60
STEP_MEMORY = (2 * VALID_WINDOW + 2) * INTERVAL


@dataclass(frozen=True)
class Enrolment:
    """A seed being enrolled: what the enrolment page shows (QR code of ``uri``, ``manual_key``)."""

    secret: str
    uri: str

    def __repr__(self) -> str:
        return "<Enrolment>"

    @property
    def manual_key(self) -> str:
        """The seed in groups of four, as authenticator apps ask for it when typed by hand."""
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)


def _context(patron_id: int, pending: bool = False) -> bytes:
    return f"totp{'-pending' if pending else ''}:{patron_id}".encode()


def is_enrolled(reg: Registry, patron_id: int) -> bool:
    return reg.session.get(TotpCredential, patron_id) is not None


def start_enrolment(reg: Registry, state: StateStore, patron_id: int, *, account: str, issuer: str) -> Enrolment:
    """A seed to enrol (the same one again while it is pending, so a reload shows the same QR code).

    ``account`` and ``issuer`` label the entry in the authenticator app (a card number and the
    login's host name: nothing more personal).
    """
    if reg.session.get(Patron, patron_id) is None:
        raise NotFound("No such patron.")
    if is_enrolled(reg, patron_id):
        raise Conflict("Two-step login is already set up. Remove it first to set up a new authenticator.")
    key = f"totp:pending:{patron_id}"
    sealed = state.get(key)
    if sealed is not None:
        secret = reg.cipher.unseal(sealed, context=_context(patron_id, pending=True)).decode()
    else:
        secret = pyotp.random_base32(32)
        state.put(key, reg.cipher.seal(secret.encode(), context=_context(patron_id, pending=True)), PENDING_TTL)
    return Enrolment(secret, _totp(secret).provisioning_uri(name=account, issuer_name=issuer))


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is, within the window; every candidate compared in constant time."""
    typed = "".join((code or "").split())
    if len(typed) != DIGITS or not typed.isdigit():
        return None
    totp = _totp(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), typed):
            found = step
    return found


def _claim_step(state: StateStore, patron_id: int, step: int) -> bool:
    """True once per patron and step, and never for a step older than the newest one used."""
    last = state.get(f"totp:last:{patron_id}")
    if last is not None and step <= int(last):
        return False
    if state.incr(f"totp:step:{patron_id}:{step}", STEP_MEMORY) != 1:
        return False
    state.put(f"totp:last:{patron_id}", str(step).encode(), STEP_MEMORY)
    return True


def confirm_enrolment(reg: Registry, state: StateStore, patron_id: int, code: str) -> list[str] | None:
    """Store the pending seed once the patron proves their app makes its codes; return the new
    recovery codes (shown once), or None when the code is wrong or the enrolment has expired."""
    sealed = state.get(f"totp:pending:{patron_id}")
    if sealed is None:
        return None
    if is_enrolled(reg, patron_id):
        raise Conflict("Two-step login is already set up.")
    secret = reg.cipher.unseal(sealed, context=_context(patron_id, pending=True)).decode()
    step = _matching_step(secret, code, reg.now())
    if step is None or not _claim_step(state, patron_id, step):
        return None
    reg.session.add(TotpCredential(patron_id=patron_id, created_at=reg.now(), last_used_at=reg.now(),
                                   secret_cipher=reg.cipher.seal(secret.encode(), context=_context(patron_id))))
    reg.session.flush()
    reg.audit("totp.enrol", patron_id=patron_id)
    codes = recovery.replace_codes(reg, patron_id)
    state.delete(f"totp:pending:{patron_id}")
    return codes


def verify(reg: Registry, state: StateStore, patron_id: int, code: str) -> bool:
    """True for a right code within the window that was not used before (see the module's notes)."""
    credential = reg.session.get(TotpCredential, patron_id)
    if credential is None:
        return False
    secret = reg.cipher.unseal(credential.secret_cipher, context=_context(patron_id)).decode()
    step = _matching_step(secret, code, reg.now())
    if step is None or not _claim_step(state, patron_id, step):
        return False
    credential.last_used_at = reg.now()
    return True


def remove(reg: Registry, state: StateStore, patron_id: int) -> bool:
    """Remove the authenticator and its recovery codes. The caller has re-authenticated the patron."""
    credential = reg.session.get(TotpCredential, patron_id)
    state.delete(f"totp:pending:{patron_id}")
    if credential is None:
        return False
    reg.session.delete(credential)
    recovery.remove_all(reg, patron_id)
    reg.session.flush()
    reg.audit("totp.remove", patron_id=patron_id)
    return True
