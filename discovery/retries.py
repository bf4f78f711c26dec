"""Which failed evaluations run again, and how often: the engine's retry rule.

A failed run is run again, as a new attempt of the same (candidate, stage, task, seed) (the
`attempt` column; the database lets only one attempt finish DONE), when the failure says nothing
about the loss:

- it was LOST: its worker process, node or result died (evaluator.dispatch), whoever's run it was;
- it was DPO's, whatever the failure: every score of its stage, task and seed is paired with it,
  so without it a whole field goes unscored.

Other failures (NAN_LOSS, DIVERGED, TIMEOUT, OOM, ERROR of a proposed loss) are the loss's: they
are recorded and never repeated. An engine gives each run at most `max_attempts` tries; past that
the cascade marks what needed the run UNSCORED with the reason, the campaign stops resumable, and
a resume grants the run `max_attempts` tries again (a dead cluster may have been mended).

It stores nothing and queues nothing: it answers the engine's questions.
"""

from __future__ import annotations

from collections.abc import Iterable

from discovery.archive import CandidateRecord, EvaluationRecord, EvaluationStatus
from discovery.ledger import OPEN, Ledger

MAX_ATTEMPTS = 3  # tries of one run per engine start (the first included)

RunId = tuple[int, str, str, int]  # (candidate, stage, task, seed): one run, all its attempts


def run_id(row: EvaluationRecord) -> RunId:
    return row.candidate_id, row.stage, row.task, row.seed


def is_dpo(candidate: CandidateRecord) -> bool:
    return candidate.origin == "baseline" and candidate.name == "dpo"


def retryable(row: EvaluationRecord, candidate: CandidateRecord) -> bool:
    """Whether a finished attempt failed in a way worth running again (see the module doc)."""
    if row.status in (*OPEN, EvaluationStatus.DONE, EvaluationStatus.CANCELLED):
        return False
    return row.status is EvaluationStatus.LOST or is_dpo(candidate)


class Retries:
    """Tries per run in this engine start, and the decision to try once more."""

    def __init__(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self._tries: dict[RunId, int] = {}

    def again(self, row: EvaluationRecord, candidate: CandidateRecord) -> bool:
        """True (and counted) when `row`, just finished, should run once more."""
        if not retryable(row, candidate):
            return False
        key = run_id(row)
        tries = self._tries.get(key, 1)  # the attempt that just failed
        if tries >= self.max_attempts:
            return False
        self._tries[key] = tries + 1
        return True

    def resumable(self, ledger: Ledger) -> list[EvaluationRecord]:
        """The latest attempts of runs left failed and retryable (none open, none DONE): what a
        resume runs again. Each counts as this start's first try."""
        latest: dict[RunId, EvaluationRecord] = {}
        settled: set[RunId] = set()  # runs with an open or DONE attempt
        for row in ledger.evaluations.values():
            key = run_id(row)
            if row.status in OPEN or row.status is EvaluationStatus.DONE:
                settled.add(key)
            if key not in latest or row.attempt > latest[key].attempt:
                latest[key] = row
        out = [
            row
            for key, row in latest.items()
            if key not in settled and retryable(row, ledger.candidates[row.candidate_id])
        ]
        for row in out:
            self._tries[run_id(row)] = 1
        return sorted(out, key=lambda r: r.id)


def next_attempt(rows: Iterable[EvaluationRecord]) -> int:
    """The attempt number after every stored one of a run."""
    return max((r.attempt for r in rows), default=-1) + 1
