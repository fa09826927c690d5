"""TOTP as the second factor (idp.auth.totp) and its recovery codes (idp.auth.recovery), on both
backends. Time is the register's fake clock; codes come from pyotp's ``at(for_time)``: no sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, text

from idp.auth import recovery, totp
from idp.errors import ConfigError, Conflict
from idp.registry.crypto import derive_key
from idp.registry.models import AuditEvent, Patron, RecoveryCode, TotpCredential
from idp.registry.patrons import delete_patron
from idp.services import Services, build_services
from idp.state import MemoryState
from tests.conftest import FakeClock
from tests.unit.factories import library, patron
from tests.unit.test_otp import state_values

pytestmark = pytest.mark.backends  # replay guards in the state store, shared by workers through Redis

STEP_SECONDS = 30  # README: "30-second steps"
RECOVERY_CODES = 10  # README: "Then ten recovery codes are shown once"
RECOVERY_CODE_CHARACTERS = 12  # README: "12 characters from a 31-letter alphabet"
ENROLMENT_WAIT = 15 * 60  # README: "the seed waits encrypted in the state store (15 minutes)"


@pytest.fixture
def kari(services: Services) -> int:
    with services.registry("test") as reg:
        library(reg)
        p, _ = patron(reg, password="correct horse battery")
        return p.id


def start(services: Services, patron_id: int) -> totp.Enrolment:
    with services.registry("test") as reg:
        return totp.start_enrolment(reg, services.state, patron_id, account="N000000101", issuer="login.example.no")


def enrol(services: Services, clock: FakeClock, patron_id: int) -> tuple[pyotp.TOTP, list[str]]:
    enrolment = start(services, patron_id)
    app = pyotp.TOTP(enrolment.secret)
    with services.registry("test") as reg:
        codes = totp.confirm_enrolment(reg, services.state, patron_id, app.at(clock.now))
    assert codes is not None
    clock.advance(seconds=STEP_SECONDS)  # the confirming code is used: the next one is fresh
    return app, codes


def verify(services: Services, patron_id: int, code: str) -> bool:
    with services.registry("test") as reg:
        return totp.verify(reg, services.state, patron_id, code)


def test_enrolment_waits_for_a_first_code_and_shows_a_standard_uri(services: Services, clock: FakeClock,
                                                                  kari: int) -> None:
    enrolment = start(services, kari)
    assert start(services, kari).secret == enrolment.secret  # a reload shows the same QR code
    assert len(enrolment.secret) == 32 and enrolment.manual_key.replace(" ", "") == enrolment.secret
    assert enrolment.uri.startswith("otpauth://totp/login.example.no:N000000101?secret=")
    assert "issuer=login.example.no" in enrolment.uri
    with services.registry("test") as reg:
        assert not totp.is_enrolled(reg, kari)
        wrong = f"{(int(pyotp.TOTP(enrolment.secret).at(clock.now)) + 1) % 10 ** 6:06d}"
        assert totp.confirm_enrolment(reg, services.state, kari, wrong) is None
        assert reg.session.scalar(select(TotpCredential)) is None  # nothing stored by a wrong code
    # The pending seed waits encrypted in the state store.
    assert enrolment.secret.encode() not in b"".join(state_values(services))
    with services.registry("test") as reg:
        codes = totp.confirm_enrolment(reg, services.state, kari, pyotp.TOTP(enrolment.secret).at(clock.now))
        assert codes is not None and len(codes) == RECOVERY_CODES == len(set(codes))
        assert all(len(code.replace("-", "")) == RECOVERY_CODE_CHARACTERS for code in codes)
        assert totp.is_enrolled(reg, kari)
        with pytest.raises(Conflict):
            totp.start_enrolment(reg, services.state, kari, account="x", issuer="y")


def test_the_pending_seed_waits_15_minutes(services: Services, kari: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store's own clock cannot be moved on (Redis counts real time): what it was asked is checked.
    kept: list[int] = []
    put = services.state.put

    def recording_put(key: str, value: bytes, ttl: int) -> None:
        kept.append(ttl)
        put(key, value, ttl)
    monkeypatch.setattr(services.state, "put", recording_put)
    start(services, kari)
    assert kept == [ENROLMENT_WAIT]


def test_the_seed_is_encrypted_at_rest_and_bound_to_its_patron(services: Services, clock: FakeClock,
                                                               kari: int) -> None:
    app, _ = enrol(services, clock, kari)
    with services.engine.connect() as connection:
        blob = bytes(connection.execute(text("SELECT secret_cipher FROM totp_credential")).scalar_one())
        dump = b"".join(bytes(row[0]) for row in connection.execute(text("SELECT secret_cipher FROM totp_credential")))
    assert app.secret.encode() not in blob + dump and len(blob) > 32
    with pytest.raises(ConfigError):  # copied to another patron's row, it does not open
        services.cipher.unseal(blob, context=f"totp:{kari + 1}".encode())
    assert services.cipher.unseal(blob, context=f"totp:{kari}".encode()).decode() == app.secret


def test_the_clock_window_is_one_step_either_way(services: Services, clock: FakeClock, kari: int) -> None:
    app, _ = enrol(services, clock, kari)
    step = timedelta(seconds=STEP_SECONDS)
    # Each check below uses a step newer than the one before (older steps are refused as used).
    clock.advance(minutes=5)
    assert not verify(services, kari, app.at(clock.now - 2 * step))  # two steps late: outside
    assert verify(services, kari, app.at(clock.now - step))          # one step late: inside
    clock.advance(minutes=5)
    assert verify(services, kari, app.at(clock.now))
    clock.advance(minutes=5)
    assert verify(services, kari, app.at(clock.now + step))          # one step early: inside
    clock.advance(minutes=5)
    assert not verify(services, kari, app.at(clock.now + 2 * step))  # two steps early: outside
    assert totp.VALID_WINDOW == 1 and totp.INTERVAL == 30 and totp.DIGITS == 6


def test_a_code_is_accepted_once(services: Services, clock: FakeClock, kari: int) -> None:
    app, _ = enrol(services, clock, kari)
    code = app.at(clock.now)
    assert verify(services, kari, code)
    assert not verify(services, kari, code)
    clock.advance(seconds=STEP_SECONDS)  # still inside the window, still refused
    assert not verify(services, kari, code)


def test_an_older_code_is_refused_after_a_newer_one(services: Services, clock: FakeClock, kari: int) -> None:
    app, _ = enrol(services, clock, kari)
    clock.advance(minutes=1)
    assert verify(services, kari, app.at(clock.now))
    assert not verify(services, kari, app.at(clock.now - timedelta(seconds=STEP_SECONDS)))


def test_a_replay_is_refused_by_another_worker(services: Services, clock: FakeClock, kari: int) -> None:
    """Two workers (own database engine, own state connection) share only the store: Redis in production."""
    app, _ = enrol(services, clock, kari)
    code = app.at(clock.now)

    other = build_services(services.settings)
    other.clock = clock
    other.state = services.state if isinstance(services.state, MemoryState) else \
        type(services.state)(services.settings.redis_url, prefix=services.state._prefix)  # type: ignore[arg-type]
    try:
        assert verify(services, kari, code)
        assert not verify(other, kari, code)
    finally:
        other.close()


def test_malformed_codes_are_refused(services: Services, clock: FakeClock, kari: int) -> None:
    enrol(services, clock, kari)
    for code in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert not verify(services, kari, code)


def test_recovery_codes_are_hashed_and_work_once_each(services: Services, clock: FakeClock, kari: int) -> None:
    _, codes = enrol(services, clock, kari)
    with services.registry("test") as reg:
        stored = [bytes(h) for h in reg.session.scalars(select(RecoveryCode.code_hash))]
        assert len(stored) == RECOVERY_CODES and recovery.remaining(reg, kari) == RECOVERY_CODES
    # A keyed HMAC of the normalised code; neither the code nor its plain SHA-256 is stored.
    for code in codes:
        normal = code.replace("-", "")
        assert hashlib.sha256(normal.encode()).digest() not in stored
        assert services.cipher.code_hash(normal, purpose="recovery-code") in stored
    key = derive_key(services.settings.data_key_bytes(), b"codes/mac/v1")
    assert hmac.new(key, b"recovery-code\x00" + codes[0].replace("-", "").encode(), hashlib.sha256).digest() in stored
    with services.registry("test") as reg:
        assert recovery.use_code(reg, kari, codes[0].upper().replace("-", " "))  # typed any way
        assert not recovery.use_code(reg, kari, codes[0])
        assert not recovery.use_code(reg, kari + 1, codes[1])  # another patron's code is nobody's
        assert not recovery.use_code(reg, kari, "aaaa-bbbb-cccc")
        assert recovery.remaining(reg, kari) == RECOVERY_CODES - 1


def test_new_recovery_codes_replace_the_old(services: Services, clock: FakeClock, kari: int) -> None:
    _, old = enrol(services, clock, kari)
    with services.registry("test") as reg:
        new = recovery.replace_codes(reg, kari)
        assert not set(new) & set(old)
        assert not recovery.use_code(reg, kari, old[1])
        assert recovery.use_code(reg, kari, new[1])


def test_removal_takes_the_seed_and_the_recovery_codes(services: Services, clock: FakeClock, kari: int) -> None:
    app, codes = enrol(services, clock, kari)
    with services.registry("test") as reg:
        assert totp.remove(reg, services.state, kari)
        assert not totp.is_enrolled(reg, kari)
        assert not recovery.use_code(reg, kari, codes[2])
        assert reg.session.scalar(select(RecoveryCode)) is None
        assert not totp.remove(reg, services.state, kari)
    assert not verify(services, kari, app.at(clock.now))


def test_deleting_the_patron_deletes_the_second_factor(services: Services, clock: FakeClock, kari: int) -> None:
    enrol(services, clock, kari)
    with services.registry("test") as reg:
        delete_patron(reg, reg.session.get(Patron, kari))  # type: ignore[arg-type]
    with services.registry("test") as reg:
        assert reg.session.scalar(select(TotpCredential)) is None
        assert reg.session.scalar(select(RecoveryCode)) is None


def test_a_malformed_recovery_code_is_refused_and_only_the_patrons_own_codes_are_counted(
        services: Services, clock: FakeClock, kari: int) -> None:
    """README: ten recovery codes of 12 characters, each works once; what is not a code works never,
    and each patron's count is of their own unused codes (another patron without codes has none)."""
    enrol(services, clock, kari)
    with services.registry("test") as reg:
        other, _ = patron(reg, nth=1, email="ola@example.org")
        for typed in ("", "x", "not a recovery code", "!!!!-!!!!-!!!!", "a" * 40):
            assert not recovery.use_code(reg, kari, typed), typed
        assert recovery.remaining(reg, kari) == 10
        assert recovery.remaining(reg, other.id) == 0


def test_removing_two_step_login_is_audited_for_the_patron(services: Services, clock: FakeClock, kari: int) -> None:
    """README, Audit: every change leaves an audit event naming the patron."""
    enrol(services, clock, kari)
    with services.registry("test") as reg:
        assert totp.remove(reg, services.state, kari)
    with services.registry("test") as reg:
        removals = list(reg.session.execute(select(AuditEvent.actor, AuditEvent.patron_id)
                                            .where(AuditEvent.action == "totp.remove")))
    assert removals == [("test", kari)]


def test_used_steps_are_remembered_per_patron(services: Services, clock: FakeClock, kari: int) -> None:
    """README: "used time steps are remembered per patron": one patron's code does not spend
    another's in the same 30 seconds. Enrolment is audited with the ten codes it made."""
    with services.registry("test") as reg:
        ola, _ = patron(reg, nth=1, email="ola@example.org")
    kari_app, _ = enrol(services, clock, kari)
    ola_app, _ = enrol(services, clock, ola.id)
    assert verify(services, kari, kari_app.at(clock.now))
    assert verify(services, ola.id, ola_app.at(clock.now))
    with services.registry("test") as reg:
        made = list(reg.session.execute(select(AuditEvent.patron_id, AuditEvent.detail)
                                        .where(AuditEvent.action == "totp.recovery_codes")))
    assert made == [(kari, {"count": 10}), (ola.id, {"count": 10})]


def test_two_patrons_can_enrol_in_the_same_30_seconds_and_each_enrolment_is_audited(
        services: Services, clock: FakeClock, kari: int) -> None:
    """README: used time steps are remembered per patron (a first code spends nothing of another
    patron's); Audit: every change names the patron."""
    with services.registry("test") as reg:
        ola, _ = patron(reg, nth=1, email="ola@example.org")
    apps = {patron_id: pyotp.TOTP(start(services, patron_id).secret) for patron_id in (kari, ola.id)}
    for patron_id, app in apps.items():
        with services.registry("test") as reg:
            assert totp.confirm_enrolment(reg, services.state, patron_id, app.at(clock.now)) is not None
    with services.registry("test") as reg:
        enrolled = list(reg.session.scalars(select(AuditEvent.patron_id).where(AuditEvent.action == "totp.enrol")))
    assert enrolled == [kari, ola.id]


class _StaleReads:
    """A worker's view of the state store that has not yet seen another worker's writes: its reads
    find nothing, its atomic increments still go to the shared store."""

    def __init__(self, state: object) -> None:
        self._state = state

    def get(self, key: str) -> None:
        return None

    def __getattr__(self, name: str) -> object:
        return getattr(self._state, name)


def test_a_code_is_claimed_by_one_atomic_increment_even_when_reads_are_stale(services: Services, clock: FakeClock,
                                                                            kari: int) -> None:
    """README: "claiming a step is an atomic increment": a worker whose read has not yet seen the
    other's use of the code still cannot use it again."""
    app, _ = enrol(services, clock, kari)
    code = app.at(clock.now)
    for expected in (True, False):
        with services.registry("test") as reg:
            assert totp.verify(reg, _StaleReads(services.state), kari, code) is expected  # type: ignore[arg-type]


def test_two_racing_uses_of_one_recovery_code_cannot_both_succeed(services: Services, clock: FakeClock, kari: int,
                                                                  backend: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """README: each recovery code works once, "a conditional UPDATE, so two racing requests cannot
    both use it": another request uses the code between this one's read and its update."""
    if backend == "embedded":
        pytest.skip("SQLite has one writer: the other request cannot commit inside this one")
    _, codes = enrol(services, clock, kari)
    compare, raced = hmac.compare_digest, []

    def racing(a: bytes, b: bytes) -> bool:
        if not raced:
            raced.append(True)
            with services.registry("test") as other:
                assert recovery.use_code(other, kari, codes[0])
        return compare(a, b)

    monkeypatch.setattr(recovery.hmac, "compare_digest", racing)
    with services.registry("test") as reg:
        assert not recovery.use_code(reg, kari, codes[0])
    assert raced
