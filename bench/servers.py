"""The servers under test, each in its own process.

Separate processes keep the client off the servers' GIL and let the benchmark
read each server's memory from /proc.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.client import HOST, BenchError

REPO = Path(__file__).resolve().parent.parent
CLUBFEED = Path(sys.executable).parent / "clubfeed"
TYPICAL_URL_VARIABLE = "BENCH_TYPICAL_DATABASE_URL"
SMALL_URL_VARIABLE = "BENCH_SMALL_DATABASE_URL"


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def memory_mib(self) -> tuple[float, float]:
        """(resident now, resident peak) in MiB, from /proc/<pid>/status."""
        fields: dict[str, float] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields["VmRSS"], fields["VmHWM"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited early:\n{server.log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{server.name} did not start within {timeout:.0f} s; see {server.log}")


@contextmanager
def _running(name: str, command: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, int(command[command.index("--port") + 1]), process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def clubfeed(
    url: str, workdir: Path, tag: str, settings: Mapping[str, str] | None = None
) -> AbstractContextManager[Server]:
    """`clubfeed serve` on a free port; `settings` are CLUBFEED_* variables over the defaults."""
    command = [str(CLUBFEED), "--database-url", url, "serve", "--port", str(free_port())]
    env = {**os.environ, **(settings or {})}
    return _running(f"clubfeed ({tag})", command, env, workdir / f"clubfeed-{tag}.log")


def plain_clubfeed(
    url: str, workdir: Path, tag: str, settings: Mapping[str, str]
) -> AbstractContextManager[Server]:
    """clubfeed's app under a plain uvicorn.Config, without `clubfeed serve`'s edge protocol."""
    command = [sys.executable, "-m", "bench.plain_serve", "--port", str(free_port())]
    env = {**os.environ, **settings, "CLUBFEED_DATABASE_URL": url}
    return _running(f"clubfeed ({tag})", command, env, workdir / f"clubfeed-{tag}.log")


def _uvicorn(factory: str, *options: str) -> list[str]:
    """uvicorn serving the app that `factory` ("module:function") builds, on a free port."""
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, *options]
    return [*command, "--host", HOST, "--port", str(free_port())]


def small_baseline(url: str, workdir: Path) -> AbstractContextManager[Server]:
    """The bare Starlette app of bench/small_app.py, under uvicorn's own httptools protocol."""
    command = _uvicorn("bench.small_app:app_from_env", "--http", "httptools", "--no-access-log")
    env = {**os.environ, SMALL_URL_VARIABLE: url}
    return _running("small baseline", command, env, workdir / "small-baseline.log")


def typical(url: str, workdir: Path) -> AbstractContextManager[Server]:
    """The typical FastAPI + Pydantic + SQLAlchemy ORM app under uvicorn."""
    command = _uvicorn("bench.typical_app:app_from_env")
    env = {**os.environ, TYPICAL_URL_VARIABLE: url}
    return _running("typical app", command, env, workdir / "typical.log")
