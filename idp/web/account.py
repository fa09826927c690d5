"""My account: the overview (/account), and what the patron has agreed to share, and with whom
(/account/services), each agreement revocable. The changes (password, PIN, e-mail, phone, two-step
login) live in idp.web.account_changes and idp.web.account_totp, behind idp.web.account_codes."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from idp import relying_parties
from idp.auth import otp, totp
from idp.delivery import Channel
from idp.errors import NotFound
from idp.claims import releases_for
from idp.registry import consents
from idp.registry.models import Credential, Patron
from idp.web import services
from idp.web.facts import in_words

bp = Blueprint("account", __name__, url_prefix="/account")
HISTORY = 50  # the newest releases shown; the log itself keeps every one


def _patron_id() -> int | None:
    return session.get("patron_id")


NOTICES = {
    "password": _l("Your password has been changed."),
    "pin": _l("Your PIN has been changed."),
    "email": _l("Your e-mail address has been changed."),
    "phone": _l("Your phone number has been changed."),
    "totp": _l("Two-step login is set up."),
    "totp_removed": _l("Two-step login has been removed."),
}


@bp.get("")
def overview() -> ResponseReturnValue:
    patron_id = _patron_id()
    if patron_id is None:
        return redirect(url_for("login.login_form", next=request.full_path.rstrip("?")), 303)
    with services().registry("web") as reg:
        patron = reg.session.get(Patron, patron_id)
        if patron is None:
            session.clear()
            return redirect(url_for("login.login_form"), 303)
        cards = [c.number for c in patron.cards if c.status == "active"]
        email = otp.mask(Channel.EMAIL, patron.email) if patron.email else None
        phone = otp.mask(Channel.SMS, patron.phone) if patron.phone else None
        enrolled = totp.is_enrolled(reg, patron_id)
        has_pin = reg.session.get(Credential, (patron_id, "pin")) is not None
        name = patron.name
    notice = NOTICES.get(session.pop("account_notice", None) or "")
    return render_template("account.html", name=name, cards=cards, email=email, phone=phone, enrolled=enrolled,
                           has_pin=has_pin, notice=notice, acr=session.get("acr"))


@bp.get("/services")
def shared() -> ResponseReturnValue:
    patron_id = _patron_id()
    if patron_id is None:
        return redirect(url_for("login.login_form", next=request.full_path), 303)
    rows = []
    with services().registry("web") as reg:
        for client_id, names in sorted(consents.consents_of(reg, patron_id).items()):
            try:
                name = relying_parties.get(reg, client_id).name
            except NotFound:
                continue
            rows.append({"client_id": client_id, "name": name, "facts": [in_words(n) for n in names]})
        history = releases_for(reg, patron_id, limit=HISTORY)
    return render_template("account_services.html", rows=sorted(rows, key=lambda r: r["name"]), history=history)


@bp.post("/services/<client_id>/revoke")
def revoke(client_id: str) -> ResponseReturnValue:
    patron_id = _patron_id()
    if patron_id is None:
        return redirect(url_for("login.login_form"), 303)
    with services().registry("web") as reg:
        consents.withdraw_consent(reg, patron_id, client_id)
        reg.audit("consent.revoke", patron_id=patron_id, client_id=client_id[:64])
    # What the service holds stops working now, not at expiry.
    services().oidc.grants.revoke_client(patron_id, client_id)
    return redirect(url_for("account.shared"), 303)
