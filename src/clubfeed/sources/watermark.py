"""When a source's modified stamps are safe to pass: the rule that keeps late commits.

A poll reads every row stamped after the watermark. A transaction can stamp a row and
commit it later, so a row stamped below what a poll read may still arrive; the
watermark may only pass a stamp once no transaction that could still commit it is open.

The rule compares stamps only with stamps, and the source's clock only with itself:

- After a poll reads stamps up to M, the source's clock reads T. A transaction still
  uncommitted then, that stamps at most M, began by T + 2 × clock_margin: its stamps lie
  at most a margin before its start, and M, committed by T, at most a margin ahead.
- So once the oldest open transaction began after T + 2 × margin, every row stamped up
  to M is committed, and the next poll (which starts from the old watermark) reads it.
  Only then does the watermark move to M.

A constant offset between the stamps and the source's clock (a time zone) cancels out,
and integer stamps (a version counter) work the same. Where the account cannot see
other sessions' transactions, a transaction is assumed open for `fixed_lag` after any
moment: longer ones are caught by the next reconcile instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clubfeed.sources.database import Guard


@dataclass
class Watermark:
    """A resource's safe stamp (`safe`: every row stamped at or below it is in clubfeed),
    and the reads not yet safe, as (source clock after the read, greatest stamp read)."""

    safe: Any
    margin_s: float
    fixed_lag_s: float
    pending: list[tuple[float, Any]] = field(default_factory=list)

    def horizon(self, guard: Guard) -> float:
        """The start of the oldest transaction that may be open, on the source's clock."""
        oldest = (
            guard.now_s if guard.oldest_open_s is None else min(guard.oldest_open_s, guard.now_s)
        )
        if not guard.visible:
            oldest = min(oldest, guard.now_s - self.fixed_lag_s)
        return oldest

    def settled(self, guard: Guard) -> Any:
        """The stamp the watermark may move to after the next read, measured by `guard`
        before it (the current watermark if none); drops the reads that settles."""
        horizon = self.horizon(guard)
        safe = self.safe
        keep = []
        for read_at, stamp in self.pending:
            if read_at + 2 * self.margin_s < horizon:
                if safe is None or stamp > safe:
                    safe = stamp
            else:
                keep.append((read_at, stamp))
        self.pending = keep
        return safe

    def read(self, read_at: float, greatest: Any) -> None:
        """Note a poll's greatest stamp read, with the source clock read after it."""
        self.pending.append((read_at, greatest))
