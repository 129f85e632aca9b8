"""The chain's members: users (families included) and their memberships.

Names come from mimesis in the locale a member's family speaks, so a site's
members read like its neighbourhood; contact details follow the site's country.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from mimesis import Locale, Person
from mimesis.enums import Gender

from clubfeed.demo.chain import (
    END_DAY,
    FAMILY_ADD_ON,
    FIRST_DAY,
    MEMBERSHIP_TYPES,
    SEED,
    SITES,
    USERS,
    MembershipType,
    Site,
    fold,
    price,
)

LAST_DAY = END_DAY - timedelta(days=1)


@dataclass(frozen=True)
class Span:
    """One membership, and the days it gives access: `start` until `end` (exclusive, None = still)."""

    id: str
    type: MembershipType
    start: date
    end: date | None
    status: str

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


@dataclass
class Member:
    """What the activity generators need to know about a user."""

    id: str
    site: Site
    email: str | None
    is_child: bool
    spans: list[Span] = field(default_factory=list)

    def span_on(self, day: date) -> Span | None:
        for span in self.spans:
            if span.covers(day):
                return span
        return None

    def access_days(self) -> list[tuple[Span, date, date]]:
        """Each span clipped to the demo year: (span, first day, end day exclusive)."""
        clipped = []
        for span in self.spans:
            first, end = max(span.start, FIRST_DAY), min(span.end or END_DAY, END_DAY)
            if first < end:
                clipped.append((span, first, end))
        return clipped


@dataclass
class Population:
    users: list[dict[str, Any]]
    memberships: list[dict[str, Any]]
    members: list[Member]


def user_id(index: int) -> str:
    return f"u-{10_001 + index}"


def day_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, max(0, (last - first).days)))


def _is_latin(text: str) -> bool:
    return all(ord(ch) < 0x250 for ch in text)


def _ascii(text: str) -> str:
    return "".join(ch for ch in fold(text).lower() if ch.isalnum())


class _Contacts:
    """Emails and phone numbers, unique across the chain as a real member list's are."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def email(self, site: Site, person: Person, first: str, last: str) -> str:
        rng = self.rng
        if _is_latin(first + last) and _ascii(first) and _ascii(last):
            first_part, last_part = _ascii(first), _ascii(last)
            local = rng.choice(
                (
                    f"{first_part}.{last_part}",
                    f"{first_part}{last_part}{rng.randint(1, 99)}",
                    f"{first_part[0]}{last_part}",
                    f"{first_part}_{last_part[:1]}{rng.randint(70, 99)}",
                )
            )
        else:
            local = person.email().partition("@")[0]
        domain = rng.choice(site.email_domains)
        email, n = f"{local}@{domain}", 1
        while email in self.taken:
            n += 1
            email = f"{local}{n}@{domain}"
        self.taken.add(email)
        return email

    def phone(self, site: Site) -> str:
        digits = {"#": "0123456789", "%": "23456789"}
        mask = self.rng.choice(site.phone_masks)
        return "".join(self.rng.choice(digits[ch]) if ch in digits else ch for ch in mask)


def _adult_spans(rng: random.Random, ids: Iterator[int], age: int) -> list[Span]:
    """An adult's memberships: none for a guest, sometimes an earlier one that ended."""
    if rng.random() < 0.10:
        return []
    types = [t for t in MEMBERSHIP_TYPES if age < 26 or t.name != "Student"]
    kind = rng.choices(types, weights=[t.weight for t in types])[0]
    if rng.random() < 0.35:
        start = day_between(rng, FIRST_DAY, LAST_DAY - timedelta(days=7))
    else:
        start = day_between(rng, FIRST_DAY - timedelta(days=6 * 365), FIRST_DAY)
    spans: list[Span] = []
    if rng.random() < 0.15:
        spans.append(_earlier_span(rng, ids, start))
    spans.append(_current_span(rng, ids, kind, start))
    return spans


def _earlier_span(rng: random.Random, ids: Iterator[int], before: date) -> Span:
    start = before - timedelta(days=rng.randint(200, 900))
    kind = rng.choice([t for t in MEMBERSHIP_TYPES if t.billing in ("monthly", "pack")])
    if kind.billing == "pack":
        return Span(f"m-{next(ids)}", kind, start, start + timedelta(days=90), "expired")
    end = start + timedelta(days=rng.randint(60, (before - start).days - 1))
    return Span(f"m-{next(ids)}", kind, start, end, "cancelled")


def _current_span(
    rng: random.Random, ids: Iterator[int], kind: MembershipType, start: date
) -> Span:
    span_id, roll = f"m-{next(ids)}", rng.random()
    if kind.billing == "pack":
        end = start + timedelta(days=90)
        return Span(span_id, kind, start, end, "expired" if end <= LAST_DAY else "active")
    years = (LAST_DAY - start).days // 365
    if kind.billing == "annual":
        if years >= 1 and roll < 0.3:
            end = start + timedelta(days=365 * rng.randint(1, years))
            return Span(span_id, kind, start, end, "expired")
        return Span(span_id, kind, start, None, "active")
    if roll < 0.07 and start < LAST_DAY - timedelta(days=90):
        frozen_from = day_between(rng, LAST_DAY - timedelta(days=60), LAST_DAY - timedelta(days=3))
        return Span(span_id, kind, start, frozen_from, "frozen")
    if roll < 0.27 and start < LAST_DAY - timedelta(days=30):
        cancelled = day_between(rng, start + timedelta(days=30), LAST_DAY)
        return Span(span_id, kind, start, cancelled, "cancelled")
    return Span(span_id, kind, start, None, "active")


def _child_span(rng: random.Random, ids: Iterator[int], parent: Span) -> Span:
    start = min(parent.start + timedelta(days=rng.randint(0, 60)), LAST_DAY)
    end = parent.end if parent.end is None or parent.end > start else start + timedelta(days=1)
    status = "cancelled" if parent.status in ("cancelled", "expired") else parent.status
    return Span(f"m-{next(ids)}", FAMILY_ADD_ON, start, end, status)


def _membership_record(member: Member, span: Span) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "price": str(price(span.type.price, member.site)),
        "currency": member.site.currency,
        "billing": span.type.billing,
    }
    if span.status == "expired" and span.end is not None:
        extra["expired_on"] = span.end.isoformat()
    if span.status == "frozen" and span.end is not None:
        extra["frozen_from"] = span.end.isoformat()
        extra["frozen_until"] = (span.end + timedelta(days=90)).isoformat()
    return {
        "id": span.id,
        "user_id": member.id,
        "membership_type": span.type.name,
        "status": span.status,
        "join_date": span.start,
        "cancellation_date": span.end if span.status == "cancelled" else None,
        "home_location_id": member.site.id,
        "extra": extra,
    }


def people() -> Population:
    """About 2,000 users in families, with their memberships, the same on every run."""
    rng = random.Random(f"{SEED}-people")
    persons = {locale: Person(locale, seed=SEED) for site in SITES for locale, _ in site.locales}
    contacts = _Contacts(rng)
    population = Population([], [], [])
    ids = itertools.count(20_001)
    while len(population.users) < USERS:
        site = rng.choices(SITES, weights=[s.share for s in SITES])[0]
        locale = rng.choices([loc for loc, _ in site.locales], [w for _, w in site.locales])[0]
        family = _Family(site, locale, persons[locale])
        age = int(rng.triangular(18, 78, 31))
        parent = _add_user(population, rng, contacts, family, age, None)
        parent.spans = _adult_spans(rng, ids, age)
        children = rng.choice((1, 1, 2, 3)) if rng.random() < 0.09 else 0
        for _ in range(min(children, USERS - len(population.users))):
            child = _add_user(population, rng, contacts, family, rng.randint(4, 15), parent)
            if parent.spans and rng.random() < 0.75:
                child.spans = [_child_span(rng, ids, parent.spans[-1])]
    for member in population.members:
        population.memberships += [_membership_record(member, span) for span in member.spans]
    return population


@dataclass
class _Family:
    """Members of one household share a site, a language and (once drawn) a family name."""

    site: Site
    locale: Locale
    person: Person
    last_name: str | None = None


def _add_user(
    population: Population,
    rng: random.Random,
    contacts: _Contacts,
    family: _Family,
    age: int,
    parent: Member | None,
) -> Member:
    gender = rng.choice((Gender.FEMALE, Gender.MALE))
    first = family.person.first_name(gender)
    if family.last_name is None:
        family.last_name = family.person.last_name(gender)
    last, site = family.last_name, family.site
    record: dict[str, Any] = {
        "id": user_id(len(population.users)),
        "email": None if parent else contacts.email(site, family.person, first, last),
        "first_name": first,
        "last_name": last,
        "phone": None if parent or rng.random() < 0.12 else contacts.phone(site),
        "birth_date": LAST_DAY - timedelta(days=age * 365 + rng.randint(0, 364)),
        "is_child": parent is not None,
        "parent_id": parent.id if parent else None,
        "home_location_id": site.id,
        "extra": {
            "preferred_language": family.locale.value.split("-")[0],
            "marketing_opt_in": parent is None and rng.random() < 0.6,
        },
    }
    population.users.append(record)
    member = Member(record["id"], site, record["email"], parent is not None)
    population.members.append(member)
    return member
