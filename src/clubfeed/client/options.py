"""The reader's credentials as command-line options, the same for every client command."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def reader_credentials(command: F) -> F:
    """Add --integrator-key and --token (or CLUBFEED_INTEGRATOR_KEY and CLUBFEED_TOKEN)."""
    command = click.option(
        "--token",
        envvar="CLUBFEED_TOKEN",
        required=True,
        help="The business's shared secret or an OAuth access token (or CLUBFEED_TOKEN).",
    )(command)
    return click.option(
        "--integrator-key",
        envvar="CLUBFEED_INTEGRATOR_KEY",
        required=True,
        help="Your integrator key (or CLUBFEED_INTEGRATOR_KEY).",
    )(command)
