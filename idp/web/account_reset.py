"""The page behind a librarian's reset link (``idp patron reset-password CARD``): choose a new password.

The link is ``/password/reset#<token>``: a URL fragment never reaches a server, so no access log
(ours, a proxy's) records the token. A small script (static/password-reset.js) takes it from the
fragment, clears it from the address bar and history, and POSTs it here in a form; without
JavaScript the patron pastes the code the e-mail gives under the link into the same form. The
token then waits in the server-side session and is used up only when a valid new password is saved.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from idp.auth import recovery_link
from idp.errors import ValidationError
from idp.registry.credentials import PASSWORD_MAX, PASSWORD_MIN
from idp.web import services
from idp.web.forms import PatronForm
from idp.web.sessions import password_changed

bp = Blueprint("account_reset", __name__)
TOKEN = "reset_token"  # noqa: S105 - the form field's name, not a secret


class ResetCodeForm(PatronForm):
    code = StringField(_l("Code from the e-mail"),
                       validators=[DataRequired(message=_l("Enter the code from the e-mail.")), Length(max=100)])


class ResetPasswordForm(PatronForm):
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])


def _code_page(form: ResetCodeForm | None = None, *, error: str | None = None,
               status: int = 200) -> ResponseReturnValue:
    return render_template("account_reset_code.html", form=form or ResetCodeForm(formdata=None), error=error), status


def _expired() -> ResponseReturnValue:
    session.pop(TOKEN, None)
    return _code_page(error=_("This link has expired or was already used. Ask your library for a new one."),
                      status=400)


def _live_token() -> str | None:
    """The token waiting in the session, while it still works."""
    token = session.get(TOKEN)
    if not token:
        return None
    with services().registry("web") as reg:
        return token if recovery_link.reset_patron(reg, token) is not None else None


@bp.get("/password/reset")
def reset() -> ResponseReturnValue:
    if session.get(TOKEN) is None:
        return _code_page()
    if _live_token() is None:
        return _expired()
    return render_template("account_reset.html", form=ResetPasswordForm(formdata=None))


@bp.post("/password/reset")
def reset_submit() -> ResponseReturnValue:
    if "code" in request.form:
        return _take_code()
    token = _live_token()
    if token is None:
        return _expired()
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        return render_template("account_reset.html", form=form), 400
    try:
        with services().registry("web") as reg:
            patron_id = recovery_link.use_reset_token(reg, token, form.new.data or "")
    except ValidationError:
        return render_template("account_reset.html", form=form, error=_(
            "Choose a password of 8 to 256 characters that does not start or end with a space.")), 400
    if patron_id is None:
        return _expired()
    session.pop(TOKEN, None)
    password_changed(session, patron_id)
    return render_template("account_reset_done.html")


def _take_code() -> ResponseReturnValue:
    """The token from the link's fragment (sent by the script) or pasted by the patron: into the session."""
    form = ResetCodeForm()
    if not form.validate_on_submit():
        return _code_page(form, status=400)
    token = (form.code.data or "").strip()
    with services().registry("web") as reg:
        if recovery_link.reset_patron(reg, token) is None:
            return _expired()
    session[TOKEN] = token
    return redirect(url_for("account_reset.reset"), 303)


@bp.get("/password/reset/<path:token>")
def old_link(token: str) -> ResponseReturnValue:
    """A link of the old shape, with the token in the path: that token has been through access logs,
    so it is used up here, unused for anything else; we send no link of this shape."""
    with services().registry("web") as reg:
        recovery_link.void_token(reg, token)
    return render_template("error.html", status=404, message=_(
        "This link no longer works. Ask your library for a new one.")), 404
