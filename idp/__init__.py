"""patron-idp: an identity provider for library patrons."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from flask import Flask
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from idp.claims import installed_claims
from idp.services import Services, build_services
from idp.settings import Settings, load_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, services: Services | None = None,
               config: dict[str, Any] | None = None) -> Flask:
    """Wire the app from settings; no work at import time, nothing global.

    ``config`` overrides Flask configuration (tests use it, e.g. for a rate-limit key prefix).
    """
    settings = settings or (services.settings if services else load_settings())
    services = services or build_services(settings)
    app = Flask(__name__, template_folder=str(resources.files("idp.templates")),
                static_folder=str(resources.files("idp") / "static"))
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else None,
        SESSION_COOKIE_NAME="idp_session",
        SESSION_COOKIE_SECURE=not settings.is_development,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config or {})
    app.extensions["idp"] = services
    logging.getLogger("idp").setLevel(settings.log_level.upper())
    # pyop and oic log tokens and user claims at DEBUG: never let personal data reach the logs.
    for noisy in ("pyop", "oic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops,  # type: ignore[method-assign]
                                x_host=settings.proxy_hops)

    from idp import i18n
    from idp.web import account, api, errors, facts, limits, login, oidc, pages, security
    from idp.web.sessions import StateSessionInterface

    app.session_interface = StateSessionInterface(services.state)
    csrf = CSRFProtect(app)
    i18n.install(app, settings.home / "var" / "translations")
    facts.install(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(oidc.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(api.bp)
    # Machine endpoints authenticate the caller themselves; a relying party has no CSRF token.
    for endpoint in ("oidc.authorize", "oidc.token", "oidc.userinfo", "oidc.end_session", "api.verify_card"):
        csrf.exempt(app.view_functions[endpoint])
    services.keyring  # noqa: B018 - a missing or broken signing key stops the start, not a login
    installed_claims()  # two plugins claiming one name stop the start, not a login
    app.before_request(login.must_change_gate)
    limits.install(app, settings)
    errors.register(app)
    security.register(app)
    return app
