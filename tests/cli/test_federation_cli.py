"""`idp federation ...`: the operator configures university and municipal federations, and the
fields a federation owns are read-only for staff (`idp patron update`), shown as such (`show`)."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import Result

from idp.auth.federation import create_sp_keys, sp_key_paths
from idp.registry import patrons, upstream
from idp.registry.models import Federation, UpstreamIdentity
from idp.services import Services
from idp.settings import Settings
from tests.cli.test_cli import Idp, cli_env, count, failed, make_idp, succeeded  # noqa: F401 - cli_env is a fixture
from tests.fakes.university import FakeUniversity
from tests.nin import person
from tests.unit.factories import ADULT_BORN

OSLO = "NO-2030000"


@pytest.fixture
def idp(cli_env: dict[str, str]) -> Idp:
    return make_idp(cli_env)


def university_metadata(tmp_path: Path, name: str = "uni", port: int = 1) -> str:
    keys = tmp_path / f"{name}-keys"
    create_sp_keys(keys, f"{name}.test")
    return FakeUniversity(url=f"http://127.0.0.1:{port}", keys_dir=keys).metadata()


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    path = tmp_path / "unimore-idp.xml"
    path.write_text(university_metadata(tmp_path))
    return path


def add_unimore(idp: Idp, metadata_file: Path, *extra: str) -> Result:
    return idp("federation", "add", "unimore", "--display-name", "UniMoRe", "--metadata", str(metadata_file),
               "--link-attribute", "eduPersonPrincipalName", "--national-id-attribute", "schacPersonalUniqueCode",
               "--attribute", "name=displayName", "--attribute", "email=mail", *extra)


def test_an_operator_adds_shows_and_lists_a_federation(idp: Idp, metadata_file: Path, services: Services) -> None:
    added = succeeded(add_unimore(idp, metadata_file, "--authn-context", "https://refeds.org/profile/mfa=mfa"))
    assert added["name"] == "unimore" and added["entity_id"] == "http://127.0.0.1:1/idp"
    assert added["owns"] == "email=mail, name=displayName" and added["enabled"] == "yes"
    assert added["authn_contexts"] == "https://refeds.org/profile/mfa=mfa"
    assert succeeded(idp("federation", "show", "UniMoRe"))["display_name"] == "UniMoRe"
    listed = idp("federation", "list")
    assert listed.exit_code == 0 and listed.stdout.startswith("unimore\tUniMoRe\tenabled\t")
    assert count(services, Federation) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--attribute", "address=postalAddress"], "can own only these fields: name, email, phone"),
    (["--attribute", "name"], "--attribute is KEY=VALUE"),
    (["--authn-context", "urn:x=idporten-loa-high"], "only ID-porten gives more"),
])
def test_bad_options_are_refused_with_one_line(idp: Idp, metadata_file: Path, services: Services,
                                               args: list[str], message: str) -> None:
    assert message in failed(add_unimore(idp, metadata_file, *args))
    assert count(services, Federation) == 0


def test_unusable_metadata_is_refused(idp: Idp, tmp_path: Path, metadata_file: Path, services: Services) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<not-metadata/>")
    assert "describes no identity provider" in failed(add_unimore(idp, broken))
    assert "cannot read" in failed(add_unimore(idp, tmp_path / "missing.xml"))
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("this is not XML at all <")
    assert "not usable SAML metadata" in failed(add_unimore(idp, garbage))
    expired = tmp_path / "expired.xml"
    expired.write_text(metadata_file.read_text().replace(" entityID=", ' validUntil="2020-01-01T00:00:00Z" entityID=',
                                                         1))
    assert "validUntil (2020-01-01 00:00 UTC) has passed" in failed(add_unimore(idp, expired))
    assert count(services, Federation) == 0
    succeeded(add_unimore(idp, metadata_file))
    assert "already configured" in failed(add_unimore(idp, metadata_file))


def test_metadata_with_several_identity_providers_needs_the_entity_id(idp: Idp, tmp_path: Path) -> None:
    def entity(xml: str) -> str:
        return xml.split("?>", 1)[-1]

    both = tmp_path / "federation.xml"
    both.write_text('<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
                    f"{entity(university_metadata(tmp_path, 'a', 1))}{entity(university_metadata(tmp_path, 'b', 2))}"
                    "</md:EntitiesDescriptor>")
    assert "--entity-id" in failed(add_unimore(idp, both))
    chosen = succeeded(add_unimore(idp, both, "--entity-id", "http://127.0.0.1:2/idp"))
    assert chosen["entity_id"] == "http://127.0.0.1:2/idp"


def test_update_disable_and_remove(idp: Idp, metadata_file: Path, services: Services) -> None:
    succeeded(add_unimore(idp, metadata_file))
    assert succeeded(idp("federation", "update", "unimore", "--disable"))["enabled"] == "no"
    assert succeeded(idp("federation", "update", "unimore", "--attribute", "phone=mobile"))["owns"] == "phone=mobile"
    assert succeeded(idp("federation", "update", "unimore", "--no-attributes"))["owns"] == "-"
    assert "refusing to remove without confirmation" in failed(idp("federation", "remove", "unimore"))
    assert succeeded(idp("federation", "remove", "unimore", "--yes")) == {"removed": "unimore", "links_removed": "0"}
    assert "No federation named unimore" in failed(idp("federation", "show", "unimore"))


def test_the_fields_a_federation_owns_are_read_only_for_staff(idp: Idp, metadata_file: Path,
                                                              services: Services) -> None:
    succeeded(idp("library", "add", OSLO, "Oslo"))
    succeeded(idp("series", "reserve", OSLO, "--count", "10", "--digital"))
    card = succeeded(idp("patron", "add", "--national-id", person(ADULT_BORN), "--name", "Kari", "--email",
                         "kari@example.org", "--home-library", OSLO, input="\n"))["card_number"]
    succeeded(add_unimore(idp, metadata_file))
    with services.registry("test") as reg:
        upstream.link(reg, upstream.get_federation(reg, "unimore"), "kari@uni.test", patrons.patron_by_card(reg, card),
                      how="operator")
    refused = failed(idp("patron", "update", card, "--name", "Kari Nordmann", "--phone", "+4791234567"))
    assert "name is kept up to date by UniMoRe and cannot be changed here" in refused
    assert succeeded(idp("patron", "update", card, "--phone", "+4791234567"))["changed"] == "phone"
    shown = idp("patron", "show", card)
    assert "read_only: name (kept up to date by UniMoRe)" in shown.stdout
    assert "read_only: email (kept up to date by UniMoRe)" in shown.stdout

    assert succeeded(idp("federation", "unlink", card, "unimore")) == {"unlinked": "unimore"}
    assert count(services, UpstreamIdentity) == 0
    assert succeeded(idp("patron", "update", card, "--name", "Kari Nordmann"))["changed"] == "name"
    assert "has no UniMoRe account linked" in failed(idp("federation", "unlink", card, "unimore"))


def test_our_service_provider_key_and_metadata(idp: Idp, settings: Settings, tmp_path: Path) -> None:
    keys = tmp_path / "sp-keys"
    env = {"IDP_KEYS_DIR": str(keys), "IDP_ISSUER": "https://login.example.no"}
    made = succeeded(idp("federation", "sp-key", env=env))
    key, cert = sp_key_paths(keys)
    assert made == {"key": str(key), "certificate": str(cert)}
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    assert "pass --replace" in failed(idp("federation", "sp-key", env=env))
    succeeded(idp("federation", "sp-key", "--replace", env=env))
    metadata = idp("federation", "sp-metadata", env=env)
    assert metadata.exit_code == 0
    assert 'entityID="https://login.example.no/federation/sp"' in metadata.stdout
    assert "https://login.example.no/federation/acs" in metadata.stdout and "PRIVATE" not in metadata.stdout


def advertised_algorithms(metadata: str) -> list[str]:
    return re.findall(r'<[\w:]*(?:DigestMethod|SigningMethod) Algorithm="([^"]+)"', metadata)


def test_our_service_provider_metadata_advertises_sha256_and_stronger_only(idp: Idp) -> None:
    metadata = idp("federation", "sp-metadata")
    assert metadata.exit_code == 0
    algorithms = advertised_algorithms(metadata.stdout)
    assert "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" in algorithms
    assert "http://www.w3.org/2001/04/xmlenc#sha256" in algorithms
    assert [a for a in algorithms if "md5" in a or "sha1" in a or "ripemd" in a or "sha224" in a] == []


def test_the_service_provider_runs_the_xmlsec1_the_setting_names(idp: Idp, tmp_path: Path) -> None:
    assert Path("/usr/bin/xmlsec1").is_file() and shutil.which("xmlsec1")  # a working one is on PATH
    missing = failed(idp("federation", "sp-metadata", env={"IDP_XMLSEC_BINARY": str(tmp_path / "no-xmlsec1")}))
    assert "IDP_XMLSEC_BINARY" in missing and str(tmp_path / "no-xmlsec1") in missing
    calls = tmp_path / "calls.txt"
    wrapper = tmp_path / "xmlsec1-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec /usr/bin/xmlsec1 "$@"\n')
    wrapper.chmod(0o755)
    metadata = idp("federation", "sp-metadata", env={"IDP_XMLSEC_BINARY": str(wrapper)})
    assert metadata.exit_code == 0 and "federation/sp" in metadata.stdout
    assert "--list-transforms" in calls.read_text()  # the algorithms it lists come from the configured program


# -- metadata signatures ------------------------------------------------------------------------

@pytest.fixture
def signing_university(tmp_path: Path) -> FakeUniversity:
    keys = tmp_path / "signing-keys"
    create_sp_keys(keys, "unimore.test")
    return FakeUniversity(url="http://127.0.0.1:1", keys_dir=keys)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_signed_metadata_is_added_with_its_certificate_and_not_warned_about(
        idp: Idp, tmp_path: Path, signing_university: FakeUniversity, services: Services) -> None:
    signed = write(tmp_path, "signed.xml", signing_university.metadata(sign=True))
    added = succeeded(add_unimore(idp, signed, "--metadata-cert", str(signing_university.cert_file)))
    assert added["metadata_signature"] == "verified with the configured certificate"
    listed = idp("federation", "list")
    assert listed.exit_code == 0 and listed.stderr == ""
    with services.registry("test") as reg:
        stored = upstream.get_federation(reg, "unimore").metadata_cert
        assert stored is not None and stored.startswith("-----BEGIN CERTIFICATE-----")


def test_metadata_that_does_not_verify_with_the_certificate_is_refused(
        idp: Idp, tmp_path: Path, signing_university: FakeUniversity, services: Services) -> None:
    signed = signing_university.metadata(sign=True)
    cert = str(signing_university.cert_file)
    other = tmp_path / "other-keys"
    create_sp_keys(other, "other.test")
    wrong_cert = str(sp_key_paths(other)[1])
    tampered = signed.replace("http://127.0.0.1:1/sso/redirect", "https://evil.example/sso/redirect")
    assert tampered != signed
    # The signed EntityDescriptor wrapped in an unsigned document, beside one of the attacker's.
    wrapped = ('<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" ID="wrap">'
               + signed.split("?>", 1)[1] + "</md:EntitiesDescriptor>")
    # An aggregate whose first signature is a (validly) signed entity's, its own signature forged.
    entity = signed.split("?>", 1)[1]
    forged = ('<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
              'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="agg">' + entity
              + '<ds:Signature><ds:SignedInfo><ds:Reference URI="#agg"/></ds:SignedInfo></ds:Signature>'
              + "</md:EntitiesDescriptor>")
    cases = [(signed, wrong_cert, "does not verify with the configured metadata certificate"),
             (forged, cert, "not signed as a whole"),
             (tampered, cert, "does not verify with the configured metadata certificate"),
             (signing_university.metadata(), cert, "not signed as a whole"),
             (wrapped, cert, "not signed as a whole")]
    for n, (xml, cert_path, message) in enumerate(cases):
        assert message in failed(add_unimore(idp, write(tmp_path, f"case{n}.xml", xml), "--metadata-cert", cert_path))
    not_a_cert = write(tmp_path, "not-a-cert.pem", "hello")
    assert "not a PEM X.509 certificate" in failed(
        add_unimore(idp, write(tmp_path, "ok.xml", signed), "--metadata-cert", str(not_a_cert)))
    assert count(services, Federation) == 0


def test_a_federation_without_a_certificate_works_with_a_warning_at_every_list(
        idp: Idp, tmp_path: Path, metadata_file: Path, signing_university: FakeUniversity, services: Services) -> None:
    assert succeeded(add_unimore(idp, metadata_file))["metadata_signature"] == "not verified"
    for _ in range(2):
        listed = idp("federation", "list")
        assert listed.exit_code == 0 and listed.stdout.startswith("unimore\t")
        assert "federation unimore: its metadata's signature is not verified" in listed.stderr
        assert "idp federation update unimore --metadata-cert FILE" in listed.stderr
    # A certificate the stored (unsigned) metadata does not verify with is refused, and nothing changes.
    cert = str(signing_university.cert_file)
    assert "not signed as a whole" in failed(idp("federation", "update", "unimore", "--metadata-cert", cert))
    with services.registry("test") as reg:
        assert upstream.get_federation(reg, "unimore").metadata_cert is None
    # With the signed metadata it is taken; after that, new metadata must verify too.
    signed = signing_university.metadata(sign=True)
    updated = succeeded(idp("federation", "update", "unimore", "--metadata", str(write(tmp_path, "s.xml", signed)),
                            "--metadata-cert", cert))
    assert updated["metadata_signature"] == "verified with the configured certificate"
    assert idp("federation", "list").stderr == ""
    tampered = write(tmp_path, "t.xml", signed.replace("127.0.0.1:1/sso", "evil.example/sso"))
    assert "does not verify" in failed(idp("federation", "update", "unimore", "--metadata", str(tampered)))
    with services.registry("test") as reg:
        assert "evil.example" not in upstream.get_federation(reg, "unimore").metadata_xml
