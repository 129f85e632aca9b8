"""The `clubfeed conform` command: run the checks, print the report card, exit 1 on a failure."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from clubfeed.catalogue import NAMES
from clubfeed.client.options import reader_credentials
from clubfeed.conform import CHECKS, IDS, Finding, conform
from clubfeed.conform.probe import Failed, Probe
from clubfeed.conform.run import Run

_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


@click.command("conform")
@click.argument("base_url")
@reader_credentials
@click.option(
    "--ingest-key",
    envvar="CLUBFEED_INGEST_KEY",
    help=(
        "The business's ingest key (or CLUBFEED_INGEST_KEY): adds the checks that write, "
        "with records of their own that are deleted at the end. Use a test business."
    ),
)
@click.option(
    "--check",
    "only",
    multiple=True,
    type=click.Choice(IDS),
    help="Run only this check (repeat it); all by default.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=1),
    default=10.0,
    show_default=True,
    help="How long the concurrent-commit check writes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def conform_command(
    base_url: str,
    integrator_key: str,
    token: str,
    ingest_key: str | None,
    only: tuple[str, ...],
    seconds: float,
    as_json: bool,
) -> None:
    """Check a server against what a loyalty platform's poller needs (Perkville's list).

    Prints a report card (requirement, result, evidence) and exits 1 if any check
    fails, or if the run's own records (with --ingest-key) could not be written or
    deleted. Checks that need an ingest key, or data the business lacks, are skipped
    and say so.
    """
    if not base_url.startswith(("http://", "https://")):
        raise click.UsageError(
            f"the server's URL must start with http:// or https://: {base_url!r}"
        )
    console = Console(stderr=True)
    probe = Probe(base_url, integrator_key, token, ingest_key)
    run = Run(probe, list(NAMES), seconds)
    try:
        _preflight(probe, base_url)
        with console.status("Starting…") as status:
            report = conform(
                run,
                frozenset(only),
                lambda check: status.update(f"Checking: {check.requirement}…"),
            )
    finally:
        probe.close()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "server": base_url,
                    "passed": report.passed,
                    "checks": [asdict(f) for f in report.findings],
                    "set_up_failed": report.set_up_failed,
                    "left_behind": report.left_behind,
                }
            )
        )
    elif report.findings:
        Console().print(_card(base_url, report.findings))
    if report.set_up_failed:
        console.print(f"Could not write the run's own records: {report.set_up_failed}")
    for left in report.left_behind:
        console.print(f"Could not delete {left}")
    if not report.passed:
        raise SystemExit(1)


def _preflight(probe: Probe, base_url: str) -> None:
    """Stop at once, with one clear message, if the server is out of reach, refuses the
    reader's credentials or is not at that address: every check would fail the same way."""
    try:
        answer = probe.send("GET", "/v1/locations", params={"limit": 1})
    except Failed as exc:
        raise click.ClickException(f"cannot reach the server: {exc}") from exc
    if answer.status_code in (401, 403):
        raise click.ClickException(
            f"the server refused the reader's credentials ({answer.status_code}): "
            "check --integrator-key and --token"
        )
    if answer.status_code != 200:
        raise click.ClickException(
            f"GET /v1/locations answered {answer.status_code}: is {base_url} the server's "
            "address (without /v1)?"
        )


def _card(base_url: str, findings: list[Finding]) -> Table:
    table = Table(title=f"clubfeed conform {base_url}")
    table.add_column("Requirement")
    table.add_column("Result")
    table.add_column("Evidence", overflow="fold")
    for found in findings:
        style = _STYLE[found.result]
        table.add_row(found.requirement, f"[{style}]{found.result}[/]", found.evidence)
    return table


__all__ = ["CHECKS", "conform_command"]
