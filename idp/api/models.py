"""The API's bodies and answers as pydantic models: they validate requests and generate the schema.

Every request model forbids unknown fields and does not coerce types (``strict``): a library system
learns of a typo at once instead of seeing it ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from idp.registry.records import LimitedRecord, PatronRecord


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


CardNumber = Annotated[str, Field(min_length=1, max_length=64, description=(
    "As printed or typed: this library's spelling rules apply (spaces, dashes, check digits)."))]
NationalIdNumber = Annotated[str, Field(min_length=11, max_length=11, pattern=r"^[0-9]{11}$",
                                        description="Fødselsnummer or D-number (11 digits).")]


class Answer(BaseModel):
    """Every successful answer of the register API is an object deriving from this: notices the library
    must act on (e.g. a missing data processing agreement) travel in ``warnings``, not in HTTP headers."""

    warnings: list[str] | None = Field(default=None, description=(
        "Things the library must act on; the call itself succeeded."))


class Card(BaseModel):
    number: str
    kind: Literal["digital", "printed", "local"]
    library: str = Field(description="ISIL of the library that issued the card.")


class Membership(BaseModel):
    library: str
    rules_accepted: bool


class Address(BaseModel):
    street: str | None
    postal_code: str | None
    city: str | None


class LimitedPatron(BaseModel):
    """Before the patron has accepted this library's lending rules: enough to recognise them, no more."""

    id: int = Field(description="The register's id of the patron, for the calls that follow.")
    view: Literal["limited"]
    name: str
    cards: list[Card]


class FullPatron(BaseModel):
    """The record this library may see once the patron is active here. A secret address is never stored,
    so ``address`` is null and ``address_secret`` true."""

    id: int
    view: Literal["full"]
    name: str
    cards: list[Card]
    id_kind: str | None
    birth_date: str | None
    address: Address | None
    address_secret: bool
    phone: str | None
    email: str | None
    status: Literal["active", "blocked"]
    loan_ban: bool = Field(description="True while any library where the patron is a member has a loan ban.")
    account: str = Field(description='"national", or the ISIL of the one library a local account lives in.')
    home_library: str
    libraries: list[Membership]
    created_at: str
    last_activity_at: str


class PatronAnswer(Answer):
    patron: LimitedPatron | FullPatron = Field(discriminator="view")


def patron_answer(patron_id: int, record: LimitedRecord | PatronRecord) -> PatronAnswer:
    data = record.to_dict()
    data.pop("full")
    if isinstance(record, PatronRecord):
        return PatronAnswer(patron={**data, "view": "full"})  # type: ignore[arg-type]
    return PatronAnswer(patron={**data, "id": patron_id, "view": "limited"})  # type: ignore[arg-type]


class Lookup(Strict):
    """Exactly one of card_number and national_id. A national identity number travels only in a body."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "oneOf": [{"required": ["card_number"]}, {"required": ["national_id"]}]})

    card_number: CardNumber | None = None
    national_id: NationalIdNumber | None = None
