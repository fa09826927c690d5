"""How OAuth 2.0 / OpenID Connect requests are refused: one class per error code we answer with.

An ``OidcError`` travels one of three ways, and knows each:
- from the token endpoint, as a JSON body (RFC 6749 section 5.2) with its ``http_status`` and
  ``headers()``: 400, or 401 with a Basic challenge for ``invalid_client``; never cached;
- from a protected resource (userinfo), as a status and a Bearer challenge (``BearerError``,
  RFC 6750 section 3);
- from the authorization endpoint, to a redirect URI known to be registered (``redirect_url``,
  RFC 6749 section 4.1.2.1, OpenID Connect Core 3.1.2.6), with the request's state and our
  issuer (RFC 9207).

``Unanswerable``: an authorization request with no registered redirect URI to send an error to
(an unknown client, an unregistered redirect URI, or too broken to tell): the patron gets a page.

pyop's and oic's exceptions become these in one place, ``from_pyop``. The descriptions are for the
client's developers; none carries personal data.
"""

from __future__ import annotations

from enum import Enum

from oic.oic.message import AuthorizationErrorResponse
from pyop.exceptions import (BearerTokenError, InvalidAccessToken, InvalidAuthenticationRequest,
                             InvalidRedirectURI, InvalidSubjectIdentifier, OAuthError, UnknownClientId)

from idp.errors import IdpError

# What the Basic challenge names (RFC 7617); the Bearer challenge of a request without a token too.
REALM = "patron-idp"


class OidcError(IdpError):
    """An error answered to the client. ``code`` is the protocol's error code, ``description``
    its error_description."""

    code = "invalid_request"
    http_status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)

    @property
    def description(self) -> str:
        return self.message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        # An answer about credentials is never cached (RFC 6749 section 5.1).
        return {"Cache-Control": "no-store"}

    def redirect_url(self, redirect_uri: str, *, state: str | None, issuer: str) -> str:
        """The error response at ``redirect_uri``, in its query (response_mode=query, the only
        mode we offer), with ``state`` when the request had one and our issuer (RFC 9207)."""
        response = AuthorizationErrorResponse(error=self.code, error_description=self.description)
        if state:
            response["state"] = state
        response["iss"] = issuer
        return str(response.request(redirect_uri, False))


# -- RFC 6749 (sections 4.1.2.1 and 5.2) ----------------------------------------------------------

class InvalidRequest(OidcError):
    code = "invalid_request"


class InvalidClient(OidcError):
    """Client authentication failed. We always answer 401 with a Basic challenge: RFC 6749
    section 5.2 requires it when the client used HTTP Basic and allows it otherwise, and it tells
    a client posting a wrong secret which scheme to use."""

    code = "invalid_client"
    http_status = 401

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}


class InvalidGrant(OidcError):
    code = "invalid_grant"


class UnauthorizedClient(OidcError):
    code = "unauthorized_client"


class UnsupportedGrantType(OidcError):
    code = "unsupported_grant_type"


class InvalidScope(OidcError):
    code = "invalid_scope"


class AccessDenied(OidcError):
    code = "access_denied"


class UnsupportedResponseType(OidcError):
    code = "unsupported_response_type"


class TemporarilyUnavailable(OidcError):
    code = "temporarily_unavailable"


# -- OpenID Connect Core 3.1.2.6, 6.1, 6.2 and Dynamic Registration 2.1 --------------------------

class LoginRequired(OidcError):
    code = "login_required"


class ConsentRequired(OidcError):
    code = "consent_required"


class RequestNotSupported(OidcError):
    code = "request_not_supported"


class RequestUriNotSupported(OidcError):
    code = "request_uri_not_supported"


class RegistrationNotSupported(OidcError):
    code = "registration_not_supported"


class UnmetAuthenticationRequirements(OidcError):
    """OpenID Connect Extended Authentication Profile, ACR values 1.0: the acr asked for is beyond us."""

    code = "unmet_authentication_requirements"


# -- RFC 6750 section 3.1: the bearer endpoints (userinfo) ----------------------------------------

class BearerError(OidcError):
    """An error at a protected resource: its challenge names the error (RFC 6750 section 3)."""

    http_status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="{self.code}", error_description="{self.description}"'}


class InvalidToken(BearerError):
    code = "invalid_token"


class MissingBearerToken(BearerError):
    """No access token (or none we can read): RFC 6750 section 3.1 says the challenge then
    carries no error code, only the realm."""

    code = "invalid_request"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}


# -- the authorization request nobody can be told about ------------------------------------------

class Reason(Enum):
    UNKNOWN_CLIENT = "unknown_client"  # an unknown client_id, or a redirect_uri it has not registered
    INVALID = "invalid"  # too broken to answer at its redirect URI (no redirect_uri or response_type)


class Unanswerable(IdpError):
    code = "oidc_unanswerable"
    http_status = 400

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


_BY_CODE: dict[str, type[OidcError]] = {cls.code: cls for cls in (
    InvalidRequest, InvalidClient, InvalidGrant, UnauthorizedClient, UnsupportedGrantType, InvalidScope,
    AccessDenied, UnsupportedResponseType, InvalidToken)}


def from_pyop(exc: Exception) -> OidcError | Unanswerable:
    """Our error for what pyop (or oic under it) raised; the one place their exceptions are read."""
    if isinstance(exc, (UnknownClientId, InvalidRedirectURI)):
        return Unanswerable(Reason.UNKNOWN_CLIENT, str(exc))
    if isinstance(exc, InvalidAuthenticationRequest) and exc.to_error_url() is None:
        return Unanswerable(Reason.INVALID, str(exc))
    if isinstance(exc, BearerTokenError):
        return MissingBearerToken("a Bearer access token is required")
    if isinstance(exc, InvalidAccessToken):
        return InvalidToken("unknown access token")  # pyop's message would repeat the token
    if isinstance(exc, OAuthError):
        return _BY_CODE.get(exc.oauth_error or InvalidRequest.code, InvalidRequest)(str(exc))
    if isinstance(exc, (KeyError, InvalidSubjectIdentifier)):
        # At the token endpoint: pyop reads its stores by key, and an entry (or subject) gone
        # meanwhile is a grant revoked meanwhile.
        return InvalidGrant("the grant is no longer valid")
    raise TypeError(f"not an exception of pyop's: {type(exc).__name__}") from exc
