"""Members bringing friends: some friends joined (the referee is a user), some only left an email."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from mimesis import Locale, Person

from clubfeed.demo.chain import FIRST_DAY, SEED, SITES
from clubfeed.demo.people import LAST_DAY, Member, Population, day_between
from clubfeed.timefmt import zone


def referrals(population: Population) -> list[dict[str, Any]]:
    """About 300 referrals over the year, each dated before the friend joined, if they did."""
    rng = random.Random(f"{SEED}-referrals")
    adults = [m for m in population.members if not m.is_child and m.spans]
    joined = [
        m for m in adults if len(m.spans) == 1 and m.spans[0].start > FIRST_DAY + timedelta(days=20)
    ]
    records: list[dict[str, Any]] = []
    for referee in rng.sample(joined, min(len(joined), 170)):
        day = referee.spans[0].start - timedelta(days=rng.randint(1, 20))
        local = [
            m for m in adults if m.site is referee.site and m is not referee and m.span_on(day)
        ]
        if local:
            records.append(_referral(rng, rng.choice(local), day, referee, referee.email))
    persons = {site.id: Person(Locale.EN, seed=SEED + i) for i, site in enumerate(SITES)}
    for _ in range(150):
        referrer = rng.choice(adults)
        day = day_between(rng, FIRST_DAY + timedelta(days=1), LAST_DAY - timedelta(days=1))
        email = persons[referrer.site.id].email(domains=referrer.site.email_domains)
        records.append(_referral(rng, referrer, day, None, email))
    records.sort(key=lambda r: (r["referred_at"], r["referrer_user_id"]))
    for n, record in enumerate(records, start=1):
        record["id"] = f"ref-{n:05d}"
    return records


def _referral(
    rng: random.Random, referrer: Member, day: date, referee: Member | None, email: str | None
) -> dict[str, Any]:
    at = datetime(
        day.year,
        day.month,
        day.day,
        rng.randint(8, 20),
        rng.randrange(60),
        tzinfo=zone(referrer.site.timezone),
    )
    status = "joined" if referee else rng.choice(("invited", "invited", "visited", "declined"))
    return {
        "id": "",
        "referrer_user_id": referrer.id,
        "referee_user_id": referee.id if referee else None,
        "referee_email": email,
        "referred_at": at,
        "extra": {"channel": rng.choice(("app", "front desk", "website")), "status": status},
    }
