"""The forms patrons fill in (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from babel import support
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.i18n import messages_path
from wtforms.validators import DataRequired, EqualTo, Length

from idp.registry.credentials import PASSWORD_MAX, PASSWORD_MIN


@lru_cache(maxsize=8)
def _wtforms_catalogue(locale: str) -> support.NullTranslations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class PatronForm(FlaskForm):
    """Flask-WTF reads WTForms' own message catalogue from disk on every request; it never
    changes while the process runs, so each language's catalogue is read once."""

    class Meta(FlaskForm.Meta):
        def get_translations(self, form: Any) -> Any:
            return _wtforms_catalogue(str(get_locale() or "nb"))


class LoginForm(PatronForm):
    # Field names as password managers expect them.
    username = StringField(_l("Card number"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    next = HiddenField()


class ChangePasswordForm(PatronForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])
    next = HiddenField()
