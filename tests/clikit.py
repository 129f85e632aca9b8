"""Running `clubfeed` in-process with click's CliRunner, against real SQLite files and PostgreSQL.

The fixtures (databases that only the CLI migrates, and a server on them) are in
tests/cli/conftest.py.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from click.testing import CliRunner, Result

from clubfeed.cli import main


def clubfeed(
    url: str, *args: str, input: str | None = None, settings: dict[str, str] | None = None
) -> Result:
    """Run the command with CLUBFEED_DATABASE_URL=url and no other CLUBFEED_ variable
    but those of `settings`.

    An exception the command does not turn into an exit status fails the test.
    """
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CLUBFEED_")}
    env.update(CLUBFEED_DATABASE_URL=url, NO_COLOR="1", FORCE_COLOR=None, **(settings or {}))
    return CliRunner().invoke(
        main, list(args), prog_name="clubfeed", env=env, input=input, catch_exceptions=False
    )


def cells(line: str) -> list[str]:
    """The cells of one line of a rich table."""
    return [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]


def one_json_line(result: Result) -> Any:
    """The command succeeded and printed exactly one line of JSON on stdout."""
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    return json.loads(result.stdout)


def assert_clean_error(result: Result, *phrases: str, status: int = 1) -> None:
    """Exit `status` with an `Error: ` message containing `phrases`, and nothing on stdout."""
    assert result.exit_code == status, (result.exit_code, result.stderr)
    assert result.stderr.startswith("Error: ") or "\nError: " in result.stderr, result.stderr
    assert result.stdout == "", result.stdout
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
