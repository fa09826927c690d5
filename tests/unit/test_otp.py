"""One-time codes (idp.auth.otp): issued to the patron's address, single use, short-lived, bound to
a purpose, hashed at rest, limited; on both backends (SQLite + memory, PostgreSQL + Redis).

``Recorder`` stands in for the mail server and the SMS gateway (it implements both protocols);
the flow tests deliver through a real SMTP server instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

import pytest

from idp.auth import otp
from idp.delivery import DeliveryError, Messenger, Unconfigured
from idp.errors import NotFound, ValidationError
from idp.registry.models import Patron
from idp import state as state_store
from idp.services import Services
from idp.state import MemoryState
from tests.conftest import FakeClock
from tests.unit.factories import library, patron

pytestmark = pytest.mark.backends  # codes and their limits live in the state store (Redis Lua vs memory)

WRONG_GUESSES_PER_CODE = 5  # README: a code is "void after 5 wrong guesses"
CODE_TTL = 600  # README: IDP_OTP_CODE_TTL, 600 seconds by default
SENDS_PER_HOUR = 5  # README: IDP_OTP_SENDS_PER_HOUR, 5 by default


@dataclass
class Sent:
    channel: str
    to: str
    subject: str
    text: str

    @property
    def code(self) -> str:
        match = re.search(r"\b(\d{6})\b", self.text)
        assert match, "no code in the message"
        return match.group(1)


@dataclass
class Recorder:
    """Both delivery protocols at once: keeps what it is given; ``fail`` makes it refuse."""

    sent: list[Sent] = field(default_factory=list)
    fail: bool = False

    def send_mail(self, to: str, subject: str, text: str, sender: str) -> None:
        if self.fail:
            raise DeliveryError("the mail server could not be reached (test)")
        self.sent.append(Sent("email", to, subject, text))

    def send_sms(self, to: str, text: str) -> None:
        if self.fail:
            raise DeliveryError("the SMS gateway could not be reached (test)")
        self.sent.append(Sent("sms", to, "", text))

    def last(self, to: str | None = None) -> Sent:
        return [s for s in self.sent if to is None or s.to == to][-1]


def install_recorder(services: Services) -> Recorder:
    recorder = Recorder()
    services.messenger = Messenger(recorder, recorder, "noreply@example.no")  # type: ignore[misc]
    return recorder


def state_values(services: Services) -> list[bytes]:
    """Everything the state store holds (to look for secrets in it)."""
    state = services.state
    if isinstance(state, MemoryState):
        return [v for v, _ in state._data.values() if isinstance(v, bytes)]
    redis = state._redis
    return [redis.get(key) or b"" for key in redis.scan_iter(f"{state._prefix}*")]


@pytest.fixture
def outbox(services: Services) -> Recorder:
    return install_recorder(services)


@pytest.fixture
def kari(services: Services) -> int:
    with services.registry("test") as reg:
        library(reg)
        p, _ = patron(reg, password="correct horse battery")
        return p.id


def issue(services: Services, patron_id: int, purpose: str = "account:pin", **kwargs: object) -> otp.IssuedCode:
    return otp.issue_code(services, patron_id=patron_id, purpose=purpose, channel=kwargs.pop("channel", "email"),
                          **kwargs)  # type: ignore[arg-type]


def use(services: Services, issued: otp.IssuedCode, code: str, patron_id: int, purpose: str = "account:pin",
        **kwargs: object) -> otp.CodeOutcome:
    return otp.use_code(services, challenge=issued.challenge, code=code, patron_id=patron_id, purpose=purpose,
                        **kwargs).outcome  # type: ignore[arg-type]


def test_a_code_goes_to_the_registered_address_and_works_once(services: Services, outbox: Recorder,
                                                             kari: int) -> None:
    issued = issue(services, kari, lang="en")
    sent = outbox.last()
    assert (sent.channel, sent.to) == ("email", "kari@example.org")
    assert issued.masked == "k\u2022\u2022\u2022@example.org" and issued.channel is otp.Channel.EMAIL
    assert sent.text.startswith(f"Your one-time code is: {sent.code}")
    assert use(services, issued, sent.code, kari) is otp.CodeOutcome.OK
    assert use(services, issued, sent.code, kari) is otp.CodeOutcome.EXPIRED


def test_by_sms_to_the_registered_phone(services: Services, outbox: Recorder, kari: int) -> None:
    issued = issue(services, kari, channel="sms")
    sent = outbox.last()
    assert (sent.channel, sent.to) == ("sms", "+4799999999") and issued.masked.endswith("999")
    assert sent.text.startswith(f"{sent.code} er engangskoden din")  # Norwegian by default
    assert use(services, issued, f" {sent.code[:3]} {sent.code[3:]} ", kari) is otp.CodeOutcome.OK  # spaces ignored


def test_a_code_is_bound_to_its_patron_and_purpose(services: Services, outbox: Recorder, kari: int) -> None:
    issued = issue(services, kari, "account:pin")
    code = outbox.last().code
    assert use(services, issued, code, kari, "account:email") is otp.CodeOutcome.EXPIRED
    assert use(services, issued, code, kari + 1) is otp.CodeOutcome.EXPIRED
    assert use(services, issued, code, kari) is otp.CodeOutcome.OK  # the mismatches did not use it up


def test_five_wrong_guesses_void_the_code(services: Services, outbox: Recorder, kari: int) -> None:
    issued = issue(services, kari)
    code = outbox.last().code
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    outcomes = [use(services, issued, wrong, kari) for _ in range(WRONG_GUESSES_PER_CODE)]
    assert outcomes == [otp.CodeOutcome.WRONG] * (WRONG_GUESSES_PER_CODE - 1) + [otp.CodeOutcome.TOO_MANY_TRIES]
    assert use(services, issued, code, kari) is otp.CodeOutcome.EXPIRED


def test_a_code_expires(services: Services, outbox: Recorder, kari: int, clock: FakeClock) -> None:
    issued = issue(services, kari)
    assert issued.expires_at == clock.now + timedelta(seconds=CODE_TTL)
    clock.advance(seconds=CODE_TTL + 1)
    assert use(services, issued, outbox.last().code, kari) is otp.CodeOutcome.EXPIRED


def test_a_new_code_for_the_same_purpose_replaces_the_old(services: Services, outbox: Recorder, kari: int) -> None:
    first = issue(services, kari)
    first_code = outbox.last().code
    other = issue(services, kari, "account:password")
    other_code = outbox.last().code
    second = issue(services, kari)
    assert use(services, first, first_code, kari) is otp.CodeOutcome.EXPIRED
    assert use(services, second, outbox.last().code, kari) is otp.CodeOutcome.OK
    assert use(services, other, other_code, kari, "account:password") is otp.CodeOutcome.OK  # another purpose


def test_codes_are_kept_only_as_keyed_hashes(services: Services, outbox: Recorder, kari: int) -> None:
    issue(services, kari, "account:email:new", destination="new.address@example.org")
    code = outbox.last("new.address@example.org").code
    stored = b"".join(state_values(services))
    assert stored and code.encode() not in stored
    assert b"new.address" not in stored and b"kari@" not in stored


def test_a_new_address_is_confirmed_with_the_code_sent_to_it(services: Services, outbox: Recorder, kari: int) -> None:
    issued = issue(services, kari, "account:email:new", destination=" New.Address@example.org ")
    sent = outbox.last()
    assert sent.to == "New.Address@example.org" and issued.masked == "N\u2022\u2022\u2022@example.org"
    assert use(services, issued, sent.code, kari, "account:email:new",
               destination="other@example.org") is otp.CodeOutcome.WRONG
    assert use(services, issued, sent.code, kari, "account:email:new",
               destination="New.Address@example.org") is otp.CodeOutcome.OK


def test_sends_per_hour_are_limited(services: Services, outbox: Recorder, kari: int) -> None:
    for _ in range(SENDS_PER_HOUR):
        issue(services, kari)
    with pytest.raises(otp.TooManyCodes) as info:
        issue(services, kari, channel="sms")
    assert info.value.http_status == 429
    assert len(outbox.sent) == SENDS_PER_HOUR


def test_a_failed_delivery_leaves_no_usable_code(services: Services, outbox: Recorder, kari: int) -> None:
    outbox.fail = True
    with pytest.raises(DeliveryError):
        issue(services, kari)
    assert not any(b'"u"' in v for v in state_values(services))


def test_no_address_no_code(services: Services, outbox: Recorder) -> None:
    with services.registry("test") as reg:
        library(reg)
        p, _ = patron(reg, phone=None)
        pid = p.id
    with pytest.raises(otp.NoDestination):
        issue(services, pid, channel="sms")
    assert otp.channels_for(services, pid) == [otp.Channel.EMAIL]
    with pytest.raises(NotFound):
        issue(services, pid + 1000)
    with pytest.raises(ValidationError):
        issue(services, pid, destination="not an address")
    assert outbox.sent == []


def test_blocked_patrons_get_no_codes(services: Services, outbox: Recorder, kari: int) -> None:
    with services.registry("test") as reg:
        reg.session.get(Patron, kari).status = "blocked"  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        issue(services, kari)


def test_channels_leave_out_what_cannot_be_sent(services: Services, kari: int) -> None:
    recorder = Recorder()
    sms = Unconfigured("IDP_SMS_URL", "SMS delivery")
    services.messenger = Messenger(recorder, sms, "n@e.no")  # type: ignore[misc]
    assert otp.channels_for(services, kari) == [otp.Channel.EMAIL]


def test_a_malformed_challenge_is_simply_expired(services: Services, kari: int) -> None:
    for challenge in ("", "x" * 500, "nope"):
        assert otp.use_code(services, challenge=challenge, code="123456", patron_id=kari,
                            purpose="account:pin").outcome is otp.CodeOutcome.EXPIRED


def test_masks() -> None:
    assert otp.mask("email", "kari@example.org") == "k\u2022\u2022\u2022@example.org"
    assert otp.mask("sms", "+47 999 12 345") == "\u2022\u2022\u2022\u2022\u2022345"


def test_a_new_phone_number_is_confirmed_with_a_code_sent_to_it_by_sms(services: Services, outbox: Recorder,
                                                                       kari: int) -> None:
    # docs/account.md: "A new e-mail address or phone number is confirmed by a second code sent to the new address".
    issued = issue(services, kari, "account:phone:new", channel="sms", destination="+47 412 34 567")
    sent = outbox.last()
    assert (sent.channel, sent.to) == ("sms", "+4741234567") and issued.masked.endswith("567")
    assert use(services, issued, sent.code, kari, "account:phone:new",
               destination="+47 412 34 999") is otp.CodeOutcome.WRONG
    assert use(services, issued, sent.code, kari, "account:phone:new",
               destination="+4741234567") is otp.CodeOutcome.OK


def test_wrong_guesses_are_counted_per_code(services: Services, outbox: Recorder, kari: int) -> None:
    # "void after 5 wrong guesses": the guesses at one code do not use up another's.
    pin = issue(services, kari, "account:pin")
    pin_code = outbox.last().code
    email = issue(services, kari, "account:email")
    email_code = outbox.last().code
    wrong_pin = f"{(int(pin_code) + 1) % 10 ** 6:06d}"
    wrong_email = f"{(int(email_code) + 1) % 10 ** 6:06d}"
    for _ in range(WRONG_GUESSES_PER_CODE - 1):
        assert use(services, pin, wrong_pin, kari, "account:pin") is otp.CodeOutcome.WRONG
    assert use(services, email, wrong_email, kari, "account:email") is otp.CodeOutcome.WRONG
    assert use(services, email, email_code, kari, "account:email") is otp.CodeOutcome.OK
    assert use(services, pin, pin_code, kari, "account:pin") is otp.CodeOutcome.OK


def test_sends_are_counted_per_patron(services: Services, outbox: Recorder, kari: int) -> None:
    # "At most IDP_OTP_SENDS_PER_HOUR are sent per patron": one patron's codes do not use up another's.
    with services.registry("test") as reg:
        other = patron(reg, nth=1, email="ola@example.org")[0].id
    for _ in range(SENDS_PER_HOUR):
        issue(services, kari)
    issue(services, other)
    assert outbox.last().to == "ola@example.org"


def test_codes_are_six_random_digits_not_a_handful(services: Services, outbox: Recorder, kari: int) -> None:
    # "a 6-digit code" from secrets: ten codes all below 1000 would happen once in 10**30.
    with services.registry("test") as reg:
        other = patron(reg, nth=1, email="ola@example.org")[0].id
    for patron_id in (kari, other):
        for _ in range(SENDS_PER_HOUR):
            issue(services, patron_id)
    codes = [sent.code for sent in outbox.sent]
    assert len(codes) == 2 * SENDS_PER_HOUR and all(len(code) == 6 for code in codes)
    assert any(int(code) >= 1000 for code in codes)


def test_a_code_and_its_wrong_guesses_last_the_full_code_ttl(services: Services, outbox: Recorder, kari: int,
                                                              clock: FakeClock,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Valid IDP_OTP_CODE_TTL seconds (600 by default), void after 5 wrong guesses however they are spread.
    if not isinstance(services.state, MemoryState):
        pytest.skip("Redis expires keys in real time; the memory store's clock can be moved")
    start, elapsed = time.monotonic(), [0.0]
    monkeypatch.setattr(state_store, "time", SimpleNamespace(monotonic=lambda: start + elapsed[0], time=time.time))

    def advance(seconds: int) -> None:
        clock.advance(seconds=seconds)
        elapsed[0] += seconds

    issued = issue(services, kari)
    code = outbox.last().code
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    for _ in range(WRONG_GUESSES_PER_CODE - 1):
        assert use(services, issued, wrong, kari) is otp.CodeOutcome.WRONG
    advance(CODE_TTL - 30)
    assert use(services, issued, wrong, kari) is otp.CodeOutcome.TOO_MANY_TRIES
    second = issue(services, kari, "account:email")
    advance(CODE_TTL - 30)
    assert use(services, second, outbox.last().code, kari, "account:email") is otp.CodeOutcome.OK


def test_an_sms_carries_the_pages_language_and_the_minutes_it_is_valid(services: Services, outbox: Recorder,
                                                                      kari: int) -> None:
    # docs/account.md: "an SMS carries the page's language"; codes are valid 10 minutes by default.
    issue(services, kari, channel="sms", lang="en")
    text = outbox.last().text
    assert text.startswith(f"{outbox.last().code} is your one-time code") and "10 min" in text
    issue(services, kari, "account:email", lang="en")
    assert "10 minutes" in outbox.last().text
