"""Passwords and PINs, hashed with argon2id.

Lengths are checked before hashing so an attacker cannot make us hash a megabyte. A verify of an
unknown account still costs one argon2 run (against a dummy hash), so timing does not tell
whether a card exists.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.errors import ValidationError

PASSWORD_MIN = 8
PASSWORD_MAX = 256  # characters; passphrases welcome, megabytes not
_PIN = re.compile(r"\d{4,6}")
_T = TypeVar("_T")


def check_password_shape(password: str) -> None:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationError(f"A password has {PASSWORD_MIN} to {PASSWORD_MAX} characters.")
    if password.strip() != password or not password.isprintable():
        raise ValidationError("A password may not start or end with spaces or contain control characters.")


def check_pin_shape(pin: str) -> None:
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise ValidationError("A PIN has 4 to 6 digits.")


@dataclass(frozen=True)
class Verification:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used weaker parameters than today's


class SecretHasher:
    """argon2id hashing and verifying on ``concurrency`` threads of its own in this process.

    The threads bound what a burst of logins can take from a worker (memory_kib and one core per
    run) whatever its thread count, while the worker's other threads go on with their requests
    (argon2 runs without the GIL). They also keep hashing fast: a thread that hashes back to back
    keeps its core's caches and clock warm, where a request thread fresh from a database wait
    starts cold (on the benchmark machine about a fifth slower; bench/oidc.py prints both).
    """

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int = 1) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                                  hash_len=32, salt_len=16, type=Type.ID)
        self._concurrency = concurrency
        self._pool, self._pid = self._new_pool(), os.getpid()
        self._dummy = self._ph.hash("timing-equaliser")

    def __repr__(self) -> str:
        return "<SecretHasher argon2id>"

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="argon2")

    def _on_hashing_thread(self, run: Callable[[], _T]) -> _T:
        if self._pid != os.getpid():
            # Forked after first use: the parent's hashing threads do not exist in this process.
            self._pool, self._pid = self._new_pool(), os.getpid()
        return self._pool.submit(run).result()

    def hash(self, secret: str) -> str:
        return self._on_hashing_thread(lambda: self._ph.hash(secret))

    def verify(self, stored: str | None, secret: str) -> Verification:
        """Constant work whether or not ``stored`` exists; never raises for a wrong secret."""
        if not isinstance(secret, str) or len(secret) > PASSWORD_MAX:
            self._burn()
            return Verification(False)
        if stored is None:
            self._burn(secret)
            return Verification(False)
        try:
            self._on_hashing_thread(lambda: self._ph.verify(stored, secret))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(False)
        return Verification(True, self.hash(secret) if self._ph.check_needs_rehash(stored) else None)

    def _burn(self, secret: str = "") -> None:
        with contextlib.suppress(VerificationError):
            self._on_hashing_thread(lambda: self._ph.verify(self._dummy, secret or "x"))
