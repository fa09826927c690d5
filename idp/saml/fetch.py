"""Reading an SP's metadata from a file or a URL: https only (http on loopback), size-limited,
with a timeout, and redirects held to the same rules."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from idp.net import is_loopback
from idp.saml.metadata import MAX_METADATA, MetadataError

TIMEOUT = 15  # seconds for the whole fetch to start answering


def read_source(source: str, *, timeout: float = TIMEOUT) -> bytes:
    """The metadata document at ``source``: an https URL, or a file path."""
    if source.lower().startswith(("http://", "https://")):
        return fetch(source, timeout=timeout)
    path = Path(source).expanduser()
    try:
        if path.stat().st_size > MAX_METADATA:
            raise MetadataError(f"{path} is larger than {MAX_METADATA // (1024 * 1024)} MiB")
        return path.read_bytes()
    except FileNotFoundError:
        raise MetadataError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise MetadataError(f"{path} is a directory; give a metadata file") from None
    except OSError as exc:
        raise MetadataError(f"cannot read {path}: {exc.strerror}") from None


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise MetadataError("the metadata URL is not a valid URL") from None
    if parts.username is not None or parts.password is not None:
        raise MetadataError("the metadata URL must not contain a user name or password")
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback(host):
        return url
    raise MetadataError("metadata is fetched over https only (http only from 127.0.0.1, [::1] or localhost)")


class _SameRulesRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        check_url(newurl)  # no downgrade to http on the way
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, *, timeout: float = TIMEOUT) -> bytes:
    opener = urllib.request.build_opener(_SameRulesRedirects)
    request = urllib.request.Request(check_url(url), headers={  # noqa: S310 - check_url: https (http on loopback)
        "Accept": "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8",
        "User-Agent": "patron-idp"})
    try:
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_METADATA + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection
        raise MetadataError(f"fetching the metadata failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise MetadataError(f"fetching the metadata failed: {reason}") from None
    if len(body) > MAX_METADATA:
        raise MetadataError(f"the metadata is larger than {MAX_METADATA // (1024 * 1024)} MiB")
    return body
