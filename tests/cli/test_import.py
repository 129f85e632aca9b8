"""`clubfeed import`, in-process, against real SQLite files and PostgreSQL: read back over HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.clikit import assert_clean_error, cells, clubfeed, one_json_line
from tests.factories import Api, record

SUMMARY_COLUMNS = ("lines", "created", "updated", "unchanged", "deleted", "failed batches")


def summary(stderr: str) -> dict[str, int]:
    """The import's summary table as {column: number}."""
    lines = stderr.splitlines()
    for at, line in enumerate(lines):
        header = cells(line)
        if header and header[0] == "lines" and "created" in header:
            for row in lines[at + 1 :]:
                values = [cell.replace(",", "") for cell in cells(row)]
                if values and all(value.isdigit() for value in values):
                    return dict(zip(header, map(int, values), strict=True))
    raise AssertionError(f"no summary table in:\n{stderr}")


def failures(stderr: str) -> list[tuple[int, str]]:
    """The `line N: problem` reports, in order."""
    return [(int(n), detail) for n, detail in re.findall(r"^line (\d+): (.*)$", stderr, re.M)]


def counts(**nonzero: int) -> dict[str, int]:
    """A full summary row: the given counts (`failed_batches=` for the last), zero elsewhere."""
    row = dict.fromkeys(SUMMARY_COLUMNS, 0)
    for name, value in nonzero.items():
        row[name.replace("_", " ")] = value
    return row


def write_ndjson(path: Path, lines: Sequence[dict[str, Any] | str]) -> Path:
    """One line per item: dicts as JSON, strings written as they are (blank or broken lines)."""
    path.write_text(
        "".join((json.dumps(item) if isinstance(item, dict) else item) + "\n" for item in lines),
        encoding="utf-8",
    )
    return path


def run_import(api: Api, cli_url: str, resource: str, path: Path, *options: str) -> Result:
    return clubfeed(
        cli_url,
        "import",
        resource,
        str(path),
        "--business",
        str(api.tenant.business.id),
        *options,
    )


def seed_places(api: Api) -> dict[str, str]:
    """A location and a user over HTTP, for check-ins to reference."""
    assert api.put("locations", "loc", record("locations", "loc")).status_code == 201
    assert api.put("users", "u", record("users", "u")).status_code == 201
    return {"locations": "loc", "users": "u"}


def ids(api: Api, resource: str) -> list[str]:
    return sorted(r["id"] for r in api.read_all(f"/v1/{resource}"))


def test_import_loads_every_batch_and_summarises(cli_url: str, api: Api, tmp_path: Path) -> None:
    write_ndjson(
        tmp_path / "locations.ndjson",
        [record("locations", "tokyo", timezone="Asia/Tokyo"), record("locations", "ny")],
    )
    write_ndjson(tmp_path / "users.ndjson", [record("users", f"u{i}") for i in range(3)])
    checkins = [
        record(
            "checkins",
            f"c{i}",
            {"locations": "tokyo" if i % 2 else "ny", "users": f"u{i % 3}"},
            checked_in_at="2026-01-15T00:00:00Z",
        )
        for i in range(7)
    ]
    write_ndjson(tmp_path / "checkins.ndjson", checkins)

    for resource, created in (("locations", 2), ("users", 3)):
        result = run_import(api, cli_url, resource, tmp_path / f"{resource}.ndjson")
        assert result.exit_code == 0, result.stderr
        assert summary(result.stderr) == counts(lines=created, created=created)
    result = run_import(api, cli_url, "checkins", tmp_path / "checkins.ndjson", "--batch-size", "3")

    assert result.exit_code == 0, result.stderr
    assert "importing checkins" in result.stderr
    assert summary(result.stderr) == counts(lines=7, created=7)
    assert failures(result.stderr) == []
    stored = {r["id"]: r for r in api.read_all("/v1/checkins")}
    assert sorted(stored) == [f"c{i}" for i in range(7)]
    assert stored["c1"]["location_id"] == "tokyo" and stored["c1"]["user_id"] == "u1"
    # Event times come back in the location's own offset.
    instant = datetime(2026, 1, 15, tzinfo=UTC)
    for checkin, hours in (("c1", 9), ("c2", -5)):
        local = datetime.fromisoformat(stored[checkin]["checked_in_at"])
        assert local == instant and local.utcoffset() == timedelta(hours=hours)
    assert stored["c2"]["extra"] == checkins[2]["extra"]


def test_a_bad_line_fails_only_its_own_batch(cli_url: str, api: Api, tmp_path: Path) -> None:
    refs = seed_places(api)
    lines: list[dict[str, Any] | str] = [record("checkins", f"c{n}", refs) for n in range(1, 9)]
    lines[4] = record("checkins", "c5", refs, checked_in_at="yesterday")
    path = write_ndjson(tmp_path / "checkins.ndjson", lines)

    result = run_import(api, cli_url, "checkins", path, "--batch-size", "3")

    assert result.exit_code == 1
    assert [line for line, _ in failures(result.stderr)] == [5]
    assert "checked_in_at" in failures(result.stderr)[0][1]
    assert summary(result.stderr) == counts(lines=8, created=5, failed_batches=1)
    assert ids(api, "checkins") == ["c1", "c2", "c3", "c7", "c8"]


def test_default_batches_hold_10000_lines(cli_url: str, api: Api, tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [
        {"id": f"l{n}", "name": "x", "timezone": "UTC"} for n in range(1, 10_003)
    ]
    lines[10_000] = {"id": "l10001", "name": "x", "timezone": "Mars/Olympus_Mons"}
    path = write_ndjson(tmp_path / "locations.ndjson", lines)

    result = run_import(api, cli_url, "locations", path)

    assert result.exit_code == 1
    assert [line for line, _ in failures(result.stderr)] == [10_001]
    assert summary(result.stderr) == counts(lines=10_002, created=10_000, failed_batches=1)
    assert len(ids(api, "locations")) == 10_000
    for too_big in ("0", "10001"):
        rejected = run_import(api, cli_url, "locations", path, "--batch-size", too_big)
        assert rejected.exit_code == 2 and "--batch-size" in rejected.stderr


def test_missing_references_are_reported_by_line(cli_url: str, api: Api, tmp_path: Path) -> None:
    refs = seed_places(api)
    path = write_ndjson(
        tmp_path / "checkins.ndjson",
        [
            record("checkins", "c1", refs),
            record("checkins", "c2", {**refs, "users": "ghost"}),
            record("checkins", "c3", refs),
            record("checkins", "c4", {**refs, "locations": "nowhere"}),
        ],
    )

    result = run_import(api, cli_url, "checkins", path)

    assert result.exit_code == 1
    reported = failures(result.stderr)
    assert [line for line, _ in reported] == [2, 4]
    assert "'ghost'" in reported[0][1] and "'nowhere'" in reported[1][1]
    assert summary(result.stderr) == counts(lines=4, failed_batches=1)
    assert ids(api, "checkins") == []


def test_blank_lines_are_skipped_and_lines_keep_their_numbers(
    cli_url: str, api: Api, tmp_path: Path
) -> None:
    a, b, c = (json.dumps(record("locations", name)) for name in "abc")
    path = tmp_path / "locations.ndjson"
    # A byte-order mark, blank and whitespace-only lines, CRLF endings, no final newline.
    path.write_bytes(f"\ufeff{a}\n\n   \n{b}\r\n\t\r\n{c}".encode())

    result = run_import(api, cli_url, "locations", path)

    assert result.exit_code == 0, result.stderr
    assert summary(result.stderr) == counts(lines=3, created=3)
    assert ids(api, "locations") == ["a", "b", "c"]

    broken = write_ndjson(tmp_path / "broken.ndjson", [record("locations", "d"), "", "  ", "{"])
    result = run_import(api, cli_url, "locations", broken)
    assert result.exit_code == 1
    assert [line for line, _ in failures(result.stderr)] == [4]


def test_invalid_json_lines_are_reported_by_number(cli_url: str, api: Api, tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "locations.ndjson",
        [record("locations", "a"), '{"id": "b", "name": ', record("locations", "c"), "[1, 2]"],
    )

    result = run_import(api, cli_url, "locations", path)

    assert result.exit_code == 1
    reported = failures(result.stderr)
    assert [line for line, _ in reported] == [2, 4]
    assert "not valid JSON" in reported[0][1]
    assert summary(result.stderr) == counts(lines=4, failed_batches=1)
    assert ids(api, "locations") == []


def test_tombstone_lines_delete(cli_url: str, api: Api, tmp_path: Path) -> None:
    """Deleting an id never sent is a no-op; a bad line fails its batch only."""
    write_ndjson(tmp_path / "live.ndjson", [record("locations", name) for name in "abc"])
    assert run_import(api, cli_url, "locations", tmp_path / "live.ndjson").exit_code == 0
    path = write_ndjson(
        tmp_path / "deletes.ndjson",
        [
            {"id": "b", "deleted": True},
            {"id": "never-sent", "deleted": True},
            # Error details quote the file's data; markup-like text must not break the output.
            record("locations", "d", timezone="[/x] never"),
        ],
    )

    result = run_import(api, cli_url, "locations", path, "--batch-size", "1")

    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    [(line, detail)] = failures(result.stderr)
    assert line == 3 and detail.startswith("'[/x] never' is not an IANA time zone")
    assert summary(result.stderr) == counts(lines=3, deleted=1, unchanged=1, failed_batches=1)
    assert ids(api, "locations") == ["a", "c"]
    assert api.get("/v1/locations/b").status_code == 404
    (tombstone,) = api.get("/v1/locations", params={"ids": "b"}).json()["data"]
    assert tombstone["id"] == "b" and tombstone["deleted"] is True


def test_reimporting_the_same_file_changes_nothing(cli_url: str, api: Api, tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "locations.ndjson", [record("locations", f"l{i}") for i in range(5)]
    )
    assert run_import(api, cli_url, "locations", path).exit_code == 0
    before = api.read_all("/v1/locations")

    again = run_import(api, cli_url, "locations", path, "--batch-size", "2")

    assert again.exit_code == 0, again.stderr
    assert summary(again.stderr) == counts(lines=5, unchanged=5)
    assert api.read_all("/v1/locations") == before
    changed = write_ndjson(
        tmp_path / "changed.ndjson",
        [
            record("locations", f"l{i}", name="Renamed" if i == 3 else f"name of l{i}")
            for i in range(5)
        ],
    )
    result = run_import(api, cli_url, "locations", changed)
    assert summary(result.stderr) == counts(lines=5, updated=1, unchanged=4)


def test_unknown_resource_or_business_fails_clearly(cli_url: str, api: Api, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "locations.ndjson", [record("locations", "a")])

    unknown_resource = run_import(api, cli_url, "gyms", path)
    assert_clean_error(unknown_resource, "Unknown resource 'gyms'", "checkins", "locations")
    unknown_business = clubfeed(
        cli_url, "import", "locations", str(path), "--business", "987654321"
    )
    assert_clean_error(unknown_business, "no business 987654321", "`clubfeed business create`")
    missing_file = run_import(api, cli_url, "locations", tmp_path / "nope.ndjson")
    assert missing_file.exit_code == 2 and "does not exist" in missing_file.stderr
    assert ids(api, "locations") == []


def test_import_json_prints_the_counts_and_failing_lines(
    cli_url: str, api: Api, tmp_path: Path
) -> None:
    path = write_ndjson(
        tmp_path / "locations.ndjson",
        [record("locations", "a"), record("locations", "b", timezone="Mars/Olympus_Mons")],
    )
    write_ndjson(tmp_path / "good.ndjson", [record("locations", "a")])

    bad = run_import(api, cli_url, "locations", path, "--batch-size", "1", "--json")
    good = run_import(api, cli_url, "locations", tmp_path / "good.ndjson", "--json")

    assert bad.exit_code == 1 and bad.stderr == ""
    report = json.loads(bad.stdout)
    assert report == {
        "resource": "locations",
        "file": str(path),
        "lines": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "batches_failed": 1,
        "failures": [{"line": 2, "problem": report["failures"][0]["problem"]}],
    }
    assert report["failures"][0]["problem"].startswith("'Mars/Olympus_Mons' is not an IANA")
    assert one_json_line(good)["unchanged"] == 1 and good.stderr == ""
    assert ids(api, "locations") == ["a"]


def test_a_bad_delete_line_is_reported_by_its_own_number(
    cli_url: str, api: Api, tmp_path: Path
) -> None:
    """Upserts and deletes are numbered apart in a batch; each failure maps to its own line."""
    path = write_ndjson(
        tmp_path / "users.ndjson",
        [
            record("users", "u1"),
            {"id": "gone", "deleted": True},
            record("users", "u2"),
            {"id": "gone", "deleted": True},
            {"id": "u1", "deleted": True},
        ],
    )

    result = run_import(api, cli_url, "users", path)

    assert result.exit_code == 1
    assert failures(result.stderr) == [
        (4, "Id 'gone' is deleted twice."),
        (5, "Id 'u1' is both upserted and deleted."),
    ]
    assert ids(api, "users") == []
