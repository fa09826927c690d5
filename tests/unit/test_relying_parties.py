"""Relying parties: registration rules, client authentication, and who may log patrons in."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from idp import relying_parties as rps
from idp.assurance import LEVELS
from idp.claims import is_known_claim
from idp.claims.vocabulary import AGE_OVER_CLAIM
from idp.errors import NotAllowed, NotFound, ValidationError
from idp.registry.context import Registry
from idp.registry.models import AuditEvent, RelyingParty
from idp.services import Services
from tests.conftest import FakeClock

FILM_CB = "https://film.example/callback"
TODAY = date(2026, 11, 23)  # the conftest clock: 2026-11-23 12:00 UTC, the same day in Oslo


def add(reg: Registry, name: str = "Film platform", redirect_uris: list[str] | None = None,
        **options: Any) -> tuple[RelyingParty, str | None]:
    return rps.add_oidc(reg, name, [FILM_CB] if redirect_uris is None else redirect_uris, **options)


def stored(services: Services) -> tuple[int, int]:
    """How many relying parties and audit events the register holds, each in its own transaction."""
    with services.registry("test") as reg:
        parties = reg.session.scalar(select(func.count()).select_from(RelyingParty)) or 0
        events = reg.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        return parties, events


def refused(services: Services, make: Callable[[Registry], object], says: str,
            error: type[Exception] = ValidationError) -> None:
    """The call fails with a message containing ``says`` and leaves nothing behind."""
    before = stored(services)
    with pytest.raises(error) as info, services.registry("test") as reg:
        make(reg)
    assert says in str(info.value), str(info.value)
    assert stored(services) == before


def audit_details(reg: Registry) -> list[tuple[str, dict[str, Any]]]:
    reg.session.flush()
    return [(e.action, e.detail) for e in reg.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


# --- registration --------------------------------------------------------------------------------


def test_a_confidential_client_gets_a_random_id_and_a_secret_stored_only_as_a_digest(reg: Registry) -> None:
    rp, secret = add(reg)
    assert secret is not None and len(secret) >= 43  # 32 random bytes, url-safe base64
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", rp.client_id)
    assert rp.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert (rp.protocol, rp.public, rp.min_acr, rp.pin_allowed, rp.claims, rp.subject_type) == (
        "oidc", False, "password", False, ["valid_patron"], "pairwise")
    assert (rp.dpa_signed, rp.disabled, rp.redirect_uris) == (None, False, [FILM_CB])
    assert rp.created_at == rp.secret_rotated_at == reg.now()


def test_a_client_id_never_starts_with_a_hyphen(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # It is typed as a command argument, where a leading "-" reads as an option.
    drawn = iter(["-startsLikeAnOption_xyz", "StartsLikeAnId_xyz123-"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(drawn))
    assert add(reg, public=True)[0].client_id == "StartsLikeAnId_xyz123-"


def test_a_public_client_has_no_secret(reg: Registry) -> None:
    rp, secret = add(reg, public=True)
    assert secret is None
    assert (rp.public, rp.secret_hash, rp.secret_rotated_at) == (True, None, None)


def test_every_client_gets_its_own_id_and_secret(reg: Registry) -> None:
    (a, secret_a), (b, secret_b) = add(reg), add(reg)
    assert a.client_id != b.client_id and secret_a != secret_b


@pytest.mark.backends
def test_all_options_are_kept(reg: Registry) -> None:
    rp, _ = add(reg, "  Kiosk   door  ", ["https://door.example/cb"], min_acr="pin", pin_allowed=True,
                claims=["valid_patron", "loan_ban", "age_over_18"], dpa_signed=date(2025, 6, 1), public_sub=True)
    assert (rp.name, rp.min_acr, rp.pin_allowed, rp.subject_type, rp.dpa_signed) == (
        "Kiosk door", "pin", True, "public", date(2025, 6, 1))
    assert rp.claims == ["valid_patron", "loan_ban", "age_over_18"]


def test_repr_shows_no_secret_hash(reg: Registry) -> None:
    rp, secret = add(reg)
    assert rp.secret_hash is not None and secret is not None
    shown = repr(rp)
    assert rp.client_id in shown
    assert rp.secret_hash.hex() not in shown and repr(rp.secret_hash) not in shown and secret not in shown


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\x00name"])
def test_a_name_has_1_to_200_printable_characters(services: Services, name: str) -> None:
    refused(services, lambda reg: add(reg, name), "1 to 200")


def test_a_name_of_200_characters_is_fine(reg: Registry) -> None:
    assert add(reg, "x" * 200)[0].name == "x" * 200


@pytest.mark.parametrize(("uri", "says"), [
    pytest.param("", "empty", id="empty"),
    pytest.param("/callback", "not absolute", id="path-only"),
    pytest.param("film.example/callback", "not absolute", id="no-scheme"),
    pytest.param("https:/callback", "not absolute", id="no-host"),
    pytest.param("//film.example/callback", "not absolute", id="scheme-relative"),
    pytest.param("http://film.example/callback", "https", id="http-on-the-internet"),
    pytest.param("http://localhost.evil.example/cb", "https", id="http-looks-like-localhost"),
    pytest.param("http://127.0.0.1.nip.io/cb", "https", id="http-looks-like-loopback"),
    pytest.param("http://10.0.0.1/cb", "https", id="http-private-address"),
    pytest.param("ftp://film.example/cb", "https", id="other-scheme"),
    pytest.param("no.film.app:/callback", "not absolute", id="custom-scheme"),
    pytest.param(FILM_CB + "#section", "fragment", id="fragment"),
    pytest.param(FILM_CB + "#", "fragment", id="empty-fragment"),
    pytest.param("https://*.film.example/cb", "wildcard", id="wildcard-host"),
    pytest.param("https://film.example/*", "wildcard", id="wildcard-path"),
    pytest.param("https://film.example/" + "a" * 1980, "2000", id="too-long"),
    pytest.param("https://film.example/call back", "spaces", id="space"),
    pytest.param(" " + FILM_CB, "spaces", id="leading-space"),
    pytest.param(FILM_CB + "\n", "spaces", id="newline"),
    pytest.param("https://film.example@evil.example/cb", "user name", id="userinfo"),
    pytest.param("https://film.example:99999/cb", "port", id="bad-port"),
    pytest.param("https://[::1/cb", "host", id="broken-ipv6"),
])
def test_bad_redirect_uris_are_refused(services: Services, uri: str, says: str) -> None:
    refused(services, lambda reg: add(reg, redirect_uris=["https://ok.example/cb", uri]), says)


def test_at_least_one_redirect_uri(services: Services) -> None:
    refused(services, lambda reg: add(reg, redirect_uris=[]), "at least one redirect URI")


@pytest.mark.backends
@pytest.mark.parametrize("uri", [
    FILM_CB,
    "https://film.example:8443/cb?tenant=oslo",
    "http://127.0.0.1:8080/callback",
    "http://[::1]:53682/",
    "http://localhost/cb",
    "http://LOCALHOST:3000/cb",
    "https://film.example/" + "a" * (2000 - len("https://film.example/")),
])
def test_good_redirect_uris_are_kept_exactly_as_given(reg: Registry, uri: str) -> None:
    assert add(reg, redirect_uris=[uri])[0].redirect_uris == [uri]


@pytest.mark.backends
def test_duplicate_redirect_uris_are_dropped_keeping_the_order(reg: Registry) -> None:
    b, a = "https://b.example/cb", "https://a.example/cb"
    assert add(reg, redirect_uris=[b, a, b, a])[0].redirect_uris == [b, a]


@pytest.mark.parametrize("level", [level for level in LEVELS if level != "pin"])
def test_any_web_level_may_be_the_minimum(reg: Registry, level: str) -> None:
    assert add(reg, min_acr=level)[0].min_acr == level


def test_an_unknown_level_is_refused(services: Services) -> None:
    refused(services, lambda reg: add(reg, min_acr="sms"), "Unknown assurance level")


def test_pin_as_the_minimum_needs_pin_allowed(services: Services) -> None:
    refused(services, lambda reg: add(reg, min_acr="pin"), "--pin-allowed")
    with services.registry("test") as reg:
        assert add(reg, min_acr="pin", pin_allowed=True)[0].min_acr == "pin"


@pytest.mark.parametrize("claims", [
    ["valid_patron", "loan_ban", "home_library", "libraries", "name", "email"],
    ["age_over_01", "age_over_15", "age_over_18", "age_over_99"],
    [],
])
def test_known_claims_are_accepted(reg: Registry, claims: list[str]) -> None:
    assert add(reg, claims=claims)[0].claims == claims


@pytest.mark.parametrize("claim", ["age_over_00", "age_over_5", "age_over_100", "age_over_1a", "age_under_18",
                                   "birth_date", "address", "national_id", "Valid_patron", " valid_patron",
                                   "age_over_15 ", ""])
def test_unknown_claims_are_refused(services: Services, claim: str) -> None:
    refused(services, lambda reg: add(reg, claims=["valid_patron", claim]), "Unknown claim")


def test_claims_as_one_string_are_refused(services: Services) -> None:
    # A string is iterable: without this check "email" would become e, m, a, i, l.
    refused(services, lambda reg: add(reg, claims="valid_patron"), "list")


@pytest.mark.backends
def test_duplicate_claims_are_dropped_keeping_the_order(reg: Registry) -> None:
    assert add(reg, claims=["age_over_18", "valid_patron", "age_over_18"])[0].claims == [
        "age_over_18", "valid_patron"]


def test_the_claim_vocabulary_is_reusable() -> None:
    assert is_known_claim("age_over_13") and is_known_claim("home_library")
    assert not is_known_claim("age_over_7") and not is_known_claim("sub")
    assert AGE_OVER_CLAIM.fullmatch("age_over_67")


def test_a_data_processing_agreement_cannot_be_signed_in_the_future(services: Services) -> None:
    refused(services, lambda reg: add(reg, dpa_signed=TODAY + timedelta(days=1)), "future")
    with services.registry("test") as reg:
        assert add(reg, dpa_signed=TODAY)[0].dpa_signed == TODAY


def test_today_is_reckoned_in_oslo(services: Services, clock: FakeClock) -> None:
    clock.now = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # already 24 November in Oslo
    with services.registry("test") as reg:
        assert add(reg, dpa_signed=date(2026, 11, 24))[0].dpa_signed == date(2026, 11, 24)


def test_a_datetime_is_not_a_dpa_date(services: Services) -> None:
    refused(services, lambda reg: add(reg, dpa_signed=datetime(2025, 1, 1, tzinfo=UTC)), "YYYY-MM-DD")


# --- lookup, list, disable, DPA ----------------------------------------------------------------------


def test_get_finds_a_client_and_names_an_unknown_one(reg: Registry) -> None:
    rp, _ = add(reg)
    assert rps.get(reg, rp.client_id) is rp
    with pytest.raises(NotFound, match="AbsentClient_123"):
        rps.get(reg, "AbsentClient_123")


@pytest.mark.parametrize("client_id", ["", "x" * 65, "a b", "<script>", "é"])
def test_get_does_not_echo_what_cannot_be_a_client_id(reg: Registry, client_id: str) -> None:
    with pytest.raises(NotFound) as info:
        rps.get(reg, client_id)
    assert client_id not in info.value.message or client_id == ""


@pytest.mark.backends
def test_list_all_holds_every_client(reg: Registry) -> None:
    assert rps.list_all(reg) == []
    names = [add(reg, name)[0].name for name in ("Film", "E-books", "Kiosk")]
    assert sorted(rp.name for rp in rps.list_all(reg)) == sorted(names)


def test_disable_and_enable_are_idempotent_and_audited_once(reg: Registry) -> None:
    rp, _ = add(reg)
    for _ in range(2):
        assert rps.disable(reg, rp.client_id).disabled
    for _ in range(2):
        assert not rps.enable(reg, rp.client_id).disabled
    assert [action for action, _ in audit_details(reg)] == ["rp.add", "rp.disable", "rp.enable"]


def test_set_dpa_records_a_later_agreement(reg: Registry) -> None:
    rp, _ = add(reg)
    assert rps.set_dpa(reg, rp.client_id, date(2026, 1, 15)).dpa_signed == date(2026, 1, 15)
    rps.set_dpa(reg, rp.client_id, date(2026, 2, 1))
    assert audit_details(reg)[-1] == ("rp.set_dpa", {"client_id": rp.client_id, "dpa_signed": "2026-02-01",
                                                     "previous": "2026-01-15"})


def test_set_dpa_refuses_a_future_date_and_keeps_the_old_one(services: Services) -> None:
    with services.registry("test") as reg:
        client_id = add(reg, dpa_signed=date(2025, 1, 1))[0].client_id
    refused(services, lambda reg: rps.set_dpa(reg, client_id, TODAY + timedelta(days=30)), "future")
    refused(services, lambda reg: rps.set_dpa(reg, client_id, None), "YYYY-MM-DD")  # type: ignore[arg-type]
    with services.registry("test") as reg:
        assert rps.get(reg, client_id).dpa_signed == date(2025, 1, 1)


def test_changing_an_unknown_client_fails(services: Services) -> None:
    for change in (rps.disable, rps.enable, rps.rotate_secret):
        refused(services, lambda reg, change=change: change(reg, "NoSuchClient"), "NoSuchClient", NotFound)
    refused(services, lambda reg: rps.set_dpa(reg, "NoSuchClient", TODAY), "NoSuchClient", NotFound)


# --- who may log patrons in ------------------------------------------------------------------------


def test_without_a_dpa_a_client_is_not_yet_approved(reg: Registry) -> None:
    rp, _ = add(reg)
    assert rps.refusal_reason(rp, TODAY) == rps.NO_DPA == "not yet approved: no data processing agreement"
    assert not rps.is_allowed_to_log_in(rp, TODAY)
    rps.set_dpa(reg, rp.client_id, TODAY)
    assert rps.refusal_reason(rp, TODAY) is None and rps.is_allowed_to_log_in(rp, TODAY)


def test_an_agreement_counts_from_the_day_it_was_signed(reg: Registry) -> None:
    rp, _ = add(reg, dpa_signed=TODAY)
    assert rps.refusal_reason(rp, TODAY - timedelta(days=1)) == rps.NO_DPA


def test_a_disabled_client_is_refused_whatever_its_dpa(reg: Registry) -> None:
    with_dpa, _ = add(reg, dpa_signed=TODAY)
    without_dpa, _ = add(reg)
    for rp in (with_dpa, without_dpa):
        rps.disable(reg, rp.client_id)
        assert rps.refusal_reason(rp, TODAY) == rps.DISABLED == "disabled"
        assert not rps.is_allowed_to_log_in(rp, TODAY)
    rps.enable(reg, with_dpa.client_id)
    assert rps.is_allowed_to_log_in(with_dpa, TODAY)


def test_status_is_one_word_for_operators(reg: Registry) -> None:
    active, _ = add(reg, dpa_signed=TODAY)
    no_dpa, _ = add(reg)
    disabled, _ = add(reg, dpa_signed=TODAY)
    rps.disable(reg, disabled.client_id)
    assert [rps.status(rp, TODAY) for rp in (active, no_dpa, disabled)] == ["active", "no DPA", "disabled"]


# --- client authentication -----------------------------------------------------------------------


def test_authenticate_with_the_right_secret(reg: Registry) -> None:
    rp, secret = add(reg)
    assert secret is not None
    assert rps.authenticate(reg, rp.client_id, secret) is rp


@pytest.mark.parametrize("wrong", [
    pytest.param(lambda s: s[:-1], id="truncated"),
    pytest.param(lambda s: s + "x", id="extended"),
    pytest.param(lambda s: s.upper(), id="other-case"),
    pytest.param(lambda s: "", id="empty"),
    pytest.param(lambda s: s * 20, id="very-long"),
    pytest.param(lambda s: s[:10] + "\udcff", id="lone-surrogate"),
    pytest.param(lambda s: None, id="none"),
    pytest.param(lambda s: s.encode(), id="bytes"),
])
def test_authenticate_with_a_wrong_secret(reg: Registry, wrong: Callable[[str], Any]) -> None:
    rp, secret = add(reg)
    assert secret is not None
    assert rps.authenticate(reg, rp.client_id, wrong(secret)) is None


def test_authenticate_an_unknown_or_malformed_client(reg: Registry) -> None:
    _, secret = add(reg)
    assert secret is not None
    for client_id in ("UnknownClient", "", "x" * 500, None):
        assert rps.authenticate(reg, client_id, secret) is None  # type: ignore[arg-type]


def test_a_public_client_never_authenticates_with_a_secret(reg: Registry) -> None:
    rp, _ = add(reg, public=True)
    for guess in ("", "anything", "no secret"):
        assert rps.authenticate(reg, rp.client_id, guess) is None


def test_a_disabled_client_cannot_authenticate_until_enabled(reg: Registry) -> None:
    rp, secret = add(reg)
    assert secret is not None
    rps.disable(reg, rp.client_id)
    assert rps.authenticate(reg, rp.client_id, secret) is None
    rps.enable(reg, rp.client_id)
    assert rps.authenticate(reg, rp.client_id, secret) is rp


def test_authentication_does_the_same_work_on_every_path(
        reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # Timing cannot be asserted reliably; the shape of the work can: one digest of the presented
    # secret, one constant-time comparison, whether the client exists or not.
    confidential, secret = add(reg)
    public, _ = add(reg, public=True)
    disabled, _ = add(reg)
    rps.disable(reg, disabled.client_id)
    assert secret is not None
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for client_id, presented in [(confidential.client_id, secret), (confidential.client_id, "wrong"),
                                 ("UnknownClient", secret), (public.client_id, secret),
                                 (disabled.client_id, secret), (confidential.client_id, "x" * 10_000)]:
        rps.authenticate(reg, client_id, presented)
    assert compared == [(32, 32)] * 6


def test_rotating_a_secret_invalidates_the_old_one(services: Services, clock: FakeClock) -> None:
    with services.registry("test") as reg:
        rp, old = add(reg)
        client_id, created = rp.client_id, rp.created_at
    clock.advance(days=90)
    with services.registry("test") as reg:
        rotated, new = rps.rotate_secret(reg, client_id)
        assert rotated.secret_rotated_at == created + timedelta(days=90)
    assert new != old and old is not None
    with services.registry("test") as reg:
        assert rps.authenticate(reg, client_id, old) is None
        found = rps.authenticate(reg, client_id, new)
        assert found is not None and found.client_id == client_id


def test_a_public_client_has_no_secret_to_rotate(services: Services) -> None:
    with services.registry("test") as reg:
        client_id = add(reg, public=True)[0].client_id
    refused(services, lambda reg: rps.rotate_secret(reg, client_id), "public client", NotAllowed)
    with services.registry("test") as reg:
        assert rps.get(reg, client_id).secret_hash is None


# --- audit ---------------------------------------------------------------------------------------


@pytest.mark.backends
def test_every_change_is_audited_without_any_secret(reg: Registry) -> None:
    rp, first = add(reg, claims=["valid_patron", "age_over_18"])
    rps.set_dpa(reg, rp.client_id, date(2026, 1, 15))
    rps.disable(reg, rp.client_id)
    rps.enable(reg, rp.client_id)
    _, second = rps.rotate_secret(reg, rp.client_id)
    assert first is not None and rp.secret_hash is not None
    events = reg.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()

    assert [e.action for e in events] == ["rp.add", "rp.set_dpa", "rp.disable", "rp.enable", "rp.rotate_secret"]
    assert all(e.detail["client_id"] == rp.client_id and e.actor == "test" for e in events)
    assert events[0].detail["claims"] == ["valid_patron", "age_over_18"]
    assert events[0].detail["redirect_uris"] == [FILM_CB]
    everything = json.dumps([e.detail for e in events])
    old_hash = hashlib.sha256(first.encode()).hexdigest()
    for secret in (first, second, old_hash, rp.secret_hash.hex()):
        assert secret not in everything
    assert "secret_hash" not in everything


# --- logout URIs (Back-Channel Logout 1.0 section 2.2, Front-Channel Logout 1.0 section 2) --------

BACK = "https://film.example/logout/backchannel"
FRONT = "https://film.example/logout/frontchannel?from=idp"
LOGOUT_OPTIONS = ["backchannel_logout_uri", "frontchannel_logout_uri"]


@pytest.mark.parametrize("option", LOGOUT_OPTIONS)
@pytest.mark.parametrize(("uri", "says"), [
    pytest.param("/logout", "not absolute", id="path-only"),
    pytest.param("http://film.example/logout", "https", id="http-on-the-internet"),
    pytest.param("http://localhost.evil.example/logout", "https", id="http-looks-like-localhost"),
    pytest.param("ftp://film.example/logout", "https", id="other-scheme"),
    pytest.param(BACK + "#x", "fragment", id="fragment"),
    pytest.param("https://film.example@evil.example/logout", "user name", id="userinfo"),
    pytest.param("https://film.example:99999/logout", "port", id="bad-port"),
    pytest.param("https://film.example/log out", "spaces", id="space"),
    pytest.param("https://film.example/" + "a" * 1980, "2000", id="too-long"),
])
def test_bad_logout_uris_are_refused_with_their_name(services: Services, option: str, uri: str, says: str) -> None:
    refused(services, lambda reg: add(reg, **{option: uri}), says)
    # The operator learns which of the URIs given is wrong.
    named = "back-channel logout uri" if option.startswith("back") else "front-channel logout uri"
    with pytest.raises(ValidationError) as info, services.registry("test") as reg:
        add(reg, **{option: uri})
    assert named in str(info.value).lower()


@pytest.mark.parametrize("uri", [BACK, FRONT, "http://127.0.0.1:8080/logout", "http://[::1]:9000/bc?x=1"])
def test_good_logout_uris_are_kept_exactly_as_given(reg: Registry, uri: str) -> None:
    # A redirect URI on the same origin: a front-channel URI must share one's (the next test).
    rp, _ = add(reg, redirect_uris=[FILM_CB, uri], backchannel_logout_uri=uri, frontchannel_logout_uri=uri)
    assert (rp.backchannel_logout_uri, rp.frontchannel_logout_uri) == (uri, uri)


@pytest.mark.parametrize("uri", ["https://other.example/logout", "https://film.example:8443/logout",
                                 "http://127.0.0.1:8080/logout"])
def test_a_front_channel_uri_must_share_the_scheme_host_and_port_of_a_redirect_uri(services: Services,
                                                                                    uri: str) -> None:
    # Front-Channel Logout 1.0 section 2: "The domain, port, and scheme of this URL MUST be the same
    # as that of a registered Redirection URI value."
    refused(services, lambda reg: add(reg, frontchannel_logout_uri=uri), "redirect URIs")
    with services.registry("test") as reg:
        client_id = add(reg)[0].client_id
    refused(services, lambda reg: rps.update_oidc_logout(reg, client_id, frontchannel_logout_uri=uri), "redirect URIs")
    with services.registry("test") as reg:
        assert rps.get(reg, client_id).frontchannel_logout_uri is None
        # Back-channel calls go server to server: any origin that passes the URI rules will do.
        assert rps.update_oidc_logout(reg, client_id, backchannel_logout_uri=uri).backchannel_logout_uri == uri


def test_no_logout_uri_by_default_and_an_empty_one_is_none(reg: Registry) -> None:
    assert (add(reg)[0].backchannel_logout_uri, add(reg)[0].frontchannel_logout_uri) == (None, None)
    rp, _ = add(reg, backchannel_logout_uri="", frontchannel_logout_uri="")
    assert (rp.backchannel_logout_uri, rp.frontchannel_logout_uri) == (None, None)


def test_update_oidc_logout_sets_keeps_and_clears_and_is_audited(reg: Registry) -> None:
    rp, _ = add(reg)
    rps.update_oidc_logout(reg, rp.client_id, backchannel_logout_uri=BACK)
    rps.update_oidc_logout(reg, rp.client_id, frontchannel_logout_uri=FRONT)  # the other one is kept
    assert (rp.backchannel_logout_uri, rp.frontchannel_logout_uri) == (BACK, FRONT)
    rps.update_oidc_logout(reg, rp.client_id, backchannel_logout_uri=BACK)  # no change: no audit line
    rps.update_oidc_logout(reg, rp.client_id, backchannel_logout_uri=None, frontchannel_logout_uri="")
    assert (rp.backchannel_logout_uri, rp.frontchannel_logout_uri) == (None, None)
    updates = [detail for action, detail in audit_details(reg) if action == "rp.update"]
    assert updates == [
        {"client_id": rp.client_id, "changes": {"backchannel_logout_uri": {"from": None, "to": BACK}}},
        {"client_id": rp.client_id, "changes": {"frontchannel_logout_uri": {"from": None, "to": FRONT}}},
        {"client_id": rp.client_id, "changes": {"backchannel_logout_uri": {"from": BACK, "to": None},
                                                "frontchannel_logout_uri": {"from": FRONT, "to": None}}}]


def test_update_oidc_logout_with_a_bad_uri_changes_nothing(services: Services) -> None:
    with services.registry("test") as reg:
        client_id = add(reg, backchannel_logout_uri=BACK)[0].client_id
    refused(services, lambda reg: rps.update_oidc_logout(reg, client_id, frontchannel_logout_uri=FRONT,
                                                         backchannel_logout_uri="http://film.example/bc"), "https")
    with services.registry("test") as reg:
        rp = rps.get(reg, client_id)
        assert (rp.backchannel_logout_uri, rp.frontchannel_logout_uri) == (BACK, None)


def test_update_oidc_logout_refuses_a_saml_service_provider(services: Services) -> None:
    with services.registry("test") as reg:
        sp = rps.add_saml(reg, entity_id="https://journal.example/sp", name="Journal",
                          metadata_xml="<EntityDescriptor/>", name_id_formats=[])
        client_id = sp.client_id
    refused(services, lambda reg: rps.update_oidc_logout(reg, client_id, backchannel_logout_uri=BACK), "SAML",
            NotAllowed)


def test_the_oidc_client_metadata_carries_the_logout_uris(reg: Registry) -> None:
    from idp.oidc.wiring import client_metadata  # noqa: PLC0415 - pyop loads with it; only this test needs it

    rp, _ = add(reg, backchannel_logout_uri=BACK)
    metadata = client_metadata(rp)
    assert (metadata["backchannel_logout_uri"], metadata["frontchannel_logout_uri"]) == (BACK, None)
