"""The page behind a librarian's reset link (``idp patron reset-password CARD``): choose a new password.

The link's token moves from the URL into the server-side session at once, and the browser is
sent on to a URL without it (so it does not linger in the address bar or the history). The token
is used up only when a valid new password is saved.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from idp.auth import recovery_link
from idp.errors import ValidationError
from idp.registry.credentials import PASSWORD_MAX, PASSWORD_MIN
from idp.web import services
from idp.web.forms import PatronForm

bp = Blueprint("account_reset", __name__)
TOKEN = "reset_token"


class ResetPasswordForm(PatronForm):
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])


def _expired() -> ResponseReturnValue:
    session.pop(TOKEN, None)
    return render_template("error.html", status=400, message=_(
        "This link has expired or was already used. Ask your library for a new one.")), 400


@bp.get("/password/reset/<token>")
def from_link(token: str) -> ResponseReturnValue:
    session[TOKEN] = token[:100]
    return redirect(url_for("account_reset.reset"), 303)


@bp.route("/password/reset", methods=["GET", "POST"])
def reset() -> ResponseReturnValue:
    token = session.get(TOKEN)
    if not token:
        return _expired()
    with services().registry("web") as reg:
        if recovery_link.reset_patron(reg, token) is None:
            return _expired()
    if request.method == "GET":
        return render_template("account_reset.html", form=ResetPasswordForm(formdata=None))
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        return render_template("account_reset.html", form=form), 400
    try:
        with services().registry("web") as reg:
            done = recovery_link.use_reset_token(reg, token, form.new.data or "")
    except ValidationError:
        return render_template("account_reset.html", form=form, error=_(
            "Choose a password of 8 to 256 characters that does not start or end with a space.")), 400
    if not done:
        return _expired()
    session.pop(TOKEN, None)
    return render_template("account_reset_done.html")
