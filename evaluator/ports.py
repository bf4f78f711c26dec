"""The evaluator's two small interfaces: what discovery asks of it, and what runs the jobs.

`Evaluations` is the port the discovery engine talks to: submit a job under the caller's key,
collect finished results by key, count what is open and how much of it runs (`pending`,
`in_flight`), close. The job queue (queue.py) implements it over a `Backend`, which runs jobs or
batches of jobs somewhere (Ray: dispatch.py; a test may run them in-process).
Both speak plain data (`EvalJob` in, `RunResult` out); neither stores anything.

Importing this module is light: no torch, no Ray.
"""

from __future__ import annotations

from typing import Protocol

from evaluator.job import EvalJob
from evaluator.results import RunResult


class Evaluations(Protocol):
    """Where the engine's evaluation jobs run. Each job is known by the key it was submitted
    under (the engine's evaluation id); results come back by that key."""

    def submit(self, job: EvalJob, key: int, *, dpo: bool, stage_index: int) -> None:
        """Queue `job`. `dpo`: a DPO run (every other score of its task and seed waits for it);
        `stage_index`: its stage's place in the cascade (later stages go first)."""
        ...

    def collect(self, timeout_s: float = 0.0) -> list[tuple[int, RunResult]]:
        """Send queued work into the free slots, then (key, result) of the jobs that finished
        within `timeout_s`. Call it again (timeout 0) after acting on the results: that sends
        what they led to."""
        ...

    def pending(self) -> list[tuple[int, EvalJob]]:
        """(key, job) of every job submitted and not collected yet."""
        ...

    def in_flight(self) -> int:
        """How many of the `pending` jobs were sent to the workers (the others wait their turn)."""
        ...

    def close(self) -> list[int]:
        """Stop everything running; the keys of the jobs that were still open."""
        ...


class Backend(Protocol):
    """Runs jobs: one per call (`submit`) or several in one call (`submit_batch`, a population
    where the stage trains one). `collect` gives one (job, result) per job."""

    def submit(self, job: EvalJob) -> None: ...

    def submit_batch(self, jobs: list[EvalJob]) -> None: ...

    def collect(self, timeout_s: float = 0.0) -> list[tuple[EvalJob, RunResult]]: ...

    def slots(self) -> int:
        """How many batches may run at once (the workers' CPU slots)."""
        ...

    def close(self) -> None: ...
