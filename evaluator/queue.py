"""The job queue: what goes to the workers next, and in which batches (the `Evaluations` port).

Jobs of the stages that train populations (bandit, tinylm) wait here until a worker slot is free
instead of going to Ray at once. Two things follow. Jobs of one stage, task, seed and config that
arrive while the workers are busy leave together, as one population of up to the stage's
`population_size` (worker.py trains it in one pass, data and reference made once). And the
order is the engine's, not Ray's first-come-first-served: DPO's runs first (every other score of
the same stage, task and seed waits for them), then later stages before earlier ones (promoted
candidates matter most, and their long runs started early keep the end of a campaign from being
one worker finishing alone), then lower seeds (the first runs of a stage's tasks go to different
workers: each builds what its task caches, such as a tinylm reference, instead of two workers
building the same one side by side), then the oldest first.

Jobs of other stages (hf) go to the backend as soon as they are queued: they declare their own
resources (GPUs) and Ray queues them on those.

It stores nothing (the engine writes each evaluation PENDING before queueing it, under its id as
the job's key) and knows nothing of candidates beyond the job.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from evaluator.job import EvalJob, batch_key, population_size, trains_populations
from evaluator.ports import Backend
from evaluator.results import RunResult


@dataclass
class _Entry:
    job: EvalJob
    key: int  # the caller's: the engine's evaluation id
    rank: tuple[int, int, int, int]  # smaller first: DPO, later stage, lower seed, older
    batch: int | None = None  # the batch it was sent in; None while it waits


class JobQueue:
    """Open jobs (waiting or running) of one campaign, sent to `backend` a slot at a time.

    `slots` says how many population tasks may run at once (default: the backend's own count).
    """

    def __init__(self, backend: Backend, slots: Callable[[], int] | None = None) -> None:
        self.backend = backend
        self.slots = slots or backend.slots
        self._open: dict[int, _Entry] = {}  # id(job) -> entry
        self._running: dict[int, int] = {}  # batch number -> its jobs not finished yet
        self._order = itertools.count()
        self._batches = itertools.count()

    def __len__(self) -> int:
        return len(self._open)

    def pending(self) -> list[tuple[int, EvalJob]]:
        """(key, job) of every open job."""
        return [(e.key, e.job) for e in self._open.values()]

    def in_flight(self) -> int:
        """Open jobs sent to the backend (running, or queued there); the rest wait here."""
        return sum(1 for e in self._open.values() if e.batch is not None)

    def submit(self, job: EvalJob, key: int, *, dpo: bool, stage_index: int) -> None:
        rank = (0 if dpo else 1, -stage_index, job.seed, next(self._order))
        entry = _Entry(job, key, rank)
        self._open[id(job)] = entry
        if not trains_populations(job):
            self.backend.submit(job)
            entry.batch = -1  # sent alone, outside the slots

    def collect(self, timeout_s: float = 0.0) -> list[tuple[int, RunResult]]:
        """Fill the free slots, then wait up to `timeout_s` for results; (key, result) of each
        finished job. The slots those free are filled by the next call, once the caller has
        submitted what the results lead to (a retry, a promotion), so that goes by its rank too."""
        self.dispatch()
        return [(self._finished(job), result) for job, result in self.backend.collect(timeout_s)]

    def close(self) -> list[int]:
        """Stop the backend (what runs is killed) and forget every open job; their keys."""
        self.backend.close()
        keys = [e.key for e in self._open.values()]
        self._open.clear()
        self._running.clear()
        return keys

    def dispatch(self) -> int:
        """Send batches while slots are free; returns how many jobs were sent."""
        sent = 0
        free = max(1, self.slots()) - len(self._running)
        while free > 0:
            batch = self._next_batch()
            if not batch:
                break
            number = next(self._batches)
            for entry in batch:
                entry.batch = number
            self._running[number] = len(batch)
            self.backend.submit_batch([e.job for e in batch])
            sent += len(batch)
            free -= 1
        return sent

    def _finished(self, job: EvalJob) -> int:
        """Forget a job whose result came back; returns its key."""
        entry = self._open.pop(id(job))
        if entry.batch is not None and entry.batch in self._running:
            self._running[entry.batch] -= 1
            if self._running[entry.batch] == 0:
                del self._running[entry.batch]  # its slot is free
        return entry.key

    def _next_batch(self) -> list[_Entry]:
        waiting = sorted((e for e in self._open.values() if e.batch is None), key=lambda e: e.rank)
        if not waiting:
            return []
        head = waiting[0]
        key, size = batch_key(head.job), population_size(head.job)
        return [e for e in waiting if batch_key(e.job) == key][:size]
