"""A Singer tap for clubfeed on the Meltano Singer SDK: one stream per resource of the catalogue.

clubfeed's feed already speaks the SDK's conventions, so the tap only names them: `modified_at`
is the replication key and each incremental query asks for `modified_after` the bookmark
(strictly after: nothing can later commit at or below a `modified_at` already served), pages
follow `next_cursor`, and a tombstone becomes a record with `_sdc_deleted_at`, which is how
Singer targets learn of deletes.

One addition: a finished query moves the bookmark to just before its `consistent_until`, the
point up to which it holds every change. The greatest `modified_at` alone would lag behind it,
and after a complete transfer (which holds no tombstones) it may lie before a delete that
`clubfeed db purge` has since removed, which the server must answer with 410.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import requests
from singer_sdk import RESTStream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError

from clubfeed.catalogue import RESOURCES, Kind, Resource

STRING = {"type": ["string", "null"]}
DATETIME = {"type": ["string", "null"], "format": "date-time"}
# Decimals are served as strings (exact digits), as are references and time zone names.
FIELD_TYPES = {
    Kind.BOOL: {"type": ["boolean", "null"]},
    Kind.DATE: {"type": ["string", "null"], "format": "date"},
    Kind.DATETIME: DATETIME,
}


def record_schema(resource: Resource) -> dict[str, Any]:
    """The stream's JSON schema, from the catalogue; fields are nullable because a tombstone
    carries only `id` and `modified_at`."""
    fields = {field.name: FIELD_TYPES.get(field.kind, STRING) for field in resource.fields}
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            **fields,
            "created_at": DATETIME,
            "modified_at": {"type": "string", "format": "date-time"},
            "extra": {"type": ["object", "null"]},
            "_sdc_deleted_at": DATETIME,
        },
    }


class ResourceStream(RESTStream[str | None]):
    """One resource: a complete transfer when there is no bookmark, else the changes after it."""

    primary_keys = ("id",)
    replication_key = "modified_at"
    next_page_token_jsonpath = "$.next_cursor"
    # Pages do come in `modified_at` order, but a sorted stream lets the SDK bookmark in
    # mid-query (every 10,000 records), and the records of one write share one `modified_at`
    # and span pages: resuming there with `modified_after` would skip the rest of that write.
    # Unsorted, the bookmark moves only once the query is done.
    is_sorted = False

    @property
    def url_base(self) -> str:
        return str(self.config["base_url"]).rstrip("/")

    @property
    def http_headers(self) -> dict[str, str]:
        return {
            **super().http_headers,
            "X-Integrator-Key": self.config["integrator_key"],
            "Authorization": f"Bearer {self.config['token']}",
        }

    def get_url_params(self, context: Any, next_page_token: str | None) -> dict[str, Any]:
        if next_page_token:  # a cursor carries its query, limit included
            return {"cursor": next_page_token}
        params: dict[str, Any] = {"limit": self.config["page_size"]}
        if bookmark := self.get_starting_replication_key_value(context):
            params["modified_after"] = bookmark
        return params

    def get_replication_key_signpost(self, context: Any = None) -> None:
        """No signpost: the SDK would cap the bookmark at the tap's own start time, and then
        re-send every record written between that instant and the query. The server's clock
        already guarantees the bookmark (nothing commits later with an earlier `modified_at`)."""
        return None

    def get_records(self, context: Any) -> Iterable[dict[str, Any]]:
        """The query's records, then the bookmark moved to just before its `consistent_until`.

        `modified_after` that instant asks for exactly what `modified_since=consistent_until`
        would (times are whole microseconds), so nothing is missed and nothing repeats."""
        self._consistent_until: str | None = None
        yield from super().get_records(context)
        if self._consistent_until is not None:
            until = datetime.fromisoformat(self._consistent_until)
            before = (until - timedelta(microseconds=1)).isoformat(timespec="microseconds")
            self.state_manager.increment_state(
                {"modified_at": before}, context=context, replication_key="modified_at"
            )

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        body = response.json()
        self._consistent_until = body["consistent_until"]  # the last page's is the query's
        yield from body["data"]

    def validate_response(self, response: requests.Response) -> None:
        if response.status_code == 410:
            try:
                title = response.json().get("title", "history gone")
            except ValueError:  # not the problem+json clubfeed sends (a proxy's page, say)
                title = "410 Gone"
            raise FatalAPIError(
                f"{self.name}: {title}. clubfeed no longer "
                "holds the history this stream's bookmark was built from: clear the stream's "
                "state and its destination table, then sync again (a complete transfer)."
            )
        super().validate_response(response)

    def post_process(self, row: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if row.pop("deleted", False):
            row["_sdc_deleted_at"] = row["modified_at"]
        return row


class TapClubfeed(Tap):
    """tap-clubfeed: every resource a business shares with an integrator."""

    name = "tap-clubfeed"
    config_jsonschema = th.PropertiesList(
        th.Property(
            "base_url", th.StringType, required=True, description="e.g. https://feed.example.com"
        ),
        th.Property("integrator_key", th.StringType, required=True, secret=True),
        th.Property(
            "token",
            th.StringType,
            required=True,
            secret=True,
            description="The business's shared secret, or an OAuth access token it granted",
        ),
        th.Property("page_size", th.IntegerType, default=10_000, description="1–10,000"),
    ).to_dict()

    def discover_streams(self) -> list[ResourceStream]:
        return [
            ResourceStream(self, name=r.table, schema=record_schema(r), path=f"/v1/{r.name}")
            for r in RESOURCES
        ]


if __name__ == "__main__":
    TapClubfeed.cli()
