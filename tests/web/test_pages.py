"""The pages and the health check as a browser, a load balancer or an API client meets them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp import create_app
from idp.services import Services, build_services
from idp.errors import ConfigError
from idp.settings import Settings, load_settings, new_secret

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
SECRET_TEXT = "secret-value-123"


@pytest.fixture
def app(services: Services) -> Flask:
    app = create_app(services=services)

    # Routes can only be added before the first request, so the failing views are set up here.
    def explode() -> str:
        raise RuntimeError(SECRET_TEXT)

    app.add_url_rule("/test-explode", "test_explode", explode)
    app.add_url_rule("/api/test-explode", "test_api_explode", explode)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"  # these tests read the English pages
    return client


def standalone_services(tmp_path: Path, **overrides: str) -> Services:
    """Services on settings of their own, for backends the conftest fixtures do not offer."""
    return build_services(load_settings({}, mode="development", home=str(tmp_path), argon2_time_cost=1,
                                        argon2_memory_kib=1024, **overrides))


def assert_security_headers(response: TestResponse) -> None:
    missing = [name for name in SECURITY_HEADERS if not response.headers.get(name)]
    assert not missing, f"{response.request.path} answered {response.status} without {missing}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def assert_html(response: TestResponse, status: int) -> str:
    assert response.status_code == status
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert body.lstrip().lower().startswith("<!doctype html>")
    return body


def assert_json_error(response: TestResponse, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert data["error"] == code and data["message"]
    return data


def test_landing_page_is_html_naming_the_issuer(client: FlaskClient, services: Services) -> None:
    response = client.get("/")
    body = assert_html(response, 200)
    assert "<h1>Library login</h1>" in body
    assert services.settings.issuer in body
    assert_security_headers(response)


@pytest.mark.backends
def test_healthz_reports_database_and_state(client: FlaskClient, services: Services) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.mimetype == "application/json"
    # On the embedded backend short-lived state is process memory: nothing to ping, and it says so.
    state = "ok" if services.settings.redis_url else "memory"
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "state": state}}
    assert_security_headers(response)


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    services = standalone_services(tmp_path, database_url="postgresql+psycopg://127.0.0.1:1/x")
    try:
        response = create_app(services=services).test_client().get("/healthz")
    finally:
        services.close()
    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "unavailable" and data["checks"]["database"] == "unreachable"
    assert_security_headers(response)


def test_healthz_is_503_when_redis_is_unreachable(tmp_path: Path) -> None:
    services = standalone_services(tmp_path, redis_url="redis://127.0.0.1:1/0")
    try:
        response = create_app(services=services).test_client().get("/healthz")
    finally:
        services.close()
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "checks": {"database": "ok", "state": "unreachable"}}


def test_unknown_page_is_an_html_404(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    body = assert_html(response, 404)
    assert "Error 404" in body and 'href="/"' in body
    assert_security_headers(response)


def test_unknown_api_route_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/api/no-such-thing")
    assert_json_error(response, 404, "not_found")
    assert_security_headers(response)


def test_wrong_method_on_a_page_is_an_html_405(client: FlaskClient) -> None:
    response = client.post("/")
    assert_html(response, 405)
    # RFC 9110 15.5.6: a 405 MUST say which methods are allowed.
    assert "GET" in response.headers.get("Allow", ""), "405 without an Allow header"
    assert_security_headers(response)


def test_wrong_method_on_a_machine_endpoint_is_a_json_405(client: FlaskClient) -> None:
    response = client.delete("/healthz")
    assert_json_error(response, 405, "method_not_allowed")
    # RFC 9110 15.5.6: a 405 MUST say which methods are allowed.
    assert "GET" in response.headers.get("Allow", ""), "405 without an Allow header"
    assert_security_headers(response)


@pytest.mark.parametrize(("path", "json"), [("/test-explode", False), ("/api/test-explode", True)])
def test_an_unexpected_error_is_a_generic_500_that_never_repeats_the_exception(
        client: FlaskClient, caplog: pytest.LogCaptureFixture, path: str, json: bool) -> None:
    caplog.set_level(logging.DEBUG)
    response = client.get(path)

    if json:
        data = assert_json_error(response, 500, "server_error")
        assert "try again later" in data["message"]
    else:
        assert "try again later" in assert_html(response, 500)
    assert SECRET_TEXT not in response.get_data(as_text=True)
    assert_security_headers(response)
    # The operator still learns that something failed, and where; only the text is withheld.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "RuntimeError" in errors[0].getMessage() and path in errors[0].getMessage()
    assert SECRET_TEXT not in caplog.text
    assert not any(r.exc_info for r in caplog.records), "a logged traceback would carry the exception text"


def test_development_sends_no_hsts_and_allows_a_plain_http_cookie(app: Flask, client: FlaskClient) -> None:
    # HSTS over plain http to 127.0.0.1 would only confuse the developer's browser.
    assert "Strict-Transport-Security" not in client.get("/").headers
    assert app.config["SESSION_COOKIE_SECURE"] is False


@pytest.fixture
def production_settings(tmp_path: Path, shared_keys_dir: Path) -> Settings:
    # Production never generates signing keys: an operator runs `idp keys rotate` first.
    return load_settings({}, mode="production", home=str(tmp_path), issuer="https://login.example.no",
                         secret_key=new_secret(), data_key=new_secret(), keys_dir=str(shared_keys_dir))


def test_production_cookies_are_secure_httponly_lax_and_hsts_is_sent(production_settings: Settings) -> None:
    services = build_services(production_settings)
    try:
        app = create_app(services=services)
        assert app.config["SESSION_COOKIE_SECURE"] is True
        assert app.config["SESSION_COOKIE_HTTPONLY"] is True
        assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
        client = app.test_client()
        for response in (client.get("/"), client.get("/healthz"), client.get("/no-such-page")):
            assert_security_headers(response)
            hsts = response.headers.get("Strict-Transport-Security", "")
            assert hsts.startswith("max-age=") and int(hsts.split(";")[0].split("=")[1]) >= 31536000
    finally:
        services.close()


def test_production_without_signing_keys_refuses_to_start(tmp_path: Path) -> None:
    settings = load_settings({}, mode="production", home=str(tmp_path), issuer="https://login.example.no",
                             secret_key=new_secret(), data_key=new_secret())
    services = build_services(settings)
    try:
        with pytest.raises(ConfigError, match="idp keys rotate"):
            create_app(services=services)
    finally:
        services.close()
