"""Faithful stand-ins for the services the IdP talks to upstream (ID-porten, a university's SAML
IdP), each a small real HTTP server on loopback, with helpers to make it misbehave."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class _Server(Protocol):
    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...
    def server_close(self) -> None: ...


@contextmanager
def serving(server: _Server) -> Iterator[None]:
    """Serve ``server`` (http.server's or werkzeug's) on a thread of its own while the block runs;
    then stop it and close its socket."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
