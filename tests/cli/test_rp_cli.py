"""`idp rp ...`, driven as an operator (or an operator's script) drives it (embedded backend).

What a command claims to have stored is checked in the register, and a printed secret is
checked by authenticating with it, not only by its shape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from click.testing import Result
from sqlalchemy import func, select

from idp import relying_parties as rps
from idp.registry.models import AuditEvent, RelyingParty
from idp.services import Services
from tests.cli.test_cli import Idp, failed, make_idp, succeeded, values
from tests.cli.test_cli import cli_env  # noqa: F401  - a fixture: the environment pointing at this test's register

FILM_CB = "https://film.example/callback"
RP_COMMANDS = ["add-oidc", "add-saml", "disable", "enable", "list", "load-saml-metadata", "rotate-secret", "set-dpa",
               "show", "update"]


@pytest.fixture
def idp(cli_env: dict[str, str]) -> Idp:
    return make_idp(cli_env)


def line_value(output: str, key: str) -> str:
    """The value of the one line `key: value`, which must stand alone on its line."""
    found = re.findall(rf"^{re.escape(key)}: (\S+)$", output, re.MULTILINE)
    assert len(found) == 1, output
    return found[0]


def add_film(idp: Idp, *extra: str) -> tuple[str, str]:
    result = idp("rp", "add-oidc", "Film platform", "--redirect-uri", FILM_CB, *extra)
    succeeded(result)
    return line_value(result.stdout, "client_id"), line_value(result.stdout, "client_secret")


def succeeded_output(result: Result) -> str:
    succeeded(result)
    return result.stdout


def authenticates(services: Services, client_id: str, secret: str) -> bool:
    with services.registry("test") as reg:
        return rps.authenticate(reg, client_id, secret) is not None


def stored(services: Services) -> tuple[int, int]:
    with services.registry("test") as reg:
        return (reg.session.scalar(select(func.count()).select_from(RelyingParty)) or 0,
                reg.session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def stored_rp(services: Services, client_id: str) -> RelyingParty:
    with services.registry("test") as reg:
        return rps.get(reg, client_id)


def utc_today() -> str:
    return datetime.now(UTC).date().isoformat()


# --- add-oidc ------------------------------------------------------------------------------------


def test_add_oidc_prints_a_client_id_and_a_secret_that_authenticates(idp: Idp, services: Services) -> None:
    result = idp("rp", "add-oidc", "Film platform", "--redirect-uri", FILM_CB)
    shown = succeeded(result)
    client_id, secret = line_value(result.stdout, "client_id"), line_value(result.stdout, "client_secret")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", client_id) and len(secret) >= 43
    assert shown["status"] == "no DPA"
    assert "set-dpa" in shown["note"]
    assert authenticates(services, client_id, secret)
    assert not authenticates(services, client_id, secret[:-1])
    rp = stored_rp(services, client_id)
    assert (rp.name, rp.redirect_uris, rp.public, rp.min_acr, rp.claims, rp.subject_type, rp.dpa_signed) == (
        "Film platform", [FILM_CB], False, "password", ["valid_patron"], "pairwise", None)


def test_a_public_client_gets_no_secret(idp: Idp, services: Services) -> None:
    result = idp("rp", "add-oidc", "Reader app", "--redirect-uri", "http://127.0.0.1:8765/cb", "--public",
                 "--dpa-signed", "2025-03-01")
    shown = succeeded(result)
    assert "client_secret" not in result.stdout
    assert shown["status"] == "active" and "note" not in shown
    rp = stored_rp(services, line_value(result.stdout, "client_id"))
    assert (rp.public, rp.secret_hash) == (True, None)


def test_add_oidc_with_every_option(idp: Idp, services: Services) -> None:
    result = idp("rp", "add-oidc", "Open-library door", "--redirect-uri", "https://door.example/a",
                 "--redirect-uri", "https://door.example/b", "--redirect-uri", "https://door.example/a",
                 "--min-acr", "pin", "--pin-allowed", "--claims", "valid_patron, loan_ban,age_over_15",
                 "--public-sub", "--dpa-signed", "2026-01-15", "--id-token-alg", "ES256")
    succeeded(result)
    rp = stored_rp(services, line_value(result.stdout, "client_id"))
    assert rp.redirect_uris == ["https://door.example/a", "https://door.example/b"]
    assert (rp.min_acr, rp.pin_allowed, rp.subject_type, rp.dpa_signed.isoformat() if rp.dpa_signed else None) == (
        "pin", True, "public", "2026-01-15")
    assert rp.claims == ["valid_patron", "loan_ban", "age_over_15"]
    assert rp.id_token_alg == "ES256"


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(["Film"], "at least one redirect URI", id="no-redirect-uri"),
    pytest.param(["Film", "--redirect-uri", "http://film.example/cb"], "https", id="http"),
    pytest.param(["Film", "--redirect-uri", FILM_CB + "#x"], "fragment", id="fragment"),
    pytest.param(["Film", "--redirect-uri", "https://*.film.example/cb"], "wildcard", id="wildcard"),
    pytest.param(["Film", "--redirect-uri", "/callback"], "absolute", id="relative"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--redirect-uri", "ftp://x/"], "https", id="second-bad"),
    pytest.param(["", "--redirect-uri", FILM_CB], "name", id="empty-name"),
    pytest.param(["x" * 201, "--redirect-uri", FILM_CB], "name", id="long-name"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--min-acr", "sms"], "assurance level", id="unknown-acr"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--min-acr", "pin"], "--pin-allowed", id="pin-not-allowed"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--claims", "valid_patron,birth_date"], "birth_date",
                 id="unknown-claim"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--claims", "age_over_5"], "age_over_NN", id="one-digit-age"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--claims", "valid_patron,,email"], "Unknown claim",
                 id="empty-claim"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--dpa-signed", "2999-01-01"], "future", id="future-dpa"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--dpa-signed", "23.11.2026"], "YYYY-MM-DD",
                 id="dpa-not-iso"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--dpa-signed", "2026-02-30"], "YYYY-MM-DD",
                 id="dpa-no-such-day"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--dpa-signed", "20260115"], "YYYY-MM-DD",
                 id="dpa-basic-format"),
    # A shared-secret HMAC would let the client forge id_tokens; none is offered.
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--id-token-alg", "HS256"], "ES256, RS256", id="hmac-alg"),
    pytest.param(["Film", "--redirect-uri", FILM_CB, "--id-token-alg", "none"], "signing algorithm", id="alg-none"),
])
def test_bad_input_exits_1_with_one_error_line_and_stores_nothing(
        idp: Idp, services: Services, args: list[str], says: str) -> None:
    result = idp("rp", "add-oidc", *args)
    assert says in failed(result)
    assert result.stdout == ""
    assert stored(services) == (0, 0)


# --- list, show ----------------------------------------------------------------------------------


def test_list_shows_one_line_per_relying_party_with_its_status(idp: Idp) -> None:
    assert succeeded(idp("rp", "list")) == {} and idp("rp", "list").stdout == ""
    active, _ = add_film(idp, "--dpa-signed", "2025-01-01")
    no_dpa, _ = add_film(idp)
    disabled, _ = add_film(idp, "--dpa-signed", "2025-01-01")
    succeeded(idp("rp", "disable", disabled))
    lines = idp("rp", "list").stdout.splitlines()
    assert sorted(lines) == sorted([f"{active}\tFilm platform\tactive", f"{no_dpa}\tFilm platform\tno DPA",
                                    f"{disabled}\tFilm platform\tdisabled"])


def test_show_prints_every_field_but_never_the_secret(idp: Idp, services: Services) -> None:
    client_id, secret = add_film(idp, "--redirect-uri", "http://localhost:3000/cb", "--claims",
                                 "valid_patron,age_over_18", "--dpa-signed", "2025-06-30", "--min-acr", "mfa")
    result = idp("rp", "show", client_id)
    shown = succeeded(result)
    assert shown == {
        "client_id": client_id, "name": "Film platform", "protocol": "oidc", "client_type": "confidential",
        "client_secret": f"(set, rotated {utc_today()})", "redirect_uri": FILM_CB, "id_token_alg": "RS256",
        "backchannel_logout_uri": "-", "frontchannel_logout_uri": "-", "min_acr": "mfa",
        "pin_allowed": "no", "claims": "valid_patron, age_over_18", "subject_type": "pairwise",
        "dpa_signed": "2025-06-30", "disabled": "no", "status": "active", "created_at": shown["created_at"]}
    assert values(result.stdout, "redirect_uri") == [FILM_CB, "http://localhost:3000/cb"]
    assert shown["created_at"].startswith(utc_today())
    rp = stored_rp(services, client_id)
    assert rp.secret_hash is not None
    for hidden in (secret, rp.secret_hash.hex()):
        assert hidden not in result.stdout
    assert secret not in idp("rp", "list").stdout


def test_show_of_a_public_client(idp: Idp) -> None:
    client_id = line_value(succeeded_output(idp("rp", "add-oidc", "App", "--redirect-uri", FILM_CB, "--public",
                                                "--public-sub")), "client_id")
    shown = succeeded(idp("rp", "show", client_id))
    assert (shown["client_type"], shown["client_secret"], shown["subject_type"], shown["dpa_signed"],
            shown["status"]) == ("public", "(public client)", "public", "-", "no DPA")


@pytest.mark.parametrize("command", ["show", "disable", "enable", "rotate-secret"])
def test_an_unknown_client_id_is_named_in_the_error(idp: Idp, command: str) -> None:
    assert "NoSuchClient" in failed(idp("rp", command, "NoSuchClient"))


def test_set_dpa_on_an_unknown_client_fails(idp: Idp) -> None:
    assert "NoSuchClient" in failed(idp("rp", "set-dpa", "NoSuchClient", "2025-01-01"))


# --- disable, enable -----------------------------------------------------------------------------


def test_disable_stops_the_secret_and_enable_restores_it(idp: Idp, services: Services) -> None:
    client_id, secret = add_film(idp, "--dpa-signed", "2025-01-01")
    assert succeeded(idp("rp", "disable", client_id)) == {"client_id": client_id, "status": "disabled"}
    assert not authenticates(services, client_id, secret)
    assert succeeded(idp("rp", "disable", client_id))["status"] == "disabled"  # a script may repeat it
    assert succeeded(idp("rp", "show", client_id))["disabled"] == "yes"

    assert succeeded(idp("rp", "enable", client_id)) == {"client_id": client_id, "status": "active"}
    assert authenticates(services, client_id, secret)


def test_enable_without_a_dpa_still_cannot_log_anyone_in(idp: Idp) -> None:
    client_id, _ = add_film(idp)
    succeeded(idp("rp", "disable", client_id))
    assert succeeded(idp("rp", "enable", client_id))["status"] == "no DPA"


# --- rotate-secret -------------------------------------------------------------------------------


def test_rotate_secret_prints_a_new_secret_once_and_the_old_one_stops_working(
        idp: Idp, services: Services) -> None:
    client_id, old = add_film(idp)
    result = idp("rp", "rotate-secret", client_id)
    succeeded(result)
    assert line_value(result.stdout, "client_id") == client_id
    new = line_value(result.stdout, "client_secret")
    assert new != old
    assert authenticates(services, client_id, new)
    assert not authenticates(services, client_id, old)
    shown = idp("rp", "show", client_id).stdout
    assert new not in shown and f"client_secret: (set, rotated {utc_today()})" in shown.splitlines()


def test_a_public_client_has_no_secret_to_rotate(idp: Idp) -> None:
    client_id = line_value(succeeded_output(idp("rp", "add-oidc", "App", "--redirect-uri", FILM_CB,
                                                "--public")), "client_id")
    assert "public client" in failed(idp("rp", "rotate-secret", client_id))
    assert succeeded(idp("rp", "show", client_id))["client_secret"] == "(public client)"


# --- set-dpa -------------------------------------------------------------------------------------


def test_set_dpa_approves_a_relying_party(idp: Idp, services: Services) -> None:
    client_id, _ = add_film(idp)
    assert succeeded(idp("rp", "set-dpa", client_id, "2026-01-15")) == {
        "client_id": client_id, "dpa_signed": "2026-01-15", "status": "active"}
    assert f"{client_id}\tFilm platform\tactive" in idp("rp", "list").stdout.splitlines()
    with services.registry("test") as reg:
        assert rps.is_allowed_to_log_in(rps.get(reg, client_id), reg.today())


@pytest.mark.parametrize(("day", "says"), [("2999-01-01", "future"), ("15.01.2026", "YYYY-MM-DD"),
                                           ("2026-13-01", "YYYY-MM-DD"), ("", "YYYY-MM-DD")])
def test_set_dpa_refuses_a_bad_date_and_keeps_the_old_one(idp: Idp, day: str, says: str) -> None:
    client_id, _ = add_film(idp, "--dpa-signed", "2025-01-01")
    assert says in failed(idp("rp", "set-dpa", client_id, day))
    assert succeeded(idp("rp", "show", client_id))["dpa_signed"] == "2025-01-01"


# --- the audit trail and the command set ---------------------------------------------------------


def test_no_secret_reaches_the_audit_trail(idp: Idp, services: Services) -> None:
    client_id, first = add_film(idp)
    second = line_value(succeeded_output(idp("rp", "rotate-secret", client_id)), "client_secret")
    succeeded(idp("rp", "set-dpa", client_id, "2025-01-01"))
    succeeded(idp("rp", "disable", client_id))
    succeeded(idp("rp", "enable", client_id))
    with services.registry("test") as reg:
        events = reg.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [e.action for e in events] == ["rp.add", "rp.rotate_secret", "rp.set_dpa", "rp.disable",
                                              "rp.enable"]
        assert all(e.actor.startswith("cli:") for e in events)
        text = repr([e.detail for e in events])
    assert first not in text and second not in text


def test_rp_help_lists_its_commands(idp: Idp) -> None:
    result = idp("rp", "--help")
    assert result.exit_code == 0
    listed = re.findall(r"^  (\S+)\s", result.stdout.split("Commands:", 1)[1], re.MULTILINE)
    assert sorted(listed) == RP_COMMANDS


# --- logout URIs (OIDC Back-Channel and Front-Channel Logout 1.0) ------------------------------------

BACK = "https://film.example/logout/backchannel"
FRONT = "https://film.example/logout/front?from=idp"  # a query is allowed for a front-channel URI


def logout_uris(services: Services, client_id: str) -> tuple[str | None, str | None]:
    rp = stored_rp(services, client_id)
    return rp.backchannel_logout_uri, rp.frontchannel_logout_uri


def test_add_oidc_registers_logout_uris_and_show_prints_them(idp: Idp, services: Services) -> None:
    client_id, _ = add_film(idp, "--backchannel-logout-uri", BACK, "--frontchannel-logout-uri", FRONT)
    assert logout_uris(services, client_id) == (BACK, FRONT)
    shown = succeeded(idp("rp", "show", client_id))
    assert (shown["backchannel_logout_uri"], shown["frontchannel_logout_uri"]) == (BACK, FRONT)


def test_update_sets_changes_and_clears_logout_uris(idp: Idp, services: Services) -> None:
    client_id, _ = add_film(idp)
    shown = succeeded(idp("rp", "update", client_id, "--backchannel-logout-uri", BACK))
    assert shown == {"client_id": client_id, "backchannel_logout_uri": BACK, "frontchannel_logout_uri": "-"}
    succeeded(idp("rp", "update", client_id, "--frontchannel-logout-uri", FRONT))
    assert logout_uris(services, client_id) == (BACK, FRONT)  # the one not named is kept
    succeeded(idp("rp", "update", client_id, "--backchannel-logout-uri", "http://localhost:8080/bc"))
    assert logout_uris(services, client_id) == ("http://localhost:8080/bc", FRONT)
    shown = succeeded(idp("rp", "update", client_id, "--backchannel-logout-uri", ""))
    assert shown["backchannel_logout_uri"] == "-"
    assert logout_uris(services, client_id) == (None, FRONT)
    with services.registry("test") as reg:
        updates = reg.session.scalars(select(AuditEvent).where(AuditEvent.action == "rp.update")
                                      .order_by(AuditEvent.id)).all()
    assert len(updates) == 4 and all(e.detail["client_id"] == client_id for e in updates)
    assert updates[-1].detail["changes"] == {"backchannel_logout_uri": {"from": "http://localhost:8080/bc",
                                                                        "to": None}}


def test_update_with_nothing_to_change_says_what_it_can_change(idp: Idp, services: Services) -> None:
    client_id, _ = add_film(idp, "--backchannel-logout-uri", BACK)
    result = idp("rp", "update", client_id)
    assert result.exit_code == 2
    assert "--backchannel-logout-uri" in result.stderr and "--frontchannel-logout-uri" in result.stderr
    assert logout_uris(services, client_id) == (BACK, None)


@pytest.mark.parametrize(("uri", "says"), [
    pytest.param("http://film.example/logout", "https", id="http-public-host"),
    pytest.param("ftp://film.example/logout", "https", id="ftp"),
    pytest.param("https://film.example/logout#now", "fragment", id="fragment"),
    pytest.param("not a uri", "spaces", id="garbage"),
    pytest.param("logout", "absolute", id="relative"),
    pytest.param("https://film.example:99999/logout", "port", id="bad-port"),
    pytest.param("https://user:pw@film.example/logout", "user name or password", id="credentials"),
])
@pytest.mark.parametrize("option", ["--backchannel-logout-uri", "--frontchannel-logout-uri"])
def test_a_bad_logout_uri_is_refused_and_changes_nothing(
        idp: Idp, services: Services, option: str, uri: str, says: str) -> None:
    result = idp("rp", "add-oidc", "Film", "--redirect-uri", FILM_CB, option, uri)
    message = failed(result)
    assert says in message and "logout URI" in message
    assert result.stdout == ""
    assert stored(services) == (0, 0)
    client_id, _ = add_film(idp, "--backchannel-logout-uri", BACK, "--frontchannel-logout-uri", FRONT)
    before = stored(services)
    result = idp("rp", "update", client_id, option, uri)
    assert says in failed(result)
    assert logout_uris(services, client_id) == (BACK, FRONT)
    assert stored(services) == before  # no audit line either


def test_update_refuses_a_saml_service_provider(idp: Idp, services: Services) -> None:
    with services.registry("test") as reg:
        sp = RelyingParty(client_id="saml-sp-1", name="Journal", protocol="saml", redirect_uris=[], public=False,
                          min_acr="password", pin_allowed=False, claims=["valid_patron"], subject_type="pairwise",
                          disabled=False, created_at=reg.now(), entity_id="https://journal.example/sp",
                          saml_metadata="<EntityDescriptor/>", name_id_formats=[])
        reg.session.add(sp)
    assert "SAML" in failed(idp("rp", "update", "saml-sp-1", "--backchannel-logout-uri", BACK))
    assert logout_uris(services, "saml-sp-1") == (None, None)


def test_update_of_an_unknown_client_fails(idp: Idp) -> None:
    assert "NoSuchClient" in failed(idp("rp", "update", "NoSuchClient", "--backchannel-logout-uri", BACK))
