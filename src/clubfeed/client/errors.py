"""What a call can fail with, each carrying the server's problem+json where it sent one."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """The server refused a request, or kept failing after every retry.

    `status` is the last HTTP status (None when no answer came), `problem` the RFC 9457
    object the server sent ({} if none).
    """

    def __init__(self, message: str, status: int | None = None, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = problem or {}


class AuthError(ClientError):
    """401 or 403: the integrator key, the secret or the token is not accepted."""


class HistoryGone(ClientError):
    """410: the server no longer holds the history a bookmark or cursor was built from
    (purged, or the server was restored to an earlier state).

    Transfer the resource again: `pull(resource)` with no `since`, and let what it yields
    replace your copy (what it does not yield, the server no longer has).
    """

    def __init__(self, resource: str, status: int, problem: Any) -> None:
        kind = (problem or {}).get("type", "")
        super().__init__(
            f"{resource}: the server no longer holds the history this pull started from "
            f"({kind or '410 Gone'}); transfer it again with pull({resource!r}) and no since",
            status,
            problem,
        )
        self.resource = resource
