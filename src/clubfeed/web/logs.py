"""Logs as one stream of lines: JSON for machines (`CLUBFEED_LOG_FORMAT=json`) or text for people.

Code logs through the standard library, as uvicorn does, so a process prints nothing
until its entry point calls `configure` (tests and benchmarks stay quiet), and uvicorn's
own lines go through the same formatter as ours. structlog is only that formatter: its
ProcessorFormatter renders every record, adding the request id bound for the request
(a contextvar) and any `extra` fields, and renders exceptions as plain tracebacks,
never with local variables, which would hold credentials.

The one line per request is the exception, in JSON: the standard library's record and
structlog's formatter cost about 25 µs a line, so `access` renders the same keys itself
(about 5 µs) and writes them through the same handler, under its lock.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from structlog.types import EventDict

from clubfeed.settings import Settings

FORMATS = ("json", "console")
ACCESS = logging.getLogger("clubfeed.access")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# The `extra` fields a line may carry: uvicorn's records bring others (its colored message).
FIELDS = ("method", "route", "status", "duration_ms", "client", "integrator_id", "business_id")


def check(settings: Settings) -> None:
    if settings.log_format not in FORMATS:
        raise ValueError(
            f"CLUBFEED_LOG_FORMAT is {settings.log_format!r}; use one of {', '.join(FORMATS)}."
        )


def _json(event: dict[str, Any], **_options: Any) -> str:
    return msgspec.json.encode(event, enc_hook=str).decode()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _stamp(_logger: Any, _name: str, event: EventDict) -> EventDict:
    event["timestamp"] = _now()
    return event


class _JsonLines:
    """Writes access lines as the JSON formatter would, without a LogRecord."""

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self.handler = handler

    def write(self, level: str, fields: dict[str, Any]) -> None:
        event = {
            "event": "request",
            **structlog.contextvars.get_contextvars(),
            "level": level,
            "logger": ACCESS.name,
            "timestamp": _now(),
            **fields,
        }
        line = _json(event) + "\n"
        with self.handler.lock:  # type: ignore[union-attr]
            self.handler.stream.write(line)
            self.handler.stream.flush()


_json_lines: _JsonLines | None = None


def configure(settings: Settings) -> None:
    """Send every log record of this process to stderr in the configured format."""
    global _json_lines
    check(settings)
    renderer: structlog.types.Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json)
        finish: list[structlog.types.Processor] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        finish = []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _stamp,
            structlog.stdlib.ExtraAdder(allow=FIELDS),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    _json_lines = _JsonLines(handler) if settings.log_format == "json" else None
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # Requests are logged by web.observe, with a request id and no query string.
    logging.getLogger("uvicorn.access").disabled = True
    # serve reads the schema's revision through Alembic, which announces its dialect.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def access(fields: dict[str, Any], *, status: int) -> None:
    """The one line a request gets: server errors as errors, everything else as info."""
    level = logging.ERROR if status >= 500 else logging.INFO
    if _json_lines is not None and ACCESS.isEnabledFor(level):
        _json_lines.write(logging.getLevelName(level).lower(), fields)
    else:
        ACCESS.log(level, "request", extra=fields)
