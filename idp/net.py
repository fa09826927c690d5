"""Network facts shared by every layer (no Flask, no idp imports)."""

from __future__ import annotations

# Plain http is tolerated only where the traffic never leaves the machine (RFC 8252 section 7.3).
# urlsplit(...).hostname gives "::1" for "[::1]", so the bracketed form is never needed here.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str | None) -> bool:
    return host in LOOPBACK_HOSTS
