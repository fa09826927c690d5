"""What patrons (and libraries) are sent, in Norwegian bokmål and English.

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
           "Velg et nytt passord her:\n{page}#{token}\n\n"
           "Virker ikke lenken, åpner du {page} og limer inn denne koden:\n{token}\n\n"
           "Lenken gjelder i {minutes} minutter og kan brukes én gang. Har du ikke bedt biblioteket om dette, "
           "kan du se bort fra e-posten; det gamle passordet virker til du velger et nytt."),
    "en": ("Your library has started a reset of your password for the library login.\n\n"
           "Choose a new password here:\n{page}#{token}\n\n"
           "If the link does not work, open {page} and paste this code:\n{token}\n\n"
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


def reset_link_email(page: str, token: str, minutes: int, lang: str | None = "nb") -> Message:
    """The link is ``page#token``: a fragment, which browsers never send, keeps the token out of access logs."""
    subject = _subject(_RESET_SUBJECT, lang)
    return Message(subject, _both(_RESET_EMAIL, _lang(lang), page=page, token=token, minutes=minutes),
                   kind="reset_link")


# -- notices: what happened to the patron's account (idp.notifications delivers them) ----------
# Placeholders: {failures}, {thing}, {library}, {date}, {deadline}, {refused_from}. Each notice says
# what to do if it was not the patron's doing, and never carries a code, a card number or an address.
# The dpa_* notices go to a library's contact address and say what to do by when.
_NOTICE_EMAIL = {
    "login_locked": {
        "nb": ("Innloggingen med bibliotekkortet ditt er sperret etter {failures} feil passord eller PIN-koder "
               "på ett døgn. Sperren oppheves av seg selv innen et døgn; så lenge den varer, virker heller ikke "
               "riktig passord.\n"
               "Var det ikke deg som prøvde, kan noen forsøke å gjette passordet ditt: bytt det når sperren er "
               "over, eller kontakt biblioteket."),
        "en": ("Logging in with your library card is locked after {failures} wrong passwords or PINs in one "
               "day. The lock lifts by itself within a day; until then even the right password is refused.\n"
               "If it was not you, someone may be trying to guess your password: change it once the lock "
               "has lifted, or contact your library."),
    },
    "account_changed": {
        "nb": ("{thing} for bibliotekinnloggingen din er {done}.\n"
               "Var det ikke deg, kontakt biblioteket så snart som mulig."),
        "en": ("The {thing} of your library login has been {done}.\n"
               "If it was not you, contact your library as soon as possible."),
    },
    "library_added": {
        "nb": ("{library} har lagt deg til som låner. Du kan nå låne der med bibliotekkortet ditt.\n"
               "Har du ikke bedt om dette, kontakt biblioteket."),
        "en": ("{library} has added you as a patron. You can now borrow there with your library card.\n"
               "If you did not ask for this, contact the library."),
    },
    "inactivity_warning": {
        "nb": ("Bibliotekkontoen din har ikke vært brukt på nesten tre år. Den slettes {date} med mindre du "
               "logger inn eller bruker bibliotekkortet før det."),
        "en": ("Your library account has not been used for almost three years. It will be deleted on {date} "
               "unless you log in or use your library card before then."),
    },
    "dpa_reminder": {
        "nb": ("Nasjonalbiblioteket har ikke registrert en signert databehandleravtale for {library}. Fristen "
               "var {deadline}.\n"
               "Fra {refused_from} avviser det nasjonale lånerregisteret bibliotekets eget bibliotekssystem "
               "(oppslag, registrering og endring av lånere) til avtalen er registrert. Lånerne selv merker "
               "ingenting.\n"
               "Signer avtalen og send den til Nasjonalbiblioteket så snart som mulig."),
        "en": ("The National Library has no signed data processing agreement on record for {library}. The "
               "deadline was {deadline}.\n"
               "From {refused_from} the national patron register will refuse the library's own library system "
               "(looking up, registering and changing patrons) until the agreement is recorded. Patrons "
               "themselves are not affected.\n"
               "Sign the agreement and send it to the National Library as soon as possible."),
    },
    "dpa_last_notice": {
        "nb": ("Siste varsel: Nasjonalbiblioteket har fortsatt ikke registrert en signert databehandleravtale "
               "for {library} (fristen var {deadline}).\n"
               "Fra {refused_from} avviser det nasjonale lånerregisteret bibliotekets eget bibliotekssystem "
               "til avtalen er registrert. Signer avtalen og send den til Nasjonalbiblioteket før den datoen."),
        "en": ("Last notice: the National Library still has no signed data processing agreement on record for "
               "{library} (the deadline was {deadline}).\n"
               "From {refused_from} the national patron register will refuse the library's own library system "
               "until the agreement is recorded. Sign the agreement and send it to the National Library "
               "before that date."),
    },
}
_NOTICE_SUBJECT = {
    "login_locked": {"nb": "Innloggingen er sperret", "en": "Login locked"},
    "account_changed": {"nb": "Kontoen din er endret", "en": "Your account was changed"},
    "library_added": {"nb": "Nytt bibliotek", "en": "New library"},
    "inactivity_warning": {"nb": "Kontoen din slettes", "en": "Your account will be deleted"},
    "dpa_reminder": {"nb": "Databehandleravtale mangler", "en": "Data processing agreement missing"},
    "dpa_last_notice": {"nb": "Siste varsel: databehandleravtale", "en": "Last notice: agreement missing"},
}
# An SMS is short and in bokmål: a notice knows no request, so no language to choose by.
_NOTICE_SMS = {
    "login_locked": "Innloggingen med bibliotekkortet ditt er sperret i inntil ett døgn etter {failures} feil "
                    "forsøk. Var det ikke deg, bytt passord etterpå eller kontakt biblioteket.",
    "account_changed": "{thing} for bibliotekinnloggingen din er {done}. Var det ikke deg, kontakt biblioteket.",
    "library_added": "{library} har lagt deg til som låner. Har du ikke bedt om det, kontakt biblioteket.",
    "inactivity_warning": "Bibliotekkontoen din slettes {date} med mindre du logger inn eller bruker kortet før det.",
    # A library's notice goes by e-mail only; these are here so every kind has both forms.
    "dpa_reminder": "{library} mangler databehandleravtale (frist {deadline}). Systemet avvises fra {refused_from}.",
    "dpa_last_notice": "Siste varsel: {library} mangler databehandleravtale. Systemet avvises fra {refused_from}.",
}
# What account_changed's "what" names, and what was done to it, as each language's sentence needs it.
_CHANGED = {"nb": "endret", "en": "changed"}
_THINGS = {
    "password": ({"nb": "Passordet", "en": "password"}, _CHANGED),
    "pin": ({"nb": "PIN-koden", "en": "PIN"}, _CHANGED),
    "totp": ({"nb": "Autentiseringsappen", "en": "authenticator app"}, _CHANGED),
    "totp_removed": ({"nb": "Autentiseringsappen", "en": "authenticator app"}, {"nb": "fjernet", "en": "removed"}),
    "email": ({"nb": "E-postadressen", "en": "e-mail address"}, _CHANGED),
    "phone": ({"nb": "Telefonnummeret", "en": "phone number"}, _CHANGED),
}
_ACCOUNT = ({"nb": "Kontoen", "en": "account"}, _CHANGED)
NOTICE_KINDS = frozenset(_NOTICE_EMAIL)


def _day(data: dict[str, object], key: str, lang: str) -> str:
    day = str(data.get(key, ""))
    if lang == "nb" and len(day) == 10:  # ISO date: 2027-01-06 -> 06.01.2027
        day = f"{day[8:10]}.{day[5:7]}.{day[0:4]}"
    return day


def _notice_values(data: dict[str, object], lang: str, library: str | None) -> dict[str, object]:
    thing, done = _THINGS.get(str(data.get("what", "")), _ACCOUNT)
    return {"failures": data.get("failures", ""), "thing": thing[lang], "done": done[lang],
            "library": library or data.get("library", ""), "date": _day(data, "deletion_on", lang),
            "deadline": _day(data, "deadline", lang), "refused_from": _day(data, "refused_from", lang)}


def notice_email(kind: str, data: dict[str, object], library: str | None = None) -> Message:
    """A notice of ``kind`` (one of NOTICE_KINDS) in both languages, bokmål first.

    ``library`` is the name of the library ``data["library"]`` names, where the kind has one."""
    texts = {lang: text.format(**_notice_values(data, lang, library)) for lang, text in _NOTICE_EMAIL[kind].items()}
    return Message(_subject(_NOTICE_SUBJECT[kind], "nb"), texts["nb"] + _SEPARATOR + texts["en"], kind=kind)


def notice_sms(kind: str, data: dict[str, object], library: str | None = None) -> Message:
    return Message("", _NOTICE_SMS[kind].format(**_notice_values(data, "nb", library)), kind=kind)
