"""`clubfeed admin create` at a terminal: the installed command on a pseudo-terminal.

In a terminal it asks for the password twice and refuses a short one; without one
it makes up a password (tested in-process in tests/cli/test_admins.py).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.conftest import Server
from tests.consolekit import log_in
from tests.factories import Tenant

CLUBFEED = Path(sys.executable).parent / "clubfeed"


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    return env | {"CLUBFEED_DATABASE_URL": db_url, "NO_COLOR": "1"}


def admin_create_at_terminal(
    db_url: str, args: Sequence[str], answers: Sequence[str]
) -> tuple[int, str]:
    """The command with a pseudo-terminal on stdin, typing each answer once its prompt waits
    with echo off (so the terminal cannot flush it); returns the exit code and all output."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        [str(CLUBFEED), "admin", "create", *args],
        env=_env(db_url),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # no controlling terminal: the prompts must use stdin
    )
    os.close(slave)
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + 60
    try:
        for answer in answers:
            prompts = output.count(b":")
            while output.count(b":") == prompts or termios.tcgetattr(master)[3] & termios.ECHO:
                assert time.monotonic() < deadline, output
                if select.select([process.stdout], [], [], 0.05)[0]:
                    output += os.read(process.stdout.fileno(), 4096)
            os.write(master, answer.encode() + b"\n")
        output += process.stdout.read()
        return process.wait(timeout=60), output.decode()
    finally:
        os.close(master)
        process.kill()
        process.wait()


def _email() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}@gym.example"


def test_at_a_terminal_it_asks_twice_and_prints_no_password(
    db_url: str, tenant: Tenant, console: Server
) -> None:
    email, password = _email(), "a long enough passphrase"

    code, output = admin_create_at_terminal(
        db_url, ["--business", str(tenant.business.id), "--email", email], [password, password]
    )

    assert code == 0, output
    assert f"Admin {email} of business {tenant.business.id} created." in output
    assert password not in output and "shown only now" not in output
    with httpx.Client(base_url=console.base_url, follow_redirects=False) as browser:
        assert log_in(browser, email, password).status_code == 303


def test_a_short_password_is_refused(db_url: str, tenant: Tenant, console: Server) -> None:
    email = _email()

    code, output = admin_create_at_terminal(
        db_url, ["--business", str(tenant.business.id), "--email", email], ["short", "short"]
    )

    assert code == 1, output
    assert "Error: A password needs at least 12 characters." in output
    with httpx.Client(base_url=console.base_url, follow_redirects=False) as browser:
        assert log_in(browser, email, "short").status_code == 401
