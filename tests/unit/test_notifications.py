"""Notices queued for patrons reach them: by e-mail through a real SMTP server (aiosmtpd), by SMS
through an HTTP gateway, once each, and a failing or missing channel loses nothing."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from idp import notifications
from idp.registry import patrons
from idp.cli import main
from idp.delivery import HttpSmsGateway, Messenger, SmtpMailer, Unconfigured
from idp.errors import ConfigError
from idp.delivery.texts import NOTICE_KINDS, notice_email, notice_sms
from idp.registry.models import NOTIFICATION_KINDS, AuditEvent, Notification
from idp.services import Services
from idp.settings import Settings
from tests.cli.test_cli import without_outer_idp_vars
from tests.conftest import FakeClock
from tests.unit.factories import detached, library, patron
from tests.unit.test_otp_delivery import Gateway, SmtpSink, free_port
from tests.unit.test_otp_delivery import gateway, smtp_sink  # noqa: F401 - fixtures

pytestmark = pytest.mark.backends  # the queue claims rows with SKIP LOCKED

SENDER = "noreply@bibliotekkortet.no"
# README: "A failed send is retried by later runs after 1, 5, 30 and 120 minutes, then given up".
RETRY_WAITS = [timedelta(minutes=m) for m in (1, 5, 30, 120)]
SENDS_BEFORE_GIVING_UP = 1 + len(RETRY_WAITS)
Deliver = Callable[..., notifications.DeliveryReport]


@pytest.fixture
def messenger(smtp_sink: SmtpSink, gateway: Gateway) -> Messenger:
    return Messenger(SmtpMailer(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
                     HttpSmsGateway(gateway.url, "gw-token"), SENDER)


@pytest.fixture
def deliver(services: Services, messenger: Messenger) -> Deliver:
    def run(via: Messenger = messenger, **options: int) -> notifications.DeliveryReport:
        return notifications.deliver_pending(lambda: services.registry("notifier"), via, **options)
    return run


@pytest.fixture(autouse=True)
def oslo(services: Services) -> None:
    with services.registry("test") as reg:
        library(reg)


_patrons = itertools.count()


def queue(services: Services, kind: str = "login_locked", *, email: str | None = "kari@example.org",
          phone: str | None = None, **data: object) -> int:
    """A new patron with the given addresses and one notice for them; the notice's id."""
    with services.registry("test") as reg:
        someone, _ = patron(reg, nth=next(_patrons), email=email, phone=phone)
        reg.notify(someone.id, kind, **(data or {"failures": 10}))
        reg.session.flush()
        return int(reg.session.scalar(select(func.max(Notification.id))) or 0)


def stored(services: Services, notice_id: int) -> Notification:
    return detached(services, Notification, notice_id)


# -- what the patron receives ----------------------------------------------------------------

def test_a_lock_notice_is_mailed_in_both_languages_once(services: Services, deliver: Deliver,
                                                       smtp_sink: SmtpSink) -> None:
    notice_id = queue(services, failures=10)
    report = deliver()
    assert (report.email, report.sent, report.retry) == (1, 1, 0)
    mail = smtp_sink.wait_for("kari@example.org")
    assert mail.mail_from == SENDER
    assert mail.message["Subject"] == "Innloggingen er sperret / Login locked"
    assert "etter 10 feil passord eller PIN-koder" in mail.text
    assert "locked after 10 wrong passwords or PINs" in mail.text
    notice = stored(services, notice_id)
    assert (notice.outcome, notice.attempts) == ("email", 1) and notice.delivered_at == services.clock()
    assert deliver().sent == 0 and len(smtp_sink.received) == 1  # delivered once, never again
    with services.registry("test") as reg:
        actions = list(reg.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("notification.%"))))
    assert actions == ["notification.email"]


def test_a_patron_without_e_mail_gets_an_sms_in_bokmal(services: Services, deliver: Deliver,
                                                       gateway: Gateway) -> None:
    notice_id = queue(services, "account_changed", email=None, phone="+4791234567", what="pin")
    assert deliver().sms == 1
    (sent,) = gateway.requests
    assert sent["json"]["to"] == "+4791234567"
    assert sent["json"]["message"] == ("PIN-koden for bibliotekinnloggingen din er endret. Var det ikke deg, "
                                    "kontakt biblioteket.")
    assert stored(services, notice_id).outcome == "sms"


def test_library_and_date_are_written_out(services: Services, deliver: Deliver,
                                          smtp_sink: SmtpSink) -> None:
    queue(services, "library_added", email="ola@example.org", library="NO-2030000")
    queue(services, "inactivity_warning", email="per@example.org", deletion_on="2027-01-06")
    assert deliver().email == 2
    assert "Oslo har lagt deg til som låner" in smtp_sink.wait_for("ola@example.org").text
    warning = smtp_sink.wait_for("per@example.org").text
    assert "slettes 06.01.2027" in warning and "deleted on 2027-01-06" in warning


def test_a_patron_without_any_address_is_settled_not_retried(services: Services, deliver: Deliver,
                                                             smtp_sink: SmtpSink) -> None:
    notice_id = queue(services, email=None, phone=None)
    assert deliver().no_address == 1
    assert deliver().no_address == 0
    notice = stored(services, notice_id)
    assert (notice.outcome, notice.attempts, notice.delivered_at) == ("no_address", 0, None)
    assert smtp_sink.received == []



def test_a_changed_address_is_reported_to_the_old_one_which_is_then_erased(services: Services, deliver: Deliver,
                                                                            smtp_sink: SmtpSink,
                                                                            gateway: Gateway) -> None:
    with services.registry("test") as reg:
        kari, _ = patron(reg, nth=next(_patrons), email="new@example.org", phone="+4790000002")
        reg.notify(kari.id, "account_changed", what="email", to="old@example.org")
        reg.notify(kari.id, "account_changed", what="phone", to="+4790000001")
        reg.session.flush()
        queued = list(reg.session.scalars(select(Notification).order_by(Notification.id)))
        assert all(n.address_cipher and b"old@" not in n.address_cipher and b"9000000" not in n.address_cipher
                   for n in queued)
        assert [n.data for n in queued] == [{"what": "email"}, {"what": "phone"}]  # no address in the data
    report = deliver()
    assert (report.email, report.sms) == (1, 1)
    assert "E-postadressen for bibliotekinnloggingen din er endret" in smtp_sink.wait_for("old@example.org").text
    assert smtp_sink.to("new@example.org") == []
    assert [r["json"]["to"] for r in gateway.requests] == ["+4790000001"]
    with services.registry("test") as reg:
        assert [n.address_cipher for n in reg.session.scalars(select(Notification))] == [None, None]


def test_a_queued_address_does_not_open_for_another_patron(services: Services) -> None:
    with services.registry("test") as reg:
        kari, _ = patron(reg, nth=next(_patrons))
        ola, _ = patron(reg, nth=next(_patrons))
        reg.notify(kari.id, "account_changed", what="email", to="old@example.org")
        reg.notify(ola.id, "account_changed", what="email")
        reg.session.flush()
        karis, olas = reg.session.scalars(select(Notification).order_by(Notification.id))
        assert reg.notice_address(karis) == "old@example.org" and reg.notice_address(olas) is None
        olas.address_cipher = karis.address_cipher  # moved to another patron's notice
        with pytest.raises(ConfigError):
            reg.notice_address(olas)

# -- failures lose nothing ---------------------------------------------------------------------

def test_a_failing_mail_server_is_retried_later_and_later_then_given_up(services: Services, deliver: Deliver,
                                                                        clock: FakeClock) -> None:
    notice_id = queue(services)
    down = Messenger(SmtpMailer(host="127.0.0.1", port=free_port(), tls="none", timeout=2),
                     Unconfigured("IDP_SMS_URL", "SMS delivery"), SENDER)
    for attempt, wait in enumerate(RETRY_WAITS, start=1):
        report = deliver(down)
        assert (report.retry, report.failed) == (1, 0)
        notice = stored(services, notice_id)
        assert (notice.outcome, notice.attempts, notice.retry_after) == (None, attempt, clock.now + wait)
        clock.advance(seconds=wait.total_seconds() - 1)
        assert deliver(down).retry == 0  # not yet: the next try waits its turn
        clock.advance(seconds=1)
    assert deliver(down).failed == 1
    notice = stored(services, notice_id)
    assert (notice.outcome, notice.attempts) == ("failed", SENDS_BEFORE_GIVING_UP)
    clock.advance(days=1)
    assert deliver(down).failed == 0  # given up means no more attempts


def test_a_failed_send_is_delivered_by_a_later_run(services: Services, deliver: Deliver, clock: FakeClock,
                                                   smtp_sink: SmtpSink) -> None:
    notice_id = queue(services)
    down = Messenger(SmtpMailer(host="127.0.0.1", port=free_port(), tls="none", timeout=2),
                     Unconfigured("IDP_SMS_URL", "SMS delivery"), SENDER)
    assert deliver(down).retry == 1
    assert deliver().email == 0  # backing off
    clock.advance(seconds=RETRY_WAITS[0].total_seconds())
    assert deliver().email == 1
    assert len(smtp_sink.to("kari@example.org")) == 1
    assert stored(services, notice_id).attempts == 2


def test_an_unconfigured_channel_keeps_notices_waiting_uncounted(services: Services, deliver: Deliver,
                                                                 smtp_sink: SmtpSink) -> None:
    notice_id = queue(services)
    unconfigured = Messenger(Unconfigured("IDP_SMTP_HOST", "e-mail delivery"),
                             Unconfigured("IDP_SMS_URL", "SMS delivery"), SENDER)
    for _ in range(SENDS_BEFORE_GIVING_UP + 1):
        assert deliver(unconfigured).waiting == 1
    notice = stored(services, notice_id)
    assert (notice.outcome, notice.attempts) == (None, 0)
    assert deliver().email == 1  # once mail is configured, it goes


def test_a_notice_older_than_a_week_is_not_sent(services: Services, deliver: Deliver, clock: FakeClock,
                                                smtp_sink: SmtpSink) -> None:
    stale = queue(services, email="old@example.org")
    clock.advance(days=7, minutes=1)
    fresh = queue(services, email="new@example.org")
    report = deliver()
    assert (report.expired, report.email) == (1, 1)
    assert stored(services, stale).outcome == "expired" and stored(services, fresh).outcome == "email"
    assert smtp_sink.to("old@example.org") == [] and len(smtp_sink.to("new@example.org")) == 1


def test_a_run_sends_at_most_its_limit_oldest_first(services: Services, deliver: Deliver,
                                                    smtp_sink: SmtpSink) -> None:
    ids = [queue(services, email=f"p{n}@example.org") for n in range(3)]
    assert deliver(limit=2).email == 2
    assert [stored(services, i).outcome for i in ids] == ["email", "email", None]
    assert deliver().email == 1


def test_two_deliverers_at_once_send_each_notice_once(services: Services, messenger: Messenger,
                                                      smtp_sink: SmtpSink) -> None:
    if services.engine.dialect.name != "postgresql":
        pytest.skip("concurrent deliverers need PostgreSQL's SKIP LOCKED; with SQLite run one deliverer")
    for n in range(12):
        queue(services, email=f"p{n}@example.org")
    reports: list[notifications.DeliveryReport] = []

    def run() -> None:
        reports.append(notifications.deliver_pending(lambda: services.registry("notifier"), messenger))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(r.email for r in reports) == 12
    assert sorted(address for r in smtp_sink.received for address in r.rcpt_tos) == sorted(
        f"p{n}@example.org" for n in range(12))


# -- the vocabulary ------------------------------------------------------------------------------

def test_every_kind_has_its_words_and_unknown_kinds_are_refused(services: Services) -> None:
    assert NOTICE_KINDS == NOTIFICATION_KINDS
    for kind in NOTIFICATION_KINDS:
        assert "{" not in notice_email(kind, {}).text and "{" not in notice_sms(kind, {}).text
    with services.registry("test") as reg:
        kari, _ = patron(reg, nth=next(_patrons))
        with pytest.raises(ValueError, match="unknown notification kind"):
            reg.notify(kari.id, "lottery_win")
        assert reg.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_notices_never_carry_the_address_or_a_card_number(services: Services, deliver: Deliver,
                                                          smtp_sink: SmtpSink) -> None:
    with services.registry("test") as reg:
        kari, card = patron(reg, nth=next(_patrons), email="kari@example.org")
        reg.notify(kari.id, "account_changed", what="email")
        number = card.number
    deliver()
    text = smtp_sink.wait_for("kari@example.org").text
    assert "E-postadressen for bibliotekinnloggingen din er endret" in text
    assert "kari@example.org" not in text and number not in text


# -- the operator's command ----------------------------------------------------------------------

def deliver_command(settings: Settings, smtp_host: str, smtp_port: int) -> Result:
    """`idp notifications deliver` as an operator runs it, mail going to ``smtp_host:smtp_port``."""
    env = {"IDP_MODE": "development", "IDP_HOME": str(settings.home), "IDP_DATABASE_URL": settings.database_url,
           "IDP_KEYS_DIR": str(settings.keys_dir), "IDP_SMTP_HOST": smtp_host, "IDP_SMTP_PORT": str(smtp_port),
           "IDP_SMTP_TLS": "none", "IDP_MAIL_FROM": SENDER}
    return CliRunner().invoke(main, ["notifications", "deliver"], env=without_outer_idp_vars(env),
                              catch_exceptions=False)


def test_the_cli_delivers_and_reports(settings: Settings, services: Services, clock: FakeClock,
                                      smtp_sink: SmtpSink) -> None:
    clock.now = datetime.now(UTC)  # the command runs on the real clock
    queue(services)
    queue(services, email=None, phone=None)
    result = deliver_command(settings, smtp_sink.host, smtp_sink.port)
    assert result.exit_code == 0, result.output
    assert "sent_by_email: 1\n" in result.output and "no_address: 1\n" in result.output
    assert len(smtp_sink.to("kari@example.org")) == 1


def test_the_cli_exits_1_when_a_send_failed(settings: Settings, services: Services, clock: FakeClock) -> None:
    clock.now = datetime.now(UTC)
    queue(services)
    result = deliver_command(settings, "127.0.0.1", free_port())  # nothing listens there
    assert result.exit_code == 1
    assert "to_retry: 1" in result.output
    assert "1 notices could not be sent" in result.output


def test_a_contact_change_by_staff_is_reported_to_the_old_address(services: Services, deliver: Deliver,
                                                                   smtp_sink: SmtpSink) -> None:
    with services.registry("test") as reg:
        kari, _ = patron(reg, nth=next(_patrons), email="kari@example.org")
        assert patrons.update_patron(reg, kari, email="thief@example.org", name="Kari N") == ["name", "email"]
    assert deliver().email == 1
    assert "E-postadressen for bibliotekinnloggingen din er endret" in smtp_sink.wait_for("kari@example.org").text
    assert smtp_sink.to("thief@example.org") == []
    with services.registry("test") as reg:
        assert [n.data for n in reg.session.scalars(select(Notification))] == [{"what": "email"}]  # not for the name
