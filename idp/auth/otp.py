"""One-time codes sent to a patron by e-mail or SMS (no Flask).

The seeds' rule: changing personal data, a PIN or a password needs a one-time code sent by
e-mail or SMS. Other features use the same codes (linking a university account, confirming a
new address). The API is two calls, and it is meant to stay as it is:

    issued = issue_code(services, patron_id=p, purpose="account:password", channel="email")
    # keep issued.challenge server-side (the session), show issued.masked ("k•••@example.org")
    check = use_code(services, challenge=issued.challenge, code=typed, patron_id=p,
                     purpose="account:password")
    if check.ok: ...  # the code is gone now: a second use is refused

Rules (docs/account.md, "One-time codes"):

- a code is 6 digits from ``secrets``, valid ``IDP_OTP_CODE_TTL`` seconds (default 10 minutes),
  for one patron and one *purpose* (a short string such as ``"account:email"`` or
  ``"link:unimore"``): a code sent to change the PIN cannot change the e-mail address;
- single use: the first correct use takes it out of the state store atomically, so two workers
  racing with the same code cannot both win; asking for a new code for the same patron and
  purpose cancels the previous one;
- at rest only a keyed hash (HMAC-SHA256 under a key derived from ``IDP_DATA_KEY``, bound to the
  challenge) is kept, in the state store, never the code; comparisons are constant-time;
- at most ``MAX_TRIES`` wrong guesses per code (then it is void), and at most
  ``IDP_OTP_SENDS_PER_HOUR`` codes sent per patron in an hour (counted from the first send); the
  web layer also limits wrong guesses per account over the day (``IDP_OTP_LIMIT_PER_ACCOUNT``);
- ``destination`` sends to an address that is not (yet) the patron's, e.g. a new e-mail address
  to be confirmed; ``use_code(..., destination=...)`` then also checks it is the same address;
- codes, addresses and phone numbers are never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from idp.delivery import Channel, DeliveryError
from idp.delivery import texts
from idp.errors import IdpError, NotFound, ValidationError
from idp.registry.models import Patron
from idp.registry.patrons import clean_email, clean_phone

if TYPE_CHECKING:
    from idp.services import Services

log = logging.getLogger("idp.auth.otp")

__all__ = ["Channel", "CodeCheck", "CodeOutcome", "DeliveryError", "IssuedCode", "MAX_TRIES", "NoDestination",
           "TooManyCodes", "channels_for", "issue_code", "mask", "use_code"]

CODE_DIGITS = 6
MAX_TRIES = 5
SEND_WINDOW = 3600
_HASH_PURPOSE = "one-time-code"


class TooManyCodes(IdpError):
    """More codes asked for than ``IDP_OTP_SENDS_PER_HOUR`` allows."""

    code = "too_many_codes"
    http_status = 429


class NoDestination(ValidationError):
    """The patron has no address registered for the channel asked for."""

    code = "no_destination"


@dataclass(frozen=True)
class IssuedCode:
    """A code on its way. ``challenge`` names it (keep it server-side); ``masked`` is for display."""

    challenge: str
    channel: Channel
    masked: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"<IssuedCode channel={self.channel.value}>"


class CodeOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"            # not the code; try again (up to MAX_TRIES)
    EXPIRED = "expired"        # unknown, already used, replaced by a newer one, or too old
    TOO_MANY_TRIES = "too_many_tries"  # MAX_TRIES wrong guesses: the code is void, ask for a new one


@dataclass(frozen=True)
class CodeCheck:
    outcome: CodeOutcome

    @property
    def ok(self) -> bool:
        return self.outcome is CodeOutcome.OK


def mask(channel: Channel | str, destination: str) -> str:
    """What a page may show of an address: ``k•••@example.org``, ``•••••999``."""
    if Channel(channel) is Channel.EMAIL:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}\u2022\u2022\u2022@{domain}"
    digits = "".join(c for c in destination if c.isdigit())
    return "\u2022" * 5 + digits[-3:]


def _registered(patron: Patron, channel: Channel) -> str | None:
    return patron.email if channel is Channel.EMAIL else patron.phone


def channels_for(services: Services, patron_id: int) -> list[Channel]:
    """The channels a code can go out on for this patron: an address registered and the channel configured."""
    with services.registry("otp") as reg:
        patron = reg.session.get(Patron, patron_id)
        if patron is None:
            return []
        registered = [c for c in Channel if _registered(patron, c)]
    return [c for c in registered if services.messenger.can_send(c)]


def _clean_destination(channel: Channel, destination: str) -> str:
    cleaned = clean_email(destination) if channel is Channel.EMAIL else clean_phone(destination)
    if not cleaned:
        raise NoDestination("No address to send the code to.")
    return cleaned


def _code_key(challenge: str) -> str:
    return f"otp:code:{challenge}"


def _digest(services: Services, value: str) -> str:
    return services.cipher.code_hash(value, purpose=_HASH_PURPOSE).hex()


def issue_code(services: Services, *, patron_id: int, purpose: str, channel: Channel | str,
               destination: str | None = None, lang: str | None = "nb") -> IssuedCode:
    """Make a code for ``patron_id`` and ``purpose`` and send it over ``channel``.

    Sent to the patron's registered e-mail address or phone unless ``destination`` names another
    (a new address to confirm). Raises NotFound (no such patron), NoDestination (nothing
    registered for that channel), ValidationError (``destination`` is not an e-mail address or
    phone number), TooManyCodes (the hourly allowance is used up) or DeliveryError (the mail
    server or SMS gateway did not take it; nothing usable is stored then).
    """
    channel = Channel(channel)
    if not purpose or len(purpose) > 64:
        raise ValueError("purpose is a short, non-empty name such as 'account:password'")
    with services.registry("otp") as reg:
        patron = reg.session.get(Patron, patron_id)
        if patron is None or patron.status != "active":
            raise NotFound("No such patron.")
        registered = _registered(patron, channel)
    if destination is None:
        if not registered:
            raise NoDestination("There is no e-mail address registered for this patron." if channel is Channel.EMAIL
                                else "There is no phone number registered for this patron.")
        destination = registered
    else:
        destination = _clean_destination(channel, destination)
    settings, state = services.settings, services.state
    if state.incr(f"otp:sends:{patron_id}", SEND_WINDOW) > settings.otp_sends_per_hour:
        raise TooManyCodes("Too many codes have been sent in the last hour. Wait a while before asking for another.")
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    challenge = secrets.token_urlsafe(24)
    expires_at = services.clock() + timedelta(seconds=settings.otp_code_ttl)
    record = {"p": patron_id, "u": purpose, "c": channel.value, "x": int(expires_at.timestamp()),
              "h": _digest(services, f"{challenge}:{code}"), "d": _digest(services, f"{channel.value}:{destination}")}
    current_key = f"otp:current:{patron_id}:{purpose}"
    previous = state.get(current_key)
    if previous is not None:
        state.delete(_code_key(previous.decode()))  # one live code per patron and purpose
    ttl = settings.otp_code_ttl + 60
    state.put(_code_key(challenge), json.dumps(record).encode(), ttl)
    state.put(current_key, challenge.encode(), ttl)
    minutes = max(1, settings.otp_code_ttl // 60)
    message = (texts.one_time_code_email(code, minutes, lang) if channel is Channel.EMAIL
               else texts.one_time_code_sms(code, minutes, lang))
    try:
        services.messenger.send(channel, destination, message)
    except DeliveryError:
        state.delete(_code_key(challenge))
        raise
    log.info("one-time code issued (patron %s, %s, %s)", patron_id, purpose, channel.value)
    return IssuedCode(challenge=challenge, channel=channel, masked=mask(channel, destination), expires_at=expires_at)


def use_code(services: Services, *, challenge: str, code: str, patron_id: int, purpose: str,
             destination: str | None = None) -> CodeCheck:
    """Check ``code`` against the challenge; on success it is used up (a second use is EXPIRED).

    ``patron_id`` and ``purpose`` must be the ones the code was issued for; ``destination``,
    when given, must be the address it was sent to.
    """
    state = services.state
    key = _code_key(challenge) if isinstance(challenge, str) and 0 < len(challenge) <= 64 else None
    raw = state.get(key) if key else None
    if raw is None or key is None:
        return CodeCheck(CodeOutcome.EXPIRED)
    record = json.loads(raw)
    if record["p"] != patron_id or record["u"] != purpose:
        return CodeCheck(CodeOutcome.EXPIRED)
    if services.clock().timestamp() > record["x"]:
        state.delete(key)
        return CodeCheck(CodeOutcome.EXPIRED)
    typed = "".join((code or "").split())[:16]
    right = hmac.compare_digest(_digest(services, f"{challenge}:{typed}"), record["h"])
    if destination is not None:
        try:
            cleaned = _clean_destination(Channel(record["c"]), destination)
        except ValidationError:
            cleaned = ""
        right = hmac.compare_digest(_digest(services, f"{record['c']}:{cleaned}"), record["d"]) and right
    if not right:
        if state.incr(f"otp:tries:{challenge}", services.settings.otp_code_ttl + 60) >= MAX_TRIES:
            state.delete(key)
            return CodeCheck(CodeOutcome.TOO_MANY_TRIES)
        return CodeCheck(CodeOutcome.WRONG)
    # The atomic take decides between two simultaneous right answers: only one gets the value back.
    if state.take(key) != raw:
        return CodeCheck(CodeOutcome.EXPIRED)
    return CodeCheck(CodeOutcome.OK)
