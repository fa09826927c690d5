"""Building the OIDC parts from the services: provider, grants, subjects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from idp import relying_parties
from idp.errors import NotFound
from idp.oidc.client_credentials import LibraryClients, advertise
from idp.oidc.flow import Grants
from idp.oidc.provider import ClientEntry, IdpProvider, RegisterAuthorizationState, RegisteredClients
from idp.registry.dates import oslo_date
from idp.subjects import Subjects

if TYPE_CHECKING:
    from idp.services import Services


@dataclass
class OidcParts:
    provider: IdpProvider
    grants: Grants
    subjects: Subjects
    # (client_id, secret or None for a public client) -> the client, if it may act today.
    authenticate: Callable[[str, str | None], ClientEntry | None]
    # Library systems and their client credentials grant.
    library_clients: LibraryClients


def client_metadata(rp: relying_parties.RelyingParty) -> dict[str, Any]:
    return {"client_id": rp.client_id, "name": rp.name, "redirect_uris": list(rp.redirect_uris),
            "response_types": ["code"], "public": rp.public, "subject_type": rp.subject_type,
            "token_endpoint_auth_method": "none" if rp.public else "client_secret_basic",
            "min_acr": rp.min_acr, "claims": list(rp.claims), "id_token_signed_response_alg": rp.id_token_alg,
            # OIDC single logout (None: not registered); the session variants are always on (sid is sent).
            "backchannel_logout_uri": rp.backchannel_logout_uri, "frontchannel_logout_uri": rp.frontchannel_logout_uri}


def build_oidc(services: Services) -> OidcParts:
    def lookup(client_id: str) -> ClientEntry | None:
        with services.registry("oidc") as reg:
            try:
                rp = relying_parties.get(reg, client_id)
            except NotFound:
                return None
            if rp.protocol != relying_parties.PROTOCOL_OIDC:
                return None
            reg.session.expunge(rp)  # kept read-only beyond this transaction
            return ClientEntry(client_metadata(rp), rp)

    clients = RegisteredClients(lookup)

    def authenticate(client_id: str, secret: str | None) -> ClientEntry | None:
        entry = clients.entry(client_id)
        rp = entry.record if entry is not None else None
        # A public client proves nothing here (PKCE binds its code instead); an unknown client's
        # secret is still compared, so timing does not tell which client ids exist.
        allowed = (rp is not None and rp.public) if secret is None else relying_parties.secret_matches(rp, secret)
        if not allowed or rp is None or relying_parties.refusal_reason(rp, oslo_date(services.clock())):
            return None
        return entry

    subjects = Subjects(services.settings.data_key_bytes(), services.state)
    provider = IdpProvider(issuer=services.settings.issuer, keyring=services.keyring, clients=clients,
                           authz_state=RegisterAuthorizationState(services.state, subjects),
                           authenticate=lambda *presented: getattr(authenticate(*presented), "metadata", None))
    advertise(provider.configuration_information)
    library_clients = LibraryClients(services.registry, services.state, lambda: services.clock(),
                                     audiences=(provider.configuration_information["issuer"],
                                                provider.configuration_information["token_endpoint"]),
                                     read=services.read)
    return OidcParts(provider=provider, grants=Grants(services.state, provider.authz_state), subjects=subjects,
                     authenticate=authenticate, library_clients=library_clients)
