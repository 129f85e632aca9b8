"""The shipped deploy/ files agree with the app's defaults: nginx gives up no later than the
app and allows the bodies it allows, systemd waits out the shutdown grace, and the example
environment file is one the app starts with."""

from __future__ import annotations

import re
from pathlib import Path

from clubfeed.settings import Settings
from clubfeed.web.serving import SPARE_FDS

DEPLOY = Path(__file__).parents[1] / "deploy"
README = (Path(__file__).parents[1] / "README.md").read_text()
DEFAULTS = Settings()


def _nginx(directive: str, *, block: str = "server") -> str:
    """The one value of `directive` in the site's first `block { … }` (server: the API's)."""
    site = (DEPLOY / "nginx" / "clubfeed.conf").read_text()
    indent = " " * (len(block) - len(block.lstrip()))
    blocks = re.findall(rf"^{block}\b.*?^{indent}}}", site, flags=re.MULTILINE | re.DOTALL)
    chosen = blocks[-1] if block == "server" else blocks[0]
    values = re.findall(rf"^\s*{directive}\s+([^;]+);", chosen, flags=re.MULTILINE)
    assert len(values) == 1, (directive, values)
    return values[0]


def _seconds(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


def _unit(name: str = "clubfeed.service") -> dict[str, list[str]]:
    lines = (DEPLOY / "systemd" / name).read_text().splitlines()
    settings: dict[str, list[str]] = {}
    for key, value in (line.split("=", 1) for line in lines if re.match(r"^[A-Z]\w*=", line)):
        settings.setdefault(key, []).append(value)
    return settings


def _environment(name: str = "clubfeed.env") -> dict[str, str]:
    lines = (DEPLOY / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_nginx_takes_the_bodies_and_gives_up_no_later_than_the_app() -> None:
    assert _nginx("client_max_body_size") == f"{DEFAULTS.max_body_bytes // 2**20}m"
    assert f"{DEFAULTS.max_body_bytes:,} bytes" in _nginx("return", block="    location @too_large")
    assert _seconds(_nginx("client_header_timeout")) == DEFAULTS.header_timeout_s
    assert _seconds(_nginx("client_body_timeout")) == DEFAULTS.body_timeout_s
    # nginx closes an idle upstream connection before the app does, never racing it.
    upstream_idle = _seconds(_nginx("keepalive_timeout", block="upstream"))
    assert upstream_idle < DEFAULTS.keepalive_timeout_s
    # The app's own 503 after its database wait reaches the client, not nginx's 504.
    assert _seconds(_nginx("proxy_read_timeout")) > DEFAULTS.db_timeout_s
    assert _nginx("proxy_request_buffering") == "on"
    assert _nginx("proxy_buffering") == "on"


def test_systemd_waits_out_the_grace_and_fits_the_connection_limit() -> None:
    unit, environment = _unit(), _environment()
    grace = int(environment["CLUBFEED_SHUTDOWN_GRACE"])
    assert grace == DEFAULTS.shutdown_grace_s
    assert int(unit["TimeoutStopSec"][0]) > grace
    assert unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["LimitNOFILE"][0]) >= DEFAULTS.max_connections + SPARE_FDS
    assert unit["Restart"] == ["on-failure"]
    assert "ExecStartPre" not in unit  # README § Upgrades: `db upgrade` runs once, elsewhere
    (command,) = unit["ExecStart"]
    assert re.fullmatch(r"\S+/clubfeed serve --host 127\.0\.0\.1 --port \d+ --workers \d+", command)
    assert unit["EnvironmentFile"] == ["/etc/clubfeed/clubfeed.env"]


def test_the_example_environment_starts_and_every_variable_is_documented() -> None:
    environment = _environment()
    settings = Settings.from_env(environment)
    assert settings.public_url == "https://api.vendor.example"
    assert settings.allowed_hosts == ("api.vendor.example",)
    assert settings.rate_limit_storage.startswith("redis://")
    assert settings.log_format == "json"
    for name in environment:
        assert f"| `{name}` |" in README or f"`{name}` /" in README, name


def test_the_purge_runs_daily_as_the_schema_owner_with_the_api_settings() -> None:
    purge, timer, api = _unit("clubfeed-purge.service"), _unit("clubfeed-purge.timer"), _unit()
    assert purge["Type"] == ["oneshot"]
    assert purge["User"] == api["User"]
    (command,) = purge["ExecStart"]
    assert re.fullmatch(r"\S+/clubfeed db purge --json", command)
    assert command.split()[0] == api["ExecStart"][0].split()[0]
    # The API's settings first, then the owner's URL over the API role's (absent on SQLite).
    assert purge["EnvironmentFile"] == api["EnvironmentFile"] + ["-/etc/clubfeed/owner.env"]
    assert timer["OnCalendar"] == ["*-*-* 03:30:00"]
    assert timer["Persistent"] == ["true"]
    assert timer["WantedBy"] == ["timers.target"]
    owner = Settings.from_env(_environment() | _environment("clubfeed-owner.env"))
    assert owner.database_url.startswith("postgresql+psycopg://clubfeed_owner:")
    assert _environment("clubfeed-owner.env").keys() == {"CLUBFEED_DATABASE_URL"}


def test_the_readme_renders_every_placeholder_of_the_nginx_site_and_no_setting() -> None:
    site = (DEPLOY / "nginx" / "clubfeed.conf").read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", site))
    (listed,) = re.findall(r"^envsubst '([^']+)'", README, flags=re.MULTILINE)
    assert set(re.findall(r"\$\{(\w+)\}", listed)) == placeholders
    # The template's variables are nginx's: none may read like one of clubfeed's settings.
    assert all(name.startswith("NGINX_") for name in placeholders), placeholders
