"""The `clubfeed` command's entry point, which works with the client alone installed.

`clubfeed pull` and `clubfeed conform` need only the base install (the client). The server's commands
(`clubfeed.cli`) need `clubfeed[server]`; without it, `clubfeed --help` lists what is
there and says how to get the rest.
"""

from __future__ import annotations

import click

from clubfeed.client.pull import pull
from clubfeed.conform.command import conform_command

_SERVER_ONLY = frozenset(
    {
        "alembic",
        "argon2",
        "authlib",
        "cryptography",
        "fastapi",
        "fastapi_offline",
        "isal",
        "jinja2",
        "limits",
        "mimesis",
        "multipart",
        "prometheus_client",
        "psycopg",
        "pymysql",
        "sqlalchemy",
        "starlette",
        "structlog",
        "uvicorn",
        "yaml",
    }
)
"""Top-level modules of the `server` extra: one missing means the extra is not installed."""


def main() -> None:
    group: click.Group
    try:
        from clubfeed.cli import main as group
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _SERVER_ONLY:
            raise  # a bug, not a missing extra
        group = click.Group(
            "clubfeed",
            help=(
                "clubfeed's client commands. The server's (serve, db, business, source, ...) "
                f"need its dependencies ({exc.name} is not installed): "
                "pip install 'clubfeed[server]'."
            ),
            context_settings={"help_option_names": ["-h", "--help"]},
        )
    group.add_command(pull)
    group.add_command(conform_command)
    group()
