"""Self-registration with ID-porten, and a guardian's card for a child: thin views over the register.

A person ID-porten vouched for who has no card yet waits in the session (idp.web.idporten) and
registers here; a guardian logged in with ID-porten creates a card for a child under 15.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from idp.auth.idporten import is_idporten_level
from idp.errors import Conflict, IdpError, InvalidNationalId
from idp.registry import guardians, libraries, patrons
from idp.registry.models import Patron
from idp.registry.national_id import parse_national_id
from idp.settings import Settings
from idp.web import services
from idp.web.forms import PatronForm
from idp.web.idporten import METHOD as IDPORTEN
from idp.web.idporten import client, log_in_waiting_person, waiting_person
from idp.web.logged_in import current_login
from idp.web.login import safe_next

bp = Blueprint("idporten_register", __name__)


def install(app: Flask, settings: Settings) -> None:
    app.register_blueprint(bp)


class RegistrationForm(PatronForm):
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    home_library = SelectField(_l("Home library"), validators=[DataRequired()], validate_choice=True)
    email = StringField(_l("E-mail address"), validators=[
        DataRequired(), Length(max=254),
        Regexp(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$", message=_l("Enter an e-mail address like name@example.no."))])
    phone = StringField(_l("Mobile phone number"), validators=[
        DataRequired(), Length(max=32),
        Regexp(r"^\+?[\d\s()-]{5,24}$", message=_l("Enter a phone number of 5 to 15 digits, like +47 912 34 567."))])


class ChildForm(PatronForm):
    national_id = StringField(_l("The child's national identity number (11 digits)"),
                              validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("The child's full name"), validators=[DataRequired(), Length(max=200)])
    home_library = SelectField(_l("Home library"), validators=[DataRequired()], validate_choice=True)
    next = HiddenField()


def _library_choices() -> list[tuple[str, str]]:
    with services().registry("web") as reg:
        return [(lib.isil, lib.name) for lib in libraries.libraries_issuing_digital_cards(reg)]


def _register_message(exc: IdpError) -> str:
    """Domain errors in the patron's language where we know them; the register's own words otherwise."""
    if isinstance(exc, InvalidNationalId):
        return _("This is not a valid Norwegian national identity number (fødselsnummer or D-nummer).")
    if isinstance(exc, Conflict):
        return _("This person already has a library card in the national register.")
    if isinstance(exc, guardians.GuardianRegisters):
        return _("You are under 15: a parent or guardian creates your library card. They log in with ID-porten "
                 "and choose \"Create a card for a child\".")
    if isinstance(exc, guardians.RegistersAlone):
        return _("From 15 a child registers alone, with their own ID-porten login.")
    return exc.message


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    """A person ID-porten vouched for, with no card yet, chooses a home library and gives e-mail and phone."""
    if client() is None:
        abort(404)
    if session.get("patron_id") is not None:
        return render_template("register_done.html", card=None, already=True, next=url_for("pages.landing"))
    found = waiting_person()
    if found is None:
        return render_template("register_start.html")
    person, nid = found
    form = RegistrationForm()
    form.home_library.choices = _library_choices()
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("register.html", form=form), status
    try:
        with services().registry("idporten") as reg:
            patron, card = guardians.register_self(reg, patrons.NewPatron(
                name=form.name.data or "", home_library=form.home_library.data or "", national_id=nid,
                email=form.email.data, phone=form.phone.data))
            patron_id, number = patron.id, card.number
    except IdpError as exc:
        # The transaction rolled back: nothing of the attempt is stored.
        return render_template("register.html", form=form, error=_register_message(exc)), exc.http_status
    target = safe_next(person.get("next"))
    log_in_waiting_person(person, patron_id)
    return render_template("register_done.html", card=number, already=False, next=target)


def _guardian_logged_in_with_idporten() -> int | None:
    login = current_login()
    if login is None or login.upstream is None or login.upstream.method != IDPORTEN.name or \
            not is_idporten_level(login.acr):
        return None
    return login.patron_id


@bp.route("/register/child", methods=["GET", "POST"])
def register_child() -> ResponseReturnValue:
    """A guardian logged in with ID-porten creates a card for a child under 15."""
    if client() is None:
        abort(404)
    guardian_id = _guardian_logged_in_with_idporten()
    if guardian_id is None:
        return render_template("register_child_login.html",
                               login_url=url_for("idporten.start", next=url_for("idporten_register.register_child")))
    form = ChildForm()
    form.home_library.choices = _library_choices()
    if request.method == "GET":
        with services().registry("web") as reg:
            guardian = reg.session.get(Patron, guardian_id)
            home = guardian.home_library.isil if guardian is not None else None
        if home in {isil for isil, _name in form.home_library.choices}:
            form.home_library.data = home
        return render_template("register_child.html", form=form)
    if not form.validate_on_submit():
        return render_template("register_child.html", form=form), 400
    try:
        parse_national_id(form.national_id.data or "")
        with services().registry("idporten") as reg:
            guardian = reg.session.get(Patron, guardian_id)
            if guardian is None:
                session.clear()
                return redirect(url_for("login.login_form"), 303)
            _child, card = guardians.register_child(reg, guardian, patrons.NewPatron(
                name=form.name.data or "", home_library=form.home_library.data or "",
                national_id=form.national_id.data))
            number = card.number
    except IdpError as exc:
        return render_template("register_child.html", form=form, error=_register_message(exc)), exc.http_status
    return render_template("register_child_done.html", card=number)
