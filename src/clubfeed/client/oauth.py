"""An OAuth grant the client refreshes itself: one refresh in flight per grant.

Every thread (or task) that finds the access token expired, or has it refused with 401,
asks for a refresh naming the token it used; the first takes the grant's lock and
refreshes, the others wait on the lock and find a newer token than theirs, so a grant's
refresh token (which the server rotates on every use, revoking the grant if a spent one
comes back) is spent exactly once. The lock is a thread lock, which tasks take through
a worker thread, so sync and async clients and several event loops may share a grant.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clubfeed.client.errors import AuthError, ClientError
from clubfeed.client.pages import problem_of

_EARLY_S = 30.0
"""Refresh this long before the access token expires, so no request carries a dying one."""


@dataclass
class OAuthGrant:
    """The tokens of one grant. `on_refresh` is called with the grant after each refresh:
    save its `refresh_token` there, since the previous one stops working."""

    client_id: str
    client_secret: str
    refresh_token: str
    access_token: str | None = None
    expires_at: float = 0.0  # time.time() when the access token expires
    on_refresh: Callable[[OAuthGrant], None] | None = None
    lifetime_s: float = 3600.0  # the last token's expires_in
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def current(self) -> str | None:
        """The access token, if it is not about to expire."""
        early = min(_EARLY_S, self.lifetime_s / 2)
        if self.access_token is None or time.time() >= self.expires_at - early:
            return None
        return self.access_token

    def _needs(self, used: str | None) -> bool:
        return self.access_token == used or self.current() is None

    def _request(self) -> dict[str, Any]:
        return {
            "data": {"grant_type": "refresh_token", "refresh_token": self.refresh_token},
            "auth": (self.client_id, self.client_secret),
        }

    def _take(self, response: httpx.Response) -> str:
        if response.status_code != 200:
            problem = problem_of(response.content)
            detail = problem.get("error_description") or problem.get("detail") or response.text
            raise AuthError(
                f"refreshing the OAuth grant failed ({response.status_code}): {detail}",
                response.status_code,
                problem,
            )
        body = response.json()
        self.access_token = str(body["access_token"])
        self.refresh_token = str(body.get("refresh_token") or self.refresh_token)
        self.lifetime_s = float(body.get("expires_in", 3600))
        self.expires_at = time.time() + self.lifetime_s
        if self.on_refresh is not None:
            self.on_refresh(self)
        return self.access_token

    def refresh(self, http: httpx.Client, token_url: str, used: str | None) -> str:
        """A fresh access token; refreshes unless another thread did since `used` was read."""
        with self._lock:
            if not self._needs(used):
                assert self.access_token is not None
                return self.access_token
            try:
                response = http.post(token_url, **self._request())
            except httpx.HTTPError as exc:
                raise ClientError(f"refreshing the OAuth grant failed: {exc!r}") from exc
            return self._take(response)

    async def refresh_async(self, http: httpx.AsyncClient, token_url: str, used: str | None) -> str:
        """As `refresh`, for a task: it waits for the lock on a worker thread, not the loop."""
        taking = asyncio.ensure_future(asyncio.to_thread(self._lock.acquire))
        try:
            await asyncio.shield(taking)
        except asyncio.CancelledError:  # cancelled while waiting: let go once it is taken
            taking.add_done_callback(lambda _: self._lock.release())
            raise
        try:
            if not self._needs(used):
                assert self.access_token is not None
                return self.access_token
            try:
                response = await http.post(token_url, **self._request())
            except httpx.HTTPError as exc:
                raise ClientError(f"refreshing the OAuth grant failed: {exc!r}") from exc
            return self._take(response)
        finally:
            self._lock.release()
