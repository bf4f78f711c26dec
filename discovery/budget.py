"""A campaign's budgets: what has been spent, what is left, and whether a limit is reached.

Spending survives restarts: the tracker starts from the `budget_used` the archive holds for the
campaign and writes its totals back every few seconds and at every stop, so a resumed campaign
continues the count. Wall time counts only while an engine runs; compute hours are the summed
run time of finished evaluations; LLM dollars are read from the `llm_calls` table, so proposer
and judge calls count wherever they were made.

Candidates are a soft limit (stop proposing, finish the queue); wall time, compute hours and LLM
dollars are hard limits (stop at once, leaving queued work PENDING for a resume). This module only
counts and answers; the engine decides what to do.
"""

from __future__ import annotations

from collections.abc import Callable

from discovery.archive import NewEvent
from discovery.spec import BudgetSpec
from discovery.store import CampaignStore

_SAVE_EVERY_S = 2.0  # how often spent budget is written back to the archive
_EVENT_EVERY_S = 10.0  # how often a `budget` event tells followers (the API's stream) about it

# (key in budget_used, BudgetSpec field, label in the stop reason)
_HARD_LIMITS = (
    ("wall_time_s", "wall_time_s", "wall-time"),
    ("compute_hours", "compute_hours", "compute-hours"),
    ("llm_dollars", "llm_dollars", "LLM-dollar"),
)


class BudgetTracker:
    """Counts one campaign's spending from `start()` on."""

    def __init__(
        self,
        *,
        campaign_id: int,
        budget: BudgetSpec,
        archive: CampaignStore,
        clock: Callable[[], float],
    ) -> None:
        self.campaign_id = campaign_id
        self.budget = budget
        self.archive = archive
        self.clock = clock
        self._used: dict[str, float] = {}
        self._started = 0.0
        self._saved_at = 0.0
        self._announced_at = float("-inf")
        self._llm_dollars = 0.0

    def start(self, used_before: dict[str, float]) -> None:
        self._used = dict(used_before)
        self._started = self._saved_at = self.clock()
        self.refresh_llm()

    def add_compute(self, seconds: float) -> None:
        self._used["compute_hours"] = self._used.get("compute_hours", 0.0) + seconds / 3600

    def refresh_llm(self) -> None:
        """Re-read LLM spending (after calls were recorded)."""
        self._llm_dollars = self.archive.llm_cost(campaign_id=self.campaign_id)

    def spent(self) -> dict[str, float]:
        used = dict(self._used)
        used["wall_time_s"] = used.get("wall_time_s", 0.0) + (self.clock() - self._started)
        used["llm_dollars"] = self._llm_dollars
        return used

    def llm_dollars_left(self) -> float | None:
        """LLM dollars that may still be spent; None without a dollar budget."""
        if self.budget.llm_dollars is None:
            return None
        return max(0.0, self.budget.llm_dollars - self._llm_dollars)

    def candidates_left(self, proposed: int, batch_size: int) -> int:
        """Candidates that may still be proposed; `batch_size` when there is no such limit."""
        if self.budget.candidates is None:
            return batch_size
        return self.budget.candidates - proposed

    def hard_limit_reached(self) -> str | None:
        """The reason to stop at once, or None."""
        used = self.spent()
        for key, field, label in _HARD_LIMITS:
            limit = getattr(self.budget, field)
            if limit is not None and used.get(key, 0.0) >= limit:
                return f"{label} budget reached ({used[key]:.3g})"
        return None

    def limits(self) -> dict[str, float]:
        """The spec's limits under the keys of `spent()` (candidates too), for displays."""
        return {
            key: value
            for key, value in self.budget.model_dump().items()
            if value is not None and key != "candidates"
        } | ({"candidates": self.budget.candidates} if self.budget.candidates else {})

    def save(self, *, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._saved_at >= _SAVE_EVERY_S:
            used = self.spent()
            announce = force or now - self._announced_at >= _EVENT_EVERY_S
            event = NewEvent(self.campaign_id, "budget", {"used": used, "limits": self.limits()})
            # The spending and its event: one transaction.
            self.archive.set_budget_used(self.campaign_id, used, event=event if announce else None)
            self._saved_at = now
            if announce:
                self._announced_at = now
