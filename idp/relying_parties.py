"""Relying parties: the partners the national library lets log patrons in.

No Flask here. The OIDC and SAML layers ask ``refusal_reason`` before they log anyone in to a
partner; OIDC asks ``authenticate`` when a confidential client presents its secret. A SAML service
provider is a row like any other (a client id, a name, a claim policy, a DPA date), known to the
SAML layer by its entity id and described by its metadata, which idp.saml parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from sqlalchemy import select

from idp.assurance import LEVELS, WEB_MINIMUM
from idp.claims import is_known_claim
from idp.claims.vocabulary import NAMED_CLAIMS
from idp.errors import Conflict, NotAllowed, NotFound, ValidationError
from idp.keys import ALGORITHMS, DEFAULT_ALG
from idp.net import is_loopback
from idp.registry.agreements import check_dpa_date, required_dpa_date
from idp.registry.client_secrets import digest_matches, new_client_id, new_secret
from idp.registry.context import Registry
from idp.registry.models import RelyingParty
from idp.registry.partners import DISABLED, NO_DPA, refusal_reason  # below the claim release, which applies it too

PROTOCOL_OIDC = "oidc"
PROTOCOL_SAML = "saml"
MAX_ENTITY_ID = 1024
PAIRWISE, PUBLIC_SUB = "pairwise", "public"
DEFAULT_CLAIMS: tuple[str, ...] = ("valid_patron",)
MAX_NAME = 200
MAX_REDIRECT_URI = 2000

_CLIENT_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
BACKCHANNEL_LOGOUT_URI = "back-channel logout URI"
FRONTCHANNEL_LOGOUT_URI = "front-channel logout URI"


class _Unset(Enum):
    UNSET = "unset"


# update_oidc_logout's "leave this one as it is" (None and "" clear a URI).
UNSET: Final = _Unset.UNSET


# -- validation -------------------------------------------------------------------------------

def clean_name(name: str) -> str:
    name = " ".join(name.split()) if isinstance(name, str) else ""
    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise ValidationError(f"A relying party needs a name of 1 to {MAX_NAME} printable characters.")
    return name


def clean_redirect_uri(uri: str) -> str:
    """One redirect URI, returned unchanged: the OIDC layer compares them character for character."""
    uri = _clean_web_uri(uri, "redirect URI", fragment_rule="OAuth forbids it")
    if "*" in uri:
        raise ValidationError(f"Redirect URI {uri} has a wildcard; register every URI exactly.")
    return uri


def clean_logout_uri(uri: str, what: str) -> str:
    """A logout URI (``what`` names it in errors: "back-channel logout URI", "front-channel logout
    URI"), returned unchanged. The same rules as a redirect URI: absolute, https (http only on
    loopback), no user name or password, no fragment; a query is allowed (Back-Channel Logout 1.0
    section 2.2, Front-Channel Logout 1.0 section 2). Back-channel URIs are checked again at each
    delivery (idp.oidc.backchannel), as the rules may tighten after registration."""
    return _clean_web_uri(uri, what, fragment_rule="OpenID Connect logout forbids it")


def _clean_web_uri(uri: str, what: str, *, fragment_rule: str) -> str:
    """The checks every URI of a partner's that we send browsers or requests to must pass."""
    label = what[:1].upper() + what[1:]
    if not isinstance(uri, str) or not uri:
        raise ValidationError(f"A {what} cannot be empty.")
    if len(uri) > MAX_REDIRECT_URI:
        raise ValidationError(f"A {what} has at most {MAX_REDIRECT_URI} characters.")
    if any(c.isspace() or not c.isprintable() for c in uri):
        raise ValidationError(f"{label} {uri!r} contains spaces or control characters.")
    if "#" in uri:
        raise ValidationError(f"{label} {uri} has a fragment (#...); {fragment_rule}.")
    try:
        parts = urlsplit(uri)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValidationError(f"{label} {uri} has an invalid host or port.") from None
    if not parts.scheme or not host:
        raise ValidationError(f"{label} {uri} is not absolute (expected https://host/path).")
    if parts.username is not None or parts.password is not None:
        # https://trusted.example@evil.example/ reads like the first host and goes to the second.
        raise ValidationError(f"{label} {uri} contains a user name or password; remove it.")
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and is_loopback(host):
        return uri
    if parts.scheme == "http":
        raise ValidationError(f"{label} {uri} must use https (http only on 127.0.0.1, [::1] or localhost).")
    raise ValidationError(f"{label} {uri} must use https, not {parts.scheme}.")


def clean_redirect_uris(uris: Iterable[str]) -> list[str]:
    cleaned = list(dict.fromkeys(clean_redirect_uri(u) for u in uris))
    if not cleaned:
        raise ValidationError("A relying party needs at least one redirect URI.")
    return cleaned


def clean_claims(claims: Iterable[str] | None) -> list[str]:
    if claims is None:
        return list(DEFAULT_CLAIMS)
    if isinstance(claims, str):
        raise ValidationError("Claims are a list of names, not one string.")
    chosen = list(dict.fromkeys(claims))
    unknown = [c for c in chosen if not is_known_claim(c)]
    if unknown:
        raise ValidationError(f"Unknown claim {unknown[0]!r}; use {', '.join(NAMED_CLAIMS)}, "
                              "age_over_NN (NN two digits, 01 to 99) or a claim an installed plugin provides.")
    return chosen


def check_id_token_alg(alg: str) -> str:
    if alg not in ALGORITHMS:
        raise ValidationError(f"Unknown id_token signing algorithm {alg!r}; use one of: {', '.join(ALGORITHMS)}.")
    return alg


def check_min_acr(min_acr: str, *, pin_allowed: bool) -> str:
    if min_acr not in LEVELS:
        raise ValidationError(f"Unknown assurance level {min_acr!r}; use one of: {', '.join(LEVELS)}.")
    if min_acr == "pin" and not pin_allowed:
        raise ValidationError("A PIN alone is only for kiosks and open-library doors: "
                              "a minimum level of 'pin' needs pin_allowed (--pin-allowed).")
    return min_acr


# -- the service ------------------------------------------------------------------------------

def add_oidc(reg: Registry, name: str, redirect_uris: Sequence[str], *, public: bool = False,
             min_acr: str = WEB_MINIMUM, claims: Sequence[str] | None = None, dpa_signed: date | None = None,
             pin_allowed: bool = False, public_sub: bool = False,
             id_token_alg: str = DEFAULT_ALG, backchannel_logout_uri: str | None = None,
             frontchannel_logout_uri: str | None = None) -> tuple[RelyingParty, str | None]:
    """Register an OIDC client. Returns it with its secret, which exists nowhere else afterwards
    (None for a public client, which cannot keep one). Logout URIs given as None or "" are none."""
    rp = RelyingParty(
        client_id=new_client_id(), name=clean_name(name), protocol=PROTOCOL_OIDC,
        redirect_uris=clean_redirect_uris(redirect_uris), public=bool(public),
        min_acr=check_min_acr(min_acr, pin_allowed=bool(pin_allowed)), pin_allowed=bool(pin_allowed),
        claims=clean_claims(claims), subject_type=PUBLIC_SUB if public_sub else PAIRWISE,
        dpa_signed=check_dpa_date(reg, dpa_signed), disabled=False, created_at=reg.now(),
        id_token_alg=check_id_token_alg(id_token_alg),
        backchannel_logout_uri=_optional_logout_uri(backchannel_logout_uri, BACKCHANNEL_LOGOUT_URI),
        frontchannel_logout_uri=None)
    rp.frontchannel_logout_uri = _check_frontchannel_origin(
        _optional_logout_uri(frontchannel_logout_uri, FRONTCHANNEL_LOGOUT_URI), rp.redirect_uris)
    secret = None
    if not rp.public:
        secret, rp.secret_hash = new_secret()
        rp.secret_rotated_at = rp.created_at
    reg.session.add(rp)
    reg.session.flush()
    reg.audit("rp.add", client_id=rp.client_id, protocol=rp.protocol, public=rp.public, min_acr=rp.min_acr,
              pin_allowed=rp.pin_allowed, claims=list(rp.claims), subject_type=rp.subject_type,
              redirect_uris=list(rp.redirect_uris), dpa_signed=_iso(rp.dpa_signed), id_token_alg=rp.id_token_alg,
              backchannel_logout_uri=rp.backchannel_logout_uri, frontchannel_logout_uri=rp.frontchannel_logout_uri)
    return rp, secret


def update_oidc_logout(reg: Registry, client_id: str, *,
                       backchannel_logout_uri: str | _Unset | None = UNSET,
                       frontchannel_logout_uri: str | _Unset | None = UNSET) -> RelyingParty:
    """Set or clear (None or "") an OIDC client's logout URIs; one left UNSET keeps its value.

    Audited as ``rp.update`` with the values before and after, when anything changed. NotAllowed
    for a SAML service provider (its single logout endpoints come from its metadata).
    """
    rp = get(reg, client_id)
    if rp.protocol != PROTOCOL_OIDC:
        raise NotAllowed(f"Relying party {rp.client_id} is a SAML service provider: its logout endpoints "
                         "come from its metadata (idp rp load-saml-metadata).")
    wanted = {}
    if not isinstance(backchannel_logout_uri, _Unset):
        wanted["backchannel_logout_uri"] = _optional_logout_uri(backchannel_logout_uri, BACKCHANNEL_LOGOUT_URI)
    if not isinstance(frontchannel_logout_uri, _Unset):
        wanted["frontchannel_logout_uri"] = _check_frontchannel_origin(
            _optional_logout_uri(frontchannel_logout_uri, FRONTCHANNEL_LOGOUT_URI), rp.redirect_uris)
    changed = {name: {"from": getattr(rp, name), "to": value} for name, value in wanted.items()
               if getattr(rp, name) != value}
    if changed:
        for name, change in changed.items():
            setattr(rp, name, change["to"])
        reg.session.flush()
        reg.audit("rp.update", client_id=rp.client_id, changes=changed)
    return rp


def _optional_logout_uri(uri: str | None, what: str) -> str | None:
    return None if uri is None or uri == "" else clean_logout_uri(uri, what)


def _check_frontchannel_origin(uri: str | None, redirect_uris: Sequence[str]) -> str | None:
    """Front-Channel Logout 1.0 section 2: the URI's scheme, host and port are those of a registered
    redirect URI, so the logout page frames only a site the client already sends patrons back to."""
    if uri is not None and _origin(uri) not in {_origin(r) for r in redirect_uris}:
        raise ValidationError(f"Front-channel logout URI {uri} must have the scheme, host and port of one of the "
                              f"client's redirect URIs ({', '.join(sorted({_origin(r) for r in redirect_uris}))}).")
    return uri


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def add_saml(reg: Registry, *, entity_id: str, name: str, metadata_xml: str, name_id_formats: Sequence[str],
             claims: Sequence[str] | None = None, dpa_signed: date | None = None, min_acr: str = WEB_MINIMUM,
             allow_unsolicited: bool = False, public_sub: bool = False) -> RelyingParty:
    """Register a SAML service provider from its (already parsed and checked) metadata."""
    entity_id = _clean_entity_id(entity_id)
    existing = find_saml(reg, entity_id)
    if existing is not None:
        raise Conflict(f"{entity_id} is already registered (client_id {existing.client_id}); "
                       "to refresh its metadata use: idp rp load-saml-metadata")
    rp = RelyingParty(
        client_id=new_client_id(), name=clean_name(name), protocol=PROTOCOL_SAML, redirect_uris=[], public=False,
        min_acr=check_min_acr(min_acr, pin_allowed=False), pin_allowed=False, claims=clean_claims(claims),
        subject_type=PUBLIC_SUB if public_sub else PAIRWISE, dpa_signed=check_dpa_date(reg, dpa_signed),
        disabled=False, created_at=reg.now(), entity_id=entity_id, saml_metadata=metadata_xml,
        metadata_updated_at=reg.now(), name_id_formats=list(name_id_formats),
        allow_unsolicited=bool(allow_unsolicited))
    reg.session.add(rp)
    reg.session.flush()
    reg.audit("rp.add", client_id=rp.client_id, protocol=rp.protocol, entity_id=entity_id, min_acr=rp.min_acr,
              claims=list(rp.claims), subject_type=rp.subject_type, allow_unsolicited=rp.allow_unsolicited,
              dpa_signed=_iso(rp.dpa_signed))
    return rp


def update_saml_metadata(reg: Registry, rp: RelyingParty, metadata_xml: str, name_id_formats: Sequence[str]) -> bool:
    """Replace an SP's metadata (its policy stays as the operator set it); True if it changed."""
    if rp.protocol != PROTOCOL_SAML:
        raise NotAllowed(f"Relying party {rp.client_id} is not a SAML service provider.")
    if rp.saml_metadata == metadata_xml and list(rp.name_id_formats or []) == list(name_id_formats):
        return False
    rp.saml_metadata, rp.name_id_formats, rp.metadata_updated_at = metadata_xml, list(name_id_formats), reg.now()
    reg.session.flush()
    reg.audit("rp.update_metadata", client_id=rp.client_id, entity_id=rp.entity_id)
    return True


def find_saml(reg: Registry, entity_id: str) -> RelyingParty | None:
    """The SAML service provider with this entity id, or None."""
    if not isinstance(entity_id, str) or not 0 < len(entity_id) <= MAX_ENTITY_ID:
        return None
    return reg.session.scalar(select(RelyingParty).where(RelyingParty.entity_id == entity_id,
                                                         RelyingParty.protocol == PROTOCOL_SAML))


def get_saml(reg: Registry, entity_id: str) -> RelyingParty:
    found = find_saml(reg, entity_id)
    if found is None:
        # Not echoed: it came from a browser and may be anything.
        raise NotFound("No SAML service provider is registered with that entity id.")
    return found


def _clean_entity_id(entity_id: str) -> str:
    if not isinstance(entity_id, str) or not 0 < len(entity_id) <= MAX_ENTITY_ID or not entity_id.isprintable() \
            or entity_id != entity_id.strip():
        raise ValidationError(f"An entity id is 1 to {MAX_ENTITY_ID} printable characters without surrounding spaces.")
    return entity_id


def get(reg: Registry, client_id: str) -> RelyingParty:
    if not isinstance(client_id, str) or not _CLIENT_ID_SHAPE.fullmatch(client_id):
        # Not echoed: it may be anything a browser sent, of any length.
        raise NotFound("No relying party has that client_id (client ids are letters, digits, - and _).")
    rp = reg.session.scalar(select(RelyingParty).where(RelyingParty.client_id == client_id))
    if rp is None:
        raise NotFound(f"No relying party has client_id {client_id}.")
    return rp


def list_all(reg: Registry) -> list[RelyingParty]:
    return list(reg.session.scalars(select(RelyingParty).order_by(RelyingParty.name, RelyingParty.id)))


def disable(reg: Registry, client_id: str) -> RelyingParty:
    """Stop a partner logging anyone in or using its secret. Idempotent: scripts may repeat it."""
    return _set_disabled(reg, client_id, True)


def enable(reg: Registry, client_id: str) -> RelyingParty:
    return _set_disabled(reg, client_id, False)


def _set_disabled(reg: Registry, client_id: str, disabled: bool) -> RelyingParty:
    rp = get(reg, client_id)
    if rp.disabled != disabled:
        rp.disabled = disabled
        reg.session.flush()
        reg.audit("rp.disable" if disabled else "rp.enable", client_id=rp.client_id)
    return rp


def set_dpa(reg: Registry, client_id: str, signed: date) -> RelyingParty:
    """Record the date the partner's data processing agreement was signed (a later one replaces it)."""
    signed = required_dpa_date(reg, signed)
    rp = get(reg, client_id)
    if rp.dpa_signed != signed:
        previous, rp.dpa_signed = rp.dpa_signed, signed
        reg.session.flush()
        reg.audit("rp.set_dpa", client_id=rp.client_id, dpa_signed=_iso(signed), previous=_iso(previous))
    return rp


def rotate_secret(reg: Registry, client_id: str) -> tuple[RelyingParty, str]:
    """A new secret for a confidential client; the old one stops working when this commits."""
    rp = get(reg, client_id)
    if rp.protocol != PROTOCOL_OIDC:
        raise NotAllowed(f"Relying party {rp.client_id} is a SAML service provider: it has no secret to rotate.")
    if rp.public:
        raise NotAllowed(f"Relying party {rp.client_id} is a public client: it has no secret to rotate.")
    secret, rp.secret_hash = new_secret()
    rp.secret_rotated_at = reg.now()
    reg.session.flush()
    reg.audit("rp.rotate_secret", client_id=rp.client_id)
    return rp, secret


def authenticate(reg: Registry, client_id: str, secret: str) -> RelyingParty | None:
    """The confidential client with this id and secret, or None (unknown, public, disabled, wrong secret).

    A missing data processing agreement is not checked here: that is ``refusal_reason``'s job
    before any login, and so before any code exists to exchange.
    """
    found = None
    if isinstance(client_id, str) and _CLIENT_ID_SHAPE.fullmatch(client_id):
        found = reg.session.scalar(select(RelyingParty).where(RelyingParty.client_id == client_id))
    return found if secret_matches(found, secret) else None


def secret_matches(rp: RelyingParty | None, secret: str | None) -> bool:
    """Whether ``secret`` is this confidential, enabled client's secret.

    The comparison takes the same time whatever the secret presented, and an unknown or public
    client costs the same digest and comparison, so timing tells nothing about the secret.
    """
    usable = rp is not None and not rp.public and not rp.disabled
    return digest_matches(rp.secret_hash if usable and rp is not None else None, secret)


def is_allowed_to_log_in(rp: RelyingParty, today: date) -> bool:
    return refusal_reason(rp, today) is None


def status(rp: RelyingParty, today: date) -> str:
    """One word for operators: active, disabled or no DPA."""
    reason = refusal_reason(rp, today)
    return {None: "active", DISABLED: "disabled", NO_DPA: "no DPA"}[reason]


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None

