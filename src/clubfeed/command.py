"""The `clubfeed` command's entry point, which works with the client alone installed.

`clubfeed pull` needs only the base install (the client). The server's commands
(`clubfeed.cli`) need `clubfeed[server]`; without it, `clubfeed --help` lists what is
there and says how to get the rest.
"""

from __future__ import annotations

import click

from clubfeed.client.pull import pull


def main() -> None:
    group: click.Group
    try:
        from clubfeed.cli import main as group
    except ModuleNotFoundError as exc:
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
    group()
