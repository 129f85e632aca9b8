"""A lean HTTP/1.1 keep-alive client, the same for every server measured.

The standard library's `http.client` reads a Content-Length body in a few large
reads, so the client adds well under a millisecond to a 2 MB page and the same
amount to every server it talks to.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping

import msgspec

HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """The benchmark cannot go on: a server or database did not answer as expected."""


class Http:
    """One persistent connection to one server on the loopback interface."""

    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self.port = port
        self._conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> bytes:
        """The response body; BenchError unless the status is 200."""
        self._conn.request(method, path, body=body, headers=dict(headers))
        response = self._conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise BenchError(
                f"{method} {path} on port {self.port} answered {response.status}: {data[:500]!r}"
            )
        return data

    def get(self, path: str, headers: Mapping[str, str]) -> bytes:
        return self.request("GET", path, headers)

    def timed_get(self, path: str, headers: Mapping[str, str]) -> tuple[float, bytes]:
        """Seconds from sending the request to holding the whole body, and the body."""
        started = time.perf_counter()
        data = self.get(path, headers)
        return time.perf_counter() - started, data

    def close(self) -> None:
        self._conn.close()


class PageHead(msgspec.Struct):
    """What a reader needs from a page to go on: how many records, and where next."""

    data: list[msgspec.Raw]
    next_cursor: str | None


_page_decoder = msgspec.json.Decoder(PageHead)


def decode_page(body: bytes) -> PageHead:
    return _page_decoder.decode(body)
