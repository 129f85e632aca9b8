"""Small servers that speak clubfeed's contract with one planted flaw, for `clubfeed conform`.

`Broken(offset_paging=True, naive_times=True)` pages by OFFSET, as many POS APIs do, and
serves times without an offset; `Broken(early_stamps=True)` stamps a batch's
`modified_at` when it begins, makes every third batch slow, and answers
`consistent_until` with the clock, so a poller's bookmark passes a slow batch before it is
visible. Everything else follows the contract closely enough for the checks to reach the
flaw: both credentials, the three query kinds, tombstones, 410 and the lookup limits.
Records live in memory; one lock stands for the database's transactions.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servekit import free_port

KEY, SECRET, INGEST = "broken-key", "broken-secret", "broken-ingest"
READER = {"X-Integrator-Key": KEY, "Authorization": f"Bearer {SECRET}"}


def _problem(status: int, detail: str) -> Response:
    body = {"type": "about:blank", "title": detail, "status": status, "detail": detail}
    return JSONResponse(body, status, media_type="application/problem+json")


@dataclass
class Broken:
    """The flaws to plant, and the store they act on."""

    offset_paging: bool = False
    naive_times: bool = False
    early_stamps: bool = False
    wrong_links: bool = False  # a Link rel=next that disagrees with next_cursor, as a bad proxy's
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # with tombstones
    last: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    batches: int = 0

    def stamp(self) -> datetime:
        """A clock that never repeats an instant."""
        self.last = max(datetime.now(UTC), self.last + timedelta(microseconds=1))
        return self.last

    def text(self, at: datetime) -> str:
        return at.replace(tzinfo=None).isoformat() if self.naive_times else at.isoformat()

    def shown(self, row: dict[str, Any]) -> dict[str, Any]:
        if row.get("deleted"):
            return {"id": row["id"], "deleted": True, "modified_at": self.text(row["at"])}
        body = {k: v for k, v in row.items() if k not in ("at", "created")}
        return body | {"created_at": self.text(row["created"]), "modified_at": self.text(row["at"])}

    def list(self, request: Request) -> Response:
        resource, query = request.path_params["resource"], dict(request.query_params)
        limit = int(query.pop("limit", 1000))
        cursor = json.loads(query.pop("cursor")) if "cursor" in query else None
        query = cursor["query"] if cursor else query
        if "modified_since" in query and "modified_after" in query:
            return _problem(400, "modified_since and modified_after together")
        with self.lock:
            until = cursor["until"] if cursor else self.text(self.stamp())
            rows = list(self.rows.get(resource, {}).values())
        bounds = {k: datetime.fromisoformat(v.replace("Z", "+00:00")) for k, v in query.items()}
        bounds = {k: v if v.tzinfo else v.replace(tzinfo=UTC) for k, v in bounds.items()}
        end = datetime.fromisoformat(until)
        end = end if end.tzinfo else end.replace(tzinfo=UTC)
        start = bounds.get("modified_since") or bounds.get("modified_after")
        if start is not None and start > self.last:
            return _problem(410, "that bookmark is ahead of every change: transfer again")
        if not bounds:
            rows = sorted((r for r in rows if not r.get("deleted")), key=lambda r: r["id"])
            if not self.offset_paging:
                rows = [r for r in rows if r["at"] < end]
        else:
            rows = sorted(rows, key=lambda r: (r["at"], r["id"]))
            rows = [
                r
                for r in rows
                if r["at"] >= bounds.get("modified_since", datetime.min.replace(tzinfo=UTC))
                and r["at"] > bounds.get("modified_after", datetime.min.replace(tzinfo=UTC))
                and r["at"] < min(end, bounds.get("modified_before", end))
            ]
        if self.offset_paging:
            offset = cursor["offset"] if cursor else 0
            page, after = rows[offset : offset + limit], {"offset": offset + limit}
        else:
            key = cursor["key"] if cursor else None
            keyed = [r for r in rows if key is None or self._key(r, bounds) > tuple(key)]
            page = keyed[:limit]
            after = {"key": list(self._key(page[-1], bounds))} if page else {}
        more = len(rows) > (after.get("offset") or 0) if self.offset_paging else len(page) == limit
        next_cursor = json.dumps({"query": query, "until": until, **after}) if more else None
        data = [self.shown(r) for r in page]
        body = {"data": data, "next_cursor": next_cursor, "consistent_until": until}
        headers = {}
        if self.wrong_links and next_cursor:
            headers["Link"] = f'<{request.url.replace(query="cursor=elsewhere")}>; rel="next"'
        return JSONResponse(body, headers=headers)

    @staticmethod
    def _key(row: dict[str, Any], bounds: dict[str, datetime]) -> tuple[str, ...]:
        return (row["at"].isoformat(timespec="microseconds"), row["id"]) if bounds else (row["id"],)

    async def lookup(self, request: Request) -> Response:
        resource = request.path_params["resource"]
        if request.method == "POST":
            ids, most = (await request.json())["ids"], 10_000
        else:
            ids, most = request.query_params["ids"].split(","), 1_000
        if len(ids) > most:
            return _problem(400, f"at most {most} ids")
        rows = self.rows.get(resource, {})
        data = [self.shown(rows[i]) for i in ids if i in rows]
        return JSONResponse({"data": data, "missing": [i for i in ids if i not in rows]})

    def one(self, request: Request) -> Response:
        row = self.rows.get(request.path_params["resource"], {}).get(request.path_params["id"])
        if row is None or row.get("deleted"):
            return _problem(404, "no such record")
        return JSONResponse(self.shown(row))

    async def batch(self, request: Request) -> Response:
        resource, body = request.path_params["resource"], await request.json()
        self.batches += 1
        at = self.stamp() if self.early_stamps else None
        if self.early_stamps and self.batches % 3 == 0:
            await asyncio.sleep(0.4)  # a slow transaction, its stamp already taken
        with self.lock:
            at = at or self.stamp()
            rows = self.rows.setdefault(resource, {})
            for record in body.get("upsert", []):
                created = rows.get(record["id"], {}).get("created", at)
                rows[record["id"]] = {**record, "created": created, "at": at}
            for gone in body.get("delete", []):
                if gone in rows and not rows[gone].get("deleted"):
                    rows[gone] = {"id": gone, "deleted": True, "at": at}
        return JSONResponse({"modified_at": self.text(at)})

    async def route(self, request: Request) -> Response:
        """Credentials first, on every path, as the contract asks."""
        path, method = request.url.path, request.method
        writing = path.endswith("/batch") or method in ("PUT", "DELETE")
        if writing:
            if request.headers.get("Authorization") != f"Bearer {INGEST}":
                return _problem(401, "the ingest key is missing or wrong")
        elif any(request.headers.get(k) != v for k, v in READER.items()):
            return _problem(401, "a credential is missing or wrong")
        parts = path.split("/")[2:]
        if path.endswith("/batch") and method == "POST":
            return await self.batch(request)
        if len(parts) == 2 and parts[1] == "lookup":
            return await self.lookup(request)
        if len(parts) == 2 and method == "GET" and parts[1] != "summary":
            return self.one(request)
        if len(parts) == 1 and method == "GET":
            return self.list(request)
        return _problem(405 if writing else 404, "not served here")

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            return await self.route(request)

        methods = ["GET", "POST", "PUT", "DELETE"]
        paths = ("/v1/{resource}", "/v1/{resource}/{id}")
        return Starlette(routes=[Route(p, endpoint, methods=methods) for p in paths])


@contextmanager
def serving(broken: Broken) -> Iterator[str]:
    """The broken server on a loopback port, for the length of the block: its base URL."""
    port = free_port()
    config = uvicorn.Config(broken.app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the broken server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
