"""`Client` and `AsyncClient`: the same calls, over httpx, sync or async.

Each request carries the integrator key and a bearer (a business's shared secret, or
an OAuth access token refreshed as needed), asks for compressed answers, and is retried
on 429, 502-504 and connection errors (`retry.py`). The protocol itself (what to ask
next, what an answer means) lives in `pages.py`, so the two clients differ only in I/O.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from clubfeed.client.errors import AuthError, ClientError, HistoryGone
from clubfeed.client.oauth import OAuthGrant
from clubfeed.client.pages import (
    Bookmark,
    Summary,
    Verification,
    compare,
    decode_page,
    decode_record,
    decode_summary,
    problem_of,
)
from clubfeed.client.records import RECORD_TYPES, Record, Tombstone
from clubfeed.client.retry import RETRY_STATUSES, Retry

Item = Record | Tombstone | Bookmark
PAGE_SIZE = 10_000
T = TypeVar("T")
PageDecoder = Callable[[bytes], tuple[T, str | None, str]]
"""Makes a page's body into (what the caller wants of its records, next_cursor,
consistent_until): `decode_page` makes typed records, the mirror rows."""


def _in_background(call: Callable[[], httpx.Response]) -> Future[httpx.Response]:
    """The call on a daemon thread, so that a pull stopped early (or by Ctrl-C) need not
    wait for the page it asked for ahead."""
    future: Future[httpx.Response] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="clubfeed-page-ahead", daemon=True).start()
    return future


def _abandon(task: asyncio.Future[httpx.Response] | None) -> None:
    """Cancel a request asked for ahead that is no longer wanted, and take its outcome
    when it ends, so that asyncio reports no unretrieved error."""
    if task is None:
        return
    task.cancel()
    task.add_done_callback(lambda done: None if done.cancelled() else done.exception())


class _Base:
    """What both clients share: credentials, retry policy, and reading answers."""

    def __init__(
        self,
        base_url: str,
        *,
        integrator_key: str,
        token: str | None = None,
        oauth: OAuthGrant | None = None,
        retry: Retry | None = None,
        page_size: int = PAGE_SIZE,
        timeout: float = 60.0,
    ) -> None:
        if (token is None) == (oauth is None):
            raise ValueError("pass either token (a shared secret or access token) or oauth")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the server's URL must start with http:// or https://: {base_url!r}")
        try:
            httpx.URL(base_url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {base_url!r} ({exc})") from None
        self.base_url = base_url.rstrip("/")
        self.integrator_key = integrator_key
        self.token = token
        self.oauth = oauth
        self.retry = retry or Retry()
        self.page_size = page_size
        self.timeout = timeout
        self.token_url = f"{self.base_url}/oauth/token"

    def _headers(self, bearer: str) -> dict[str, str]:
        return {"X-Integrator-Key": self.integrator_key, "Authorization": f"Bearer {bearer}"}

    @staticmethod
    def _resource(resource: str) -> str:
        if resource not in RECORD_TYPES:
            raise ValueError(f"unknown resource {resource!r}; one of {', '.join(RECORD_TYPES)}")
        return resource

    def _first_params(self, since: Bookmark | str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.page_size}
        if isinstance(since, Bookmark):
            params["modified_since"] = since.modified_since
        elif since is not None:
            params["modified_since"] = since
        return params

    def _page(
        self, name: str, response: httpx.Response, decode: PageDecoder[T]
    ) -> tuple[T, dict[str, Any] | None, Bookmark | None]:
        """A list page as `decode` makes it, and either the next page's parameters or,
        after the last page, the Bookmark."""
        if response.status_code != 200:
            raise self._fail(response, name)
        try:
            found, cursor, consistent_until = decode(response.content)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise ClientError(f"the answer to a page of {name} is not one: {exc}", 200) from exc
        if cursor is None:
            return found, None, Bookmark(name, consistent_until)
        return found, {"limit": self.page_size, "cursor": cursor}, None

    def _linked(self, response: httpx.Response) -> dict[str, Any] | None:
        """The next page's parameters from the answer's `Link: rel="next"` (its cursor,
        asked of our own base URL, not the server's public one), so that it can be asked
        for before this page is decoded; None on the last page, or without the header."""
        if response.status_code != 200:
            return None
        cursor = httpx.URL(response.links.get("next", {}).get("url", "")).params.get("cursor")
        return {"limit": self.page_size, "cursor": cursor} if cursor else None

    def _wait_s(self, attempt: int, answer: httpx.Response | Exception, what: str) -> float | None:
        """How long to wait before trying again; None: return the answer (raise the error)."""
        if isinstance(answer, Exception):
            wait = self.retry.wait_s(attempt, None)
            if wait is None:
                raise ClientError(f"{what}: {answer!r} after {attempt + 1} tries") from answer
            return wait
        if answer.status_code not in RETRY_STATUSES:
            return None
        return self.retry.wait_s(attempt, answer.headers.get("Retry-After"))

    def _usable(self, refresh_after: str | None) -> str | None:
        """The bearer to send, or None when the OAuth token must be refreshed first (it is
        about to expire, or `refresh_after` was just refused)."""
        if self.oauth is None:
            return self.token
        current = self.oauth.current()
        return current if current is not None and current != refresh_after else None

    def _refused(self, answer: httpx.Response | Exception) -> bool:
        """A 401 to an OAuth token: refresh it (once) and try again."""
        return isinstance(answer, httpx.Response) and answer.status_code == 401 and bool(self.oauth)

    def _record_of(self, name: str, response: httpx.Response) -> Record | None:
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, name)
        try:
            return decode_record(name, response.content)
        except msgspec.DecodeError as exc:
            raise ClientError(f"the answer is not a record of {name}: {exc}", 200) from exc

    def _me_of(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise self._fail(response)
        found: dict[str, Any] = response.json()
        return found

    def _summary_of(self, name: str, response: httpx.Response) -> Summary:
        if response.status_code != 200:
            raise self._fail(response, name)
        try:
            return decode_summary(response.content)
        except msgspec.DecodeError as exc:
            raise ClientError(f"the answer is not a summary of {name}: {exc}", 200) from exc

    @staticmethod
    def _fail(response: httpx.Response, resource: str | None = None) -> ClientError:
        problem = problem_of(response.content)
        if response.status_code == 410 and resource is not None:
            return HistoryGone(resource, 410, problem)
        detail = problem.get("detail") or problem.get("title") or response.reason_phrase
        kind = AuthError if response.status_code in (401, 403) else ClientError
        return kind(f"{response.status_code}: {detail}", response.status_code, problem)


class Client(_Base):
    """A reader of one business's data; a context manager (or call `close()`).

    >>> with Client("http://127.0.0.1:8000", integrator_key=KEY, token=SECRET) as client:
    ...     for item in client.pull("checkins", since=saved):
    ...         match item:
    ...             case Tombstone(): delete(item.id)
    ...             case Bookmark(): saved = item
    ...             case _: upsert(item)

    Safe to share between threads.
    """

    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None, **options: Any
    ) -> None:
        """`integrator_key`, and `token` (a shared secret or access token) or `oauth`; also
        `retry`, `page_size` (10,000) and `timeout` (60 s)."""
        super().__init__(base_url, **options)
        self.http = httpx.Client(base_url=self.base_url, timeout=self.timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _bearer(self, refresh_after: str | None = None) -> str:
        usable = self._usable(refresh_after)
        if usable is not None:
            return usable
        assert self.oauth is not None
        return self.oauth.refresh(self.http, self.token_url, refresh_after)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API request with credentials and retries; the answer, whatever its status."""
        bearer = self._bearer()
        refreshed = False
        attempt = 0
        while True:
            answer: httpx.Response | Exception
            try:
                answer = self.http.request(method, path, headers=self._headers(bearer), **kwargs)
            except httpx.RequestError as exc:
                answer = exc
            if not refreshed and self._refused(answer):
                bearer, refreshed = self._bearer(refresh_after=bearer), True
                continue
            wait = self._wait_s(attempt, answer, f"{method} {path}")
            if wait is None:
                assert isinstance(answer, httpx.Response)
                return answer
            time.sleep(wait)
            attempt += 1

    def pull(self, resource: str, since: Bookmark | str | None = None) -> Iterator[Item]:
        """Every change since `since` (None: a complete transfer of live records), then the
        Bookmark to start the next pull from. HistoryGone (410) means: pull again with no
        `since`, and let that replace your copy."""
        for page in self.pages(resource, since, partial(decode_page, resource)):
            if isinstance(page, Bookmark):
                yield page
            else:
                yield from page

    def pages(
        self, resource: str, since: Bookmark | str | None, decode: PageDecoder[T]
    ) -> Iterator[T | Bookmark]:
        """`pull`, a page at a time, each page's body as `decode` makes it: for a caller
        that wants rows rather than typed records (`clubfeed pull`'s copy). The next page
        is asked for (from the `Link` header) while the caller works on this one."""
        path = f"/v1/{self._resource(resource)}"
        response = self.request("GET", path, params=self._first_params(since))
        while True:
            linked = self._linked(response)
            ahead = (
                _in_background(partial(self.request, "GET", path, params=linked))
                if linked
                else None
            )
            page, params, bookmark = self._page(resource, response, decode)
            yield page
            if bookmark is not None:
                yield bookmark
                return
            if ahead is not None and linked == params:
                response = ahead.result()
            else:  # no Link, or one that disagrees with the body: the body's cursor rules
                response = self.request("GET", path, params=params)

    def get(self, resource: str, record_id: str) -> Record | None:
        """One live record, or None if the business has none by that id (or it is deleted)."""
        name = self._resource(resource)
        return self._record_of(name, self.request("GET", f"/v1/{name}/{quote(record_id, safe='')}"))

    def me(self) -> dict[str, Any]:
        """`GET /v1/me`: the integrator, the business and what the credential may read."""
        return self._me_of(self.request("GET", "/v1/me"))

    def summary(self, resource: str, buckets: int | None = None) -> Summary:
        """The count and checksum of the live records (and by bucket, if asked)."""
        name = self._resource(resource)
        params = {"buckets": buckets} if buckets else {}
        return self._summary_of(name, self.request("GET", f"/v1/{name}/summary", params=params))

    def verify(
        self,
        resource: str,
        copy: Iterable[tuple[str, str | datetime]],
        buckets: int | None = 1024,
        summary: Summary | None = None,
    ) -> Verification:
        """Compare a copy's (id, modified_at) pairs with the server's summary (`summary`, or
        one asked for now). They agree only at one point: the copy's bookmark must be the
        summary's `consistent_until` (ask for the summary, and pull again until they meet)."""
        found = summary or self.summary(resource, buckets)
        return compare(resource, found, copy, buckets)


class AsyncClient(_Base):
    """`Client`'s calls for asyncio: `await client.summary(...)`, `async for item in
    client.pull(...)`. Safe to share between tasks of one event loop."""

    def __init__(
        self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
    ) -> None:
        """`integrator_key`, and `token` (a shared secret or access token) or `oauth`; also
        `retry`, `page_size` (10,000) and `timeout` (60 s)."""
        super().__init__(base_url, **options)
        self.http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def _bearer(self, refresh_after: str | None = None) -> str:
        usable = self._usable(refresh_after)
        if usable is not None:
            return usable
        assert self.oauth is not None
        return await self.oauth.refresh_async(self.http, self.token_url, refresh_after)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """As `Client.request`."""
        bearer = await self._bearer()
        refreshed = False
        attempt = 0
        while True:
            answer: httpx.Response | Exception
            try:
                answer = await self.http.request(
                    method, path, headers=self._headers(bearer), **kwargs
                )
            except httpx.RequestError as exc:
                answer = exc
            if not refreshed and self._refused(answer):
                bearer, refreshed = await self._bearer(refresh_after=bearer), True
                continue
            wait = self._wait_s(attempt, answer, f"{method} {path}")
            if wait is None:
                assert isinstance(answer, httpx.Response)
                return answer
            await asyncio.sleep(wait)
            attempt += 1

    async def pull(self, resource: str, since: Bookmark | str | None = None) -> AsyncIterator[Item]:
        """As `Client.pull`."""
        async for page in self.pages(resource, since, partial(decode_page, resource)):
            if isinstance(page, Bookmark):
                yield page
            else:
                for item in page:
                    yield item

    async def pages(
        self, resource: str, since: Bookmark | str | None, decode: PageDecoder[T]
    ) -> AsyncIterator[T | Bookmark]:
        """As `Client.pages`."""
        path = f"/v1/{self._resource(resource)}"
        response = await self.request("GET", path, params=self._first_params(since))
        while True:
            linked = self._linked(response)
            ahead = None
            if linked:
                ahead = asyncio.ensure_future(self.request("GET", path, params=linked))
            try:
                page, params, bookmark = self._page(resource, response, decode)
                yield page
                if bookmark is not None:
                    yield bookmark
            except BaseException:  # closed early, or the caller failed: drop the page ahead
                _abandon(ahead)
                raise
            if bookmark is not None:
                _abandon(ahead)
                return
            if ahead is not None and linked == params:
                response = await ahead
            else:
                _abandon(ahead)
                response = await self.request("GET", path, params=params)

    async def get(self, resource: str, record_id: str) -> Record | None:
        """As `Client.get`."""
        name = self._resource(resource)
        return self._record_of(
            name, await self.request("GET", f"/v1/{name}/{quote(record_id, safe='')}")
        )

    async def me(self) -> dict[str, Any]:
        """As `Client.me`."""
        return self._me_of(await self.request("GET", "/v1/me"))

    async def summary(self, resource: str, buckets: int | None = None) -> Summary:
        """As `Client.summary`."""
        name = self._resource(resource)
        params = {"buckets": buckets} if buckets else {}
        response = await self.request("GET", f"/v1/{name}/summary", params=params)
        return self._summary_of(name, response)

    async def verify(
        self,
        resource: str,
        copy: Iterable[tuple[str, str | datetime]],
        buckets: int | None = 1024,
        summary: Summary | None = None,
    ) -> Verification:
        """As `Client.verify`."""
        found = summary or await self.summary(resource, buckets)
        return compare(resource, found, copy, buckets)
