"""The `clubfeed` command's entry point, importable with the client alone installed.

The server's commands (`clubfeed.cli`) need `clubfeed[server]`; with only the base
(the client) installed, the command says so instead of failing with a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from clubfeed.cli import main as server_main
    except ModuleNotFoundError as exc:
        sys.stderr.write(
            f"clubfeed: this command needs the server's dependencies ({exc.name} is not "
            "installed): pip install 'clubfeed[server]'\n"
        )
        raise SystemExit(1) from None
    server_main()
