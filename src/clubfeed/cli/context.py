"""What every command shares: settings, a lazily made engine, and how results are printed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from clubfeed.auth.credentials import DuplicateName
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine, write_transaction
from clubfeed.timefmt import from_us

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def err() -> Console:
    """Rich output for people, on stderr (made per call, so it follows click's streams)."""
    return Console(stderr=True)


class Context:
    """Settings from the environment and options, and an engine made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = make_engine(
                    self.settings.database_url, pool_size=2, timeout_s=self.settings.db_timeout_s
                )
            except (ArgumentError, ValueError) as exc:
                raise click.ClickException(f"Bad database URL: {exc}") from exc
        return self._engine

    @property
    def safe_url(self) -> str:
        """The database URL without its password, to show."""
        return safe_url(self.settings.database_url)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_context = click.make_pass_decorator(Context)


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def json_option(what: str = "Print one line of JSON.") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=what)


def emit(as_json: bool, data: object, lines: list[str]) -> None:
    """Print `data` as one line of JSON, or `lines` for a person."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        for line in lines:
            click.echo(line)


def utc(us: int | None) -> str | None:
    """An instant as RFC 3339 in UTC to the second (`2026-11-27T10:00:00Z`), as the CLI shows it."""
    return None if us is None else from_us(us).strftime("%Y-%m-%dT%H:%M:%SZ")


def allow_duplicate_option(what: str) -> Callable[[F], F]:
    return click.option(
        "--allow-duplicate",
        is_flag=True,
        help=f"Create it even if {what} of exactly this name exists (refused otherwise).",
    )


def create_named(ctx: Context, create: Callable[[Connection], T]) -> T:
    """Run `create` in a write transaction; a duplicate name or a bad value is a clean error."""
    try:
        with write_transaction(ctx.engine) as conn:
            return create(conn)
    except DuplicateName as exc:
        raise click.ClickException(f"{exc} Pass --allow-duplicate to create another.") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
