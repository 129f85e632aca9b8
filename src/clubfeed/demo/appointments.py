"""Appointments with staff: assessments for new joiners, weekly training, one-off treatments."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from clubfeed.demo.activity import in_year, local, staff_names
from clubfeed.demo.chain import APPOINTMENT_CATEGORIES, END_DAY, SEED, SITES, Site, slug
from clubfeed.demo.people import Member
from clubfeed.timefmt import to_us


def _category_id(name: str, site: Site | None = None) -> str:
    return f"ac-{site.code}-{slug(name)}" if site else f"ac-{slug(name)}"


def appointment_categories() -> list[dict[str, Any]]:
    """The chain-wide kinds of appointment, and each site's own speciality."""
    chain_wide: list[dict[str, Any]] = [
        {"id": _category_id(name), "name": name, "location_id": None}
        for name in APPOINTMENT_CATEGORIES
    ]
    return chain_wide + [
        {
            "id": _category_id(site.extra_appointment, site),
            "name": site.extra_appointment,
            "location_id": site.id,
        }
        for site in SITES
    ]


def appointments(members: list[Member]) -> list[dict[str, Any]]:
    """Fitness assessments for new joiners, weekly personal training, and one-off treatments."""
    rng = random.Random(f"{SEED}-appointments")
    staff = {site.id: staff_names(site) for site in SITES}
    adults = [m for m in members if not m.is_child and m.spans]
    planned: list[tuple[Member, str, date, int]] = []
    for member in adults:
        for access, first, end in member.access_days():
            if access.start == first and rng.random() < 0.5:
                planned.append(
                    (
                        member,
                        _category_id("Fitness assessment"),
                        first + timedelta(days=rng.randint(1, 10)),
                        rng.randint(14, 38) * 30,
                    )
                )
            if rng.random() < 0.08:
                weekly_at = rng.randint(12, 40) * 30
                day = first + timedelta(days=rng.randint(0, max(0, (end - first).days - 1)))
                for _ in range(rng.randint(4, 30)):
                    if day >= end:
                        break
                    planned.append((member, _category_id("Personal training"), day, weekly_at))
                    day += timedelta(days=rng.choice((7, 7, 7, 14)))
    for _ in range(500):
        member = rng.choice(adults)
        span_days = member.access_days()
        if span_days:
            _, first, end = rng.choice(span_days)
            day = first + timedelta(days=rng.randint(0, (end - first).days - 1))
            site = member.site
            category = rng.choice(
                (
                    _category_id("Sports massage"),
                    _category_id("Nutrition consult"),
                    _category_id(site.extra_appointment, site),
                )
            )
            planned.append((member, category, day, rng.randint(16, 40) * 30))
    booked: list[tuple[int, dict[str, Any]]] = []
    for member, category, day, minute in planned:
        at = local(day, minute, 0, member.site)
        if day >= END_DAY or not in_year(at):
            continue
        span = member.span_on(day)
        attended = rng.random() < 0.9
        booked.append(
            (
                to_us(at),
                {
                    "appointment_category_id": category,
                    "location_id": member.site.id,
                    "user_id": member.id,
                    "membership_id": span.id if span else None,
                    "appointment_at": at,
                    "checked_in_at": at - timedelta(minutes=rng.randint(1, 12))
                    if attended
                    else None,
                    "attended": attended,
                    "extra": {"staff": rng.choice(staff[member.site.id]), "duration_minutes": 60},
                },
            )
        )
    booked.sort(key=lambda b: (b[0], b[1]["user_id"], b[1]["appointment_category_id"]))
    return [{"id": f"ap-{n:06d}", **b} for n, (_, b) in enumerate(booked, start=1)]
