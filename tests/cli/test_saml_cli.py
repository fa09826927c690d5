"""`idp rp add-saml`, `idp rp load-saml-metadata` and `idp saml ...`, driven as an operator drives
them (embedded backend). What a command claims to have stored is checked in the register."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp import relying_parties as rps
from idp.saml.credentials import CREDENTIALS_FILE, SigningCredentials
from idp.services import Services
from tests.cli.test_cli import Idp, failed, make_idp, succeeded, values
from tests.cli.test_cli import cli_env  # noqa: F401  - a fixture, injected by name
from tests.cli.test_rp_cli import line_value
from tests.saml.sps import IDP_ONLY_ENTITY, TRANSIENT, aggregate, sp_entity

FILM = "https://film.example/saml/metadata"
UNI = "https://uni.example/metadata"
KOMMUNE = "https://skole.kommune.example/sp"


@pytest.fixture
def idp(cli_env: dict[str, str]) -> Idp:
    return make_idp(cli_env)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def film_file(tmp_path: Path) -> Path:
    return write(tmp_path / "film.xml", sp_entity(FILM, "https://film.example/saml/acs", name="Film platform",
                                                  formats=(TRANSIENT,)))


def stored(services: Services, entity_id: str) -> rps.RelyingParty:
    with services.registry("test") as reg:
        return rps.get_saml(reg, entity_id)


# -- add-saml -------------------------------------------------------------------------------------

def test_add_saml_prints_client_id_and_entity_id_and_stores_the_policy(idp: Idp, services: Services,
                                                                     film_file: Path) -> None:
    result = idp("rp", "add-saml", "--metadata", str(film_file), "--claims", "valid_patron,age_over_15",
                 "--dpa-signed", "2026-01-01", "--min-acr", "password", "--allow-unsolicited")
    shown = succeeded(result)
    client_id = line_value(result.stdout, "client_id")
    assert line_value(result.stdout, "entity_id") == FILM and shown["status"] == "active"
    party = stored(services, FILM)
    assert party.client_id == client_id and party.protocol == "saml" and party.name == "Film platform"
    assert party.claims == ["valid_patron", "age_over_15"] and party.allow_unsolicited
    assert party.name_id_formats == [TRANSIENT] and party.secret_hash is None
    assert "film.example/saml/acs" in (party.saml_metadata or "")


def test_rp_list_show_disable_enable_and_set_dpa_work_for_saml(idp: Idp, services: Services,
                                                              film_file: Path) -> None:
    result = idp("rp", "add-saml", "--metadata", str(film_file), "--name", "Filmtjenesten")
    client_id = line_value(result.stdout, "client_id")
    assert "set-dpa" in succeeded(result)["note"]
    assert f"{client_id}\tFilmtjenesten\tno DPA" in idp("rp", "list").stdout
    shown = succeeded(idp("rp", "show", client_id))
    assert shown["protocol"] == "saml" and shown["entity_id"] == FILM and "client_secret" not in shown
    assert shown["acs"] == "https://film.example/saml/acs (HTTP-POST)" and shown["allow_unsolicited"] == "no"
    assert shown["name_id_formats"] == "transient" and shown["claims"] == "valid_patron"
    assert succeeded(idp("rp", "set-dpa", client_id, "2026-01-01"))["status"] == "active"
    assert succeeded(idp("rp", "disable", client_id))["status"] == "disabled"
    assert stored(services, FILM).disabled
    assert succeeded(idp("rp", "enable", client_id))["status"] == "active"
    assert "SAML service provider" in failed(idp("rp", "rotate-secret", client_id))


def test_add_saml_refuses_what_it_cannot_use(idp: Idp, tmp_path: Path, film_file: Path) -> None:
    succeeded(idp("rp", "add-saml", "--metadata", str(film_file)))
    assert "already registered" in failed(idp("rp", "add-saml", "--metadata", str(film_file)))
    cases = {
        "missing.xml": None,
        "garbage.xml": "this is not xml",
        "dtd.xml": '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
        "idp-only.xml": IDP_ONLY_ENTITY,
        "http-acs.xml": sp_entity("https://plain.example/sp", "http://plain.example/acs"),
        "expired.xml": sp_entity("https://old.example/sp", "https://old.example/acs",
                                 valid_until="2020-01-01T00:00:00Z"),
    }
    for name, text in cases.items():
        path = tmp_path / name if text is None else write(tmp_path / name, text)
        line = failed(idp("rp", "add-saml", "--metadata", str(path)))
        assert "Traceback" not in line, name
    two = write(tmp_path / "two.xml", aggregate(sp_entity(UNI, "https://uni.example/acs"),
                                                sp_entity(KOMMUNE, "https://skole.kommune.example/acs")))
    assert "--name" in failed(idp("rp", "add-saml", "--metadata", str(two), "--name", "Both"))
    assert "Unknown claim" in failed(idp("rp", "add-saml", "--metadata", str(two), "--claims", "birthdate"))


def test_add_saml_registers_every_sp_of_an_aggregate(idp: Idp, services: Services, tmp_path: Path) -> None:
    two = write(tmp_path / "two.xml", aggregate(sp_entity(UNI, "https://uni.example/acs"), IDP_ONLY_ENTITY,
                                                sp_entity(KOMMUNE, "https://skole.kommune.example/acs")))
    result = idp("rp", "add-saml", "--metadata", str(two), "--claims", "valid_patron,name")
    succeeded(result)
    assert values(result.stdout, "entity_id") == [UNI, KOMMUNE]
    assert stored(services, KOMMUNE).claims == ["valid_patron", "name"]


# -- by URL ---------------------------------------------------------------------------------------

@pytest.fixture
def metadata_server(tmp_path: Path) -> Iterator[str]:
    """A loopback web server serving tmp_path (plain http is allowed on loopback only)."""
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_add_saml_fetches_metadata_by_url_with_limits(idp: Idp, services: Services, film_file: Path,
                                                      metadata_server: str) -> None:
    succeeded(idp("rp", "add-saml", "--metadata", f"{metadata_server}/film.xml"))
    assert stored(services, FILM).protocol == "saml"
    assert "HTTP 404" in failed(idp("rp", "add-saml", "--metadata", f"{metadata_server}/nothing.xml"))
    assert "https only" in failed(idp("rp", "add-saml", "--metadata", "http://film.example/metadata.xml"))
    big = film_file.parent / "big.xml"
    big.write_bytes(b" " * (16 * 1024 * 1024 + 10))
    assert "larger than" in failed(idp("rp", "add-saml", "--metadata", f"{metadata_server}/big.xml"))


# -- load-saml-metadata ---------------------------------------------------------------------------

def test_load_saml_metadata_adds_refreshes_and_reports_bad_files(idp: Idp, services: Services,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "metadata"
    folder.mkdir()
    write(folder / "film.xml", sp_entity(FILM, "https://film.example/saml/acs"))
    write(folder / "kommune.xml", aggregate(sp_entity(UNI, "https://uni.example/acs"), IDP_ONLY_ENTITY,
                                            sp_entity(KOMMUNE, "https://skole.kommune.example/acs")))
    write(folder / "patron-idp.generated.xml", "<ours/>")  # our own metadata: skipped
    write(folder / "notes.txt", "not metadata")
    first = idp("rp", "load-saml-metadata", str(folder))
    assert succeeded(first) and values(first.stdout, "result") == ["added"] * 3
    assert sorted(values(first.stdout, "entity_id")) == sorted([FILM, UNI, KOMMUNE])
    film = stored(services, FILM)
    assert film.dpa_signed is None and film.claims == ["valid_patron"]  # logs nobody in until set-dpa
    succeeded(idp("rp", "set-dpa", film.client_id, "2026-01-01"))
    write(folder / "film.xml", sp_entity(FILM, "https://film.example/saml/acs2"))
    write(folder / "broken.xml", "<md:EntityDescriptor")
    again = idp("rp", "load-saml-metadata", str(folder))
    assert again.exit_code == 1
    errors = again.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: broken.xml: ") and "Traceback" not in again.stderr
    assert sorted(values(again.stdout, "result")) == ["unchanged", "unchanged", "updated"]
    refreshed = stored(services, FILM)
    assert "acs2" in (refreshed.saml_metadata or "") and refreshed.dpa_signed is not None
    assert "is not a directory" in failed(idp("rp", "load-saml-metadata", str(tmp_path / "none")))


# -- idp saml ---------------------------------------------------------------------------------------

def test_saml_metadata_writes_our_metadata(idp: Idp, tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = tmp_path / "out"
    shown = succeeded(idp("saml", "metadata", "--out", str(out)))
    written = Path(shown["written"])
    assert written == out / "patron-idp.generated.xml"
    text = written.read_text()
    assert 'entityID="http://127.0.0.1:5000/saml/metadata"' in text and "X509Certificate" in text
    assert shown["entity_id"] == "http://127.0.0.1:5000/saml/metadata"
    default = succeeded(idp("saml", "metadata"))
    assert Path(default["written"]) == Path(cli_env["IDP_HOME"]) / "metadata" / "patron-idp.generated.xml"


def test_saml_new_key_creates_and_refuses_to_overwrite(idp: Idp, tmp_path: Path) -> None:
    keys = tmp_path / "fresh-keys"
    env = {"IDP_KEYS_DIR": str(keys)}
    shown = succeeded(idp("saml", "new-key", env=env))
    path = keys / CREDENTIALS_FILE
    assert Path(shown["written"]) == path and (path.stat().st_mode & 0o777) == 0o600
    first = SigningCredentials.load(keys).certificate_pem
    assert "already exists" in failed(idp("saml", "new-key", env=env))
    succeeded(idp("saml", "new-key", "--replace", env=env))
    assert SigningCredentials.load(keys).certificate_pem != first
    path.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    with pytest.raises(Exception, match="corrupt"):
        SigningCredentials.load(keys)
