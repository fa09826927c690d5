"""Login, logout and the forced password change: thin views over idp.auth."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from idp.auth.password import Outcome, change_password, password_login
from idp.errors import ValidationError
from idp.settings import Settings
from idp.web import login_methods, services, waiting
from idp.web.forms import ChangePasswordForm, LoginForm
from idp.web.logged_in import complete_login
from idp.web.logout import log_out
from idp.web.login_methods import LoginMethod, Offer
from idp.web.sessions import password_changed

bp = Blueprint("login", __name__)
LEVEL = "password"  # what the card and its password give on their own


def _offer(needed: str, next_url: str) -> Offer | None:
    """The card-and-password form, when a login that starts with it (and a second factor) can reach ``needed``."""
    return Offer(form=True) if login_methods.reaches(METHOD.name, needed) else None


METHOD = LoginMethod("password", levels=lambda: (LEVEL,), offer=_offer)


def install(app: Flask, settings: Settings) -> None:
    app.register_blueprint(bp)
    login_methods.register(app, METHOD)
    app.context_processor(_template_helpers)


def _template_helpers() -> dict[str, Any]:
    # The ways to log in that can reach the level the waiting service needs (templates/login.html).
    return {"login_page": lambda next_url: login_methods.login_page(waiting.needed_level(), next_url or "")}


def safe_next(target: str | None) -> str:
    """Only paths on this site: a login must never bounce a patron to an attacker's page."""
    if not target:
        return url_for("pages.landing")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("pages.landing")
    return target


def logged_in_patron() -> int | None:
    return session.get("patron_id")


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    form = LoginForm(next=request.args.get("next", ""))
    return render_template("login.html", form=form)


@bp.post("/login")
def login_submit() -> ResponseReturnValue:
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form, error=_("Enter your card number and password.")), 400
    with services().registry("web") as reg:
        result = password_login(reg, form.username.data or "", form.password.data or "")
    if result.outcome is Outcome.PIN_ON_WEB:
        # 400, not 401: nothing was checked, so it is not a guess and does not count towards the lock.
        return render_template("login.html", form=form, pin_help=True), 400
    if not result.ok:
        return render_template("login.html", form=form, error=_("Login failed. Check the card number and "
                                                                "password and try again.")), 401
    assert result.patron_id is not None  # noqa: S101 - a successful login names its patron
    complete_login(result.patron_id, LEVEL, ["pwd"], must_change=result.must_change)
    target = safe_next(form.next.data)
    if result.must_change:
        return redirect(url_for("login.change_password_form", next=target), 303)
    return redirect(target, 303)


@bp.route("/password/change", methods=["GET", "POST"])
def change_password_form() -> ResponseReturnValue:
    patron_id = logged_in_patron()
    if patron_id is None:
        return redirect(url_for("login.login_form", next=request.full_path), 303)
    form = ChangePasswordForm(next=request.args.get("next", ""))
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("change_password.html", form=form, forced=session.get("must_change")), status
    try:
        with services().registry("web") as reg:
            changed = change_password(reg, patron_id, form.current.data or "", form.new.data or "")
    except ValidationError as exc:
        return render_template("change_password.html", form=form, error=exc.message,
                               forced=session.get("must_change")), 400
    if not changed:
        return render_template("change_password.html", form=form, error=_("The current password is wrong."),
                               forced=session.get("must_change")), 401
    session["must_change"] = False
    password_changed(session, patron_id)
    return redirect(safe_next(form.next.data), 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    # Everywhere the login reached, and upstream (ID-porten, a federation) too (idp.web.logout).
    return log_out(finish={"target": url_for("logout.logged_out")})


def must_change_gate() -> ResponseReturnValue | None:
    """Before anything else, a patron with a must-change password goes to the change page."""
    if session.get("must_change") and request.endpoint not in {"login.change_password_form", "login.logout",
                                                               "pages.healthz", "static"}:
        return redirect(url_for("login.change_password_form", next=request.full_path), 303)
    return None
