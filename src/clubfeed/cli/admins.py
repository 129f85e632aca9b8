"""`clubfeed admin`: the console logins of a business's admins."""

from __future__ import annotations

import secrets
import sys

import click

from clubfeed.auth import admins, passwords
from clubfeed.cli.context import Context, emit, json_option, pass_context, utc
from clubfeed.storage.engine import read_connection, write_transaction


@click.group()
def admin() -> None:
    """Business admins, who log in to the console and approve OAuth requests."""


def _new_password() -> tuple[str, bool]:
    """A password typed twice at a terminal, or else a generated one; and whether generated."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True), False
    return secrets.token_urlsafe(18), True


def _find(ctx: Context, email: str) -> admins.Admin:
    with read_connection(ctx.engine) as conn:
        found = admins.by_email(conn, email)
    if found is None:
        raise click.ClickException(
            f"There is no admin {admins.normalize_email(email)}; `clubfeed admin list` shows them."
        )
    return found


def _described(found: admins.Admin, **extra: object) -> dict[str, object]:
    return {"id": found.id, "business_id": found.business_id, "email": found.email, **extra}


@admin.command("create")
@click.option("--business", "business_id", required=True, type=int, help="The admin's business.")
@click.option("--email", required=True, help="The admin's email (the login name).")
@json_option(
    'Print one line of JSON: {"id", "business_id", "email", "password"} (the password is '
    "null when it was typed)."
)
@pass_context
def admin_create(ctx: Context, business_id: int, email: str, as_json: bool) -> None:
    """Create a console login for a business.

    Asks for the password when run in a terminal; otherwise generates one and
    prints it (only its argon2id hash is kept).
    """
    password, generated = _new_password()
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
    emit(
        as_json,
        _described(created, password=password if generated else None),
        [
            f"Admin {created.email} of business {created.business_id} created.",
            *([f"Password (shown only now): {password}"] if generated else []),
        ],
    )


@admin.command("list")
@click.option("--business", "business_id", type=int, help="Only this business's admins.")
@json_option('Print one line of JSON: an array of {"id", "business_id", "email", "created_at"}.')
@pass_context
def admin_list(ctx: Context, business_id: int | None, as_json: bool) -> None:
    """List admins, one `ID<tab>BUSINESS<tab>EMAIL` a line."""
    with read_connection(ctx.engine) as conn:
        found = admins.listed(conn, business_id)
    emit(
        as_json,
        [
            {
                "id": a.id,
                "business_id": a.business_id,
                "email": a.email,
                "created_at": utc(a.created_at),
            }
            for a in found
        ],
        [f"{a.id}\t{a.business_id}\t{a.email}" for a in found],
    )


@admin.command("reset-password")
@click.argument("email")
@json_option(
    'Print one line of JSON: {"id", "business_id", "email", "password", "sessions_ended"} '
    "(the password is null when it was typed)."
)
@pass_context
def admin_reset_password(ctx: Context, email: str, as_json: bool) -> None:
    """Give an admin a new password, and log it out of the console everywhere.

    Asks for the password when run in a terminal; otherwise generates one and
    prints it (only its argon2id hash is kept).
    """
    found = _find(ctx, email)
    password, generated = _new_password()
    try:
        with write_transaction(ctx.engine) as conn:
            ended = admins.reset_password(conn, passwords.hasher(ctx.settings), found, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    emit(
        as_json,
        _described(found, password=password if generated else None, sessions_ended=ended),
        [
            f"Password of admin {found.email} reset; console sessions ended: {ended}.",
            *([f"Password (shown only now): {password}"] if generated else []),
        ],
    )


@admin.command("remove")
@click.argument("email")
@json_option('Print one line of JSON: {"id", "business_id", "email", "sessions_ended"}.')
@pass_context
def admin_remove(ctx: Context, email: str, as_json: bool) -> None:
    """Delete an admin's console login and end its sessions.

    The OAuth approvals it gave stay: the business gave them, and revokes them in
    the console.
    """
    found = _find(ctx, email)
    with write_transaction(ctx.engine) as conn:
        ended = admins.remove(conn, found)
    emit(
        as_json,
        _described(found, sessions_ended=ended),
        [
            f"Admin {found.email} of business {found.business_id} removed; console sessions ended: "
            f"{ended}."
        ],
    )
