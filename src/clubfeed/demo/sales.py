"""What the chain sold: membership dues on each billing day, and receipts at the front desk.

A receipt is several line items sharing a `sale_id`; prices are exact decimals
in the site's currency, and a member discount is a negative line, as POS
exports show it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from clubfeed.demo.activity import Visit, in_year, local
from clubfeed.demo.chain import (
    CENT,
    CLOSES,
    END_DAY,
    FIRST_DAY,
    JOINING_FEE,
    SALES_CATALOGUE,
    SEED,
    SITES,
    Site,
    price,
    slug,
)
from clubfeed.demo.people import Member, Span
from clubfeed.timefmt import to_us

PAYMENTS = {"card": 55, "contactless": 20, "cash": 10, "account": 12, "gift card": 3}
# Café and retail fill most receipts; a site's own speciality gets the default weight.
FRONT_DESK_WEIGHTS = {"Café": 55, "Retail": 25, "Personal training": 6}
DUES_CATEGORY = "Membership dues"
DUES_SUBCATEGORY = {"monthly": "Monthly dues", "annual": "Annual fee", "pack": "Class packs"}


@dataclass(frozen=True)
class _Item:
    category_id: str
    category_name: str
    subcategory_id: str | None
    subcategory_name: str | None
    name: str
    usd: Decimal


def _catalogue(site: Site | None) -> list[tuple[str, str | None, tuple[tuple[str, Any], ...]]]:
    """(category, its location, subcategories) chain-wide, or the one a site adds."""
    if site is None:
        return [(name, None, subs) for name, subs in SALES_CATALOGUE]
    name, subs = site.extra_category
    return [(name, site.id, subs)]


def _category_id(name: str, location_id: str | None) -> str:
    return "sc-" + slug(f"{location_id or ''} {name}").removeprefix("loc-")


def _subcategory_id(category_id: str, name: str) -> str:
    return f"ss-{category_id.removeprefix('sc-')}-{slug(name)}"


def categories() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sales categories and subcategories: chain-wide ones, and one of each site's own."""
    found: list[dict[str, Any]] = []
    subs_found: list[dict[str, Any]] = []
    for site in (None, *SITES):
        for name, location_id, subs in _catalogue(site):
            category_id = _category_id(name, location_id)
            found.append({"id": category_id, "name": name, "location_id": location_id})
            for sub_name, _ in subs:
                subs_found.append(
                    {
                        "id": _subcategory_id(category_id, sub_name),
                        "name": sub_name,
                        "category_id": category_id,
                        "location_id": location_id,
                    }
                )
    return found, subs_found


def _items(site: Site) -> dict[str, list[_Item]]:
    """What the front desk of `site` sells, by category name."""
    items: dict[str, list[_Item]] = {}
    for scope in (None, site):
        for name, location_id, subs in _catalogue(scope):
            category_id = _category_id(name, location_id)
            for sub_name, products in subs:
                sub_id = _subcategory_id(category_id, sub_name)
                items.setdefault(name, []).extend(
                    _Item(category_id, name, sub_id, sub_name, product, Decimal(usd))
                    for product, usd in products
                )
    # Dues are billed, not sold over the counter.
    return {name: found for name, found in items.items() if found}


class _Receipts:
    """Line items grouped into receipts; receipt ids follow time order once all are drawn."""

    def __init__(self) -> None:
        self.receipts: list[tuple[int, str, list[dict[str, Any]]]] = []

    def add(self, at_us: int, user_id: str | None, lines: list[dict[str, Any]]) -> None:
        self.receipts.append((at_us, user_id or "", lines))

    def records(self) -> list[dict[str, Any]]:
        self.receipts.sort(key=lambda r: (r[0], r[1]))
        records = []
        for n, (_, _, lines) in enumerate(self.receipts, start=1):
            sale_id = f"S{n:06d}"
            records += [
                {"id": f"{sale_id}-{k}", "sale_id": sale_id, **line}
                for k, line in enumerate(lines, start=1)
            ]
        return records


def _line(
    item: _Item, site: Site, quantity: int, payment: str, at: datetime, user_id: str | None
) -> dict[str, Any]:
    unit = price(item.usd, site)
    return {
        "category_id": item.category_id,
        "category_name": item.category_name,
        "subcategory_id": item.subcategory_id,
        "subcategory_name": item.subcategory_name,
        "payment_type": payment,
        "pre_tax_price": str(unit * quantity),
        "user_id": user_id,
        "membership_id": None,
        "location_id": site.id,
        "sold_at": at,
        "extra": {
            "item": item.name,
            "quantity": quantity,
            "unit_price": str(unit),
            "currency": site.currency,
        },
    }


def _billing_days(span: Span, first: date, end: date) -> list[date]:
    """The days a membership is charged within the year: monthly on its join day, yearly, or once."""
    if span.type.billing == "pack":
        return [span.start] if first <= span.start < end else []
    step = 12 if span.type.billing == "annual" else 1
    days: list[date] = []
    months = 0
    while True:
        # Charged on joining, then on the same day of later months (the 28th at most).
        month = span.start.month - 1 + months
        day = (
            date(span.start.year + month // 12, month % 12 + 1, min(span.start.day, 28))
            if months
            else span.start
        )
        if day >= end:
            return days
        if day >= first:
            days.append(day)
        months += step


def _dues(member: Member, receipts: _Receipts, rng: random.Random) -> None:
    site = member.site
    for span, first, end in member.access_days():
        subcategory = DUES_SUBCATEGORY[span.type.billing]
        for day in _billing_days(span, first, end):
            at = local(day, 5 * 60 + rng.randrange(60), rng.randrange(60), site)
            lines = [
                _dues_line(span, site, subcategory, span.type.name, span.type.price, at, member.id)
            ]
            if day == span.start and span.type.billing != "pack":
                lines.append(
                    _dues_line(span, site, "Joining fee", "Joining fee", JOINING_FEE, at, member.id)
                )
            if in_year(at):
                receipts.add(to_us(at), member.id, lines)


def _dues_line(
    span: Span, site: Site, subcategory: str, item: str, usd: Decimal, at: datetime, user_id: str
) -> dict[str, Any]:
    category_id = _category_id(DUES_CATEGORY, None)
    dues_item = _Item(
        category_id,
        DUES_CATEGORY,
        _subcategory_id(category_id, subcategory),
        subcategory,
        item,
        usd,
    )
    line = _line(dues_item, site, 1, site.dues_payment, at, user_id)
    line["membership_id"] = span.id
    return line


def _front_desk(
    rng: random.Random,
    site: Site,
    at: datetime,
    member: Member | None,
    items: dict[str, list[_Item]],
) -> list[dict[str, Any]]:
    """One receipt's lines: mostly café and retail, sometimes training or the site's speciality."""
    user_id = member.id if member else None
    payments = {k: w for k, w in PAYMENTS.items() if member or k != "account"}
    payment = rng.choices(list(payments), list(payments.values()))[0]
    category_names = list(items)
    weights = [FRONT_DESK_WEIGHTS.get(name, 8) for name in category_names]
    lines = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        category = rng.choices(category_names, weights)[0]
        item = rng.choice(items[category])
        quantity = rng.choice((1, 1, 1, 2)) if category == "Café" else 1
        lines.append(_line(item, site, quantity, payment, at, user_id))
    retail = [line for line in lines if line["category_name"] == "Retail"]
    if member and retail and rng.random() < 0.4:
        total = sum(Decimal(line["pre_tax_price"]) for line in retail)
        discount = -(total * Decimal("0.10")).quantize(CENT)
        lines.append(
            {
                **retail[0],
                "subcategory_id": None,
                "subcategory_name": None,
                "pre_tax_price": str(discount),
                "extra": {"item": "Member discount 10%", "currency": site.currency},
            }
        )
    return lines


def sales(members: list[Member], visits: list[Visit]) -> list[dict[str, Any]]:
    """Dues for every billing day in the year, receipts after some visits, and walk-up café sales."""
    rng = random.Random(f"{SEED}-sales")
    receipts = _Receipts()
    items = {site.id: _items(site) for site in SITES}
    for member in members:
        _dues(member, receipts, rng)
    for visit in visits:
        if rng.random() < 0.06:
            at = visit.at + timedelta(minutes=rng.randint(10, 95))
            if in_year(at) and at.date() == visit.at.date() and at.time() < CLOSES:
                lines = _front_desk(rng, visit.site, at, visit.member, items[visit.site.id])
                receipts.add(to_us(at), visit.member.id, lines)
    for _ in range(1_200):
        site = rng.choice(SITES)
        day = FIRST_DAY + timedelta(days=rng.randrange((END_DAY - FIRST_DAY).days))
        at = local(day, int(rng.triangular(360, 1260, 480)), rng.randrange(60), site)
        if in_year(at):
            receipts.add(to_us(at), None, _front_desk(rng, site, at, None, items[site.id]))
    return receipts.records()
