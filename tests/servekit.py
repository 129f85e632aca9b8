"""The installed `clubfeed serve` as a subprocess on a loopback port, its stderr kept in a file."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CLUBFEED = Path(sys.executable).parent / "clubfeed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line logged so far, each parsed as JSON (a line that is not fails)."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def line_of(self, request_id: str, timeout_s: float = 10) -> dict[str, Any]:
        """The access line of the request with this X-Request-ID, once it is written."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [
                line
                for line in self.json_lines()
                if line.get("logger") == "clubfeed.access" and line.get("request_id") == request_id
            ]
            if found:
                assert len(found) == 1, found
                return found[0]
            assert time.monotonic() < deadline, f"no line for {request_id}:\n{self.log.read_text()}"
            time.sleep(0.05)


def _ready(port: int, log: Path, workers: int) -> bool:
    """Every worker started, and the port answers (one worker binds it only after starting)."""
    if log.read_text().count("Application startup complete") < workers:
        return False
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def served(
    db_url: str, directory: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """`clubfeed serve` on `db_url`, ready once every worker has started; stopped by SIGTERM."""
    port = free_port()
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLUBFEED_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    environment.update(CLUBFEED_DATABASE_URL=db_url, NO_COLOR="1", **(env or {}))
    log = directory / f"serve-{port}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(CLUBFEED), "serve", "--port", str(port), "--workers", str(workers)],
            env=environment,
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port, log, workers):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Served(port, log, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def lagging(target: int, delay: float) -> Iterator[int]:
    """A TCP proxy on a free loopback port to `target` that holds every chunk a client
    sends for `delay` seconds, as a server across a network would seem: its port."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float) -> None:
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(hold)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    ends: set[asyncio.StreamWriter] = set()  # both ends of every open connection

    async def forward(client: asyncio.StreamReader, back: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        ends.update((back, server_writer))
        await asyncio.gather(
            pipe(client, server_writer, delay), pipe(server_reader, back, 0), return_exceptions=True
        )
        ends.difference_update((back, server_writer))

    loop = asyncio.new_event_loop()
    port = free_port()
    proxy = loop.run_until_complete(asyncio.start_server(forward, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def shut() -> None:
        """Stop listening, and close the connections still open, so that each ends."""
        proxy.close()
        for end in list(ends):
            end.close()
        connections = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if connections:
            await asyncio.wait(connections, timeout=5)

    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
