"""The login methods, registered by the modules that implement them (as Keycloak's authenticators
or canaille's auth steps are): what level each can reach, what the login page shows for it, and
what logging out must do upstream.

The login page, step-up and logout iterate over the registry and import no method. A method is
one module with an ``install(app, settings)`` that calls ``register``, and one line in the app
factory's list of login methods (idp.create_app).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flask import Flask, current_app
from werkzeug.wrappers import Response

from idp.assurance import rank
from idp.auth.logins import LoggedIn

EXTENSION = "idp-login-methods"


@dataclass(frozen=True)
class Button:
    """A way to log in elsewhere, shown on the login page (``instead``: its wording on the step-up page)."""

    label: str
    url: str
    id: str | None = None
    instead: str | None = None


@dataclass(frozen=True)
class Notice:
    id: str
    text: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Offer:
    """What a method puts on the login page: the card-and-password form, buttons, a notice, links."""

    form: bool = False
    buttons: tuple[Button, ...] = ()
    notice: Notice | None = None
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class LoginMethod:
    """``levels``: the levels it can give now (none when not set up). ``after``: a second factor
    reaches its levels only on top of that method's login. ``offer(needed, next)``: its part of the
    login page, for a service needing ``needed``. ``logout(login, after)``: called before the session
    is cleared; a redirect that ends the upstream session and then goes to ``after``, or None.
    ``upstream``: a login through it keeps the upstream's state in the session under its ``name``."""

    name: str
    levels: Callable[[], Sequence[str]]
    offer: Callable[[str, str], Offer | None] | None = None
    logout: Callable[[LoggedIn | None, str | None], Response | None] | None = None
    upstream: bool = False
    after: str | None = None


@dataclass(frozen=True)
class LoginPage:
    needed: str
    form: bool = False
    notices: tuple[Notice, ...] = ()
    buttons: tuple[Button, ...] = ()
    links: tuple[Link, ...] = ()


def register(app: Flask, method: LoginMethod) -> None:
    registered: dict[str, LoginMethod] = app.extensions.setdefault(EXTENSION, {})
    if method.name in registered:
        raise RuntimeError(f"login method {method.name!r} is registered twice")
    registered[method.name] = method


def methods() -> list[LoginMethod]:
    """In the order they were registered (the order of the buttons on the login page)."""
    return list(current_app.extensions.get(EXTENSION, {}).values())


def upstream_names() -> tuple[str, ...]:
    return tuple(method.name for method in methods() if method.upstream)


def top_level(name: str) -> str | None:
    """The highest level a login with method ``name`` can reach, its second factors included."""
    levels = [level for method in methods() if name in (method.name, method.after) for level in method.levels()]
    return max(levels, key=rank) if levels else None


def reaches(name: str, needed: str) -> bool:
    top = top_level(name)
    return top is not None and rank(needed) <= rank(top)


def can_reach(needed: str) -> bool:
    """Whether any login here can reach ``needed`` (a first method with its second factors): what a
    service may ask for at all. A second factor whose method is not registered reaches nothing."""
    return any(reaches(method.name, needed) for method in methods() if method.after is None)


def login_page(needed: str, next_url: str) -> LoginPage:
    """What the login page offers a service needing ``needed``: only the ways that can reach it."""
    offers = [method.offer(needed, next_url) for method in methods() if method.offer is not None]
    shown = [offer for offer in offers if offer is not None]
    return LoginPage(needed=needed, form=any(offer.form for offer in shown),
                     notices=tuple(offer.notice for offer in shown if offer.notice is not None),
                     buttons=tuple(button for offer in shown for button in offer.buttons),
                     links=tuple(link for offer in shown for link in offer.links))


def upstream_logout(login: LoggedIn | None, after: str | None) -> Response | None:
    """The first registered method's redirect that ends its upstream session too; None when none has one."""
    for method in methods():
        if method.logout is not None:
            redirect = method.logout(login, after)
            if redirect is not None:
                return redirect
    return None
