"""The `clubfeed` command: serve the API, migrate, manage businesses and integrators, load data.

The group and its error handling live here; each module beside it holds the
commands of one concern and is attached below.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from clubfeed.cli import admins, businesses, data, db, integrators, serve, sources
from clubfeed.cli.context import Context, safe_url
from clubfeed.settings import Settings
from clubfeed.storage import outages

__all__ = ["main"]


class _Group(click.Group):
    """Reports a database failure as one clear message, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DBAPIError, PoolTimeout, outages.CommitFailed) as exc:
            raise click.ClickException(_database_problem(ctx, exc)) from exc


def _database_problem(ctx: click.Context, exc: Exception) -> str:
    """The driver's first line (never SQL or its values), and what to do about it."""
    cli = ctx.find_object(Context)
    where = f" {safe_url(cli.settings.database_url)}" if cli is not None else ""
    reason = outages.reason(exc)
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    # 42P01 is PostgreSQL's undefined_table; SQLite says "no such table".
    if getattr(orig, "sqlstate", None) == "42P01" or "no such table" in reason:
        hint = " Run `clubfeed db upgrade` to create or migrate the schema."
    elif isinstance(exc, outages.CommitFailed):
        hint = " The commit itself failed, so the change may or may not be saved: look before retrying."
    elif outages.unavailable(exc):
        hint = " The database is unreachable or busy: check that it runs and the URL is right, then retry."
    else:
        hint = ""
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
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a CLUBFEED_* value out of range: say which, exit 1
        raise click.ClickException(str(exc)) from exc
    if database_url:
        settings = Settings(**{**settings.__dict__, "database_url": database_url})
    ctx.obj = Context(settings)
    ctx.call_on_close(ctx.obj.close)


main.add_command(serve.serve)
main.add_command(db.db)
main.add_command(businesses.business)
main.add_command(integrators.integrator)
main.add_command(admins.admin)
main.add_command(data.import_)
main.add_command(data.demo)
main.add_command(sources.source)
