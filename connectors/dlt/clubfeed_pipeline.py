"""clubfeed as a dlt `rest_api` source: every resource, merged on `id`, deletes applied.

The contract maps onto dlt's own conventions, so the source is configuration only:
- `next_cursor` is dlt's JSON cursor paginator, sent back as `cursor` with the first
  page's parameters (which the server accepts);
- the bookmark is dlt's `incremental`, sent as `modified_after`. Its cursor is not
  `modified_at` but the instant just before the page's `consistent_until`, which a
  response hook adds to each record as `_clubfeed_seen_until` (kept in the tables, as
  dlt keeps `_dlt_load_id`: the bookmark of the page that brought the row):
  `modified_after` that instant asks for exactly what `modified_since` the
  `consistent_until` would (times are whole microseconds). The greatest `modified_at`
  would lag behind, and after a complete transfer (which holds no tombstones) could lie
  before a delete that `clubfeed db purge` has since removed, which the server must
  answer with 410. dlt commits the bookmark only when a run's extract has finished,
  i.e. after the last page (`next_cursor` null), never mid-query. The first run has no
  bookmark, so dlt drops the parameter and the run is a complete transfer;
- `modified_after` is strictly after, so the range is `open` on dlt's side as well:
  dlt then keeps no per-id boundary hashes in its state (a whole page shares one
  bookmark) and filters only records equal to the bookmark, which the server never
  sends;
- a tombstone `{"id", "deleted": true, "modified_at"}` merges on `id` and the
  `hard_delete` hint on `deleted` removes the row.

Run it as a script (credentials from `.dlt/secrets.toml` or the environment, see
README.md), or import `clubfeed` and `sync` into your own pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.extract import DltResource, DltSource
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.sources.helpers.rest_client.client import HTTPError
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources
from requests import Response

from clubfeed.catalogue import NAMES

RESOURCES = NAMES  # from clubfeed's catalogue, so a new resource needs no change here
SEEN_UNTIL = "_clubfeed_seen_until"


def _mark_page(response: Response, *args: Any, **kwargs: Any) -> Response:
    """Give each record of a page the bookmark its query allows, as dlt's docs show a
    response hook rewriting a page: the instant just before its `consistent_until`."""
    page = response.json()
    until = datetime.fromisoformat(page["consistent_until"]) - timedelta(microseconds=1)
    seen_until = until.isoformat(timespec="microseconds")
    for row in page["data"]:
        row[SEEN_UNTIL] = seen_until
    response._content = json.dumps(page).encode()
    return response


def rest_api_config(
    base_url: str, integrator_key: str, token: str, page_size: int = 10_000
) -> RESTAPIConfig:
    """The whole connector: one endpoint per resource, the contract in the defaults."""
    return {
        "client": {
            "base_url": f"{base_url.rstrip('/')}/v1/",
            "headers": {"X-Integrator-Key": integrator_key},
            "auth": {"type": "bearer", "token": token},
            "paginator": {
                "type": "cursor",
                "cursor_path": "next_cursor",
                "cursor_param": "cursor",
            },
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "columns": {
                "deleted": {"data_type": "bool", "hard_delete": True},
                # Whatever the POS passes through, kept as one JSON value, not unnested.
                "extra": {"data_type": "json"},
            },
            "endpoint": {
                "data_selector": "data",
                "response_actions": [{"status_code": 200, "action": _mark_page}],
                "params": {
                    "limit": page_size,
                    "modified_after": {
                        "type": "incremental",
                        "cursor_path": SEEN_UNTIL,
                        "range_start": "open",
                    },
                },
            },
        },
        "resources": [{"name": name, "endpoint": {"path": name}} for name in RESOURCES],
    }


@dlt.source(name="clubfeed", section="clubfeed")
def clubfeed(
    base_url: str = dlt.config.value,
    integrator_key: str = dlt.secrets.value,
    token: str = dlt.secrets.value,
    page_size: int = 10_000,
) -> Iterable[DltResource]:
    """A business's 12 resources; `token` is its shared secret or an OAuth access token."""
    return rest_api_resources(rest_api_config(base_url, integrator_key, token, page_size))


def sync(pipeline: dlt.Pipeline, make_source: Callable[[], DltSource]) -> LoadInfo:
    """Run a fresh source into `pipeline`; on 410 Gone, transfer every resource afresh.

    410 means the server no longer holds the history a bookmark was built from
    (tombstones purged, or a restore rewound it). dlt's `drop_sources` refresh drops the
    tables and bookmarks, so the retry is a complete transfer that replaces the copy.
    """
    try:
        return pipeline.run(make_source())
    except PipelineStepFailed as failed:
        if not _gone(failed):
            raise
    return pipeline.run(make_source(), refresh="drop_sources")


def _gone(error: BaseException | None) -> bool:
    """Whether a 410 answer lies under dlt's wrapping (step failed ← extraction ← HTTP)."""
    while error is not None:
        if isinstance(error, HTTPError) and getattr(error.response, "status_code", None) == 410:
            return True
        error = error.__cause__
    return False


if __name__ == "__main__":
    # Into ./clubfeed_copy.duckdb, schema `clubfeed` (a file named like the schema would
    # make DuckDB's names ambiguous).
    copy = dlt.pipeline(
        pipeline_name="clubfeed_copy", destination="duckdb", dataset_name="clubfeed"
    )
    print(sync(copy, clubfeed))
