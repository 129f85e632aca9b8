"""`clubfeed db`: create or migrate the schema, and purge what is kept only for a while."""

from __future__ import annotations

from collections.abc import Callable

import click
from rich.table import Table

from clubfeed.cli.context import Context, F, emit, err, json_option, pass_context, utc
from clubfeed.storage.engine import read_connection, write_transaction

DAY_US = 86_400_000_000


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@json_option(
    'Print one line of JSON: {"database", "action" (created, migrated or unchanged), "from", "to"}.'
)
@pass_context
def db_upgrade(ctx: Context, as_json: bool) -> None:
    """Create or migrate the database schema to the newest version, and say which it did.

    Exits 1, changing nothing, when a newer clubfeed already migrated the database.
    """
    from clubfeed.storage.migrate import current_revision, known_revision, upgrade

    current = current_revision(ctx.engine)
    if current is not None and not known_revision(current):
        # Alembic would fail with a traceback about a revision it cannot locate.
        raise click.ClickException(
            f"The database {ctx.safe_url} is at schema revision {current}, which this clubfeed "
            "does not know: a newer clubfeed migrated it. Run that version's `clubfeed db "
            "upgrade` (or a newer one's); this one has nothing to do."
        )
    done = upgrade(ctx.engine)
    if done.before is None:
        action, line = "created", f"Created the schema of {ctx.safe_url} at revision {done.after}."
    elif done.changed:
        action = "migrated"
        line = f"Migrated {ctx.safe_url} from revision {done.before} to {done.after}."
    else:
        action, line = "unchanged", f"{ctx.safe_url} is already at revision {done.after}."
    emit(
        as_json,
        {"database": ctx.safe_url, "action": action, "from": done.before, "to": done.after},
        [line],
    )


def _businesses(ctx: Context, business_id: int | None) -> list[int]:
    """The businesses a command works on: all, or the one asked for, which must exist."""
    from clubfeed import tenants

    with read_connection(ctx.engine) as conn:
        ids = tenants.business_ids(conn, only=business_id)
    if business_id is not None and not ids:
        raise click.ClickException(f"There is no business {business_id}.")
    return ids


def _days_option(flag: str, name: str, default: int, help_text: str) -> Callable[[F], F]:
    """A number of days, 0 or more, with its default shown in --help."""
    return click.option(
        flag, name, default=default, show_default=True, type=click.IntRange(min=0), help=help_text
    )


@db.command("purge")
@_days_option(
    "--tombstones-older-than",
    "tombstone_days",
    90,
    "Purge deletes stamped more than this many days ago.",
)
@_days_option(
    "--idempotency-keys-older-than",
    "key_days",
    7,
    "Forget Idempotency-Keys used more than this many days ago.",
)
@_days_option(
    "--oauth-older-than",
    "oauth_days",
    30,
    "Delete OAuth codes and token pairs that stopped working this many days ago.",
)
@_days_option(
    "--activity-older-than",
    "activity_days",
    90,
    "Delete the API activity (shown in the console) recorded more than this many days ago.",
)
@click.option(
    "--business",
    "business_id",
    type=int,
    help="Only this business (default: all). Dead OAuth codes and tokens and expired console "
    "sessions are then left alone: they are purged for every business at once, without --business.",
)
@json_option(
    "Print one line of JSON instead of the table: the cut-off instants, each business's "
    "counts, and the OAuth and session counts (null with --business)."
)
@pass_context
def db_purge(
    ctx: Context,
    tombstone_days: int,
    key_days: int,
    oauth_days: int,
    activity_days: int,
    business_id: int | None,
    as_json: bool,
) -> None:
    """Purge old tombstones, idempotency keys, API activity, dead OAuth codes and tokens,
    and expired console sessions (run it daily).

    A range query or cursor reaching back before the purged tombstones then gets
    410 Gone: pollers that fall further behind than the retention do a complete
    transfer. Replaying a forgotten Idempotency-Key writes again.
    """
    from clubfeed import activity
    from clubfeed.auth import sessions, tokens
    from clubfeed.feed.retention import purge
    from clubfeed.ingest import idempotency
    from clubfeed.timefmt import now_us

    now = now_us()
    tombstones_before, keys_before = now - tombstone_days * DAY_US, now - key_days * DAY_US
    activity_before = now - activity_days * DAY_US
    ids = _businesses(ctx, business_id)
    purged: list[dict[str, int]] = []
    for each in ids:
        with write_transaction(ctx.engine) as conn:
            counts = purge(conn, each, tombstones_before)
            keys = idempotency.forget(conn, each, keys_before)
        # Its own transaction: the purge above holds the business's clock, which writers wait on.
        with write_transaction(ctx.engine) as conn:
            requests = activity.forget(conn, each, activity_before)
        purged.append(
            {
                "id": each,
                "tombstones": sum(counts.values()),
                "idempotency_keys": keys,
                "api_activity": requests,
            }
        )
    dead = expired = None
    if business_id is None:
        with write_transaction(ctx.engine) as conn:
            dead = tokens.forget_spent(conn, now - oauth_days * DAY_US)
            expired = sessions.forget_expired(conn)
    if as_json:
        emit(
            True,
            {
                "tombstones_before": utc(tombstones_before),
                "idempotency_keys_before": utc(keys_before),
                "api_activity_before": utc(activity_before),
                "businesses": purged,
                "oauth_deleted": dead,
                "sessions_deleted": expired,
            },
            [],
        )
        return
    table = Table(
        title=f"Purged: tombstones before {utc(tombstones_before)}, "
        f"idempotency keys before {utc(keys_before)}, "
        f"API activity before {utc(activity_before)}"
    )
    for column in ("business", "tombstones", "idempotency keys", "API activity"):
        table.add_column(column, justify="right")
    for row in purged:
        table.add_row(
            *(f"{value:,}" if name != "id" else str(value) for name, value in row.items())
        )
    out = err()
    out.print(table)
    if dead is not None:
        out.print(f"OAuth codes and token pairs deleted: {dead:,}")
        out.print(f"Expired console sessions deleted: {expired:,}")


@db.command("resummarize")
@click.option("--business", "business_id", type=int, help="Only this business (default: all).")
@json_option('Print one line of JSON instead of the table: {"businesses": [{"id", "records"}]}.')
@pass_context
def db_resummarize(ctx: Context, business_id: int | None, as_json: bool) -> None:
    """Recount the summary buckets (GET /v1/{resource}/summary) from the stored records.

    Needed only after a clubfeed older than migration 0010 wrote to this database
    after it was migrated (a rolling upgrade with writes on, or a rollback): its
    writes did not keep the buckets. Each business is recounted in one transaction
    holding its clock, so its writes wait for it and none is missed.
    """
    from rich.progress import Progress

    from clubfeed import catalogue
    from clubfeed.feed import clock, summary

    ids = _businesses(ctx, business_id)
    counted: list[dict[str, int]] = []
    with Progress(console=err(), transient=as_json, disable=as_json) as progress:
        task = progress.add_task("Recounting summaries", total=len(ids))
        for each in ids:
            with write_transaction(ctx.engine) as conn:
                clock.lock(conn, each)
                records = sum(
                    summary.rebuild(conn, business_id=each, resource=resource)
                    for resource in catalogue.RESOURCES
                )
            counted.append({"id": each, "records": records})
            progress.advance(task)
    if as_json:
        emit(True, {"businesses": counted}, [])
        return
    table = Table(title="Summary buckets recounted")
    for column in ("business", "live records"):
        table.add_column(column, justify="right")
    for row in counted:
        table.add_row(str(row["id"]), f"{row['records']:,}")
    err().print(table)
