"""patron-idp: an identity provider for library patrons."""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from flask import Flask
from flask_wtf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from idp import logsafe
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
    # The web layer (pyop and pysaml2 under it) loads when an app is made, not on every `import idp`:
    # the CLI and the domain code import this package too.
    from idp.web import outage  # noqa: PLC0415 - see the comment above

    # An outage of Redis or the database answers 503, also where it strikes outside a view (idp.web.outage).
    app = outage.OutageAwareFlask(__name__, template_folder=str(resources.files("idp.templates")),
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
    logsafe.install()  # request values reach log messages: none may start a line of its own
    logging.getLogger("idp").setLevel(settings.log_level.upper())
    # pyop and oic log tokens and user claims at DEBUG: never let personal data reach the logs.
    # pysaml2 logs whole assertions (names, identifiers) at DEBUG and INFO: the same holds for it.
    for noisy in ("pyop", "oic", "saml2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops,  # type: ignore[method-assign]
                                x_host=settings.proxy_hops)

    from idp import i18n  # noqa: PLC0415 - as above
    from idp import api  # noqa: PLC0415 - as above
    from idp.web import account, errors, facts, limits, login, oidc, pages, security  # noqa: PLC0415 - as above
    app.session_interface = outage.OutageAwareSessions(services.state)
    csrf = CSRFProtect(app)
    i18n.install(app, settings.home / "var" / "translations")
    facts.install(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(oidc.bp)
    app.register_blueprint(account.bp)
    from idp.web import account_changes, account_codes, account_reset, account_totp, stepup  # noqa: PLC0415 - as above

    for blueprint in (account_codes.bp, account_changes.bp, account_totp.bp, account_reset.bp):
        app.register_blueprint(blueprint)
    api.install(app, csrf)  # library systems' register API and the partners' verify call
    from idp.web import saml as saml_web  # noqa: PLC0415 - as above

    app.register_blueprint(saml_web.bp)
    from idp.web import logout  # noqa: PLC0415 - as above

    logout.install(app)  # single logout: every logout, whoever asks (idp.web.logout)
    from idp.web import federation as federation_web  # noqa: PLC0415 - as above
    from idp.web import idporten as idporten_web  # noqa: PLC0415 - as above
    from idp.web import idporten_register  # noqa: PLC0415 - as above

    # The login methods, one line each: each registers its pages and itself (idp.web.login_methods);
    # the login page and logout know them only through that registry. Their order is the login page's.
    login.install(app, settings)  # card and password
    stepup.install(app, settings)  # a second factor after the password (TOTP, recovery codes)
    idporten_web.install(app, settings)  # ID-porten: we are its OIDC client
    federation_web.install(app, settings)  # universities and municipalities: we are their SAML SP
    idporten_register.install(app, settings)  # registering with ID-porten (pages, not a login method)
    # The university's answers are cross-site POSTs (SAML HTTP-POST binding): no CSRF token, their
    # signature and single-use InResponseTo protect them (the login's, and single logout's).
    csrf.exempt(app.view_functions["federation.acs"])
    csrf.exempt(app.view_functions["federation.slo"])
    # Machine endpoints authenticate the caller themselves; a relying party has no CSRF token.
    # SAML messages arrive as cross-site POSTs from service providers: their checks are SAML's own
    # (signature per metadata, single-use request IDs, ACS from metadata).
    for endpoint in ("oidc.authorize", "oidc.token", "oidc.revoke", "oidc.introspect", "oidc.userinfo",
                     "oidc.end_session", "saml.sso", "saml.slo"):
        csrf.exempt(app.view_functions[endpoint])
    services.keyring  # noqa: B018 - a missing or broken signing key stops the start, not a login
    services.saml  # noqa: B018 - so does a missing SAML signing key or xmlsec1
    installed_claims()  # two plugins claiming one name stop the start, not a login
    app.before_request(login.must_change_gate)
    limits.install(app, settings)
    account_codes.install_limits(app, settings)  # wrong one-time and TOTP codes per account
    errors.register(app)
    outage.install(app)
    security.register(app)
    return app
