"""Step-up to two-step login: the second factor after the password (thin views over idp.auth).

A relying party that needs ``mfa`` (its minimum, or ``acr_values``) while the session holds only
``password`` is sent here by idp.web.oidc instead of to the password page. A patron with TOTP
types the code from their app (or a recovery code); a patron without it is told how to set it up
(or to use ID-porten), and is not shown an error. Success gives the session ``acr`` ``mfa``,
``amr`` ``["pwd", "otp"]``, a new ``auth_time`` and a new session id.
"""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length
from werkzeug.wrappers import Response

from idp.assurance import rank
from idp.auth import recovery, totp
from idp.settings import Settings
from idp.web import login_methods, services
from idp.web.forms import PatronForm
from idp.web.logged_in import current_login, step_up
from idp.web.login import safe_next
from idp.web.login_methods import LoginMethod, Notice, Offer

bp = Blueprint("stepup", __name__)
LEVEL = "mfa"  # what this page gives: password + TOTP
AFTER = "password"  # the login it steps up


def _offer(needed: str, next_url: str) -> Offer | None:
    """On the login page, a service needing this level is announced (the password comes first)."""
    if needed != LEVEL or not login_methods.reaches(AFTER, needed):
        return None
    return Offer(notice=Notice("mfa-help", _("This service requires two-step login: after your password, you type "
                                             "a code from the authenticator app on your phone.")))


METHOD = LoginMethod("second_factor", levels=lambda: (LEVEL,), offer=_offer, after=AFTER)


def install(app: Flask, settings: Settings) -> None:
    app.register_blueprint(bp)
    login_methods.register(app, METHOD)


class SecondFactorForm(PatronForm):
    code = StringField(_l("Code from your authenticator app"),
                       validators=[DataRequired(message=_l("Enter the 6-digit code your app shows.")),
                                   Length(max=32)])
    next = HiddenField()


def wants_second_factor(needed: str) -> bool:
    """True when a logged-in session falls short of ``needed`` and this page can close the gap."""
    login = current_login()
    if login is None or login.must_change:
        return False
    return rank(login.acr) < rank(needed) <= rank(LEVEL)


def _instead(target: str) -> login_methods.Button | None:
    """Another registered way to reach this level, offered on this page (ID-porten, when set up)."""
    offers = login_methods.login_page(LEVEL, target).buttons
    return next((button for button in offers if button.instead), None)


def _page(form: SecondFactorForm, *, error: str | None = None, status: int = 200) -> ResponseReturnValue:
    pid = session["patron_id"]
    target = safe_next(form.next.data)
    with services().registry("web") as reg:
        enrolled = totp.is_enrolled(reg, pid)
    return render_template("stepup.html", form=form, enrolled=enrolled, error=error,
                           setup_url=url_for("account_totp.setup", next=target),
                           instead=_instead(target), cancel_url=target), status


@bp.get("/login/second-factor")
def second_factor() -> ResponseReturnValue:
    if session.get("patron_id") is None:
        return redirect(url_for("login.login_form", next=request.full_path.rstrip("?")), 303)
    form = SecondFactorForm(formdata=None, next=request.args.get("next", ""))
    login = current_login()
    if login is not None and rank(login.acr) >= rank(LEVEL):
        return redirect(safe_next(form.next.data), 303)
    return _page(form)


@bp.post("/login/second-factor")
def submit() -> ResponseReturnValue:
    pid = session.get("patron_id")
    if pid is None:
        return redirect(url_for("login.login_form"), 303)
    form = SecondFactorForm()
    if not form.validate_on_submit():
        return _page(form, error=_("Enter the 6-digit code your app shows."), status=400)
    svc = services()
    typed = form.code.data or ""
    with svc.registry("web") as reg:
        if recovery.looks_like_recovery_code(typed):
            method, ok = "recovery_code", recovery.use_code(reg, pid, typed)
        else:
            method, ok = "totp", totp.verify(reg, svc.state, pid, typed)
        if ok:
            reg.audit("login.second_factor", patron_id=pid, method=method)
    if not ok:
        form.code.data = ""
        return _page(form, error=_("That code is not right, or it was used already. Wait for the next code in "
                                   "your app and try again."), status=401)
    # A new authentication: a new session id, and the level and methods it rests on.
    login = current_login()
    assert login is not None  # noqa: S101 - the step-up page is reached only when logged in
    step_up(login, LEVEL, "otp")
    return redirect(safe_next(form.next.data), 303)


def step_up_then(resume_endpoint: str) -> Response:
    """To the second-factor page; back to ``resume_endpoint`` afterwards (the request waits in the session)."""
    return redirect(url_for("stepup.second_factor", next=url_for(resume_endpoint)), 303)
