"""`clubfeed serve`: build the settings, check the schema, start uvicorn. Nothing else."""

from __future__ import annotations

import logging
import os

import click

from clubfeed.cli.context import Context, pass_context
from clubfeed.storage.migrate import current_revision, head_revision, known_revision


class SchemaNotReady(click.ClickException):
    """The database's schema is not the one this code needs; exit status 2, like a usage error."""

    exit_code = 2


def schema_problem(ctx: Context) -> str | None:
    """Why the API cannot run on this database's schema (and what to do), or None.

    A schema a newer clubfeed migrated is served, with a warning: that is every old
    process between `db upgrade` and the new release's restart.
    """
    current, head = current_revision(ctx.engine), head_revision()
    if current == head:
        return None
    where = f"The database {ctx.safe_url}"
    if current is None:
        return f"{where} has no clubfeed schema yet. Run `clubfeed db upgrade` to create it."
    if known_revision(current):
        return (
            f"{where} is at schema revision {current}, behind this clubfeed's {head}. "
            "Run `clubfeed db upgrade` to migrate it."
        )
    logging.getLogger("clubfeed").warning(
        f"{where} is at schema revision {current}, which this clubfeed does not know: a newer "
        "clubfeed migrated it. Serving on, as /readyz does: migrations only add, so this "
        "version reads and writes what it knows of the schema."
    )
    return None


@click.command()
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
    """Serve the HTTP API.

    Refuses to start, with exit status 2, when the database has no schema or one
    behind this version's (run `clubfeed db upgrade` first); serves, with a warning, on
    one a newer clubfeed migrated. Timeouts, the connection limit and the shutdown grace
    come from CLUBFEED_* settings.
    """
    from clubfeed.web import serving

    try:
        logging_options = serving.prepare(ctx.settings, workers)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if (problem := schema_problem(ctx)) is not None:
        raise SchemaNotReady(problem)
    ctx.close()
    os.environ["CLUBFEED_DATABASE_URL"] = ctx.settings.database_url
    # A log line, so that with CLUBFEED_LOG_FORMAT=json every line on stderr is JSON.
    logging.getLogger("clubfeed").info(
        f"clubfeed serving {ctx.safe_url} on http://{host}:{port} "
        f"(docs at http://{host}:{port}/docs)"
    )
    serving.serve(
        ctx.settings,
        host=host,
        port=port,
        workers=workers,
        forwarded_allow_ips=forwarded_allow_ips,
        **logging_options,
    )
