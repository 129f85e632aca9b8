"""Loading the data set through the HTTP ingest API; the check-in batches give the ingest rate."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench import dataset
from bench.client import Http
from bench.databases import Credentials


@dataclass(frozen=True)
class IngestResult:
    records: int
    seconds: float
    batch_ms: list[float]

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def batch_p50_ms(self) -> float:
        return statistics.median(self.batch_ms)

    def tenth_p50_ms(self, last: bool) -> float:
        """p50 of the first or last tenth of the batches: a rising cost shows as a gap."""
        size = max(len(self.batch_ms) // 10, 1)
        return statistics.median(self.batch_ms[-size:] if last else self.batch_ms[:size])


def _send(http: Http, batch: dataset.Batch, credentials: Credentials) -> float:
    headers = {
        "Authorization": f"Bearer {credentials.ingest_key}",
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    http.request("POST", f"/v1/{batch.resource}/batch", headers, batch.body)
    return time.perf_counter() - started


def load(
    port: int,
    tenants: tuple[dataset.Tenant, ...],
    credentials: dict[str, Credentials],
    console: Console,
) -> IngestResult:
    """Write every tenant's data in 10,000-record batches; time only the check-in requests.

    Bodies are encoded before each request's clock starts, as a POS would have them ready.
    """
    http = Http(port)
    total = sum(t.checkins for t in tenants)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            refs = progress.add_task("locations, users, memberships", total=len(tenants), rate="")
            for tenant in tenants:
                for batch in dataset.reference_batches(tenant):
                    _send(http, batch, credentials[tenant.name])
                progress.advance(refs)
            task = progress.add_task("check-ins via POST /batch", total=total, rate="")
            spent = 0.0
            batch_ms: list[float] = []
            done = 0
            for batch in dataset.checkin_batches(tenants):
                seconds = _send(http, batch, credentials[batch.tenant])
                spent += seconds
                batch_ms.append(seconds * 1000)
                done += batch.records
                progress.update(task, advance=batch.records, rate=f"{done / spent:,.0f} rec/s")
    finally:
        http.close()
    return IngestResult(done, spent, batch_ms)
