"""Recovery codes: single-use stand-ins for a lost TOTP authenticator (no Flask).

Ten codes are made when a patron enrols TOTP (and again on request, replacing the old ones),
shown once, and kept only as keyed hashes (``FieldCipher.code_hash``: HMAC-SHA256 under a key
derived from ``IDP_DATA_KEY``). Why not argon2, as for passwords: a recovery code is not chosen
by a person but drawn from ``secrets`` with about 59 bits of entropy (12 characters from a
31-letter alphabet), so a slow hash adds nothing against guessing: 2^59 guesses are out of reach
even at HMAC speed, and without the server's key a stolen table does not even let anyone test a
guess. Argon2 would instead cost ~25 ms per stored code on every attempt (ten codes: a quarter
of a second of CPU per wrong guess), an easy lever for denial of service.

Each code works once: it is marked used by a conditional UPDATE, so two requests racing with
the same code cannot both succeed.
"""

from __future__ import annotations

import hmac
import secrets

from sqlalchemy import delete, func, select, update

from idp.registry.context import Registry
from idp.registry.models import RecoveryCode

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: easy to read aloud and to type
GROUPS, GROUP_LEN = 3, 4
_PURPOSE = "recovery-code"


def normalise(typed: str) -> str:
    """What a patron types, as stored: case, spaces and hyphens do not matter."""
    return "".join(c for c in (typed or "").lower() if c not in " -\t")[:64]


def looks_like_recovery_code(typed: str) -> bool:
    code = normalise(typed)
    return len(code) == GROUPS * GROUP_LEN and all(c in ALPHABET for c in code)


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LEN))
    return "-".join(raw[i:i + GROUP_LEN] for i in range(0, len(raw), GROUP_LEN))


def replace_codes(reg: Registry, patron_id: int) -> list[str]:
    """Make a fresh set (the old codes stop working) and return it: the only time it is seen."""
    reg.session.execute(delete(RecoveryCode).where(RecoveryCode.patron_id == patron_id))
    codes = [_new_code() for _ in range(COUNT)]
    now = reg.now()
    reg.session.add_all(RecoveryCode(patron_id=patron_id, created_at=now,
                                     code_hash=reg.cipher.code_hash(normalise(code), purpose=_PURPOSE))
                        for code in codes)
    reg.session.flush()
    reg.audit("totp.recovery_codes", patron_id=patron_id, count=COUNT)
    return codes


def use_code(reg: Registry, patron_id: int, typed: str) -> bool:
    """True once for each valid unused code; marks it used."""
    if not looks_like_recovery_code(typed):
        return False
    digest = reg.cipher.code_hash(normalise(typed), purpose=_PURPOSE)
    rows = reg.session.execute(select(RecoveryCode.id, RecoveryCode.code_hash).where(
        RecoveryCode.patron_id == patron_id, RecoveryCode.used_at.is_(None))).all()
    match = None
    for row_id, stored in rows:  # every row compared, in constant time each
        if hmac.compare_digest(bytes(stored), digest):
            match = row_id
    if match is None:
        return False
    result = reg.session.execute(update(RecoveryCode).where(RecoveryCode.id == match, RecoveryCode.used_at.is_(None))
                                 .values(used_at=reg.now()))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def remaining(reg: Registry, patron_id: int) -> int:
    return int(reg.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.patron_id == patron_id, RecoveryCode.used_at.is_(None))) or 0)


def remove_all(reg: Registry, patron_id: int) -> None:
    reg.session.execute(delete(RecoveryCode).where(RecoveryCode.patron_id == patron_id))
