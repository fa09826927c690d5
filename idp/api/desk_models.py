"""Bodies and answers of the desk operations (idp.api.desk): registering, memberships, cards,
activity and credentials. Requests forbid unknown fields and do not coerce types (``Strict``); dates
travel as ISO 8601 strings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field

from idp.api.models import Answer, CardNumber, NationalIdNumber, Strict


def _iso_text(value: Any) -> Any:
    # The models are strict, but JSON has no date type: accept the ISO string, never a number.
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 string")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_text), Field(strict=False, description="YYYY-MM-DD")]
IsoMoment = Annotated[AwareDatetime, BeforeValidator(_iso_text), Field(
    strict=False, description="An ISO 8601 date-time with its offset, not in the future.")]
Text = Annotated[str, Field(max_length=200)]


class NewAddress(Strict):
    street: Text
    postal_code: Annotated[str, Field(max_length=16)]
    city: Text


class PrintedCardRequest(Strict):
    """A printed card: for a national account a number of this library's printed series, for a local
    account the library's own number."""

    kind: Literal["printed"]
    number: CardNumber


class DigitalCardRequest(Strict):
    """A digital card, numbered from this library's digital series (national accounts only)."""

    kind: Literal["digital"]


class Registration(Strict):
    """A new patron registered at the desk. A valid national_id gives a national account whose home
    library is this one; a DUF number, or no number, gives a local account of this library (its card
    must then be printed). A secret address is never sent: send address_secret true and no address."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    national_id: NationalIdNumber | None = None
    duf: Annotated[str, Field(pattern=r"^[0-9]{12}$", description="A DUF number (12 digits).")] | None = None
    birth_date: IsoDate | None = Field(default=None, description="YYYY-MM-DD; needed only without national_id.")
    email: Annotated[str, Field(max_length=254)] | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    address: NewAddress | None = None
    address_secret: bool = False
    card: PrintedCardRequest | DigitalCardRequest = Field(discriminator="kind")


class RulesAccepted(Strict):
    """The version of this library's lending rules the patron accepted: its current one. A library
    with no rules text yet takes no version (absent or null)."""

    version: Annotated[int, Field(ge=1)] | None = None


class NewCard(Strict):
    number: CardNumber


class LocalCardMerge(Strict):
    local_card: CardNumber = Field(description="A local card of this library, merged into the national account.")


class Activity(Strict):
    kind: Literal["loan", "renewal", "return", "visit"]
    at: IsoMoment | None = Field(default=None, description="When it happened (default: now).")


class PasswordReset(Strict):
    delivery: Literal["email", "temporary"] = Field(description=(
        '"email": a single-use reset link to the patron\'s e-mail address; "temporary": a temporary password '
        "in this answer, once, which the patron must change at first login."))


class ResetStarted(Answer):
    delivery: Literal["email", "temporary"]
    sent_to: str | None = Field(default=None, description="The masked e-mail address the link went to.")
    valid_until: datetime | None = Field(default=None, description="When the link stops working.")
    temporary_password: str | None = Field(default=None, description="Shown once; never kept in readable form.")
    must_change: bool | None = None


class CredentialStatusAnswer(Answer):
    """Whether the patron has secrets, never the secrets themselves. The per-card daily lock after
    failed logins is not shown (it lives in the rate limiter's store)."""

    has_password: bool
    has_pin: bool
    must_change: bool = Field(description="The password is a first or temporary one, to change at next login.")
    first_credentials_changed: bool = Field(description=(
        "A first or temporary password or PIN was ever replaced by one of the patron's own."))
    last_used: date = Field(description="The last login or activity a library reported (one date for both).")
    last_login: datetime | None = Field(description="The last login by any method; null when none is on record.")
    locked_until: datetime | None = Field(description=(
        "Logins are refused until then after 10 wrong guesses in a day; null when they are not."))


class ActivityAnswer(Answer):
    recorded: bool = Field(description="False when the register already knew of activity as recent.")
    last_activity: date
