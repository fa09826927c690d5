"""The argon2 gate: however many threads a worker runs, at most ``concurrency`` hashes at once."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from idp.errors import ConfigError, ValidationError
from idp.registry.credentials import SecretHasher, check_password_shape, check_pin_shape
from idp.settings import load_settings


class Overlap:
    """Wraps argon2's PasswordHasher and records how many of its runs overlapped."""

    def __init__(self, inner: Any) -> None:
        self._inner, self._lock = inner, threading.Lock()
        self.running = self.most = 0

    def _timed(self, run: Any, *args: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02)  # long enough for the other threads to arrive while this one runs
            return run(*args)
        finally:
            with self._lock:
                self.running -= 1

    def verify(self, *args: Any) -> Any:
        return self._timed(self._inner.verify, *args)

    def hash(self, *args: Any) -> Any:
        return self._timed(self._inner.hash, *args)

    def check_needs_rehash(self, stored: str) -> bool:
        return bool(self._inner.check_needs_rehash(stored))


def most_at_once(concurrency: int, threads: int = 6) -> int:
    hasher = SecretHasher(time_cost=1, memory_kib=64, parallelism=1, concurrency=concurrency)
    stored = hasher.hash("correct horse battery")
    spy = Overlap(hasher._ph)
    hasher._ph = spy  # type: ignore[assignment]
    start = threading.Barrier(threads)
    results: list[bool] = []

    def work(n: int) -> None:
        start.wait()
        # Right secrets, wrong ones and unknown accounts (the dummy hash) all pass the gate.
        secret = "correct horse battery" if n % 3 else "wrong horse battery"
        results.append(hasher.verify(stored if n % 2 else None, secret).ok)
        hasher.hash("another horse battery")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert len(results) == threads and results.count(True) == 2  # n = 1 and 5
    return spy.most


def test_one_hash_at_a_time_by_default_whatever_the_number_of_threads() -> None:
    assert most_at_once(1) == 1


def test_a_larger_gate_lets_that_many_run_together() -> None:
    assert most_at_once(3) == 3


@pytest.mark.parametrize("value", ["0", "-1", "65", "two"])
def test_a_gate_of_no_use_is_refused_at_start_up(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IDP_ARGON2_CONCURRENCY"):
        load_settings({"IDP_MODE": "development", "IDP_HOME": str(tmp_path), "IDP_ARGON2_CONCURRENCY": value})


def test_the_gate_is_one_by_default(tmp_path: Path) -> None:
    assert load_settings({"IDP_MODE": "development", "IDP_HOME": str(tmp_path)}).argon2_concurrency == 1


def test_a_process_forked_after_hashing_hashes_with_threads_of_its_own() -> None:
    hasher = SecretHasher(time_cost=1, memory_kib=64, parallelism=1)
    stored = hasher.hash("correct horse battery")  # the parent's hashing thread now runs
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status only
        ok = hasher.verify(stored, "correct horse battery").ok and not hasher.verify(stored, "wrong horse").ok
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the forked process hung waiting for a hashing thread that only its parent has")
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_a_password_has_8_to_256_characters_and_a_pin_4_to_6_digits() -> None:
    """README, Credentials: "PIN (4-6 digits) and password (8-256 characters)"."""
    for fits in ("a" * 8, "a" * 256):
        check_password_shape(fits)
    for misfit in ("a" * 7, "a" * 257):
        with pytest.raises(ValidationError):
            check_password_shape(misfit)
    for fits in ("1234", "123456"):
        check_pin_shape(fits)
    for misfit in ("123", "1234567", "12a4"):
        with pytest.raises(ValidationError):
            check_pin_shape(misfit)


def test_a_verify_takes_256_characters_rehashes_grown_parameters_and_costs_one_run_when_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """README, Credentials: passwords of 8-256 characters, "rehashed on a successful verify when the
    parameters have grown", and "verifying an unknown account costs the same as a known one"."""
    weak = SecretHasher(time_cost=1, memory_kib=8, parallelism=1)
    strong = SecretHasher(time_cost=2, memory_kib=16, parallelism=1)
    try:
        longest = "a" * 256
        stored = strong.hash(longest)
        assert (strong.verify(stored, longest).ok, strong.verify(stored, longest).new_hash) == (True, None)
        assert not strong.verify(stored, "a" * 257).ok
        grown = strong.verify(weak.hash("correct horse battery"), "correct horse battery")
        assert grown.ok and grown.new_hash is not None
        assert strong.verify(grown.new_hash, "correct horse battery").new_hash is None
        runs: list[str] = []

        class Counting:
            def __init__(self, hasher: Any) -> None:
                self._hasher = hasher

            def verify(self, stored: str, secret: str) -> bool:
                runs.append(secret)
                return bool(self._hasher.verify(stored, secret))

        monkeypatch.setattr(strong, "_ph", Counting(strong._ph))
        assert not strong.verify(None, "correct horse battery").ok
        assert len(runs) == 1, "an unknown account costs one argon2 run, like a known one"
    finally:
        weak.close()
        strong.close()


def test_secrets_are_hashed_with_argon2id_at_the_configured_parameters() -> None:
    """README, Credentials: "hashed with argon2id at the OWASP minimum or stronger" (the settings
    give the parameters; production's are checked at start-up)."""
    hasher = SecretHasher(time_cost=2, memory_kib=16, parallelism=1)
    try:
        stored = hasher.hash("correct horse battery")
    finally:
        hasher.close()
    assert stored.startswith("$argon2id$v=19$m=16,t=2,p=1$")
