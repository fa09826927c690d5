"""The baseline of bench/oidc.py: a hello-world Flask app served exactly as ``idp serve`` serves the IdP.

    .venv/bin/python bench/minimal_app.py --port 5001 [--workers 1]

``GET /hello`` answers a small JSON document. Everything around it is the IdP's own serving code
(idp.server.run: gunicorn workers and threads, the same access log, timeouts and forwarding rules), so the
difference between the two is the IdP's work per request and nothing else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from unittest import mock

from flask import Flask, Response, jsonify

from idp import server
from idp.settings import Mode, Settings


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> Response:
        return jsonify(message="hello", ok=True)

    return app


def server_arguments(description: str) -> argparse.ArgumentParser:
    """The options every reference app of the benchmark takes, as ``idp serve`` names them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=server.DEFAULT_THREADS)
    return parser


def serve(factory: Callable[[], Flask], args: argparse.Namespace) -> None:
    """Serve ``factory()``'s app with idp.server.run, the IdP's own serving code."""

    class _Reference(server._Gunicorn):  # type: ignore[misc]
        def load(self) -> Any:
            return factory()

    # idp.server.run builds its gunicorn application itself; swapping in ours for the duration keeps
    # every server option identical to the IdP's without restating (and drifting from) them. The
    # settings are only handed through to the application, which ignores them.
    with mock.patch.object(server, "_Gunicorn", _Reference):
        server.run(Settings(mode=Mode.DEVELOPMENT), host=args.host, port=args.port, workers=args.workers,
                   threads=args.threads)


def main(argv: list[str] | None = None) -> int:
    serve(create_app, server_arguments(__doc__.splitlines()[0]).parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
