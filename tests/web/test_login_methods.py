"""The registry of login methods (idp.web.login_methods) and the one way a login completes
(idp.web.logged_in): what the login page and logout see of the methods registered."""

from __future__ import annotations

from flask import Flask, Response, redirect, session

from idp.auth.logins import LoggedIn, Upstream
from idp.web import login_methods
from idp.web.logged_in import complete_login, current_login
from idp.web.login_methods import Button, LoginMethod, Offer


def _bare_app(*methods: LoginMethod) -> Flask:
    app = Flask(__name__)
    for method in methods:
        login_methods.register(app, method)
    return app


def _button(name: str, level: str) -> LoginMethod:
    return LoginMethod(name, levels=lambda: (level,),
                       offer=lambda needed, next_url: Offer(buttons=(Button(name, f"/{name}"),)) if needed == level
                       else None)


def test_logout_skips_a_method_without_an_upstream_logout_and_one_with_nothing_to_end() -> None:
    calls: list[str] = []

    def nothing_to_end(login: LoggedIn | None, after: str | None) -> Response | None:
        calls.append("nothing")
        return None

    def ends_upstream(login: LoggedIn | None, after: str | None) -> Response | None:
        calls.append("ends")
        return redirect(f"https://upstream.example/logout?after={after}")

    app = _bare_app(LoginMethod("password", levels=lambda: ("password",)),
                    LoginMethod("quiet", levels=lambda: ("mfa",), logout=nothing_to_end, upstream=True),
                    LoginMethod("eid", levels=lambda: ("idporten-loa-high",), logout=ends_upstream, upstream=True))
    with app.test_request_context("/"):
        answer = login_methods.upstream_logout(None, "/bye")
    assert answer is not None and answer.location == "https://upstream.example/logout?after=/bye"
    assert calls == ["nothing", "ends"]


def test_logout_with_no_upstream_method_registered_ends_only_our_session() -> None:
    with _bare_app(LoginMethod("password", levels=lambda: ("password",))).test_request_context("/"):
        assert login_methods.upstream_logout(None, "/bye") is None


def test_a_method_registered_twice_stops_the_start() -> None:
    method = LoginMethod("password", levels=lambda: ("password",))
    app = _bare_app(method)
    try:
        login_methods.register(app, method)
    except RuntimeError:
        return
    raise AssertionError("a second registration under one name was accepted")


def test_the_login_page_offers_only_the_methods_that_reach_the_level_asked_for() -> None:
    app = _bare_app(_button("eid", "idporten-loa-high"), _button("uni", "password"))
    with app.test_request_context("/"):
        assert [b.label for b in login_methods.login_page("idporten-loa-high", "/next").buttons] == ["eid"]
        assert [b.label for b in login_methods.login_page("password", "/next").buttons] == ["uni"]


def test_a_second_factor_raises_what_a_login_that_starts_with_its_method_can_reach() -> None:
    app = _bare_app(LoginMethod("password", levels=lambda: ("password",)),
                    LoginMethod("second_factor", levels=lambda: ("mfa",), after="password"))
    with app.test_request_context("/"):
        assert login_methods.reaches("password", "mfa")
        assert not login_methods.reaches("password", "idporten-loa-substantial")


def test_a_service_may_ask_only_for_a_level_some_login_method_here_reaches() -> None:
    password = LoginMethod("password", levels=lambda: ("password",))
    second_factor = LoginMethod("second_factor", levels=lambda: ("mfa",), after="password")
    unconfigured_eid = LoginMethod("eid", levels=lambda: ())
    with _bare_app(password, second_factor, unconfigured_eid).test_request_context("/"):
        assert login_methods.can_reach("mfa")
        assert not login_methods.can_reach("idporten-loa-substantial")
    eid = LoginMethod("eid", levels=lambda: ("idporten-loa-substantial", "idporten-loa-high"))
    with _bare_app(password, eid).test_request_context("/"):
        assert login_methods.can_reach("idporten-loa-high")
    # A second factor on its own is no login: without the method it follows, it reaches nothing.
    with _bare_app(second_factor).test_request_context("/"):
        assert not login_methods.can_reach("password")


def test_complete_login_gives_a_new_session_that_keeps_only_the_language_the_waiting_requests_and_the_login_session(
        app: Flask) -> None:
    with app.test_request_context("/"):
        session.update(lang="nb", oidc_pending={"needed": "password"}, sid="login-1", earlier="gone",
                       federation_link={"next": "/"})
        complete_login(7, "idporten-loa-high", ["BankID"], 1_700_000_000,
                       upstream=Upstream("idporten", {"sid": "abc"}))
        assert session.regenerate_requested  # type: ignore[attr-defined]
        assert "earlier" not in session and "federation_link" not in session
        assert session["lang"] == "nb" and session["oidc_pending"] == {"needed": "password"}
        assert session["sessions_of"] == "7"  # a later password change ends this login
        assert current_login() == LoggedIn(patron_id=7, acr="idporten-loa-high", amr=("BankID",),
                                           auth_time=1_700_000_000, upstream=Upstream("idporten", {"sid": "abc"}),
                                           login_session="login-1")
        # The same keys as before the typed login: stored sessions stay readable.
        assert {key: session[key] for key in ("patron_id", "acr", "amr", "auth_time", "must_change", "idporten")} == {
            "patron_id": 7, "acr": "idporten-loa-high", "amr": ["BankID"], "auth_time": 1_700_000_000,
            "must_change": False, "idporten": {"sid": "abc"}}
