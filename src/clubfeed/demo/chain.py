"""The fixed shape of the demo chain: its sites, its year, what it sells and teaches.

Everything random about the demo is drawn from these tables with a seeded
generator, so the chain is the same on every machine and every run.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from mimesis import Locale

from clubfeed.timefmt import to_us

SEED = 20261130

# The demo covers the year ending 2026-11-30 UTC, whatever day it is run on.
FIRST_DAY = date(2025, 12, 1)
END_DAY = date(2026, 12, 1)
START_US = to_us(datetime.combine(FIRST_DAY, time(), UTC))
END_US = to_us(datetime.combine(END_DAY, time(), UTC))

OPENS = time(5, 0)
CLOSES = time(23, 0)

USERS = 2_000
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Site:
    """One location, with what differs between countries: zone, money, phones, names."""

    id: str
    code: str
    name: str
    street_address: str
    city: str
    state: str | None
    zip_code: str
    country: str
    timezone: str
    currency: str
    price_factor: Decimal
    # Phone formats: `#` is any digit, `%` a digit 2–9 (a US exchange cannot start with 0 or 1).
    phone_masks: tuple[str, ...]
    email_domains: tuple[str, ...]
    dues_payment: str
    share: float
    # Weights of the name locales among the site's members.
    locales: tuple[tuple[Locale, int], ...]
    classes: tuple[tuple[str, tuple[tuple[int, str], ...]], ...]
    extra_category: tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]]
    extra_appointment: str


# Class schedules: (name, ((weekday 0=Monday, local start), ...)).
SITES: tuple[Site, ...] = (
    Site(
        id="loc-bk",
        code="bk",
        name="Harbour & Pine Brooklyn",
        street_address="214 Atlantic Avenue",
        city="Brooklyn",
        state="NY",
        zip_code="11201",
        country="US",
        timezone="America/New_York",
        currency="USD",
        price_factor=Decimal("1"),
        phone_masks=tuple(f"+1 ({area}) %##-####" for area in (718, 347, 929, 917, 646)),
        email_domains=("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com"),
        dues_payment="card on file",
        share=0.45,
        locales=(
            (Locale.EN, 50),
            (Locale.ES, 20),
            (Locale.ZH, 10),
            (Locale.RU, 10),
            (Locale.KO, 5),
            (Locale.EL, 5),
        ),
        classes=(
            ("Spin", ((0, "06:30"), (2, "06:30"), (4, "06:30"), (1, "18:30"), (5, "09:00"))),
            ("HIIT", ((0, "18:30"), (2, "18:30"), (3, "07:00"))),
            ("Vinyasa Yoga", ((1, "07:00"), (3, "19:00"), (6, "10:00"))),
            ("Boxing Fundamentals", ((1, "19:30"), (4, "18:00"))),
            ("Strength Club", ((0, "12:15"), (3, "12:15"), (5, "11:00"))),
            ("Zumba", ((2, "19:30"), (6, "11:30"))),
            ("Kids Gymnastics", ((5, "10:30"), (2, "16:30"))),
        ),
        extra_category=(
            "Recovery",
            (
                ("Cold plunge", (("Cold plunge session", "25.00"),)),
                ("Stretch therapy", (("Assisted stretch, 30 min", "45.00"),)),
            ),
        ),
        extra_appointment="Assisted stretch",
    ),
    Site(
        id="loc-ldn",
        code="ldn",
        name="Harbour & Pine Shoreditch",
        street_address="38 Curtain Road",
        city="London",
        state=None,
        zip_code="EC2A 3NF",
        country="GB",
        timezone="Europe/London",
        currency="GBP",
        price_factor=Decimal("0.80"),
        phone_masks=("+44 7### ######", "+44 20 %### ####"),
        email_domains=("gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk", "icloud.com"),
        dues_payment="direct debit",
        share=0.30,
        locales=(
            (Locale.EN, 55),
            (Locale.EL, 8),
            (Locale.ES, 10),
            (Locale.AR_EG, 10),
            (Locale.ZH, 6),
            (Locale.JA, 5),
            (Locale.RU, 6),
        ),
        classes=(
            ("Reformer Pilates", ((0, "07:00"), (2, "07:00"), (4, "12:30"), (5, "09:30"))),
            ("Boxing", ((0, "18:45"), (3, "18:45"))),
            ("Spin", ((1, "06:45"), (3, "06:45"), (6, "10:00"))),
            ("Barre", ((1, "19:00"), (5, "11:00"))),
            ("Hatha Yoga", ((2, "19:30"), (6, "17:00"))),
            ("Circuit Training", ((0, "12:30"), (2, "12:30"), (4, "18:00"))),
        ),
        extra_category=(
            "Spa",
            (
                ("Sauna", (("Sauna session", "18.00"),)),
                ("Massage", (("Deep tissue massage, 60 min", "95.00"),)),
            ),
        ),
        extra_appointment="Physiotherapy",
    ),
    Site(
        id="loc-adl",
        code="adl",
        name="Harbour & Pine Adelaide",
        street_address="112 Rundle Mall",
        city="Adelaide",
        state="SA",
        zip_code="5000",
        country="AU",
        timezone="Australia/Adelaide",
        currency="AUD",
        price_factor=Decimal("1.50"),
        phone_masks=("+61 4## ### ###", "+61 8 8%## ####"),
        email_domains=("gmail.com", "bigpond.com", "outlook.com", "icloud.com", "yahoo.com.au"),
        dues_payment="card on file",
        share=0.25,
        locales=(
            (Locale.EN, 55),
            (Locale.EL, 14),
            (Locale.ZH, 14),
            (Locale.JA, 6),
            (Locale.KO, 6),
            (Locale.AR_EG, 5),
        ),
        classes=(
            ("Aqua Fit", ((0, "09:30"), (2, "09:30"), (4, "09:30"))),
            ("Kids Swim", ((1, "16:00"), (3, "16:00"), (5, "08:30"))),
            ("Spin", ((0, "06:00"), (2, "18:00"), (5, "07:30"))),
            ("Body Pump", ((1, "18:00"), (3, "06:15"), (6, "08:00"))),
            ("Yin Yoga", ((2, "19:30"), (6, "16:30"))),
            ("HIIT", ((0, "17:30"), (4, "06:15"))),
        ),
        extra_category=(
            "Swim school",
            (
                ("Term enrolment", (("Swim school term (10 lessons)", "190.00"),)),
                ("Private lesson", (("Private swim lesson, 30 min", "45.00"),)),
            ),
        ),
        extra_appointment="Float tank",
    ),
)

CHILD_CLASSES = frozenset({"Kids Gymnastics", "Kids Swim"})


@dataclass(frozen=True)
class MembershipType:
    name: str
    billing: str  # monthly, annual or pack
    price: Decimal  # in USD; a site scales it by its price_factor
    weight: int


MEMBERSHIP_TYPES: tuple[MembershipType, ...] = (
    MembershipType("Monthly unlimited", "monthly", Decimal("79.00"), 40),
    MembershipType("Off-peak", "monthly", Decimal("49.00"), 15),
    MembershipType("Annual", "annual", Decimal("799.00"), 15),
    MembershipType("Student", "monthly", Decimal("39.00"), 8),
    MembershipType("10-class pack", "pack", Decimal("180.00"), 10),
)
FAMILY_ADD_ON = MembershipType("Family add-on", "monthly", Decimal("25.00"), 0)
JOINING_FEE = Decimal("49.00")

# Chain-wide sales categories: name → subcategory → ((item, USD price), ...).
SALES_CATALOGUE: tuple[tuple[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]], ...] = (
    (
        "Membership dues",
        (
            ("Monthly dues", ()),
            ("Annual fee", ()),
            ("Joining fee", ()),
            ("Class packs", ()),
        ),
    ),
    (
        "Retail",
        (
            (
                "Apparel",
                (("Logo T-shirt", "28.00"), ("Training shorts", "35.00"), ("Hoodie", "64.00")),
            ),
            (
                "Supplements",
                (("Whey protein 1 kg", "49.95"), ("Electrolyte tabs", "12.50")),
            ),
            (
                "Accessories",
                (("Water bottle", "18.00"), ("Lifting gloves", "24.00"), ("Padlock", "9.95")),
            ),
        ),
    ),
    (
        "Personal training",
        (
            ("Single session", (("PT session, 60 min", "85.00"),)),
            ("Session packs", (("PT pack, 10 sessions", "760.00"),)),
        ),
    ),
    (
        "Café",
        (
            ("Smoothies", (("Green smoothie", "8.50"), ("Peanut butter shake", "9.25"))),
            ("Coffee", (("Flat white", "4.75"), ("Cold brew", "5.25"), ("Matcha latte", "5.75"))),
            ("Snacks", (("Protein bar", "3.95"), ("Banana", "1.00"), ("Overnight oats", "6.50"))),
        ),
    ),
)

APPOINTMENT_CATEGORIES: tuple[str, ...] = (
    "Personal training",
    "Sports massage",
    "Nutrition consult",
    "Fitness assessment",
)


def price(usd: Decimal, site: Site) -> Decimal:
    """A USD list price in the site's currency, rounded to a 5-cent step as shops do."""
    local = usd * site.price_factor
    return ((local / Decimal("0.05")).quantize(Decimal(1)) * Decimal("0.05")).quantize(CENT)


def fold(text: str) -> str:
    """The ASCII letters of `text`: `Café` → `Cafe`; empty for a name in another script."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def slug(name: str) -> str:
    """An id fragment: `Café` → `cafe`, `Kids Swim` → `kids-swim`."""
    return re.sub(r"[^a-z0-9]+", "-", fold(name).lower()).strip("-")
