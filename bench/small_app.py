"""The small-request floor: a bare Starlette app doing the least a request of clubfeed's must.

Same driver as clubfeed (sqlite3, or psycopg), same thread-pool model (Starlette runs
each request's database work in its thread pool, on a pooled connection), the same
credential lookup (SHA-256 of each credential, found by its indexed hash) and one
indexed statement: for `GET /v1/checkins?limit=1` the business's first live check-in by
change_seq, served from its stored body; for `PUT /v1/checkins/{id}` one upsert of the
row into a table of its own (it has no change clock, so clubfeed's table would refuse
it). It validates nothing beyond "is JSON", rate-limits, logs and counts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

URL_VARIABLE = "BENCH_SMALL_DATABASE_URL"  # bench.servers.SMALL_URL_VARIABLE
POOL_SIZE = 10
TABLE = "baseline_checkins"
_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    business_id BIGINT NOT NULL, id TEXT NOT NULL, checked_in_at BIGINT NOT NULL,
    location_id TEXT NOT NULL, membership_id TEXT, user_id TEXT NOT NULL, extra TEXT NOT NULL,
    body TEXT NOT NULL, modified_at BIGINT NOT NULL, PRIMARY KEY (business_id, id)
)
"""
_UPSERT = f"""
INSERT INTO {TABLE} (business_id, id, checked_in_at, location_id, membership_id, user_id,
                    extra, body, modified_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (business_id, id) DO UPDATE SET
    checked_in_at = excluded.checked_in_at, location_id = excluded.location_id,
    membership_id = excluded.membership_id, user_id = excluded.user_id,
    extra = excluded.extra, body = excluded.body, modified_at = excluded.modified_at
"""
_FIRST = (
    "SELECT body, change_seq FROM checkins WHERE business_id = ? AND deleted_at IS NULL "
    "ORDER BY change_seq LIMIT 1"
)
_INTEGRATOR = "SELECT id FROM integrators WHERE key_hash = ?"
_READER = "SELECT id FROM businesses WHERE shared_secret_hash = ?"
_WRITER = "SELECT id FROM businesses WHERE ingest_key_hash = ?"


class Database:
    """A fixed pool of autocommit connections; `?` placeholders on both drivers."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(POOL_SIZE):
            self._free.put(self._connect(url))
        with self.connection() as conn:
            conn.execute(_CREATE)

    def _connect(self, url: str) -> Any:
        if self.postgres:
            libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
            return psycopg.connect(libpq, autocommit=True)
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # clubfeed's own pragmas, so that both write with the same durability.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self._free.get()
        try:
            yield conn
        finally:
            self._free.put(conn)

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement


def _digest(value: str | None) -> bytes:
    return hashlib.sha256((value or "").encode()).digest()


def _bearer(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


def _micros(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1_000_000)


_UNAUTHENTICATED = JSONResponse({"title": "Unauthenticated"}, status_code=401)


def create_app(url: str) -> Starlette:
    db = Database(url)
    integrator, reader = db.sql(_INTEGRATOR), db.sql(_READER)
    writer, first, upsert = db.sql(_WRITER), db.sql(_FIRST), db.sql(_UPSERT)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def first_checkin(request: Request) -> Response:
        key, secret = _digest(request.headers.get("x-integrator-key")), _digest(_bearer(request))

        def work() -> bytes | None:
            with db.connection() as conn:
                if conn.execute(integrator, (key,)).fetchone() is None:
                    return None
                business = conn.execute(reader, (secret,)).fetchone()
                if business is None:
                    return None
                row = conn.execute(first, (business[0],)).fetchone()
            data = f"[{row[0]}]" if row else "[]"
            cursor = json.dumps(str(row[1])) if row else "null"
            return f'{{"data":{data},"next_cursor":{cursor}}}'.encode()

        body = await run_in_threadpool(work)
        if body is None:
            return _UNAUTHENTICATED
        return Response(body, media_type="application/json")

    async def put_checkin(request: Request) -> Response:
        record_id: str = request.path_params["record_id"]
        ingest_key = _digest(_bearer(request))
        raw = await request.body()
        record = json.loads(raw)

        def work() -> bool:
            with db.connection() as conn:
                business = conn.execute(writer, (ingest_key,)).fetchone()
                if business is None:
                    return False
                conn.execute(
                    upsert,
                    (
                        business[0],
                        record_id,
                        _micros(record["checked_in_at"]),
                        record["location_id"],
                        record.get("membership_id"),
                        record["user_id"],
                        json.dumps(record.get("extra", {})),
                        raw.decode(),
                        time.time_ns() // 1000,
                    ),
                )
                return True

        if not await run_in_threadpool(work):
            return _UNAUTHENTICATED
        return Response(raw, media_type="application/json")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/v1/checkins", first_checkin),
            Route("/v1/checkins/{record_id}", put_checkin, methods=["PUT"]),
        ]
    )


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory`: the database URL comes from the benchmark."""
    return create_app(os.environ[URL_VARIABLE])
