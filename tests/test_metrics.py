"""/metrics on both databases: exact counts after known requests, access control, pool
gauges, activity drops, and several `clubfeed serve` workers summed into one page."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from clubfeed.activity import Event
from clubfeed.cli import main
from clubfeed.settings import Settings
from clubfeed.timefmt import now_us
from clubfeed.web import logs, metrics
from clubfeed.web.state import AppState
from tests.clikit import clubfeed
from tests.conftest import Server
from tests.factories import Api, new_business, new_tenant, record
from tests.servekit import served
from tests.sourcekit import Pos, SourceDatabase, mapping_yaml
from tests.test_sources import seed, write_mapping

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TOKEN = "metrics-token-0123456789abcdef"
LABELS = {"method", "route", "status", "resource", "outcome", "problem", "le", "mapping", "kind"}
"""Every label /metrics may use; `mapping` is a source mapping's name, chosen by the operator."""


def sample(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def scrape(client: httpx.Client, **kw: Any) -> Samples:
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        sample(s.name, **s.labels): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def counted(before: Samples, after: Samples) -> Samples:
    """What changed between two scrapes, leaving out durations' sums and buckets, the
    scrapes themselves, which vary from run to run, and the source runners' figures
    (their lag grows by the second, whatever other tests' mappings left behind)."""
    changes = {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if after[key] != before.get(key, 0.0)
        and not key[0].endswith(("_sum", "_bucket", "_created"))
        and ("route", "/metrics") not in key[1]
        and not key[0].startswith("clubfeed_source_")
    }
    for (name, labels), value in changes.items():
        if name == "clubfeed_http_request_duration_seconds_count":
            bucket = sample(
                "clubfeed_http_request_duration_seconds_bucket", **dict(labels), le="+Inf"
            )
            assert after[bucket] - before.get(bucket, 0.0) == value, bucket
    return changes


def duration(method: str, route: str, status: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample(
        "clubfeed_http_request_duration_seconds_count",
        method=method,
        route=route,
        status=str(status),
    )


def app_state(server: Server) -> AppState:
    state: AppState = server.server.config.app.state.clubfeed
    return state


@pytest.fixture(scope="module")
def metered(db: Engine, db_url: str) -> Iterator[Server]:
    """A server whose counts only this module moves: activity is never flushed in the
    background (so the pool is idle between requests), one pooled connection (two with
    overflow), one token request a minute, and X-Forwarded-For trusted from loopback."""
    settings = Settings(
        database_url=db_url, activity_flush_s=3600, pool_size=1, token_rate_limit="1/minute"
    )
    with Server(settings, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as running:
        yield running


@pytest.fixture
def http(metered: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=metered.base_url, timeout=60) as client:
        yield client


def test_requests_records_and_rejections_are_counted_exactly(
    http: httpx.Client, db: Engine
) -> None:
    api = Api(http, new_tenant(db))
    before = scrape(http)

    locations = [record("locations", f"loc-{i}") for i in (1, 2, 3)]
    assert api.batch("locations", locations).status_code == 200
    assert api.put("locations", "loc-1", locations[0]).status_code == 200
    assert api.delete("locations", "loc-3").status_code == 200
    once = {**api.tenant.write_headers, "Idempotency-Key": "metrics-once"}
    for _ in range(2):  # the replay writes nothing
        put = http.put("/v1/locations/loc-9", json=record("locations", "loc-9"), headers=once)
        assert put.status_code == 201
    bad = api.put("locations", "loc-4", {**record("locations", "loc-4"), "timezone": "Mars/Base"})
    assert bad.status_code == 422
    wrong_key = http.put(
        "/v1/locations/loc-5", json=locations[0], headers={"Authorization": "Bearer cfi_nope"}
    )
    assert wrong_key.status_code == 401
    pages, served = 0, 0
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = api.get("/v1/locations", params=params).json()
        pages, served = pages + 1, served + len(page["data"])
        if page["next_cursor"] is None:
            break
        params = {"cursor": page["next_cursor"]}
    assert served == 3
    lookup = api.get("/v1/locations", params={"ids": "loc-1,loc-1,loc-3,nope"}).json()
    assert lookup["missing"] == ["nope"]
    assert api.get("/v1/locations/loc-2").status_code == 200
    assert api.get("/v1/locations/nope").status_code == 404
    assert http.get("/v1/no-such-resource").status_code == 404

    assert counted(before, scrape(http)) == {
        sample("clubfeed_records_written_total", resource="locations", outcome="created"): 4,
        sample("clubfeed_records_written_total", resource="locations", outcome="unchanged"): 1,
        sample("clubfeed_records_written_total", resource="locations", outcome="deleted"): 1,
        sample(
            "clubfeed_ingest_rejections_total", resource="locations", problem="invalid-request"
        ): 1,
        sample(
            "clubfeed_ingest_rejections_total", resource="locations", problem="unauthenticated"
        ): 1,
        # Three pages' records, loc-1 and loc-3's tombstone looked up, loc-2 read alone.
        sample("clubfeed_records_served_total", resource="locations"): 3 + 2 + 1,
        duration("POST", "/v1/locations/batch", 200): 1,
        duration("PUT", "/v1/locations/{record_id}", 200): 1,
        duration("PUT", "/v1/locations/{record_id}", 201): 2,
        duration("PUT", "/v1/locations/{record_id}", 422): 1,
        duration("PUT", "/v1/locations/{record_id}", 401): 1,
        duration("DELETE", "/v1/locations/{record_id}", 200): 1,
        duration("GET", "/v1/locations", 200): pages + 1,
        duration("GET", "/v1/locations/{record_id}", 200): 1,
        duration("GET", "/v1/locations/{record_id}", 404): 1,
        duration("GET", "unmatched", 404): 1,
    }


def test_no_label_holds_an_id_or_a_raw_path(http: httpx.Client, db: Engine) -> None:
    api = Api(http, new_tenant(db))
    assert api.put("locations", "loc-secret-id", record("locations", "loc-secret-id")).is_success
    api.get("/v1/locations/loc-secret-id", params={"cursor": "c-secret"})
    assert http.request("PROPFIND", "/v1/locations").status_code == 405

    samples = scrape(http)

    names = {name for _name, labels in samples for name, _value in labels}
    assert names <= LABELS
    values = {value for _name, labels in samples for _label, value in labels}
    assert not [v for v in values if "-secret" in v or "?" in v or "PROPFIND" in v]
    assert duration("other", "/v1/locations", 405) in samples


def test_429s_are_counted_by_route(http: httpx.Client) -> None:
    before = scrape(http)
    form = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": "nope"}

    statuses = [http.post("/oauth/token", data=form).status_code for _ in range(2)]

    assert statuses[1] == 429
    changes = counted(before, scrape(http))
    assert changes[sample("clubfeed_http_rate_limited_total", route="/oauth/token")] == 1
    assert changes[duration("POST", "/oauth/token", 429)] == 1


def test_pool_gauges_show_connections_in_use_and_waiting(
    http: httpx.Client, metered: Server
) -> None:
    engine = app_state(metered).engine

    def gauges() -> tuple[float, float]:
        samples = scrape(http)
        return samples[sample("clubfeed_db_pool_in_use")], samples[
            sample("clubfeed_db_pool_waiting")
        ]

    assert gauges() == (0, 0)
    held = [engine.connect(), engine.connect()]  # the pool's one, and its one overflow
    waiter = threading.Thread(target=lambda: engine.connect().close())
    waiter.start()
    try:
        deadline = time.monotonic() + 10
        while gauges() != (2, 1):
            assert time.monotonic() < deadline, gauges()
            time.sleep(0.02)
        # The pool has nothing to give, yet the source runners' figures are read (on a
        # connection of their own), not left out after a wait for the pool.
        page = http.get("/metrics").text
        assert "# TYPE clubfeed_source_records_total counter" in page
    finally:
        for conn in held:
            conn.close()
        waiter.join(10)
    assert gauges() == (0, 0)


def test_dropped_activity_is_counted(http: httpx.Client, metered: Server, db: Engine) -> None:
    tenant = new_tenant(db)
    recorder = app_state(metered).recorder
    recorder.flush()  # the earlier tests' reads
    before = scrape(http)
    good = Event(
        tenant.business.id, tenant.integrator.id, "shared_secret", now_us(), "GET", "/", 200
    )
    broken = Event(
        tenant.business.id, tenant.integrator.id, "shared_secret", now_us(), None, "/", 200
    )
    recorder.record(good)
    recorder.record(broken)

    with pytest.raises(IntegrityError):
        recorder.flush()

    assert counted(before, scrape(http)) == {sample("clubfeed_activity_events_dropped_total"): 2}


def test_metrics_answer_loopback_only_by_default(http: httpx.Client) -> None:
    assert scrape(http)
    # uvicorn trusts X-Forwarded-For from 127.0.0.1: the client is then the address it names.
    remote = http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})

    assert remote.status_code == 403
    assert remote.headers["content-type"] == "application/problem+json"
    assert remote.json()["type"] == "/problems/forbidden"
    assert http.get("/metrics", headers={"X-Forwarded-For": "::1"}).status_code == 200


def test_metrics_with_a_token_need_it_from_anywhere(db: Engine, db_url: str) -> None:
    settings = Settings(database_url=db_url, metrics="token", metrics_token=TOKEN)
    with (
        Server(settings, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as running,
        httpx.Client(base_url=running.base_url) as client,
    ):
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
        remote = {"X-Forwarded-For": "203.0.113.7", "Authorization": f"Bearer {TOKEN}"}

        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="clubfeed-metrics"'
        assert missing.json()["type"] == "/problems/unauthenticated"
        assert wrong.status_code == 401
        assert scrape(client, headers=remote)


def test_metrics_off_is_no_page(db: Engine, db_url: str) -> None:
    with (
        Server(Settings(database_url=db_url, metrics="off")) as running,
        httpx.Client(base_url=running.base_url) as client,
    ):
        assert client.get("/metrics").status_code == 404
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLUBFEED_METRICS": "token"}, "CLUBFEED_METRICS=token needs CLUBFEED_METRICS_TOKEN"),
        ({"CLUBFEED_METRICS": "token", "CLUBFEED_METRICS_TOKEN": "short"}, "at least 16"),
        ({"CLUBFEED_METRICS": "public"}, "CLUBFEED_METRICS is 'public'; use one of off"),
        ({"CLUBFEED_LOG_FORMAT": "xml"}, "CLUBFEED_LOG_FORMAT is 'xml'; use one of json"),
    ],
)
def test_serve_refuses_settings_that_cannot_work(env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve"], env=env)

    assert result.exit_code == 1, result.output
    assert message in result.output
    settings = Settings.from_env(env)
    with pytest.raises(ValueError, match=message.split(";")[0]):
        metrics.check(settings)
        logs.check(settings)


STALE = """
from prometheus_client import Counter
Counter("clubfeed_records_served", "stale", ["resource"]).labels("checkins").inc(1000)
"""


def test_workers_share_one_page_of_metrics(db: Engine, db_url: str, tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    # A file left by an earlier run: serve must wipe it, or its 1,000 would still count.
    stale_env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "PATH": ""}
    subprocess.run([sys.executable, "-c", STALE], env=stale_env, check=True)
    assert [p.name for p in shared.iterdir()]
    api_tenant = new_tenant(db)
    with served(
        db_url, tmp_path, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    ) as running:
        with httpx.Client(base_url=running.base_url) as client:
            api = Api(client, api_tenant)
            assert api.put("locations", "loc-1", record("locations", "loc-1")).status_code == 201
        for _ in range(20):
            # A connection each, so that both workers may take some of them.
            with httpx.Client(base_url=running.base_url) as client:
                assert Api(client, api_tenant).get("/v1/locations").status_code == 200
        pids = {int(p.stem.rsplit("_", 1)[1]) for p in shared.glob("*.db")}
        assert len(pids) == 2 and running.process.pid not in pids
        for _ in range(6):
            with httpx.Client(base_url=running.base_url) as client:
                samples = scrape(client)
            assert samples[sample("clubfeed_records_served_total", resource="locations")] == 20
            assert samples[duration("GET", "/v1/locations", 200)] == 20
            assert sample("clubfeed_records_served_total", resource="checkins") not in samples


def test_source_runners_show_their_state(
    http: httpx.Client, db: Engine, db_url: str, tmp_path: Path
) -> None:
    """A mapping's figures, summed over its businesses and read from the database at
    scrape time: `clubfeed source run` is another process."""
    source = SourceDatabase("sqlite", tmp_path)
    pos = Pos(source)
    seed(pos)
    with pos.transaction() as conn:
        conn.execute(
            text("UPDATE visits SET visited_at = 'soon', updated_at = :at WHERE visit_id = 3"),
            {"at": pos.now()},
        )
    business = new_business(db)
    name = f"metrics{business.id}"
    path = write_mapping(tmp_path, mapping_yaml(source, business=f"  id: {business.id}", name=name))
    started = time.time()
    assert clubfeed(db_url, "source", "run", "--once", str(path)).exit_code == 0
    samples = scrape(http)
    mine = {
        (
            metric,
            dict(labels).get("resource"),
            dict(labels).get("outcome") or dict(labels).get("kind"),
        ): value
        for (metric, labels), value in samples.items()
        if ("mapping", name) in labels
    }
    lags = {k: mine.pop(k) for k in list(mine) if k[0] == "clubfeed_source_lag_seconds"}
    assert sorted(r for _, r, _ in lags) == ["checkins", "locations", "sales", "users"]
    assert all(0 <= lag < time.time() - started + 1 for lag in lags.values())
    written = {
        ("locations", "created"): 2, ("users", "created"): 21,
        ("checkins", "created"): 39, ("sales", "created"): 3,
    }  # fmt: skip
    expected = {
        **{
            ("clubfeed_source_records_total", resource, outcome): float(written.get((resource, outcome), 0))
            for resource in ("checkins", "locations", "sales", "users")
            for outcome in ("created", "updated", "unchanged", "deleted")
        },
        **{
            (f"clubfeed_source_{gauge}", resource, None): value
            for resource in ("checkins", "locations", "sales", "users")
            for gauge, value in (("backfilling", 0.0), ("failing", 0.0), ("fixed_lag", 1.0), ("held_seconds", 0.0))
        },
        ("clubfeed_source_problems", "checkins", "value"): 1.0,
    }  # fmt: skip
    assert mine == expected
