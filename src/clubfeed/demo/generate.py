"""The whole demo chain as plain records, resource by resource, in an order ingest accepts."""

from __future__ import annotations

from typing import Any

from clubfeed.demo import activity, appointments, people, referrals, sales
from clubfeed.demo.chain import SITES

# Every reference points to a record written earlier (a child's parent comes before it).
WRITE_ORDER = (
    "locations",
    "users",
    "memberships",
    "classes",
    "sales-categories",
    "sales-subcategories",
    "appointment-categories",
    "checkins",
    "class-attendances",
    "appointments",
    "sales",
    "referrals",
)


def _locations() -> list[dict[str, Any]]:
    return [
        {
            "id": site.id,
            "name": site.name,
            "street_address": site.street_address,
            "city": site.city,
            "state": site.state,
            "zip_code": site.zip_code,
            "country": site.country,
            "timezone": site.timezone,
            "extra": {"currency": site.currency, "opens": "05:00", "closes": "23:00"},
        }
        for site in SITES
    ]


def generate() -> dict[str, list[dict[str, Any]]]:
    """Every demo record by resource name, in `WRITE_ORDER`; the same on every call."""
    population = people.people()
    visits = activity.visits(population.members)
    classes, attendances = activity.classes_and_attendances(population.members)
    sales_categories, sales_subcategories = sales.categories()
    records = {
        "locations": _locations(),
        "users": population.users,
        "memberships": population.memberships,
        "classes": classes,
        "sales-categories": sales_categories,
        "sales-subcategories": sales_subcategories,
        "appointment-categories": appointments.appointment_categories(),
        "checkins": activity.checkins(visits),
        "class-attendances": attendances,
        "appointments": appointments.appointments(population.members),
        "sales": sales.sales(population.members, visits),
        "referrals": referrals.referrals(population),
    }
    return {name: records[name] for name in WRITE_ORDER}
