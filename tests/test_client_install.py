"""The client-only install: `pip install clubfeed` brings the client, `clubfeed pull` and
`clubfeed conform`, and none of the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SERVER_PACKAGES = {"fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "psycopg", "jinja2"}


def test_the_base_install_is_the_client_without_the_server(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", str(ROOT)], check=True, timeout=600)
    listed = json.loads(
        subprocess.run(
            [*pip, "list", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    installed = {entry["name"].lower() for entry in listed}
    assert {"clubfeed", "httpx", "msgspec"} <= installed
    assert installed & SERVER_PACKAGES == set()

    probe = (
        "import clubfeed.client as c, clubfeed.conform as f; "
        "print(c.RECORD_TYPES['sales-categories'].__name__, len(f.CHECKS))"
    )
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
    )
    assert imported.stdout.split() == ["SalesCategory", "14"]

    clubfeed = str(venv / "bin" / "clubfeed")
    listing = subprocess.run([clubfeed, "--help"], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "pip install 'clubfeed[server]'" in " ".join(listing.stdout.split())
    commands = listing.stdout.split("Commands:")[1].split()
    assert {"pull", "conform"} <= set(commands) and "serve" not in commands
    for command in ("pull", "conform"):
        helped = subprocess.run([clubfeed, command, "--help"], capture_output=True, text=True)
        assert helped.returncode == 0 and "--integrator-key" in helped.stdout
