"""A seeded demo gym chain, written through the ingest path: `clubfeed demo`.

Three sites in three time zones (one with a half-hour offset), about 2,000
members and a year of their visits, classes, appointments, sales and referrals,
identical on every run so that tests and screenshots can rely on it.
"""

from clubfeed.demo.load import (
    DEMO_BUSINESS_NAME,
    DEMO_INTEGRATOR_NAME,
    DemoCredentials,
    ensure_demo,
)

__all__ = ["DEMO_BUSINESS_NAME", "DEMO_INTEGRATOR_NAME", "DemoCredentials", "ensure_demo"]
