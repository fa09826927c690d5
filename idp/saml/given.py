"""What an SP was given at single sign-on: the NameID and the AuthnStatement's SessionIndex.

Kept per login session (plain JSON values) so that single logout can name the patron to each SP
as that SP knows them, and can tell whether an SP's LogoutRequest names this session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GivenSubject:
    name_id: str
    name_id_format: str
    session_index: str

    def __repr__(self) -> str:  # a NameID is a personal identifier: keep it out of logs
        return f"<GivenSubject {self.name_id_format.rsplit(':', 1)[-1]}>"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GivenSubject:
        return cls(name_id=str(data["name_id"]), name_id_format=str(data["name_id_format"]),
                   session_index=str(data["session_index"]))
