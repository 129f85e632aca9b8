"""`clubfeed db upgrade`, `clubfeed serve` and the help texts, on real SQLite files and PostgreSQL.

Everything runs in-process except one smoke test, which starts the installed
command as a subprocess and serves HTTP with it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from clubfeed.cli import main
from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine
from clubfeed.storage.migrate import head_revision, upgrade
from tests.clikit import assert_clean_error, clubfeed, one_json_line
from tests.conftest import _free_port

CLUBFEED = Path(sys.executable).parent / "clubfeed"


def _version(url: str) -> list[tuple[str]]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def _upgrade_to(url: str, revision: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()


def _migrated_by_a_newer_clubfeed(url: str) -> None:
    """Migrate to this code's head, then stamp a revision only a newer clubfeed knows."""
    _upgrade_to(url, "head")
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()


# db upgrade


def test_db_upgrade_creates_the_schema_and_then_says_it_is_already_there(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    head = head_revision()

    first = clubfeed(empty_url, "db", "upgrade")

    assert first.exit_code == 0, first.stderr
    assert first.stdout == f"Created the schema of {empty_url} at revision {head}.\n"
    engine = make_engine(empty_url, pool_size=1)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"businesses", "integrators", "change_clock", "checkins", "locations"} <= tables
    assert _version(empty_url) == [(head,)]

    second = clubfeed(empty_url, "db", "upgrade")

    assert second.exit_code == 0, second.stderr
    assert second.stdout == f"{empty_url} is already at revision {head}.\n"
    assert one_json_line(clubfeed(empty_url, "db", "upgrade", "--json")) == {
        "database": empty_url,
        "action": "unchanged",
        "from": head,
        "to": head,
    }
    assert _version(empty_url) == [(head,)]
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_says_from_which_revision_it_migrated(empty_url: str) -> None:
    _upgrade_to(empty_url, "0003")

    done = one_json_line(clubfeed(empty_url, "db", "upgrade", "--json"))

    assert done == {
        "database": empty_url,
        "action": "migrated",
        "from": "0003",
        "to": head_revision(),
    }
    assert _version(empty_url) == [(head_revision(),)]


def test_db_upgrade_json_on_an_empty_database_says_created(empty_url: str) -> None:
    assert one_json_line(clubfeed(empty_url, "db", "upgrade", "--json")) == {
        "database": empty_url,
        "action": "created",
        "from": None,
        "to": head_revision(),
    }


def test_db_upgrade_on_a_schema_from_a_newer_clubfeed_exits_1_and_changes_nothing(
    empty_url: str,
) -> None:
    _migrated_by_a_newer_clubfeed(empty_url)

    result = clubfeed(empty_url, "db", "upgrade", "--json")

    assert_clean_error(
        result,
        f"The database {empty_url} is at schema revision 9999, which this clubfeed does not "
        "know: a newer clubfeed migrated it.",
        "Run that version's `clubfeed db upgrade`",
    )
    assert "Traceback" not in result.stderr
    assert _version(empty_url) == [("9999",)]


def test_commands_on_an_unmigrated_database_say_to_upgrade(empty_url: str) -> None:
    assert_clean_error(clubfeed(empty_url, "business", "list"), "clubfeed db upgrade")


def test_a_setting_out_of_range_is_named_and_exits_1(empty_url: str) -> None:
    result = clubfeed(empty_url, "db", "upgrade", settings={"CLUBFEED_HEADER_TIMEOUT": "0"})

    assert_clean_error(result, "CLUBFEED_HEADER_TIMEOUT must be at least 1, not 0")
    assert _version_table_absent(empty_url)


# serve


def test_serve_on_an_unmigrated_database_says_to_upgrade_and_exits_2(empty_url: str) -> None:
    result = clubfeed(empty_url, "serve", "--port", str(_free_port()))

    assert_clean_error(result, "has no clubfeed schema yet", "`clubfeed db upgrade`", status=2)
    assert _version_table_absent(empty_url)


def _version_table_absent(url: str) -> bool:
    engine = make_engine(url, pool_size=1)
    try:
        return "alembic_version" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_serve_on_a_schema_behind_the_code_says_to_upgrade_and_exits_2(empty_url: str) -> None:
    _upgrade_to(empty_url, "0004")

    result = clubfeed(empty_url, "serve", "--port", str(_free_port()))

    assert_clean_error(
        result,
        f"is at schema revision 0004, behind this clubfeed's {head_revision()}",
        "Run `clubfeed db upgrade` to migrate it.",
        status=2,
    )
    assert _version(empty_url) == [("0004",)]


def test_serve_on_a_schema_from_a_newer_clubfeed_warns_and_serves(
    empty_url: str, tmp_path: Path
) -> None:
    """As /readyz does: between `db upgrade` and the new release's restart, old processes
    (restarted ones too) keep serving a schema whose migrations only add."""
    _migrated_by_a_newer_clubfeed(empty_url)

    with _serving(empty_url, tmp_path) as (base, log):
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"status": "ready", "schema": "newer"})
    assert "revision 9999, which this clubfeed does not know" in log.read_text()


@contextmanager
def _serving(url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The installed entry point serving `url` until SIGTERM: its base URL and its log."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    env["CLUBFEED_DATABASE_URL"] = url
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(CLUBFEED), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base, log
    finally:
        process.terminate()
        returncode = process.wait(timeout=20)
    served = log.read_text()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells of it.
    assert returncode in (0, -signal.SIGTERM), served
    assert "Application shutdown complete" in served and "Traceback" not in served
    assert f"on http://127.0.0.1:{port}" in served


def test_serve_answers_http_until_terminated(cli_url: str, tmp_path: Path) -> None:
    """The installed entry point, serving until SIGTERM."""
    with _serving(cli_url, tmp_path) as (base, _log):
        assert httpx.get(f"{base}/healthz", timeout=2).json() == {"status": "ok"}
        schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
        assert schema["openapi"].startswith("3.")
        assert "/v1/checkins" in schema["paths"]


# help


def _subcommands(help_text: str) -> list[str]:
    """Names listed under `Commands:` in click's help."""
    section = help_text.partition("\nCommands:\n")[2]
    return re.findall(r"^  (\S+)", section, re.M)


def _all_help(url: str) -> dict[tuple[str, ...], str]:
    texts: dict[tuple[str, ...], str] = {}
    pending: list[tuple[str, ...]] = [()]
    while pending:
        path = pending.pop()
        result = clubfeed(url, *path, "--help")
        assert result.exit_code == 0, result.stderr
        assert result.stdout.startswith(f"Usage: clubfeed {' '.join(path)}".rstrip()), result.stdout
        texts[path] = result.stdout
        pending += [(*path, name) for name in _subcommands(result.stdout)]
    return texts


def test_help_describes_exactly_the_commands_that_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    texts = _all_help(f"sqlite:///{tmp_path / 'never-created.db'}")

    commands = {path for path, text_ in texts.items() if "\nCommands:\n" not in text_}
    assert commands == {
        ("serve",),
        ("db", "upgrade"),
        ("db", "purge"),
        ("db", "resummarize"),
        ("business", "create"),
        ("business", "list"),
        ("business", "rotate-secret"),
        ("business", "rotate-ingest-key"),
        ("integrator", "create"),
        ("integrator", "list"),
        ("integrator", "set-oauth"),
        ("integrator", "rotate-key"),
        ("admin", "create"),
        ("admin", "list"),
        ("admin", "reset-password"),
        ("admin", "remove"),
        ("import",),
        ("demo",),
        ("source", "check"),
        ("source", "run"),
        ("source", "status"),
    }
    # Every command that prints results has --json; serve prints only its log.
    assert [path for path in commands if "--json" not in texts[path]] == [("serve",)]
    # Every `clubfeed …` a help text points to is a command that exists.
    for text_ in texts.values():
        for mention in re.findall(r"`clubfeed ([a-z -]+?)`", text_):
            assert tuple(mention.split()) in texts, mention
    for path in (("business", "create"), ("integrator", "create")):
        assert "--allow-duplicate" in texts[path]
    for path in (
        ("business", "rotate-secret"),
        ("business", "rotate-ingest-key"),
        ("integrator", "rotate-key"),
    ):
        assert "--overlap DURATION" in texts[path] and "[default: 0]" in texts[path]
    assert "--batch-size" in texts[("import",)] and "--business" in texts[("import",)]
    assert "--port" in texts[("serve",)] and "exit status 2" in texts[("serve",)]
    assert "--activity-older-than" in texts[("db", "purge")]
    purge_help = " ".join(texts[("db", "purge")].split())
    assert "sessions are then left alone" in purge_help  # what --business skips
    assert "--business" in texts[("db", "resummarize")]
    assert "--redirect-uri URI" in texts[("integrator", "set-oauth")]
    assert "set-oauth" in texts[("integrator", "create")]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("env", "phrase"),
    [
        ({"CLUBFEED_PUBLIC_URL": "api.vendor.example"}, "CLUBFEED_PUBLIC_URL must look like"),
        ({"CLUBFEED_READ_RATE_LIMIT": "lots"}, "Rate limit 'lots' (reads)"),
        ({"CLUBFEED_LOGIN_RATE_LIMIT": "0/minute"}, "(login)"),
        ({"CLUBFEED_RATE_LIMIT_STORAGE": "memcached://x"}, "CLUBFEED_RATE_LIMIT_STORAGE"),
    ],
)
def test_serve_refuses_settings_the_app_cannot_start_with(
    cli_url: str, env: dict[str, str], phrase: str
) -> None:
    """Checked once, before any worker starts: a worker that fails to load is respawned."""
    result = CliRunner().invoke(
        main,
        ["serve", "--port", str(_free_port())],
        env={"CLUBFEED_DATABASE_URL": cli_url, "NO_COLOR": "1", **env},
        catch_exceptions=False,
    )
    assert_clean_error(result, phrase)


@pytest.mark.parametrize(
    ("env", "phrase"),
    [
        ({"CLUBFEED_COOKIE_SECURE": "ture"}, "CLUBFEED_COOKIE_SECURE is 'ture'; use 1 or 0"),
        ({"CLUBFEED_ACCESS_LOG": "/var/log/x.log"}, "CLUBFEED_ACCESS_LOG is '/var/log/x.log'"),
        ({"CLUBFEED_DB_TIMEOUT_S": "0"}, "CLUBFEED_DB_TIMEOUT_S must be at least 0.001"),
        ({"CLUBFEED_DB_TIMEOUT_S": "soon"}, "CLUBFEED_DB_TIMEOUT_S is 'soon'"),
        ({"CLUBFEED_MAX_BODY_BYTES": "64M"}, "CLUBFEED_MAX_BODY_BYTES is '64M'"),
    ],
)
def test_a_setting_that_means_nothing_is_refused_by_name(
    cli_url: str, env: dict[str, str], phrase: str
) -> None:
    """A typo never quietly means something else (cookies not Secure, no lock timeout)."""
    result = CliRunner().invoke(
        main,
        ["business", "list"],
        env={"CLUBFEED_DATABASE_URL": cli_url, "NO_COLOR": "1", **env},
        catch_exceptions=False,
    )
    assert_clean_error(result, phrase)


def test_an_empty_setting_is_its_default() -> None:
    empty = Settings.from_env({"CLUBFEED_DB_POOL_SIZE": "", "CLUBFEED_DB_TIMEOUT_S": " "})
    assert (empty.pool_size, empty.db_timeout_s) == (Settings.pool_size, Settings.db_timeout_s)
