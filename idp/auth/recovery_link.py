"""A librarian's "reset password": a single-use link by e-mail, or a temporary password (no Flask).

``send_reset_link`` e-mails the patron a link (``/password/reset#<token>``) valid for
``IDP_RESET_LINK_TTL`` seconds (default an hour), and the token as a code to paste. The token rides
in the URL's fragment, which browsers never send, so it stays out of every access log. It has 256
bits from ``secrets``; the register keeps only its SHA-256 digest (a token that long needs no slow
or keyed hash), in the database rather than the state store, so that the CLI that makes the link and
the server that opens it always share it. Only the newest link of a patron works, and it is used up
when the new password is saved; any other password change voids it too (patrons.set_secret).

``temporary_password`` sets a random password with the must-change flag, for the librarian to
hand over in person (the seeds' BiblioMo practice): the patron must choose their own at first use.
Both are audited (ids only).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from idp.auth.otp import mask
from idp.delivery import Channel
from idp.delivery import texts
from idp.errors import NotAllowed, NotFound
from idp.registry import patrons
from idp.registry.context import Registry
from idp.registry.credentials import check_password_shape
from idp.registry.models import PasswordResetToken, Patron

if TYPE_CHECKING:
    from idp.services import Services

TEMPORARY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
TEMPORARY_GROUPS = 4  # four groups of four: about 79 bits, typed once


@dataclass(frozen=True)
class ResetLinkSent:
    masked: str
    expires_at: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_reset_token(reg: Registry, patron_id: int, ttl: int) -> str:
    """A fresh token for ``patron_id``; the patron's older links stop working."""
    token = secrets.token_urlsafe(32)
    reg.session.execute(delete(PasswordResetToken).where(PasswordResetToken.patron_id == patron_id))
    now = reg.now()
    reg.session.add(PasswordResetToken(patron_id=patron_id, token_hash=_digest(token), created_at=now,
                                       expires_at=now + timedelta(seconds=ttl)))
    reg.session.flush()
    return token


def reset_patron(reg: Registry, token: str) -> int | None:
    """The patron a live, unused token is for, without using it up (the page shows the form)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    row = reg.session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_hash == _digest(token)))
    if row is None or row.used_at is not None or row.expires_at <= reg.now():
        return None
    return row.patron_id


def use_reset_token(reg: Registry, token: str, new_password: str) -> int | None:
    """Set the new password with the token, once: the patron's id, or None when the token is unknown,
    used or expired.

    The password's shape is checked first (ValidationError), so a bad one does not use up the link.
    """
    check_password_shape(new_password)
    patron_id = reset_patron(reg, token)
    if patron_id is None:
        return None
    # Conditional: of two requests racing with one link, only one finds it unused.
    result = reg.session.execute(update(PasswordResetToken).where(
        PasswordResetToken.token_hash == _digest(token), PasswordResetToken.used_at.is_(None),
        PasswordResetToken.expires_at > reg.now()).values(used_at=reg.now()))
    patron = reg.session.get(Patron, patron_id)
    if not result.rowcount or patron is None:  # type: ignore[attr-defined]
        return None
    patrons.set_secret(reg, patron, "password", new_password, must_change=False)
    reg.audit("patron.reset_password_done", patron_id=patron_id, method="link")
    return patron_id


def void_token(reg: Registry, token: str) -> None:
    """Use up ``token`` without a new password (it was seen where secrets must not be, e.g. a URL path)."""
    if isinstance(token, str) and len(token) <= 100:
        reg.session.execute(delete(PasswordResetToken).where(PasswordResetToken.token_hash == _digest(token)))


def send_reset_link(services: Services, reg: Registry, patron: Patron, *, lang: str = "nb") -> ResetLinkSent:
    """E-mail ``patron`` a reset link (audited). NotAllowed without an e-mail address; DeliveryError
    when the mail server does not take it (the transaction, and with it the link, is then rolled back)."""
    if patron is None:
        raise NotFound("No such patron.")
    if not patron.email:
        raise NotAllowed("This patron has no e-mail address to send a reset link to; "
                         "use --print-temporary to hand over a temporary password instead.")
    ttl = services.settings.reset_link_ttl
    token = new_reset_token(reg, patron.id, ttl)
    page = f"{services.settings.issuer}/password/reset"
    services.messenger.send(Channel.EMAIL, patron.email, texts.reset_link_email(page, token, max(1, ttl // 60), lang))
    reg.audit("patron.reset_password", patron_id=patron.id, method="link")
    return ResetLinkSent(mask(Channel.EMAIL, patron.email), reg.now() + timedelta(seconds=ttl))


def temporary_password(reg: Registry, patron: Patron) -> str:
    """Set and return a random password the patron must change at first use (audited)."""
    value = "-".join("".join(secrets.choice(TEMPORARY_ALPHABET) for _ in range(4)) for _ in range(TEMPORARY_GROUPS))
    patrons.set_secret(reg, patron, "password", value, must_change=True)
    reg.audit("patron.reset_password", patron_id=patron.id, method="temporary")
    return value
