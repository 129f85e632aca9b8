"""Post/Redirect/Get with a message: a form's 303 names a flash that the next page shows once.

The flash itself is stored (sealed) by `clubfeed.auth.flashes` in the same transaction
as the form's action; only its id travels in the URL, so neither a log line nor the
browser's history ever holds what it says.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from clubfeed.auth import flashes, sessions
from clubfeed.web.pages import redirect
from clubfeed.web.state import write

PARAM = "flash"
_MAX_ID_DIGITS = 18  # a BIGINT; longer is no flash of ours


def redirect_to(url: str, flash_id: int) -> Response:
    """A 303 to `url`, whose page will show the flash `flash_id`."""
    return redirect(f"{url}{'&' if '?' in url else '?'}{urlencode({PARAM: flash_id})}")


async def take(request: Request) -> flashes.Flash | None:
    """The flash this URL names, if it is this session's and not yet shown; it is gone after."""
    raw = request.query_params.get(PARAM, "")
    token = request.cookies.get(sessions.COOKIE)
    if not token or not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_ID_DIGITS:
        return None
    return await write(request, lambda conn: flashes.take(conn, token, int(raw)))


async def notice(request: Request) -> str | None:
    """The text of this URL's notice flash (a banner), if any."""
    flash = await take(request)
    return flash.text if flash is not None and flash.kind == flashes.NOTICE else None
