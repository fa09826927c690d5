"""My account: two-step login with an authenticator app (TOTP): set up, new recovery codes, remove.

Each of the three needs a fresh one-time code (idp.web.account_codes); removing also needs the
password and a current authenticator code or a recovery code, so a stolen session alone cannot
take the second factor away. The QR code is an inline SVG (no script, no data: URL, so the
page's Content-Security-Policy stays as strict as everywhere else) with a text alternative, and
the key is shown for typing by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import segno
from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from idp.auth import recovery, totp
from idp.errors import Conflict
from idp.registry import patrons
from idp.registry.credentials import PASSWORD_MAX
from idp.registry.models import Card, Patron
from idp.web import services
from idp.web.account_codes import code_step, done_target, has_proof, login_redirect, patron_id, remember_next, use_proof
from idp.web.forms import PatronForm
from idp.web.logged_in import current_login, step_down

bp = Blueprint("account_totp", __name__, url_prefix="/account/totp")


class ConfirmTotpForm(PatronForm):
    code = StringField(_l("Code from the app"), validators=[DataRequired(message=_l("Enter the 6-digit code "
                                                                                   "your app shows.")),
                                                            Length(max=16)])


class RemoveTotpForm(PatronForm):
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    code = StringField(_l("Code from the app, or a recovery code"),
                       validators=[DataRequired(), Length(max=32)])


def _qr_svg(uri: str) -> Markup:
    """The QR code as inline SVG, hidden from screen readers (the wrapper carries the text alternative)."""
    svg = segno.make(uri, error="m").svg_inline(scale=4, svgclass="qr-code", lineclass=None, omitsize=False)
    marked = svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)
    return Markup(marked)  # noqa: S704 - segno draws the SVG from the URI's bits: no text reaches the markup


def _label(pid: int) -> str:
    """The entry in the authenticator app: the patron's active card number (nothing more personal)."""
    with services().registry("web") as reg:
        patron = reg.session.get(Patron, pid)
        card = next((c for c in patron.cards if c.status == "active"), None) if patron else None
        return card.number if isinstance(card, Card) else str(pid)


def _issuer_label() -> str:
    return urlsplit(services().settings.issuer).hostname or "patron-idp"


@bp.get("")
def status() -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return login_redirect()
    with services().registry("web") as reg:
        enrolled = totp.is_enrolled(reg, pid)
        left = recovery.remaining(reg, pid) if enrolled else 0
    return render_template("totp_status.html", enrolled=enrolled, remaining=left)


def _enrolment_page(pid: int, form: ConfirmTotpForm, *, error: str | None = None, status: int = 200
                    ) -> ResponseReturnValue:
    svc = services()
    with svc.registry("web") as reg:
        enrolment = totp.start_enrolment(reg, svc.state, pid, account=_label(pid), issuer=_issuer_label())
    return render_template("totp_enrol.html", form=form, qr=_qr_svg(enrolment.uri), key=enrolment.manual_key,
                           error=error, window=totp.VALID_WINDOW * totp.INTERVAL), status


@dataclass(frozen=True)
class Detour:
    """Where a patron who may not open a change yet goes instead."""

    page: ResponseReturnValue


def _may_start(proof: str, *, enrolled: bool) -> int | Detour:
    """The patron's id when they may open this change now; otherwise the detour: the login, the
    status page if TOTP is not in the state the change needs, or the one-time code step."""
    pid = patron_id()
    if pid is None:
        return Detour(login_redirect())
    remember_next()
    with services().registry("web") as reg:
        if totp.is_enrolled(reg, pid) != enrolled:
            return Detour(redirect(url_for("account_totp.status"), 303))
    if not has_proof(proof):
        return Detour(code_step(proof))
    return pid


def _may_finish(proof: str) -> int | Detour:
    """Like ``_may_start`` for the form's answer: the one-time code's proof may have expired."""
    pid = patron_id()
    if pid is None:
        return Detour(login_redirect())
    if not has_proof(proof):
        return Detour(code_step(proof, error=_("Your one-time code has expired. Ask for a new one."), status=403))
    return pid


@bp.get("/setup")
def setup() -> ResponseReturnValue:
    pid = _may_start("totp-setup", enrolled=False)
    if isinstance(pid, Detour):
        return pid.page
    return _enrolment_page(pid, ConfirmTotpForm(formdata=None))


@bp.post("/setup")
def setup_confirm() -> ResponseReturnValue:
    pid = _may_finish("totp-setup")
    if isinstance(pid, Detour):
        return pid.page
    form = ConfirmTotpForm()
    if not form.validate_on_submit():
        return _enrolment_page(pid, form, status=400)
    svc = services()
    try:
        with svc.registry("web") as reg:
            codes = totp.confirm_enrolment(reg, svc.state, pid, form.code.data or "")
            if codes is not None:
                reg.notify(pid, "account_changed", what="totp")
    except Conflict:
        return redirect(url_for("account_totp.status"), 303)
    if codes is None:
        return _enrolment_page(pid, form, error=_(
            "That code does not match. Check that the phone's clock is right, wait for the next code and try "
            "again."), status=401)
    use_proof("totp-setup")
    session["account_notice"] = "totp"
    return render_template("totp_recovery.html", codes=codes, next_url=done_target(), new=True)


@bp.route("/recovery-codes", methods=["GET", "POST"])
def recovery_codes() -> ResponseReturnValue:
    pid = _may_start("recovery-codes", enrolled=True)
    if isinstance(pid, Detour):
        return pid.page
    if request.method == "GET":
        return render_template("totp_recovery_confirm.html")
    with services().registry("web") as reg:
        codes = recovery.replace_codes(reg, pid)
    use_proof("recovery-codes")
    return render_template("totp_recovery.html", codes=codes, next_url=done_target(), new=False)


def _remove_page(form: RemoveTotpForm, *, error: str | None = None, status: int = 200) -> ResponseReturnValue:
    return render_template("totp_remove.html", form=form, error=error), status


@bp.get("/remove")
def remove() -> ResponseReturnValue:
    pid = _may_start("totp-remove", enrolled=True)
    if isinstance(pid, Detour):
        return pid.page
    return _remove_page(RemoveTotpForm(formdata=None))


@bp.post("/remove")
def remove_submit() -> ResponseReturnValue:
    pid = _may_finish("totp-remove")
    if isinstance(pid, Detour):
        return pid.page
    form = RemoveTotpForm()
    if not form.validate_on_submit():
        return _remove_page(form, error=_("Enter your password and a code."), status=400)
    svc = services()
    with svc.registry("web") as reg:
        patron = reg.session.get(Patron, pid)
        # One answer for either mistake; a recovery code or TOTP step is spent only with the right password.
        password_ok = patrons.verify_secret(reg, patron, "password", form.password.data or "").ok
        typed = form.code.data or ""
        if recovery.looks_like_recovery_code(typed):
            second_ok = password_ok and recovery.use_code(reg, pid, typed)
        else:
            second_ok = password_ok and totp.verify(reg, svc.state, pid, typed)
        if password_ok and second_ok:
            totp.remove(reg, svc.state, pid)
            reg.notify(pid, "account_changed", what="totp_removed")
    if not (password_ok and second_ok):
        return _remove_page(RemoveTotpForm(formdata=None), error=_(
            "The password or the code is wrong. Nothing was changed."), status=401)
    use_proof("totp-remove")
    login = current_login()
    if login is not None and login.acr == "mfa":
        # The session no longer rests on a second factor the patron still has.
        step_down(login, "password", "otp", "pwd")
    session["account_notice"] = "totp_removed"
    return redirect(done_target(), 303)
