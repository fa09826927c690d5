"""My account's gate: every change needs a fresh one-time code sent by e-mail or SMS.

A change page (password, PIN, e-mail, phone, two-step login) first asks which of the patron's
registered channels to use, sends a code there (idp.auth.otp, purpose ``account:<action>``), and
takes it back. A right code leaves a *proof* in the server-side session for that one action: it
lasts ``PROOF_TTL`` seconds and is used up by the change it allows, so every change needs its own
fresh code, and a mistake in the new value (a too-short password) does not waste the code.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import HiddenField, RadioField, StringField
from wtforms.validators import DataRequired, Length

try:  # WTForms 3.3 deprecates (value, label) tuples as choices
    from wtforms.fields.choices import SelectChoice as _Choice  # type: ignore[attr-defined,unused-ignore]  # stubs lag 3.3
except ImportError:  # pragma: no cover - older WTForms
    def _Choice(value: str, label: str) -> Any:  # type: ignore[no-redef,unused-ignore]  # noqa: N802
        return (value, label)

from idp.auth import otp
from idp.delivery import Channel, DeliveryError
from idp.registry.models import Patron
from idp.settings import Settings
from idp.web import clock_seconds, services
from idp.web.forms import PatronForm
from idp.web.limits import limit_views
from idp.web.login import safe_next

bp = Blueprint("account_codes", __name__, url_prefix="/account/code")

PROOF_TTL = 10 * 60
PENDING = "account_code"
PROOF = "account_proof"
NEXT = "account_next"

# action -> (endpoint of its page, its heading)
ACTIONS: dict[str, tuple[str, Any]] = {
    "password": ("account_changes.password", _l("Change password")),
    "pin": ("account_changes.pin", _l("Change PIN")),
    "email": ("account_changes.email", _l("Change e-mail address")),
    "phone": ("account_changes.phone", _l("Change phone number")),
    "totp-setup": ("account_totp.setup", _l("Set up two-step login")),
    "totp-remove": ("account_totp.remove", _l("Remove two-step login")),
    "recovery-codes": ("account_totp.recovery_codes", _l("New recovery codes")),
}
CHANNEL_NAMES = {Channel.EMAIL: _l("E-mail to %(address)s"), Channel.SMS: _l("Text message (SMS) to %(address)s")}


class SendCodeForm(PatronForm):
    action = HiddenField(validators=[DataRequired()])
    channel = RadioField(_l("Where should we send the code?"), choices=[_Choice(c.value, c.value) for c in Channel],
                         validators=[DataRequired(message=_l("Choose where to send the code."))])


class CheckCodeForm(PatronForm):
    action = HiddenField(validators=[DataRequired()])
    code = StringField(_l("One-time code"), validators=[DataRequired(message=_l("Enter the code we sent you.")),
                                                         Length(max=16)])


# -- helpers the change pages use ---------------------------------------------------------------

def patron_id() -> int | None:
    return session.get("patron_id")


def login_redirect() -> ResponseReturnValue:
    return redirect(url_for("login.login_form", next=request.full_path.rstrip("?")), 303)


def remember_next() -> None:
    """A page opened with ?next=... (e.g. from a login for a service) returns there when done."""
    if request.args.get("next"):
        session[NEXT] = safe_next(request.args.get("next"))


def done_target() -> str:
    return session.pop(NEXT, None) or url_for("account.overview")


def has_proof(action: str) -> bool:
    proof = session.get(PROOF)
    return bool(proof and proof.get("action") == action and clock_seconds() - proof.get("at", 0) <= PROOF_TTL
                and proof.get("patron_id") == patron_id())


def use_proof(action: str) -> bool:
    """Use up the proof for ``action`` (after the change is saved)."""
    if not has_proof(action):
        return False
    session.pop(PROOF, None)
    if (session.get(PENDING) or {}).get("action") == action:
        session.pop(PENDING, None)
    return True


def _channels(pid: int) -> list[Channel]:
    return otp.channels_for(services(), pid)


def _masked_choices(pid: int) -> list[Any]:
    with services().registry("web") as reg:
        patron = reg.session.get(Patron, pid)
        addresses = {Channel.EMAIL: patron.email, Channel.SMS: patron.phone} if patron else {}
    return [_Choice(c.value, str(CHANNEL_NAMES[c]) % {"address": otp.mask(c, addresses[c] or "")})
            for c in _channels(pid)]


def code_step(action: str, *, error: str | None = None, status: int = 200) -> ResponseReturnValue:
    """The page that gets the code: choose a channel and send, or type the code that was sent."""
    pid = patron_id()
    assert pid is not None  # noqa: S101 - only pages behind the login call it
    pending = session.get(PENDING)
    pending = pending if pending and pending.get("action") == action else None
    send_form = SendCodeForm(formdata=None, action=action)
    choices = _masked_choices(pid)
    send_form.channel.choices = choices
    if choices:
        send_form.channel.data = pending["channel"] if pending else _channels(pid)[0].value
    check_form = CheckCodeForm(formdata=None, action=action)
    return render_template("account_code.html", heading=ACTIONS[action][1], action=action, pending=pending,
                           send_form=send_form, check_form=check_form, error=error,
                           minutes=services().settings.otp_code_ttl // 60), status


# -- the two steps ------------------------------------------------------------------------------

def _known_action(value: str | None) -> str | None:
    return value if value in ACTIONS else None


@bp.post("/send")
def send() -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return redirect(url_for("login.login_form"), 303)
    form = SendCodeForm()
    action = _known_action(form.action.data)
    if action is None:
        return render_template("error.html", status=400, message=_("This page was not sent as expected. "
                                                                   "Start again from My account.")), 400
    form.channel.choices = [_Choice(c.value, c.value) for c in _channels(pid)]
    if not form.validate_on_submit():
        return code_step(action, error=_("Choose where to send the code."), status=400)
    try:
        issued = otp.issue_code(services(), patron_id=pid, purpose=f"account:{action}", channel=form.channel.data,
                                lang=_lang())
    except otp.TooManyCodes:
        return code_step(action, error=_("We have sent you several codes in the last hour. Wait a while, "
                                          "then ask for a new one."), status=429)
    except otp.NoDestination:
        return code_step(action, error=_("Choose where to send the code."), status=400)
    except DeliveryError:
        return code_step(action, error=_("We could not send the code just now. Try again in a few minutes, "
                                          "or choose the other way if you have one."), status=502)
    session[PENDING] = {"action": action, "challenge": issued.challenge, "channel": issued.channel.value,
                        "masked": issued.masked}
    return redirect(url_for(ACTIONS[action][0]), 303)


@bp.post("/check")
def check() -> ResponseReturnValue:
    pid = patron_id()
    if pid is None:
        return redirect(url_for("login.login_form"), 303)
    form = CheckCodeForm()
    action = _known_action(form.action.data)
    pending = session.get(PENDING)
    if action is None or not pending or pending.get("action") != action:
        return render_template("error.html", status=400, message=_("This code request has expired. "
                                                                   "Start again from My account.")), 400
    if not form.validate_on_submit():
        return code_step(action, error=_("Enter the code we sent you."), status=400)
    result = otp.use_code(services(), challenge=pending["challenge"], code=form.code.data or "", patron_id=pid,
                          purpose=f"account:{action}")
    if result.outcome is otp.CodeOutcome.WRONG:
        return code_step(action, error=_("That is not the code we sent. Check it and try again."), status=401)
    if not result.ok:
        session.pop(PENDING, None)
        message = (_("That code was wrong too many times and no longer works. Ask for a new code.")
                   if result.outcome is otp.CodeOutcome.TOO_MANY_TRIES
                   else _("That code has expired or was already used. Ask for a new code."))
        return code_step(action, error=message, status=401 if result.outcome is otp.CodeOutcome.TOO_MANY_TRIES
                         else 400)
    # The challenge stays in the session until the change is made: typing the code again meets
    # the store's "already used", not a page that forgot it.
    session[PROOF] = {"action": action, "at": clock_seconds(), "patron_id": pid}
    return redirect(url_for(ACTIONS[action][0]), 303)


def _lang() -> str:
    return str(get_locale() or "nb")


# -- limits -------------------------------------------------------------------------------------

def _account_key() -> str:
    return f"account:{session.get('patron_id', '-')}"


def _wrong(response: Any) -> bool:
    return response.status_code == 401


# Wrong answers per account on My account's pages and the step-up page (flask-limiter, counted
# only on a wrong answer, which every such view reports as 401).
CODE_GUESS_ENDPOINTS = ("account_codes.check", "account_changes.password_submit", "account_changes.email_confirm",
                        "account_changes.phone_confirm", "account_totp.setup_confirm")
SECOND_FACTOR_ENDPOINTS = ("stepup.submit", "account_totp.remove_submit")


def install_limits(app: Flask, settings: Settings) -> None:
    limiter = app.extensions["idp-limiter"]
    codes = limiter.shared_limit(settings.otp_limit_per_account, scope="account-codes", key_func=_account_key,
                                 deduct_when=_wrong)
    second = limiter.shared_limit(settings.totp_limit_per_account, scope="second-factor", key_func=_account_key,
                                  deduct_when=_wrong)
    limit_views(app, CODE_GUESS_ENDPOINTS, codes)
    limit_views(app, SECOND_FACTOR_ENDPOINTS, second)
