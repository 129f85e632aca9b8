"""Times on console pages: in the business's own zone, with the UTC instant on hover.

A page's context names its zone as `zone` (a ZoneInfo, or None for UTC). Each time
renders as `<time datetime="…Z" title="… UTC">…local…</time>`, so the machine-readable
instant and the hover text are UTC whatever the zone, and only the words a person
reads first change.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from clubfeed.timefmt import from_us

NEVER = "never"


def _utc(us: int) -> tuple[str, str]:
    """(the `datetime` attribute, the hover text): whole seconds, UTC."""
    instant = from_us(us).replace(microsecond=0, tzinfo=None)
    return instant.isoformat() + "Z", instant.isoformat(" ") + " UTC"


def _local(us: int, zone: ZoneInfo | None) -> tuple[str, str]:
    """(date and time, zone abbreviation) as the owner reads them."""
    local = from_us(us, zone).replace(microsecond=0)
    return local.replace(tzinfo=None).isoformat(" "), local.tzname() or "UTC"


def _time(us: int, shown: str) -> Markup:
    machine, hover = _utc(us)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(machine, hover, shown)


def _zone(context: Context) -> ZoneInfo | None:
    zone: Any = context.get("zone")
    return zone if isinstance(zone, ZoneInfo) else None


@pass_context
def when(context: Context, us: int | None) -> Markup | str:
    """Date, time and zone abbreviation in the page's zone ("never" for no time)."""
    if us is None:
        return NEVER
    shown, abbreviation = _local(us, _zone(context))
    return _time(us, f"{shown} {abbreviation}")


@pass_context
def day(context: Context, us: int) -> Markup:
    """The date in the page's zone; the exact UTC time on hover."""
    shown, _ = _local(us, _zone(context))
    return _time(us, shown[:10])
