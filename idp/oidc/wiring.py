"""Building the OIDC parts from the services: provider, grants, subjects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idp import relying_parties
from idp.errors import NotFound
from idp.oidc.flow import Grants
from idp.oidc.provider import IdpProvider, RegisterAuthorizationState, RegisteredClients
from idp.oidc.subjects import Subjects

if TYPE_CHECKING:
    from idp.services import Services


@dataclass
class OidcParts:
    provider: IdpProvider
    grants: Grants
    subjects: Subjects


def client_metadata(rp: relying_parties.RelyingParty) -> dict[str, Any]:
    return {"client_id": rp.client_id, "name": rp.name, "redirect_uris": list(rp.redirect_uris),
            "response_types": ["code"], "public": rp.public, "subject_type": rp.subject_type,
            "token_endpoint_auth_method": "none" if rp.public else "client_secret_basic",
            "min_acr": rp.min_acr, "claims": list(rp.claims), "id_token_signed_response_alg": "RS256"}


def build_oidc(services: Services) -> OidcParts:
    def lookup(client_id: str) -> Mapping[str, Any] | None:
        with services.registry("oidc") as reg:
            try:
                rp = relying_parties.get(reg, client_id)
            except NotFound:
                return None
            return client_metadata(rp) if rp.protocol == relying_parties.PROTOCOL_OIDC else None

    def authenticate(client_id: str, secret: str | None) -> Mapping[str, Any] | None:
        with services.registry("oidc") as reg:
            if secret is None:
                # A public client proves nothing here; PKCE binds its code instead.
                try:
                    rp = relying_parties.get(reg, client_id)
                except NotFound:
                    return None
                allowed = rp.public and rp.protocol == relying_parties.PROTOCOL_OIDC
            else:
                found = relying_parties.authenticate(reg, client_id, secret)
                rp, allowed = found, found is not None  # type: ignore[assignment]
            if not allowed or relying_parties.refusal_reason(rp, reg.today()) is not None:
                return None
            return client_metadata(rp)

    subjects = Subjects(services.settings.data_key_bytes(), services.state)
    provider = IdpProvider(issuer=services.settings.issuer, keyring=services.keyring,
                           clients=RegisteredClients(lookup),
                           authz_state=RegisterAuthorizationState(services.state, subjects),
                           authenticate=authenticate)
    return OidcParts(provider=provider, grants=Grants(services.state), subjects=subjects)
