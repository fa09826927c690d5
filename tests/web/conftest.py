"""Fixtures for tests that drive the Flask app in-process."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from idp.services import Services


@pytest.fixture
def app(services: Services) -> Flask:
    # Each app counts its rate limits under its own prefix, so tests never share a lock.
    return create_app(services=services, config={"RATELIMIT_KEY_PREFIX": f"idp-test-{uuid.uuid4().hex}"})


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
