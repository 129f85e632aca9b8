"""The conformance checker's view of a server: raw HTTP, every answer read as it came.

Unlike `clubfeed.client`, which hides what a server does wrong, a probe keeps it: the
checks look at status codes, headers and the exact JSON. It waits out a 429 or 503 that
carries `Retry-After` (a check that wants the 429 itself asks not to), and notes every
answer whose body is not UTF-8 JSON, which the `utf8` check reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from clubfeed.client.retry import parse_retry_after

_JSON_TYPES = ("application/json", "application/problem+json")
_MAX_WAIT_S = 65.0
_PAGE_LIMIT = 10_000
PARALLEL_READS = 32
"""The most requests a check sends at once (the rate-limit check), each on a kept connection."""


class Failed(Exception):
    """A check found the server breaking a requirement; the message is the evidence."""


class HistoryPurged(Failed):
    """A range reaching back before what the server still keeps (410 history-purged): a
    correct answer, which leaves that range unchecked."""


class Skipped(Exception):
    """A check could not run here (no ingest key, no data of the kind); the message says why."""


@dataclass
class Page:
    """One list page as served."""

    records: list[dict[str, Any]]
    next_cursor: str | None
    consistent_until: str


@dataclass
class Probe:
    """An HTTP client holding the reader's credentials and, optionally, an ingest key."""

    base_url: str
    integrator_key: str
    token: str
    ingest_key: str | None = None
    timeout: float = 60.0
    not_utf8: list[str] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.base_url.rstrip("/"),
            timeout=self.timeout,
            headers={"Accept-Encoding": "gzip"},
            limits=httpx.Limits(max_keepalive_connections=PARALLEL_READS),
        )

    def close(self) -> None:
        self.http.close()

    @property
    def reader(self) -> dict[str, str]:
        return {"X-Integrator-Key": self.integrator_key, "Authorization": f"Bearer {self.token}"}

    @property
    def writer(self) -> dict[str, str]:
        if self.ingest_key is None:
            raise Skipped("needs an ingest key (--ingest-key)")
        return {"Authorization": f"Bearer {self.ingest_key}"}

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        body: Any = None,
        wait_out: bool = True,
    ) -> httpx.Response:
        """One request (with the reader's credentials unless `headers` says otherwise);
        a 429 or 503 with Retry-After is waited out and sent again when `wait_out`."""
        content = None if body is None else msgspec.json.encode(body)
        sent = {**(self.reader if headers is None else headers)}
        if content is not None:
            sent["Content-Type"] = "application/json"
        deadline = time.monotonic() + _MAX_WAIT_S
        while True:
            self.requests += 1
            try:
                answer = self.http.request(
                    method, path, headers=sent, params=params, content=content
                )
            except httpx.HTTPError as exc:
                raise Failed(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            wait = parse_retry_after(answer.headers.get("Retry-After"))
            if not wait_out or answer.status_code not in (429, 503) or wait is None:
                break
            if time.monotonic() + wait > deadline:
                raise Failed(f"{method} {path}: still {answer.status_code} after {_MAX_WAIT_S} s")
            time.sleep(wait)
        self._note_encoding(method, path, answer)
        return answer

    def _note_encoding(self, method: str, path: str, answer: httpx.Response) -> None:
        kind = answer.headers.get("Content-Type", "")
        if not answer.content:
            return
        media, _, rest = kind.partition(";")
        charset = rest.strip().lower().removeprefix("charset=").strip('"') if rest else "utf-8"
        where = f"{method} {path} ({answer.status_code})"
        if media.strip() not in _JSON_TYPES:
            self.not_utf8.append(f"{where} answered Content-Type {kind!r}, not JSON")
        elif charset not in ("utf-8", "utf8"):
            self.not_utf8.append(f"{where} declared charset {charset!r}")
        else:
            try:
                answer.content.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.not_utf8.append(f"{where}: not UTF-8 at byte {exc.start}")

    def json(self, answer: httpx.Response, what: str) -> dict[str, Any]:
        """A 200 answer's JSON object."""
        if answer.status_code != 200:
            raise Failed(f"{what}: {answer.status_code}, not 200: {_excerpt(answer)}")
        try:
            found = msgspec.json.decode(answer.content)
        except msgspec.DecodeError as exc:
            raise Failed(f"{what}: the answer is not JSON ({exc})") from exc
        if not isinstance(found, dict):
            raise Failed(f"{what}: the answer is not a JSON object")
        return found

    def page(self, resource: str, params: dict[str, Any]) -> Page:
        what = f"GET /v1/{resource}?{httpx.QueryParams(params)}"
        answer = self.send("GET", f"/v1/{resource}", params=params)
        if answer.status_code == 410 and _problem_type(answer).endswith("history-purged"):
            raise HistoryPurged(f"{what}: 410 history-purged")
        found = self.json(answer, what)
        if not isinstance(found, dict) or not isinstance(found.get("data"), list):
            raise Failed(f"{what}: no `data` list in the answer")
        if "next_cursor" not in found:
            raise Failed(f"{what}: no `next_cursor` in the answer")
        cursor, until = found["next_cursor"], found.get("consistent_until")
        if cursor is not None and not isinstance(cursor, str):
            raise Failed(f"{what}: `next_cursor` is {cursor!r}, not a string or null")
        if not isinstance(until, str):
            raise Failed(f"{what}: `consistent_until` is {until!r}, not a time")
        records = found["data"]
        for record in records:
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise Failed(f"{what}: a record without a string `id`: {str(record)[:120]}")
            if not isinstance(record.get("modified_at"), str):
                raise Failed(f"{what}: record {record['id']} has no `modified_at`")
        return Page(records, cursor, until)

    def pages(
        self, resource: str, params: dict[str, Any] | None = None, limit: int = _PAGE_LIMIT
    ) -> Iterator[Page]:
        """Every page of one query, following `next_cursor`."""
        first = {"limit": limit, **(params or {})}
        page = self.page(resource, first)
        yield page
        while page.next_cursor is not None:
            page = self.page(resource, {"limit": limit, "cursor": page.next_cursor})
            yield page

    def query(
        self, resource: str, params: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """A whole query's records, and the last page's `consistent_until`."""
        records: list[dict[str, Any]] = []
        until = ""
        for page in self.pages(resource, params):
            records.extend(page.records)
            until = page.consistent_until
        return records, until

    def write(
        self,
        resource: str,
        upsert: list[dict[str, Any]] | None = None,
        delete: list[str] | None = None,
    ) -> dict[str, Any]:
        """One ingest batch; its answer (with the `modified_at` the batch was given)."""
        body = {"upsert": upsert or [], "delete": delete or []}
        answer = self.send("POST", f"/v1/{resource}/batch", headers=self.writer, body=body)
        return self.json(answer, f"POST /v1/{resource}/batch")


def _problem_type(answer: httpx.Response) -> str:
    try:
        found = msgspec.json.decode(answer.content)
    except msgspec.DecodeError:
        return ""
    kind = found.get("type") if isinstance(found, dict) else None
    return kind if isinstance(kind, str) else ""


def _excerpt(answer: httpx.Response) -> str:
    text = answer.text.strip().replace("\n", " ")
    return text[:160] + ("…" if len(text) > 160 else "")
