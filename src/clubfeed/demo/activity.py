"""A year of visits and classes, in each site's own local time.

Times are drawn as local wall-clock times (early, lunchtime and after-work
peaks on weekdays, late mornings at weekends) and only then become instants,
so a London 07:00 stays 07:00 across the clock change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from mimesis import Locale, Person

from clubfeed.demo.chain import (
    CHILD_CLASSES,
    CLOSES,
    END_DAY,
    END_US,
    FIRST_DAY,
    OPENS,
    SEED,
    SITES,
    START_US,
    Site,
    slug,
)
from clubfeed.demo.people import Member, Span
from clubfeed.timefmt import to_us, zone

# Monday is the busiest day at a gym, Sunday the quietest.
WEEKDAY_FACTOR = (1.25, 1.15, 1.1, 1.0, 0.8, 0.75, 0.6)
# Local minutes of the day: (earliest, latest, busiest).
SLOTS = {
    "early": (330, 510, 400),
    "midday": (690, 840, 750),
    "evening": (990, 1230, 1090),
    "late": (1230, 1350, 1250),
}
SLOT_WEIGHTS = {"early": 25, "midday": 15, "evening": 45, "late": 15}
OFF_PEAK = (540, 960, 660)
AFTER_SCHOOL = (930, 1140, 990)
WEEKEND = (450, 1080, 600)


@dataclass(frozen=True)
class Visit:
    """A check-in before it becomes a record; sales hang receipts off visits."""

    us: int
    at: datetime
    member: Member
    site: Site
    span: Span | None


def local(day: date, minute: int, second: int, site: Site) -> datetime:
    """The instant of a wall-clock time at a site (clamped to opening hours)."""
    minute = max(OPENS.hour * 60, min(minute, CLOSES.hour * 60 - 1))
    return datetime(
        day.year, day.month, day.day, minute // 60, minute % 60, second, tzinfo=zone(site.timezone)
    )


def in_year(at: datetime) -> bool:
    """Whether an instant falls in the demo year, which is a UTC year."""
    return START_US <= to_us(at) < END_US


def _season(site: Site, month: int) -> float:
    """New Year's resolutions fill January; summer (by hemisphere) and December empty gyms."""
    summer = (12, 1, 2) if site.country == "AU" else (6, 7, 8)
    factor = 1.3 if month == 1 else 1.0
    if month in summer:
        factor *= 0.85
    return factor * (0.85 if month == 12 else 1.0)


def _minute(rng: random.Random, member: Member, span: Span | None, weekday: int, slot: str) -> int:
    if weekday >= 5:
        window = WEEKEND
    elif member.is_child:
        window = AFTER_SCHOOL
    elif span is not None and span.type.name == "Off-peak":
        window = OFF_PEAK
    elif rng.random() < 0.7:
        window = SLOTS[slot]
    else:
        window = SLOTS[rng.choices(list(SLOT_WEIGHTS), list(SLOT_WEIGHTS.values()))[0]]
    low, high, mode = window
    return int(rng.triangular(low, high, mode))


def visits(members: list[Member]) -> list[Visit]:
    """Check-ins: each member visits at their own rate while a membership gives access; guests walk in."""
    rng = random.Random(f"{SEED}-visits")
    factors = {
        site.id: [
            WEEKDAY_FACTOR[(FIRST_DAY + timedelta(days=d)).weekday()]
            * _season(site, (FIRST_DAY + timedelta(days=d)).month)
            for d in range((END_DAY - FIRST_DAY).days)
        ]
        for site in SITES
    }
    found: list[Visit] = []
    for member in members:
        rate = min(6.0, rng.lognormvariate(0.55, 0.6)) * (0.6 if member.is_child else 1.0)
        slot = rng.choices(list(SLOT_WEIGHTS), list(SLOT_WEIGHTS.values()))[0]
        days: list[tuple[date, Span | None]] = []
        for access, first, end in member.access_days():
            chance = rate / 7 * (0.5 if access.type.billing == "pack" else 1.0)
            day_factors = factors[member.site.id]
            for offset in range((first - FIRST_DAY).days, (end - FIRST_DAY).days):
                if rng.random() < chance * day_factors[offset]:
                    days.append((FIRST_DAY + timedelta(days=offset), access))
        if not member.spans and not member.is_child:
            walk_ins = sorted(rng.sample(range((END_DAY - FIRST_DAY).days), rng.randint(1, 6)))
            days = [(FIRST_DAY + timedelta(days=d), None) for d in walk_ins]
        for day, span in days:
            site = member.site if rng.random() < 0.93 else rng.choice(SITES)
            minute = _minute(rng, member, span, day.weekday(), slot)
            at = local(day, minute, rng.randrange(60), site)
            if in_year(at):
                found.append(Visit(to_us(at), at, member, site, span))
    found.sort(key=lambda v: (v.us, v.member.id))
    return found


def checkins(found: list[Visit]) -> list[dict[str, Any]]:
    """Check-in records, numbered in time order as a POS numbers them."""
    return [
        {
            "id": f"ci-{n:07d}",
            "checked_in_at": visit.at,
            "location_id": visit.site.id,
            "membership_id": visit.span.id if visit.span else None,
            "user_id": visit.member.id,
            "extra": {"method": "app" if visit.us % 3 == 0 else "key fob"},
        }
        for n, visit in enumerate(found, start=1)
    ]


def staff_names(site: Site) -> list[str]:
    """The instructors and trainers of a site, the same for classes and appointments."""
    person = Person(Locale.EN, seed=f"{SEED}-{site.code}")
    return [person.full_name() for _ in range(5)]


def classes_and_attendances(
    members: list[Member],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each site's weekly timetable for the year, with bookings that were or were not attended."""
    rng = random.Random(f"{SEED}-classes")
    classes: list[dict[str, Any]] = []
    bookings: list[tuple[int, dict[str, Any]]] = []
    for site in SITES:
        staff = staff_names(site)
        adults = [m for m in members if m.site is site and not m.is_child and m.spans]
        children = [m for m in members if m.site is site and m.is_child and m.spans]
        for name, timetable in site.classes:
            class_id = f"cl-{site.code}-{slug(name)}"
            capacity, fill = rng.choice((12, 16, 20, 24)), rng.uniform(0.3, 0.65)
            classes.append(
                {
                    "id": class_id,
                    "name": name,
                    "location_id": site.id,
                    "extra": {
                        "instructor": rng.choice(staff),
                        "capacity": capacity,
                        "duration_minutes": rng.choice((45, 50, 60)),
                    },
                }
            )
            pool = children if name in CHILD_CLASSES else adults
            for weekday, start in timetable:
                hour, minute = map(int, start.split(":"))
                day = FIRST_DAY + timedelta(days=(weekday - FIRST_DAY.weekday()) % 7)
                while day < END_DAY:
                    class_at = local(day, hour * 60 + minute, 0, site)
                    booked = int(capacity * fill * rng.uniform(0.6, 1.2) * _season(site, day.month))
                    candidates = rng.sample(pool, min(len(pool), booked * 3))
                    attendees = [m for m in candidates if m.span_on(day)][:booked]
                    for member in attendees:
                        span = member.span_on(day)
                        attended = rng.random() < 0.87
                        seconds_early = rng.randint(60, 900)
                        booking = {
                            "class_id": class_id,
                            "class_name": name,
                            "user_id": member.id,
                            "membership_id": span.id if span else None,
                            "location_id": site.id,
                            "class_at": class_at,
                            "checked_in_at": class_at - timedelta(seconds=seconds_early)
                            if attended
                            else None,
                            "attended": attended,
                            "extra": {"booked_via": rng.choice(("app", "app", "front desk"))},
                        }
                        if in_year(class_at):
                            bookings.append((to_us(class_at), booking))
                    day += timedelta(days=7)
    bookings.sort(key=lambda b: (b[0], b[1]["class_id"], b[1]["user_id"]))
    attendances = [{"id": f"ca-{n:06d}", **b} for n, (_, b) in enumerate(bookings, start=1)]
    return classes, attendances
