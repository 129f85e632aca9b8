"""A typed client of clubfeed's API, sync (`Client`) and async (`AsyncClient`), over httpx.

`pull(resource, since)` yields a resource's records and tombstones since a bookmark (or
all live records, with no bookmark), then the Bookmark to pull from next time; it pages,
retries on 429/503 and connection errors (honouring Retry-After), refreshes an OAuth
grant's token with one refresh in flight, and asks for compressed pages. On 410 it raises
HistoryGone: pull again with no bookmark and let that replace your copy. `summary()` and
`verify()` compare a copy with the server by checksum, without a transfer.

    from clubfeed.client import Bookmark, Client, Tombstone

    with Client("http://127.0.0.1:8000", integrator_key=KEY, token=SECRET) as client:
        for item in client.pull("checkins", since=saved):
            match item:
                case Tombstone():
                    copy.pop(item.id, None)
                case Bookmark():
                    saved = item
                case _:
                    copy[item.id] = item

It imports no part of the server (no web framework, no SQLAlchemy): only httpx, msgspec,
and the catalogue the record types are made from.
"""

from clubfeed.client.clients import AsyncClient, Client, Item
from clubfeed.client.errors import AuthError, ClientError, HistoryGone
from clubfeed.client.oauth import OAuthGrant
from clubfeed.client.pages import Bookmark, Part, Summary, Verification, stamp
from clubfeed.client.records import RECORD_TYPES, Record, Tombstone
from clubfeed.client.retry import Retry

__all__ = [
    "RECORD_TYPES",
    "AsyncClient",
    "AuthError",
    "Bookmark",
    "Client",
    "ClientError",
    "HistoryGone",
    "Item",
    "OAuthGrant",
    "Part",
    "Record",
    "Retry",
    "Summary",
    "Tombstone",
    "Verification",
    "stamp",
]
