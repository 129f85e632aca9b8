"""The `rotate-…` commands: a new credential, the old one kept for an optional overlap."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

import click
from sqlalchemy import Connection

from clubfeed.cli.context import Context, F, emit, json_option, pass_context, utc
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import now_us

MAX_OVERLAP_S = 30 * 86_400
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class Duration(click.ParamType[int]):
    """`0`, `90s`, `10m`, `1h`, `2d` or combinations such as `1h30m`, as whole seconds."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text == "0":
            return 0
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            self.fail(f"{value!r} is not a duration such as 10m, 1h or 2d.", param, ctx)
        seconds = sum(
            int(n) * unit for n, unit in zip(match.groups(), _UNITS.values(), strict=True) if n
        )
        if seconds > MAX_OVERLAP_S:
            self.fail(f"{value!r} is longer than the longest overlap, 30d.", param, ctx)
        return seconds


def overlap_option(what: str) -> Callable[[F], F]:
    return click.option(
        "--overlap",
        "overlap_s",
        type=Duration(),
        default="0",
        show_default=True,
        metavar="DURATION",
        help=f"Keep the previous {what} working this long beside the new one (10m, 1h, 2d; at "
        "most 30d), so clients can switch without an outage. 0 stops it at once. A previous "
        f"{what} still in an earlier overlap stops at once either way.",
    )


def previous_until(overlap_s: int) -> int | None:
    """When the previous credential stops (µs, on a whole second), or None to stop it now.

    Rounded up, so the printed second is exact and the overlap never shorter than asked.
    """
    if overlap_s == 0:
        return None
    second = -(-now_us() // 1_000_000)
    return (second + overlap_s) * 1_000_000


class Rotate(Protocol):
    """A credentials.rotate_* function: the new token, or None if there is no such row."""

    def __call__(
        self, conn: Connection, row_id: int, /, *, previous_until: int | None
    ) -> str | None: ...


def command(
    name: str, *, owner: str, what: str, field: str, rotate: Rotate, doc: str
) -> click.Command:
    """A `rotate-…` command of `owner`s: a new `what` (printed as `field` in JSON) by `rotate`."""

    @click.command(name, help=doc)
    @click.argument("row_id", metavar=f"{owner.upper()}_ID", type=int)
    @overlap_option(what)
    @json_option(f'Print one line of JSON: {{"id", "{field}", "previous_valid_until"}}.')
    @pass_context
    def rotate_command(ctx: Context, row_id: int, overlap_s: int, as_json: bool) -> None:
        until = previous_until(overlap_s)
        with write_transaction(ctx.engine) as conn:
            token = rotate(conn, row_id, previous_until=until)
        if token is None:
            raise click.ClickException(f"There is no {owner} {row_id}.")
        emit(
            as_json,
            {"id": row_id, field: token, "previous_valid_until": utc(until)},
            [
                f"New {what} for {owner} {row_id}: {token}",
                f"The previous {what} works until {utc(until)}, then stops."
                if until is not None
                else f"The previous {what} has stopped working.",
                "Store the new one now: only its hash is kept.",
            ],
        )

    return rotate_command
