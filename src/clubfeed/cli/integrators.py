"""`clubfeed integrator`: register and list the apps that read feeds, and their credentials."""

from __future__ import annotations

import json
from collections.abc import Callable

import click
from sqlalchemy import select

from clubfeed.auth import credentials
from clubfeed.cli import rotation
from clubfeed.cli.context import (
    Context,
    F,
    allow_duplicate_option,
    create_named,
    emit,
    json_option,
    pass_context,
    utc,
)
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.storage.schema import integrators


@click.group()
def integrator() -> None:
    """Integrators (the apps that read businesses' feeds)."""


def _redirect_uri_option(*, required: bool, extra: str = "") -> Callable[[F], F]:
    return click.option(
        "--redirect-uri",
        "redirect_uris",
        metavar="URI",
        multiple=True,
        required=required,
        help="An OAuth redirect URI, matched exactly (https, or http on loopback). Repeatable"
        + (f"; {extra}" if extra else "."),
    )


@integrator.command("create")
@click.argument("name")
@_redirect_uri_option(required=False)
@allow_duplicate_option("an integrator")
@json_option()
@pass_context
def integrator_create(
    ctx: Context, name: str, redirect_uris: tuple[str, ...], allow_duplicate: bool, as_json: bool
) -> None:
    """Register an integrator; prints its key and OAuth client credentials (shown only now).

    OAuth needs at least one --redirect-uri: without one the integrator can read only
    with shared secrets until `clubfeed integrator set-oauth` gives it some.
    """
    created = create_named(
        ctx,
        lambda conn: credentials.create_integrator(
            conn, name, redirect_uris, unique_name=not allow_duplicate
        ),
    )
    emit(
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
@_redirect_uri_option(required=True, extra="replaces the registered ones.")
@json_option()
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
    emit(
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


integrator.add_command(
    rotation.command(
        "rotate-key",
        owner="integrator",
        what="key",
        field="key",
        rotate=credentials.rotate_integrator_key,
        doc="Issue a new integrator key, sent as X-Integrator-Key (shown only now).",
    )
)


@integrator.command("list")
@json_option(
    'Print one line of JSON: an array of {"id", "name", "client_id", "redirect_uris", '
    '"created_at"}.'
)
@pass_context
def integrator_list(ctx: Context, as_json: bool) -> None:
    """List integrators, one `ID<tab>NAME<tab>CLIENT_ID` a line."""
    with read_connection(ctx.engine) as conn:
        rows = conn.execute(
            select(
                integrators.c.id,
                integrators.c.name,
                integrators.c.client_id,
                integrators.c.redirect_uris,
                integrators.c.created_at,
            ).order_by(integrators.c.id)
        ).all()
    emit(
        as_json,
        [
            {
                "id": r.id,
                "name": r.name,
                "client_id": r.client_id,
                "redirect_uris": json.loads(r.redirect_uris),
                "created_at": utc(r.created_at),
            }
            for r in rows
        ],
        [f"{r.id}\t{r.name}\t{r.client_id or '-'}" for r in rows],
    )
