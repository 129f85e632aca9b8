"""The `clubfeed` command: serve the API, migrate, manage businesses and integrators, load data."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine, select
from sqlalchemy.exc import ArgumentError, DBAPIError

from clubfeed.auth import credentials
from clubfeed.errors import ClubfeedError
from clubfeed.ingest.validate import MAX_BATCH
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine, read_connection, write_transaction
from clubfeed.storage.schema import businesses

err = Console(stderr=True)
DAY_US = 86_400_000_000
F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Settings from the environment and options, and an engine made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = make_engine(self.settings.database_url, pool_size=2)
            except (ArgumentError, ValueError) as exc:
                raise click.ClickException(f"Bad database URL: {exc}") from exc
        return self._engine


pass_context = click.make_pass_decorator(Context)


class _Group(click.Group):
    """Reports a database failure as one clear message, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            raise click.ClickException(_database_problem(ctx, exc)) from exc


def _database_problem(ctx: click.Context, exc: DBAPIError) -> str:
    lines = str(exc.orig or exc).strip().splitlines()
    reason = lines[0] if lines else type(exc.orig).__name__
    cli = ctx.find_object(Context)
    where = f" {_safe_url(cli.settings.database_url)}" if cli is not None else ""
    # 42P01 is PostgreSQL's undefined_table; SQLite says "no such table".
    unmigrated = getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in reason
    hint = " Run `clubfeed db upgrade` to create or migrate the schema." if unmigrated else ""
    return f"Database{where} failed: {reason}.{hint}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="CLUBFEED_DATABASE_URL",
    default=None,
    help="sqlite:///file.db (default sqlite:///clubfeed.db) or postgresql+psycopg://user@host/db. "
    "Also read from CLUBFEED_DATABASE_URL.",
)
@click.version_option(package_name="clubfeed")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """clubfeed: gym and studio data for loyalty integrators, gap-free."""
    settings = Settings.from_env()
    if database_url:
        settings = Settings(**{**settings.__dict__, "database_url": database_url})
    ctx.obj = Context(settings)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--forwarded-allow-ips",
    envvar="FORWARDED_ALLOW_IPS",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-Proto/For/Host are trusted (comma-separated, or *), so that "
    "Link headers and OAuth metadata carry the public https URL.",
)
@pass_context
def serve(ctx: Context, host: str, port: int, workers: int, forwarded_allow_ips: str) -> None:
    """Serve the HTTP API (run `clubfeed db upgrade` first).

    Timeouts, the connection limit and the shutdown grace come from CLUBFEED_* settings.
    """
    from clubfeed.web import serving

    os.environ["CLUBFEED_DATABASE_URL"] = ctx.settings.database_url
    err.print(
        f"clubfeed serving {escape(_safe_url(ctx.settings.database_url))} on http://{host}:{port} "
        f"(docs at http://{host}:{port}/docs)"
    )
    serving.serve(
        ctx.settings,
        host=host,
        port=port,
        workers=workers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Create or migrate the database schema to the newest version."""
    from clubfeed.storage.migrate import upgrade

    upgrade(ctx.engine)
    err.print(f"Database {escape(_safe_url(ctx.settings.database_url))} is up to date.")


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
@pass_context
def db_purge(
    ctx: Context,
    tombstone_days: int,
    key_days: int,
    oauth_days: int,
    activity_days: int,
    business_id: int | None,
) -> None:
    """Purge old tombstones, idempotency keys, API activity, dead OAuth codes and tokens,
    and expired console sessions (run it daily).

    A range query or cursor reaching back before the purged tombstones then gets
    410 Gone: pollers that fall further behind than the retention do a complete
    transfer. Replaying a forgotten Idempotency-Key writes again.
    """
    from rich.table import Table

    from clubfeed import activity
    from clubfeed.auth import sessions, tokens
    from clubfeed.feed.retention import purge
    from clubfeed.ingest import idempotency
    from clubfeed.timefmt import format_us, now_us

    now = now_us()
    tombstones_before, keys_before = now - tombstone_days * DAY_US, now - key_days * DAY_US
    activity_before = now - activity_days * DAY_US
    with read_connection(ctx.engine) as conn:
        query = select(businesses.c.id).order_by(businesses.c.id)
        if business_id is not None:
            query = query.where(businesses.c.id == business_id)
        ids = list(conn.execute(query).scalars())
    if business_id is not None and not ids:
        raise click.ClickException(f"There is no business {business_id}.")
    table = Table(
        title=f"Purged: tombstones before {format_us(tombstones_before)[:19]}, "
        f"idempotency keys before {format_us(keys_before)[:19]}, "
        f"API activity before {format_us(activity_before)[:19]}"
    )
    table.add_column("business", justify="right")
    table.add_column("tombstones", justify="right")
    table.add_column("idempotency keys", justify="right")
    table.add_column("API activity", justify="right")
    for each in ids:
        with write_transaction(ctx.engine) as conn:
            counts = purge(conn, each, tombstones_before)
            keys = idempotency.forget(conn, each, keys_before)
        # Its own transaction: the purge above holds the business's clock, which writers wait on.
        with write_transaction(ctx.engine) as conn:
            requests = activity.forget(conn, each, activity_before)
        table.add_row(str(each), f"{sum(counts.values()):,}", f"{keys:,}", f"{requests:,}")
    err.print(table)
    if business_id is None:
        with write_transaction(ctx.engine) as conn:
            dead = tokens.forget_spent(conn, now - oauth_days * DAY_US)
            expired = sessions.forget_expired(conn)
        err.print(f"OAuth codes and token pairs deleted: {dead:,}")
        err.print(f"Expired console sessions deleted: {expired:,}")


@main.group()
def business() -> None:
    """Businesses (tenants) and their credentials."""


def _emit(as_json: bool, data: dict[str, object], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        for line in lines:
            click.echo(line)


@business.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one line of JSON.")
@pass_context
def business_create(ctx: Context, name: str, as_json: bool) -> None:
    """Create a business; prints its shared secret and ingest key (shown only now)."""
    with write_transaction(ctx.engine) as conn:
        created = credentials.create_business(conn, name)
    _emit(
        as_json,
        {
            "id": created.id,
            "name": created.name,
            "shared_secret": created.shared_secret,
            "ingest_key": created.ingest_key,
        },
        [
            f"Business {created.id}: {created.name}",
            f"  shared secret (integrators read with it): {created.shared_secret}",
            f"  ingest key (the POS writes with it):      {created.ingest_key}",
            "Store both now: only their hashes are kept.",
        ],
    )


@business.command("rotate-secret")
@click.argument("business_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one line of JSON.")
@pass_context
def business_rotate_secret(ctx: Context, business_id: int, as_json: bool) -> None:
    """Issue a new shared secret; the old one stops working at once."""
    with write_transaction(ctx.engine) as conn:
        secret = credentials.rotate_shared_secret(conn, business_id)
    if secret is None:
        raise click.ClickException(f"There is no business {business_id}.")
    _emit(
        as_json,
        {"id": business_id, "shared_secret": secret},
        [f"New shared secret for business {business_id}: {secret}"],
    )


@business.command("list")
@pass_context
def business_list(ctx: Context) -> None:
    """List businesses."""
    with read_connection(ctx.engine) as conn:
        for row in conn.execute(
            select(businesses.c.id, businesses.c.name).order_by(businesses.c.id)
        ):
            click.echo(f"{row.id}\t{row.name}")


@main.group()
def integrator() -> None:
    """Integrators (the apps that read businesses' feeds)."""


@integrator.command("create")
@click.argument("name")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    metavar="URI",
    multiple=True,
    help="An OAuth redirect URI, matched exactly (https, or http on loopback). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one line of JSON.")
@pass_context
def integrator_create(
    ctx: Context, name: str, redirect_uris: tuple[str, ...], as_json: bool
) -> None:
    """Register an integrator; prints its key and OAuth client credentials (shown only now).

    OAuth needs at least one --redirect-uri: without one the integrator can read only
    with shared secrets until `clubfeed integrator set-oauth` gives it some.
    """
    try:
        with write_transaction(ctx.engine) as conn:
            created = credentials.create_integrator(conn, name, redirect_uris)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    _emit(
        as_json,
        {
            "id": created.id,
            "name": created.name,
            "key": created.key,
            "client_id": created.client_id,
            "client_secret": created.client_secret,
            "redirect_uris": list(created.redirect_uris),
        },
        [
            f"Integrator {created.id}: {created.name}",
            f"  key (send as X-Integrator-Key): {created.key}",
            f"  OAuth client_id:                {created.client_id}",
            f"  OAuth client_secret:            {created.client_secret}",
            *(f"  redirect URI:                   {uri}" for uri in created.redirect_uris),
            "Store the key and the client secret now: only their hashes are kept.",
        ],
    )


@integrator.command("set-oauth")
@click.argument("integrator_id", type=int)
@click.option(
    "--redirect-uri",
    "redirect_uris",
    metavar="URI",
    multiple=True,
    required=True,
    help="An OAuth redirect URI, matched exactly (https, or http on loopback). Repeatable; "
    "replaces the registered ones.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one line of JSON.")
@pass_context
def integrator_set_oauth(
    ctx: Context, integrator_id: int, redirect_uris: tuple[str, ...], as_json: bool
) -> None:
    """Set an integrator's OAuth redirect URIs and issue a new client secret (shown only now).

    For an integrator registered before OAuth, or without --redirect-uri: it gets a
    client_id if it has none (an existing one is kept). The old client secret stops
    working at once.
    """
    try:
        with write_transaction(ctx.engine) as conn:
            client_id, client_secret = credentials.set_oauth_client(
                conn, integrator_id, redirect_uris
            )
    except (ValueError, LookupError) as exc:
        raise click.ClickException(str(exc)) from exc
    _emit(
        as_json,
        {
            "id": integrator_id,
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": list(redirect_uris),
        },
        [
            f"Integrator {integrator_id}",
            f"  OAuth client_id:     {client_id}",
            f"  OAuth client_secret: {client_secret}",
            *(f"  redirect URI:        {uri}" for uri in redirect_uris),
            "Store the client secret now: only its hash is kept. The old one no longer works.",
        ],
    )


@main.group()
def admin() -> None:
    """Business admins, who log in to the console and approve OAuth requests."""


@admin.command("create")
@click.option("--business", "business_id", required=True, type=int, help="The admin's business.")
@click.option("--email", required=True, help="The admin's email (the login name).")
@pass_context
def admin_create(ctx: Context, business_id: int, email: str) -> None:
    """Create a console login for a business.

    Asks for the password when run in a terminal; otherwise generates one and
    prints it (only its argon2id hash is kept).
    """
    import secrets

    from clubfeed.auth import admins, passwords

    interactive = sys.stdin.isatty()
    if interactive:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = secrets.token_urlsafe(18)
    try:
        with write_transaction(ctx.engine) as conn:
            created = admins.create(
                conn,
                passwords.hasher(ctx.settings),
                business_id=business_id,
                email=email,
                password=password,
            )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Admin {created.email} of business {created.business_id} created.")
    if not interactive:
        click.echo(f"Password (shown only now): {password}")


@main.command("import")
@click.argument("resource")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--business", "business_id", required=True, type=int, help="The business to write to."
)
@click.option(
    "--batch-size",
    default=MAX_BATCH,
    show_default=True,
    type=click.IntRange(1, MAX_BATCH),
    help="Records per transaction.",
)
@pass_context
def import_(ctx: Context, resource: str, file: Path, business_id: int, batch_size: int) -> None:
    """Load an NDJSON file of RESOURCE records (one JSON object a line).

    Each batch is one transaction: all of its lines are written, or none. A line
    {"id": ..., "deleted": true} deletes that record. Failing lines are reported
    by number and the command exits 1.
    """
    from clubfeed import catalogue
    from clubfeed.ingest.ndjson import import_file

    if resource not in catalogue.BY_NAME:
        raise click.ClickException(
            f"Unknown resource {resource!r}; one of: {', '.join(catalogue.BY_NAME)}."
        )
    try:
        report = import_file(
            ctx.engine,
            catalogue.get(resource),
            file,
            business_id=business_id,
            batch_size=batch_size,
            console=err,
        )
    except ClubfeedError as exc:
        raise click.ClickException(exc.detail) from exc
    if report.failed_lines:
        sys.exit(1)


@main.command()
@click.option(
    "--port", default=8000, show_default=True, type=int, help="Port the printed examples call."
)
@pass_context
def demo(ctx: Context, port: int) -> None:
    """Load the seeded demo gym chain (once) and print fresh credentials to read and write it."""
    from clubfeed.auth import passwords
    from clubfeed.demo import ensure_demo

    ensure_demo(
        ctx.engine,
        console=err,
        hasher=passwords.hasher(ctx.settings),
        base_url=f"http://127.0.0.1:{port}",
    )
