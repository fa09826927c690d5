"""The landing page and the health check."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, session
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from idp.i18n import LANGUAGES
from idp.web import services
from idp.web.errors import RETRY_AFTER
from idp.web.login import safe_next

bp = Blueprint("pages", __name__)


@bp.get("/")
def landing() -> ResponseReturnValue:
    return render_template("landing.html", issuer=services().settings.issuer)


@bp.get("/language/<lang>")
def set_language(lang: str) -> ResponseReturnValue:
    if lang in LANGUAGES:
        session["lang"] = lang
    return redirect(safe_next(request.args.get("next")), 303)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness and readiness for a load balancer: the database and (if configured) Redis answer."""
    svc = services()
    checks: dict[str, str] = {}
    try:
        with svc.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    checks["state"] = ("ok" if svc.state.ping() else "unreachable") if svc.settings.redis_url else "memory"
    healthy = "unreachable" not in checks.values()
    if healthy:
        return jsonify(status="ok", checks=checks)
    return jsonify(status="unavailable", checks=checks), 503, {"Retry-After": str(RETRY_AFTER)}
