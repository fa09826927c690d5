"""Response headers every page gets."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, g, session

CSP = "default-src 'self'; frame-ancestors {ancestors}; form-action 'self'{targets}; base-uri 'none'{frames}"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _origin(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme in {"http", "https"} and parts.netloc and not set(parts.netloc) & set(" ;,'\"\n"):
        return f"{parts.scheme}://{parts.netloc}"
    return None


def allow_frame_source(uri: str) -> None:
    """Let this page frame ``uri``'s origin (the logout page frames the services it logs out of);
    a frame's redirects are checked against the same list."""
    origin = _origin(uri)
    if origin is not None:
        g.setdefault("frame_sources", set()).add(origin)


def allow_framing_by_self() -> None:
    """Let our own pages frame this response (a logout page's frames), and nobody else's."""
    g.framed_by_self = True


def allow_form_target(uri: str) -> None:
    """Let this response's forms end at ``uri``'s origin (a relying party's registered redirect URI).

    Chromium applies form-action to the redirects that follow a form submission, so the login and
    consent forms that end at a relying party's callback need its origin listed.
    """
    origin = _origin(uri)
    if origin is not None:
        g.setdefault("form_targets", set()).add(origin)


def _content_security_policy() -> str:
    pending = session.get("oidc_pending")
    if pending:  # a login for a relying party is under way: its forms end at the relying party
        allow_form_target(pending["params"]["redirect_uri"])
    saml_pending = session.get("saml_pending")
    if saml_pending:  # the same for a SAML service provider's AssertionConsumerService
        allow_form_target(saml_pending["request"]["acs_url"])
    targets = sorted(g.get("form_targets", ()))
    frames = sorted(g.get("frame_sources", ()))
    return CSP.format(targets="".join(f" {t}" for t in targets),
                      ancestors="'self'" if g.get("framed_by_self") else "'none'",
                      frames=f"; frame-src 'self' {' '.join(frames)}" if frames else "")


def register(app: Flask) -> None:
    defaults = dict(HEADERS)
    if app.config["SESSION_COOKIE_SECURE"]:
        defaults["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    lowered = [(name.lower(), name, value) for name, value in defaults.items()]

    @app.after_request
    def add_headers(response: Response) -> Response:
        # One pass over the response's headers: this runs on every answer, the token endpoint's too.
        headers = response.headers
        present = {name.lower() for name, _ in headers.items()}
        if "content-security-policy" not in present:
            headers.add("Content-Security-Policy", _content_security_policy())
        for low, name, value in lowered:
            if low not in present:
                headers.add(name, "SAMEORIGIN" if low == "x-frame-options" and g.get("framed_by_self") else value)
        return response
