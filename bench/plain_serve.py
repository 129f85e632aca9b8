"""`python -m bench.plain_serve --port N`: clubfeed's app under a plain `uvicorn.Config`.

The control for the cost of the edge protocol: everything as `clubfeed serve` does it
(settings, logs, metrics, the app factory, one worker, uvicorn's httptools protocol and
loop) except `web/serving.py`'s EdgeConfig, so no head deadline, head-size cap, connection
limit or shutdown grace. The database URL comes from CLUBFEED_DATABASE_URL.
"""

from __future__ import annotations

import argparse

import uvicorn

from bench.client import HOST
from clubfeed.settings import Settings
from clubfeed.web import serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_serve", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings.from_env()
    logging_options = serving.prepare(settings, workers=1)
    config = uvicorn.Config(
        serving.FACTORY,
        factory=True,
        host=HOST,
        port=args.port,
        http="httptools",
        log_level="info",
        forwarded_allow_ips="127.0.0.1",
        timeout_keep_alive=settings.keepalive_timeout_s,
        **logging_options,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
