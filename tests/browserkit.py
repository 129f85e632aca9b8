"""Driving the console in a real Chromium: Debian's browser, an integrator's loopback
redirect URI, logging in through the form, and screenshots a person can look at.

The browser is always /usr/bin/chromium from Debian's `chromium` package (`make unit`
installs it); the tests never download one, and fail rather than skip without it.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing but loopback: no QUIC, sync, component updates or background fetches.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
CALLBACK_PATH = "/callback"
CONNECTED_PAGE = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Connected</title>"
    b"</head><body><h1>connected</h1><p>The integrator caught the redirect.</p></body></html>"
)


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; a failure (never a skip) when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium package "
            "(`apt-get install chromium`, which `make unit` runs as root). "
            "They never download a browser, so they cannot run without it.",
            pytrace=False,
        )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
    )


def log_in(page: Page, email: str, password: str) -> None:
    """Fill in the login form as a person would and press Log in."""
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()


class Receiver:
    """An integrator's redirect URI on a free loopback port, served from a thread.

    It records the path and query of every request to `uri` and answers 200
    "connected"; anything else (the browser's favicon request) gets a 404, unrecorded.
    """

    def __init__(self) -> None:
        self.caught: queue.Queue[str] = queue.Queue()
        caught = self.caught

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != CALLBACK_PATH:
                    self.send_error(404)
                    return
                caught.put(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(CONNECTED_PAGE)))
                self.end_headers()
                self.wfile.write(CONNECTED_PAGE)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test asserts on what was caught."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{CALLBACK_PATH}"

    def only_redirect(self, timeout: float = 10) -> dict[str, str]:
        """The query of the one redirect caught (each parameter sent once); fails on none or more."""
        path = self.caught.get(timeout=timeout)
        assert self.caught.empty(), f"more than one redirect reached the receiver: {path}, …"
        parsed = parse_qs(urlsplit(path).query, keep_blank_values=True)
        assert all(len(values) == 1 for values in parsed.values()), path
        return {name: values[0] for name, values in parsed.items()}

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class Shots:
    """One test's screenshots, numbered in the order taken: test-output/<test>/<NN>-<page>.png."""

    def __init__(self, test_name: str) -> None:
        self.folder = OUTPUT / re.sub(r"[^\w.-]+", "-", test_name).strip("-")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.taken: list[Path] = []

    def take(self, page: Page, name: str) -> Path:
        """The whole page (not just the viewport), as it is now."""
        expect(page.locator("body")).to_be_visible()
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        return path

    def take_phone(self, page: Page, name: str) -> Path:
        """The page at a phone's width (390×844), then back to the size it had."""
        size = page.viewport_size or DESKTOP
        page.set_viewport_size(PHONE)
        try:
            return self.take(page, f"{name}-phone")
        finally:
            page.set_viewport_size(size)
