"""patron-idp: an identity provider for library patrons."""

from __future__ import annotations

import logging
from importlib import resources

from flask import Flask

from idp.services import Services, build_services
from idp.settings import Settings, load_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    """Wire the app from settings; no work at import time, nothing global."""
    settings = settings or (services.settings if services else load_settings())
    services = services or build_services(settings)
    app = Flask(__name__, template_folder=str(resources.files("idp.templates")), static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value() if settings.secret_key else None,
        SESSION_COOKIE_NAME="idp_session",
        SESSION_COOKIE_SECURE=not settings.is_development,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["idp"] = services
    logging.getLogger("idp").setLevel(settings.log_level.upper())

    from idp.web import errors, pages, security

    app.register_blueprint(pages.bp)
    errors.register(app)
    security.register(app)
    return app
