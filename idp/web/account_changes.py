"""My account: change password, PIN, e-mail address and phone number, each behind a fresh
one-time code (idp.web.account_codes).

A new e-mail address or phone number is confirmed by a second code sent to the NEW address:
the first code proves the person at the keyboard is the patron (it goes to what the register
already holds), the second that the new address is theirs and typed right, so reset links and
codes never go to a stranger's address. The new address is sent a code only after the first
proof, so nobody can use this page to send messages to arbitrary addresses.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from idp.auth import otp
from idp.auth.password import change_password
from idp.delivery import Channel, DeliveryError
from idp.errors import NotAllowed, ValidationError
from idp.registry import patrons
from idp.registry.credentials import PASSWORD_MAX, PASSWORD_MIN
from idp.registry.models import Patron
from idp.registry.owned import owned_fields
from idp.web import services
from idp.web.account_codes import (code_step, done_target, has_proof, login_redirect, patron_id, remember_next,
                                   use_proof)
from idp.web.forms import PatronForm
from idp.web.sessions import password_changed

bp = Blueprint("account_changes", __name__, url_prefix="/account")
CONTACT = "account_contact"  # the new address waiting for its own code: {kind, value, challenge, masked}


class PasswordChangeForm(PatronForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])


class PinChangeForm(PatronForm):
    new = PasswordField(_l("New PIN"), validators=[DataRequired(), Length(max=16)])
    confirm = PasswordField(_l("Repeat the new PIN"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The two PINs differ."))])


class EmailChangeForm(PatronForm):
    value = StringField(_l("New e-mail address"), validators=[DataRequired(), Length(max=254)])


class PhoneChangeForm(PatronForm):
    value = StringField(_l("New phone number"), validators=[DataRequired(), Length(max=32)])


class NewAddressCodeForm(PatronForm):
    code = StringField(_l("Code sent to the new address"),
                       validators=[DataRequired(message=_l("Enter the code we sent you.")), Length(max=16)])


def _done(what: str) -> ResponseReturnValue:
    session["account_notice"] = what
    return redirect(done_target(), 303)


# -- password -------------------------------------------------------------------------------------

@bp.get("/password")
def password() -> ResponseReturnValue:
    if patron_id() is None:
        return login_redirect()
    remember_next()
    if not has_proof("password"):
        return code_step("password")
    return render_template("account_password.html", form=PasswordChangeForm(formdata=None))


@bp.post("/password")
def password_submit() -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return login_redirect()
    if not has_proof("password"):
        return code_step("password", error=_("Your one-time code has expired. Ask for a new one."), status=403)
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return render_template("account_password.html", form=form), 400
    try:
        with services().registry("web") as reg:
            changed = change_password(reg, pid, form.current.data or "", form.new.data or "")
            if changed:
                reg.notify(pid, "account_changed", what="password")
    except ValidationError:
        return render_template("account_password.html", form=form, error=_(
            "Choose a new password of 8 to 256 characters that is different from the current one and does not "
            "start or end with a space.")), 400
    if not changed:
        return render_template("account_password.html", form=form,
                               error=_("The current password is wrong.")), 401
    use_proof("password")
    session["must_change"] = False
    password_changed(session, pid)
    return _done("password")


# -- PIN ------------------------------------------------------------------------------------------

@bp.route("/pin", methods=["GET", "POST"])
def pin() -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return login_redirect()
    remember_next()
    if not has_proof("pin"):
        return code_step("pin", error=_("Your one-time code has expired. Ask for a new one.")
                         if _posted() else None, status=403 if _posted() else 200)
    form = PinChangeForm(formdata=None) if not _posted() else PinChangeForm()
    if not _posted():
        return render_template("account_pin.html", form=form)
    if not form.validate_on_submit():
        return render_template("account_pin.html", form=form), 400
    try:
        with services().registry("web") as reg:
            patron = reg.session.get(Patron, pid)
            assert patron is not None  # noqa: S101 - the logged-in patron (a deleted one has no session)
            patrons.set_secret(reg, patron, "pin", form.new.data or "")
            reg.notify(pid, "account_changed", what="pin")
    except ValidationError:
        return render_template("account_pin.html", form=form, error=_("A PIN has 4 to 6 digits.")), 400
    use_proof("pin")
    return _done("pin")


def _posted() -> bool:
    return request.method == "POST"


# -- e-mail and phone -----------------------------------------------------------------------------

_CONTACT = {
    "email": (Channel.EMAIL, EmailChangeForm, "account_changes.email_confirm"),
    "phone": (Channel.SMS, PhoneChangeForm, "account_changes.phone_confirm"),
}


def _clean(kind: str, value: str) -> str | None:
    return patrons.clean_email(value) if kind == "email" else patrons.clean_phone(value)


def _bad_value(kind: str) -> str:
    return (_("That is not an e-mail address. Write it as name@example.no.") if kind == "email"
            else _("A phone number has 5 to 15 digits, optionally after a +."))


def _contact_page(kind: str, form: PatronForm, *, error: str | None = None, status: int = 200,
                  pending: dict | None = None) -> ResponseReturnValue:
    heading = _("Change e-mail address") if kind == "email" else _("Change phone number")
    return render_template("account_contact.html", kind=kind, heading=heading, form=form,
                           code_form=NewAddressCodeForm(formdata=None),
                           pending=pending, error=error, confirm_endpoint=_CONTACT[kind][2],
                           minutes=services().settings.otp_code_ttl // 60), status


def _contact(kind: str) -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return login_redirect()
    channel, form_class, _endpoint = _CONTACT[kind]
    remember_next()
    owner = _owner(pid, kind)
    if owner is not None:
        return render_template("error.html", status=403, message=_owned_message(kind, owner)), 403
    if not has_proof(kind):
        session.pop(CONTACT, None)
        return code_step(kind, error=_("Your one-time code has expired. Ask for a new one.") if _posted() else None,
                         status=403 if _posted() else 200)
    if not _posted():
        pending = session.get(CONTACT)
        return _contact_page(kind, form_class(formdata=None),
                             pending=pending if pending and pending.get("kind") == kind else None)
    form = form_class()
    if not form.validate_on_submit():
        return _contact_page(kind, form, status=400)
    try:
        value = _clean(kind, form.value.data or "")
    except ValidationError:
        value = None
    if not value:
        return _contact_page(kind, form, error=_bad_value(kind), status=400)
    with services().registry("web") as reg:
        patron = reg.session.get(Patron, pid)
        current = (patron.email if kind == "email" else patron.phone) if patron else None
    if value == current:
        return _contact_page(kind, form, error=_("That is the address you have already."), status=400)
    try:
        issued = otp.issue_code(services(), patron_id=pid, purpose=f"account:{kind}:new", channel=channel,
                                destination=value, lang=_lang())
    except otp.TooManyCodes:
        return _contact_page(kind, form, error=_("We have sent you several codes in the last hour. Wait a while, "
                                                 "then ask for a new one."), status=429)
    except DeliveryError:
        return _contact_page(kind, form, error=_("We could not send a code to that address. Check it, or try "
                                                 "again in a few minutes."), status=502)
    except ValidationError:
        return _contact_page(kind, form, error=_bad_value(kind), status=400)
    pending = {"kind": kind, "value": value, "challenge": issued.challenge, "masked": issued.masked}
    session[CONTACT] = pending
    return redirect(url_for(f"account_changes.{kind}"), 303)


def _owner(pid: int, kind: str) -> str | None:
    """The federation that owns this field for this patron (read-only here), if any."""
    with services().registry("web") as reg:
        return owned_fields(reg, pid).get(kind)


def _owned_message(kind: str, owner: str) -> str:
    return (_("Your e-mail address comes from your %(federation)s account: change it there.", federation=owner)
            if kind == "email" else
            _("Your phone number comes from your %(federation)s account: change it there.", federation=owner))


def _contact_confirm(kind: str) -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return login_redirect()
    pending = session.get(CONTACT)
    if not has_proof(kind) or not pending or pending.get("kind") != kind:
        session.pop(CONTACT, None)
        return code_step(kind, error=_("Your one-time code has expired. Ask for a new one."), status=403)
    form = NewAddressCodeForm()
    form_class = _CONTACT[kind][1]
    if not form.validate_on_submit():
        return _contact_page(kind, form_class(formdata=None), pending=pending,
                             error=_("Enter the code we sent you."), status=400)
    result = otp.use_code(services(), challenge=pending["challenge"], code=form.code.data or "", patron_id=pid,
                          purpose=f"account:{kind}:new", destination=pending["value"])
    if result.outcome is otp.CodeOutcome.WRONG:
        return _contact_page(kind, form_class(formdata=None), pending=pending,
                             error=_("That is not the code we sent. Check it and try again."), status=401)
    if not result.ok:
        session.pop(CONTACT, None)
        return _contact_page(kind, form_class(formdata=None),
                             error=_("That code no longer works. Enter the new address again to get a new code."),
                             status=401 if result.outcome is otp.CodeOutcome.TOO_MANY_TRIES else 400)
    try:
        with services().registry("web") as reg:
            patron = reg.session.get(Patron, pid)
            assert patron is not None  # noqa: S101 - the logged-in patron (a deleted one has no session)
            patrons.update_patron(reg, patron, **{kind: pending["value"]})  # notifies the old address
    except NotAllowed:  # a federation took the field over since the page was shown
        session.pop(CONTACT, None)
        owner = _owner(pid, kind) or "?"
        return render_template("error.html", status=403, message=_owned_message(kind, owner)), 403
    session.pop(CONTACT, None)
    use_proof(kind)
    return _done(kind)


@bp.route("/email", methods=["GET", "POST"])
def email() -> ResponseReturnValue:
    return _contact("email")


@bp.post("/email/confirm")
def email_confirm() -> ResponseReturnValue:
    return _contact_confirm("email")


@bp.route("/phone", methods=["GET", "POST"])
def phone() -> ResponseReturnValue:
    return _contact("phone")


@bp.post("/phone/confirm")
def phone_confirm() -> ResponseReturnValue:
    return _contact_confirm("phone")


def _lang() -> str:
    return str(get_locale() or "nb")
