"""A figure with its goal, and whether it was met: the unit every report's target table shows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    measured: float
    goal: float
    at_most: bool
    unit: str

    @property
    def met(self) -> bool:
        return self.measured <= self.goal if self.at_most else self.measured >= self.goal

    def text(self, value: float) -> str:
        if self.unit == "×":
            return f"{value:,.2f}×"
        if self.unit == "%":
            return f"{value:+,.1f}%"
        if self.unit == "s":
            return f"{value:,.2f} s"
        return f"{value:,.0f} {self.unit}"

    @property
    def goal_text(self) -> str:
        goal = f"{self.goal:,.0f}%" if self.unit == "%" else self.text(self.goal)
        return ("≤ " if self.at_most else "≥ ") + goal
