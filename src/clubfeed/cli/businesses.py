"""`clubfeed business`: create and list businesses, and rotate their credentials."""

from __future__ import annotations

import click

from clubfeed import tenants
from clubfeed.auth import credentials
from clubfeed.cli import rotation
from clubfeed.cli.context import (
    Context,
    allow_duplicate_option,
    create_named,
    emit,
    json_option,
    pass_context,
    utc,
)
from clubfeed.storage.engine import read_connection


@click.group()
def business() -> None:
    """Businesses (tenants) and their credentials."""


@business.command("create")
@click.argument("name")
@allow_duplicate_option("a business")
@json_option()
@pass_context
def business_create(ctx: Context, name: str, allow_duplicate: bool, as_json: bool) -> None:
    """Create a business; prints its shared secret and ingest key (shown only now)."""
    created = create_named(
        ctx, lambda conn: tenants.create_business(conn, name, unique_name=not allow_duplicate)
    )
    emit(
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


business.add_command(
    rotation.command(
        "rotate-secret",
        owner="business",
        what="shared secret",
        field="shared_secret",
        rotate=credentials.rotate_shared_secret,
        doc="Issue a new shared secret for integrators to read with (shown only now).",
    )
)
business.add_command(
    rotation.command(
        "rotate-ingest-key",
        owner="business",
        what="ingest key",
        field="ingest_key",
        rotate=credentials.rotate_ingest_key,
        doc="Issue a new ingest key for the POS to write with (shown only now).",
    )
)


@business.command("list")
@json_option('Print one line of JSON: an array of {"id", "name", "created_at"}.')
@pass_context
def business_list(ctx: Context, as_json: bool) -> None:
    """List businesses, one `ID<tab>NAME` a line."""
    with read_connection(ctx.engine) as conn:
        rows = tenants.all_businesses(conn)
    emit(
        as_json,
        [{"id": r.id, "name": r.name, "created_at": utc(r.created_at_us)} for r in rows],
        [f"{r.id}\t{r.name}" for r in rows],
    )
