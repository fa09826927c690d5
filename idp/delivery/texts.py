"""What patrons are sent, in Norwegian bokmål and English.

E-mails carry both languages (the patron's first), as a reader of either must understand a code
they did not ask for; an SMS is short and carries the patron's language only. The texts are data
here rather than gettext entries because they are sent outside any web request (the CLI, a worker).
"""

from __future__ import annotations

from idp.delivery import Message

_CODE_EMAIL = {
    "nb": ("Engangskoden din er: {code}\n\n"
           "Den gjelder i {minutes} minutter og kan bare brukes én gang. Ingen fra biblioteket vil be deg "
           "om koden: ikke gi den til noen.\n"
           "Har du ikke bedt om en kode, kan du se bort fra denne e-posten. Passordet ditt er ikke endret."),
    "en": ("Your one-time code is: {code}\n\n"
           "It is valid for {minutes} minutes and can be used once only. Nobody from the library will ask "
           "you for it: do not give it to anyone.\n"
           "If you did not ask for a code, you can ignore this e-mail. Your password has not been changed."),
}
_CODE_SUBJECT = {"nb": "Engangskode", "en": "One-time code"}
_CODE_SMS = {
    "nb": "{code} er engangskoden din for bibliotekinnloggingen. Den gjelder i {minutes} min. Ikke gi den til noen.",
    "en": "{code} is your one-time code for the library login. Valid for {minutes} min. Do not share it.",
}
_RESET_EMAIL = {
    "nb": ("Biblioteket har satt i gang en tilbakestilling av passordet ditt for bibliotekinnloggingen.\n\n"
           "Velg et nytt passord her:\n{url}\n\n"
           "Lenken gjelder i {minutes} minutter og kan brukes én gang. Har du ikke bedt biblioteket om dette, "
           "kan du se bort fra e-posten; det gamle passordet virker til du velger et nytt."),
    "en": ("Your library has started a reset of your password for the library login.\n\n"
           "Choose a new password here:\n{url}\n\n"
           "The link is valid for {minutes} minutes and can be used once. If you did not ask your library for "
           "this, you can ignore this e-mail; your old password works until you choose a new one."),
}
_RESET_SUBJECT = {"nb": "Nytt passord", "en": "New password"}
_SEPARATOR = "\n\n----------\n\n"


def _lang(lang: str | None) -> str:
    return "en" if lang == "en" else "nb"


def _both(texts: dict[str, str], lang: str, **values: object) -> str:
    first = _lang(lang)
    second = "en" if first == "nb" else "nb"
    return texts[first].format(**values) + _SEPARATOR + texts[second].format(**values)


def _subject(subjects: dict[str, str], lang: str | None) -> str:
    """Both languages, kept short: "Engangskode / One-time code" (a long one gets folded)."""
    first = _lang(lang)
    return f"{subjects[first]} / {subjects['en' if first == 'nb' else 'nb']}"


def one_time_code_email(code: str, minutes: int, lang: str | None = "nb") -> Message:
    subject = _subject(_CODE_SUBJECT, lang)
    return Message(subject, _both(_CODE_EMAIL, _lang(lang), code=code, minutes=minutes), kind="one_time_code")


def one_time_code_sms(code: str, minutes: int, lang: str | None = "nb") -> Message:
    return Message("", _CODE_SMS[_lang(lang)].format(code=code, minutes=minutes), kind="one_time_code")


def reset_link_email(url: str, minutes: int, lang: str | None = "nb") -> Message:
    subject = _subject(_RESET_SUBJECT, lang)
    return Message(subject, _both(_RESET_EMAIL, _lang(lang), url=url, minutes=minutes), kind="reset_link")
