"""Consent wording without Flask: a message id and its parameters, translated by the web layer.

``N_`` only marks a string for ``pybabel extract`` (babel.cfg lists it as a keyword); it
returns the string unchanged, so this package never needs a request or a locale.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

_NO_PARAMS: Mapping[str, Any] = MappingProxyType({})


def N_(message: str) -> str:  # noqa: N802 - the conventional name of the no-op gettext marker
    return message


class Wording(NamedTuple):
    """What the consent page says for one claim: ``gettext(msgid) % params`` in the patron's language."""

    msgid: str
    params: Mapping[str, Any] = _NO_PARAMS
