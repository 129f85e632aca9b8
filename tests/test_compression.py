"""JSON answers compressed as Accept-Encoding asks (zstd, br, gzip), through real HTTP.

The bytes on the wire are read raw and decompressed here with each codec's own
library, so a test fails if the server mislabels, truncates or skips compression.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import brotli
import httpx
import pytest
import zstandard
from sqlalchemy import Engine

from clubfeed.settings import Settings
from clubfeed.web import compression
from clubfeed.web.compression import MIN_BYTES, choose, parse_codings
from tests.conftest import Server
from tests.factories import Api, record

DECODERS = {
    "zstd": lambda raw: zstandard.ZstdDecompressor().decompressobj().decompress(raw),
    "br": brotli.decompress,
    "gzip": gzip.decompress,
}


def _raw(api: Api, path: str, accept: str | None, **headers: str) -> httpx.Response:
    """The response with its body exactly as sent (not decoded by httpx)."""
    sent = {**api.tenant.read_headers, **headers}
    sent["Accept-Encoding"] = accept if accept is not None else "identity"
    request = api.client.build_request("GET", path, headers=sent)
    response = api.client.send(request, stream=True)
    response._content = b"".join(response.iter_raw())
    response.close()
    return response


@pytest.fixture
def page_path(api: Api) -> str:
    """A page of 60 users: about 20 KB of JSON."""
    users = [record("users", f"u{i:03d}") for i in range(60)]
    assert api.batch("users", upsert=users).status_code == 200
    return "/v1/users?limit=60"


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_a_page_comes_compressed_in_the_coding_asked(api: Api, page_path: str, coding: str) -> None:
    plain = _raw(api, page_path, None)
    assert "content-encoding" not in plain.headers and len(plain.content) > 10_000
    packed = _raw(api, page_path, coding)
    assert packed.status_code == 200
    assert packed.headers["content-encoding"] == coding
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) == len(packed.content)
    assert len(packed.content) * 4 < len(plain.content)
    assert DECODERS[coding](packed.content) == plain.content


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip;q=1.0, zstd;q=0.5", "gzip"),
        ("br;q=0.9, gzip;q=0.1", "br"),
        ("*", "zstd"),
        ("*;q=0.5, zstd;q=0", "br"),
        ("zstd;q=0, br;q=0, gzip;q=0", None),
        ("identity", None),
        ("deflate, compress", None),
    ],
)
def test_the_coding_is_the_one_the_client_weighs_highest(
    api: Api, page_path: str, accept: str, coding: str | None
) -> None:
    assert _raw(api, page_path, accept).headers.get("content-encoding") == coding
    assert choose(accept, ("zstd", "br", "gzip")) == coding


def test_small_answers_and_problems_go_as_they_are_or_compressed_by_size(api: Api) -> None:
    assert api.put("users", "u1", record("users", "u1")).status_code == 201
    small = _raw(api, "/v1/users/u1", "zstd")
    assert len(small.content) < MIN_BYTES and "content-encoding" not in small.headers
    bad = [record("users", f"bad-{i}", home_location_id="nowhere") for i in range(40)]
    refused = api.client.post(
        "/v1/users/batch",
        json={"upsert": bad},
        headers={**api.tenant.write_headers, "Accept-Encoding": "gzip"},
    )
    assert refused.status_code == 422
    assert refused.headers["content-encoding"] == "gzip"
    assert refused.headers["content-type"] == "application/problem+json"
    assert len(refused.json()["errors"]) == 40


def test_a_compressed_record_keeps_a_strong_etag_of_its_own(api: Api) -> None:
    big = record("users", "big", extra={"note": "x" * 3_000})
    assert api.put("users", "big", big).status_code == 201
    plain = _raw(api, "/v1/users/big", None)
    packed = _raw(api, "/v1/users/big", "zstd")
    tag = plain.headers["etag"]
    assert packed.headers["etag"] == tag[:-1] + '-zstd"'
    for sent in (tag, packed.headers["etag"], f"W/{packed.headers['etag']}"):
        again = _raw(api, "/v1/users/big", "zstd", **{"If-None-Match": sent})
        assert again.status_code == 304 and again.content == b""
        # The 304 names the representation the client holds, and what it varies by.
        assert again.headers["etag"] == sent.removeprefix("W/")
        assert again.headers["vary"] == "Accept-Encoding"


def test_head_names_the_length_the_get_would_send(api: Api, page_path: str) -> None:
    packed = _raw(api, page_path, "zstd")
    head = api.client.head(
        page_path, headers={**api.tenant.read_headers, "Accept-Encoding": "zstd"}
    )
    assert head.content == b"" and head.headers["content-encoding"] == "zstd"
    assert head.headers["content-length"] == packed.headers["content-length"]


@pytest.fixture
def uncompressed(db: Engine, db_url: str) -> Iterator[httpx.Client]:
    with (
        Server(Settings(database_url=db_url, compression="off")) as running,
        httpx.Client(base_url=running.base_url) as client,
    ):
        yield client


def test_compression_off_sends_every_body_as_it_is(
    api: Api, page_path: str, uncompressed: httpx.Client
) -> None:
    raw = _raw(Api(uncompressed, api.tenant), page_path, "zstd, br, gzip")
    assert raw.status_code == 200 and "content-encoding" not in raw.headers
    assert "vary" not in raw.headers


@pytest.mark.parametrize("value", ["lzma", "zstd,deflate", ",", "gzip;q=1"])
def test_an_unknown_coding_in_the_setting_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="CLUBFEED_COMPRESSION"):
        parse_codings(value)


def test_zstd_compresses_from_many_threads_at_once() -> None:
    """Large bodies are compressed in the thread pool: a compressor shared across threads
    crashed the process, so each thread must have its own."""
    body = json.dumps([record("users", f"u{i}") for i in range(2_000)]).encode()
    with ThreadPoolExecutor(8) as pool:
        packed = list(pool.map(lambda _: compression._compress_zstd(body), range(64)))
    assert all(DECODERS["zstd"](p) == body for p in packed)
