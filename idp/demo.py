"""Demo data for ``make demo`` (development mode only): made-up libraries and patrons.

National ids are synthetic (Tenor-style, month + 80), so they can never be a real person's.
The passwords are printed on purpose: this is a sandbox for a newcomer to click through.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from idp.registry import guardians, libraries, patrons
from idp.registry.cardnumbers import BIBLIOMO_RULES
from idp.registry.context import Registry
from idp.registry.models import Library
from idp.registry.national_id import synthetic_national_ids

DEMO_LIBRARIES = [
    ("NO-2030000", "Demo City Library (Oslo)", None),
    ("NO-2030001", "Demo Town Library (Bergen)", None),
    ("IT-MO0001", "Demo BiblioMo member library (Modena)", BIBLIOMO_RULES),
]
DEMO_PASSWORD = "demo-password-1"
DEMO_PIN = "2468"


def _nin(born: date) -> str:
    return next(synthetic_national_ids(born))


def seed(reg: Registry) -> list[str]:
    """Create the demo data once; on later runs say it is there. Returns lines to print."""
    if reg.session.scalar(select(Library.id).where(Library.isil == DEMO_LIBRARIES[0][0])) is not None:
        return ["demo data: already seeded (delete var/idp.sqlite3 to start afresh)"]
    for isil, name, rules in DEMO_LIBRARIES:
        libraries.add_library(reg, isil, name, rules)
        if not isil.startswith("IT-"):
            libraries.reserve_series(reg, isil, 1000, usage="printed")
            libraries.reserve_series(reg, isil, 1000, usage="digital")

    kari, kari_card = patrons.register_patron(reg, patrons.NewPatron(
        name="Kari Nordmann (demo)", national_id=_nin(date(1985, 3, 12)), home_library="NO-2030000",
        email="kari@example.org", phone="+4799999999",
        address=patrons.Address("Storgata 1", "0155", "Oslo"), password=DEMO_PASSWORD, pin=DEMO_PIN))
    _, ola_card = patrons.register_patron(reg, patrons.NewPatron(
        name="Ola Nordmann (demo, secret address)", national_id=_nin(date(1979, 11, 30)),
        home_library="NO-2030001", email="ola@example.org", address_secret=True, password=DEMO_PASSWORD))
    _, child_card = guardians.register_child(reg, kari, patrons.NewPatron(
        name="Emma Nordmann (demo, child)", national_id=_nin(date(2016, 6, 1)), home_library="NO-2030000"))
    giulia_born = date(1992, 4, 12)
    _, giulia_card = patrons.register_patron(reg, patrons.NewPatron(
        name="Giulia Rossi (demo, local card)", home_library="IT-MO0001", local_card="U-0003125",
        birth_date=giulia_born, email="giulia@example.org",
        # BiblioMo's first-access password is the birth date, to be changed at first login.
        password=giulia_born.strftime("%d/%m/%Y"), password_must_change=True))
    return [
        "demo data (DEVELOPMENT ONLY, made-up people):",
        f"  {kari_card.number}  Kari, adult      password {DEMO_PASSWORD}  PIN {DEMO_PIN}",
        f"  {ola_card.number}  Ola, secret address  password {DEMO_PASSWORD}",
        f"  {child_card.number}  Emma, child of Kari (no password)",
        f"  {giulia_card.number}  Giulia, local BiblioMo card (type it as U0003125)  "
        f"password {giulia_born:%d/%m/%Y} (must change)",
    ]
