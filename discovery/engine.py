"""The campaign engine: the DiscoPOP loop, run from and into the archive.

One loop, in one process: ask the proposer for candidates, validate them in the sandbox, drop
duplicates (same normalized source, or same behavioural fingerprint: stored as DUPLICATE with a
link to the original, never trained), store them, and submit their first-stage evaluations.
Evaluations run while the loop keeps proposing, up to `max_in_flight` queued first-stage jobs.
Candidates enter through intake.py (sandbox, duplicates); proposers see what context.py builds.
Evaluations go to the evaluator's `Evaluations` port (its job queue over Ray in a campaign, an
in-process fake in a test), which sends them to the workers a slot at a time, as populations where
the stage trains them together; results come back under the evaluation's id. Each finished
evaluation is stored and handed to the cascade (cascade.py), which scores it against DPO, records
finished stages, and says what to queue next (promotions, elite re-evaluations). Spending is
counted by budget.py; the loop reads a `Ledger` (ledger.py) of the campaign instead of scanning
tables, so the cost of each step does not grow with the campaign.

Crash safety: every decision is written before it is acted on. Evaluations are stored PENDING
when queued and finished in place, so a resumed campaign re-queues exactly the open ones, and the
database refuses a second DONE row for one (candidate, stage, task, seed). Promotions and elites
are derived from stored evaluations, so a resume neither repeats nor forgets them. A run whose
worker died (LOST), and any failed run of DPO, is stored again as a new attempt (retries.py); a
resume re-queues those left failed past their tries.

Stops: when a budget is reached (candidates: stop proposing and finish the queue; wall time,
compute hours, LLM dollars: stop at once, leaving the queue PENDING), when an LLM proposer cannot
afford its next call (`BudgetExhausted`: stop proposing and finish the queue, whose candidates are
paid for), when the campaign is paused or cancelled in the archive (by the CLI or the API), when
the proposer has nothing new, or when the proposer's endpoint stays down (`ProposerUnavailable`:
PAUSED with the reason, the queue left PENDING for `--resume`). A search that ends with
candidates the cascade could not score (runs lost past their retries) ends PAUSED, not FINISHED,
saying how many and why; `--resume` runs what is missing.

Ownership: the runner takes the campaign's lease before building the engine (lease.py) and hands
the engine an archive fenced by it, so every write checks, in its own transaction, that this engine
still owns the campaign. An engine whose lease was taken over stops at once without writing
(LeaseLostError); one whose launching server died pauses itself; one whose database stays away
past the store's retry window stops without writing (DatabaseUnavailableError) and the campaign
reads INTERRUPTED once its lease expires. A stop releases the lease in the transaction that writes
the final status and its `finish` event.

Progress: entering each step of its life the engine writes a `phase` event (baselines,
reference, proposing, finishing, stopping; the runner writes `backend` before Ray starts), and it
hands its queue's size to the lease keeper, whose heartbeat stores it as the campaign's `live`.

The proposer sees public metrics only: parents and inspirations carry the means of their runs on
public tasks (scores.public_metrics); held-out tasks never reach a `ProposalContext`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from discovery.archive import (
    CampaignStatus,
    CandidateRecord,
    CandidateStatus,
    DatabaseUnavailableError,
    EvaluationRecord,
    EvaluationStatus,
    LeaseLostError,
    NewEvent,
)
from discovery.budget import BudgetTracker
from discovery.cascade import Cascade, Queue
from discovery.context import build_context
from discovery.intake import Intake
from discovery.lease import LeaseKeeper
from discovery.ledger import Ledger
from discovery.population import Population
from discovery.progress import Progress, snapshot
from discovery.proposers.base import Proposal, Proposer
from discovery.proposers.errors import BudgetExhausted, ProposerUnavailable
from discovery.retries import Retries, next_attempt
from discovery.spec import CampaignSpec, StageSpec
from discovery.store import CampaignStore
from evaluator import BASELINES, EvalJob, Evaluations, RunResult, Secret
from sandbox import Sandbox

__all__ = ["Engine", "JobContext", "Progress"]

log = logging.getLogger(__name__)

# Statuses an engine may start from: new, resumed, or left RUNNING by a killed process.
RESTARTABLE = (
    CampaignStatus.PENDING,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)
# What a stop the engine decides (finished, endpoint down) may overwrite: not a cancel.
_ENGINE_STOPS_OVER = (CampaignStatus.RUNNING, CampaignStatus.PENDING, CampaignStatus.PAUSED)
_IDLE_PROPOSALS = 5  # consecutive proposal calls with nothing new before the search is over
_WAIT_S = 0.5  # longest wait for a result when there is nothing to propose
_NOTIFY_EVERY_S = 0.25  # the observer is called at most this often (and at every stop)


@dataclass(frozen=True)
class JobContext:
    """What the engine's jobs carry besides the spec: worker values, never stored."""

    cache_dir: str | None = None  # where workers cache what they build (tinylm references)
    judge_api_key: Secret | None = None  # the hf judge's key, from the settings


class Engine:
    """Runs one campaign until it finishes, is paused or cancelled, or a budget is reached."""

    def __init__(
        self,
        *,
        campaign_id: int,
        spec: CampaignSpec,
        archive: CampaignStore,
        sandbox: Sandbox,
        evaluations: Evaluations,
        proposer: Proposer,
        rng: np.random.Generator,
        job_context: JobContext | None = None,
        observer: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        start_from: tuple[CampaignStatus, ...] = RESTARTABLE,
        lease: LeaseKeeper | None = None,
    ) -> None:
        self.campaign_id = campaign_id
        self.start_from = start_from
        self.lease = lease  # None: the caller does not hold a lease (tests of the loop alone)
        self.spec = spec
        self.archive = archive
        self.evaluations = evaluations
        self.proposer = proposer
        self.rng = rng
        self.job_context = job_context or JobContext()
        self.observer = observer
        self.clock = clock
        self.population = Population(**spec.population.model_dump())
        self.ledger = Ledger()
        self.budget = BudgetTracker(
            campaign_id=campaign_id, budget=spec.budget, archive=archive, clock=clock
        )
        self.cascade = Cascade(
            campaign_id=campaign_id, spec=spec, ledger=self.ledger, archive=archive
        )
        self.intake = Intake(
            campaign_id=campaign_id,
            archive=archive,
            ledger=self.ledger,
            sandbox=sandbox,
        )
        self.retries = Retries()  # which failed runs go again, and how often (retries.py)
        self._proposals = 0  # proposal calls so far, resumes included (islands take turns)
        self._notified_at = float("-inf")
        self._phase_now: str | None = None  # the phase last entered (see `_phase`)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> CampaignStatus:
        if not self._start():
            current = self.archive.get_campaign(self.campaign_id)
            log.info("campaign %s is %s; not started", self.campaign_id, current.status)
            return current.status
        try:
            return self._loop()
        except (LeaseLostError, DatabaseUnavailableError):
            # Nothing more can be written: stop the work; what is open stays PENDING.
            self.evaluations.close()
            raise
        except BaseException:
            # KeyboardInterrupt or a bug: leave queued work PENDING so `--resume` picks it up.
            self.evaluations.close()
            self.budget.save(force=True)
            raise

    def _loop(self) -> CampaignStatus:
        idle = 0
        proposing = True
        ended: str | None = None  # why proposing ended early, when that ends the campaign
        while True:
            stop = self._stop_now()
            if stop is not None:
                return self._stop(*stop)
            if proposing and self._candidates_left() <= 0:
                proposing = False
            proposed = False
            if proposing and self._first_stage_open() < self.spec.max_in_flight:
                self._phase("proposing", "proposing candidates while their evaluations run")
                try:
                    new = self._propose_round()
                except ProposerUnavailable as exc:
                    return self._stop(
                        CampaignStatus.PAUSED,
                        f"{exc}; then resume with `lossforge run --resume {self.campaign_id}`",
                    )
                except BudgetExhausted as exc:
                    # No more calls, but the candidates paid for are still evaluated.
                    proposing, new = False, 0
                    ended = f"LLM-dollar budget reached: {exc}"
                proposed = True
                idle = 0 if new else idle + 1
                if idle >= _IDLE_PROPOSALS:
                    proposing = False
            # Having proposed, only pick up what is ready; otherwise block on the next result
            # rather than spin (the workers need the CPU).
            self._collect(timeout_s=0.0 if proposed else _WAIT_S)
            self.budget.save()
            self._notify()
            self._report_live()
            if not proposing:
                self._phase("finishing", "no more proposals: finishing the queued evaluations")
            if not proposing and not self.evaluations.pending():
                actions = self.cascade.final_pass()
                if actions:
                    self._apply(actions)
                    continue
                reason = ended or (
                    "candidate budget reached"
                    if self._candidates_left() <= 0
                    else "the proposer found nothing new"
                )
                return self._end(reason)

    def _collect(self, timeout_s: float) -> None:
        """Store every result that is ready (waiting up to `timeout_s` for the first), and send
        what they lead to (retries, promotions) into the slots they freed before proposing on:
        each `collect` fills the free slots first; the last one, with nothing new, only that."""
        while results := self.evaluations.collect(timeout_s=timeout_s):
            for evaluation_id, result in results:
                self._finish(evaluation_id, result)
            timeout_s = 0.0

    def _start(self) -> bool:
        """Mark the campaign RUNNING and load its state; False if it may not start now."""
        # Compare-and-set: a pause or cancel that arrived while this process was starting wins.
        before = self.archive.get_campaign(self.campaign_id)
        campaign = self.archive.transition_campaign(
            self.campaign_id,
            to=CampaignStatus.RUNNING,
            allowed_from=self.start_from,
            event=NewEvent(self.campaign_id, "started", {"resumed": bool(before.budget_used)}),
        )
        if campaign is None:
            return False
        self.ledger.put_candidates(self.archive.list_candidates(campaign_id=self.campaign_id))
        self.ledger.put_evaluations(self.archive.list_evaluations(campaign_id=self.campaign_id))
        self._proposals = self.archive.count_events(campaign_id=self.campaign_id, kind="proposal")
        self.budget.start(campaign.budget_used)
        names = ", ".join(dict.fromkeys(["dpo", *self.spec.baselines]))
        self._phase("baselines", f"validating the baselines ({names}) in the sandbox")
        self._ensure_baselines()
        # Until the first proposal the workers start and run these: they fill the queue.
        self._phase("reference", "running DPO and the baselines: every score is paired with them")
        self._recover()
        return True

    def _stop(self, status: CampaignStatus, reason: str, requested: bool = False) -> CampaignStatus:
        self._phase("stopping", f"{status.lower()}: {reason}; stopping the workers")
        open_ids = self.evaluations.close()  # kills what runs; its rows stay PENDING, resumable
        if status is CampaignStatus.CANCELLED:
            for evaluation_id in open_ids:
                self.ledger.put_evaluation(
                    self.archive.finish_evaluation(
                        evaluation_id,
                        status=EvaluationStatus.CANCELLED,
                        reason="campaign cancelled",
                    )
                )
        self.budget.save(force=True)
        # Compare-and-set, so the stop cannot undo a request written meanwhile: a cancel stays,
        # and a resume that came during a requested pause stays PENDING for its new engine. A
        # requested stop keeps the requester's status and reason. The status, its `finish` event
        # and the lease's release are one transaction: no stop is seen half-written.
        finish = {"status": str(status), "reason": reason, "budget": self.budget.spent()}
        if requested or (
            self.archive.transition_campaign(
                self.campaign_id,
                to=status,
                allowed_from=_ENGINE_STOPS_OVER,
                reason=reason,
                event=NewEvent(self.campaign_id, "finish", finish),
                release_lease=True,
            )
            is None
        ):
            current = self.archive.get_campaign(self.campaign_id)
            status, reason = current.status, current.reason or reason
            self._event("finish", {**finish, "status": str(status), "reason": reason})
        self._notify(status=str(status), force=True)
        log.info("campaign %s %s: %s", self.campaign_id, status, reason)
        return status

    # -- proposing ---------------------------------------------------------------------------

    def _propose_round(self) -> int:
        """One proposal call; returns how many new accepted candidates it gave."""
        island = self.population.island_for(self._proposals)
        context = build_context(
            ledger=self.ledger,
            cascade=self.cascade,
            population=self.population,
            island=island,
            rng=self.rng,
            dollars_left=self.budget.llm_dollars_left(),
        )
        n = min(self.spec.proposer.batch_size, self._candidates_left())
        try:
            proposals = self.proposer.propose(context, n)
        finally:
            self.budget.refresh_llm()  # an LLM proposer records its calls, failed ones too
        self._proposals += 1
        self._event("proposal", {"island": island, "asked": n, "got": len(proposals)})
        new = 0
        # Not cut at n: a repairing proposer returns a rejected idea and its repair both.
        for proposal in proposals:
            if self._candidates_left() <= 0:
                break
            new += self._admit(proposal, island)
        return new

    def _admit(self, proposal: Proposal, island: int) -> int:
        record = self.intake.store(
            proposal,
            island=island,
            provenance={
                "seed": self.spec.seed,
                "proposer": self.proposer.name,
                "operator": proposal.operator,
                "genome": proposal.genome,
                "model": proposal.model,
                "prompt_hash": proposal.prompt_hash,
            },
        )
        if proposal.rejection is not None:  # nothing to validate: the reply held no candidate
            self.intake.reject(record, proposal.rejection)
            return 0
        return 1 if self._validate(record) else 0

    def _validate(self, record: CandidateRecord) -> bool:
        accepted = self.intake.validate(record)
        if accepted is not None:
            first = self.spec.stages[0]
            self._queue_stage(accepted, first, range(first.seeds))
        return accepted is not None

    # -- evaluations -------------------------------------------------------------------------

    def _queue_stage(self, candidate: CandidateRecord, stage: StageSpec, seeds: range) -> None:
        """Store and queue the stage's evaluations that the candidate does not have yet."""
        have = {(e.task, e.seed) for e in self.ledger.of(candidate.id, stage.name)}
        for task in stage.task_names():
            for seed in seeds:
                if (task, seed) in have:
                    continue
                row = self.ledger.put_evaluation(
                    self.archive.add_evaluation(
                        candidate_id=candidate.id, stage=stage.name, task=task, seed=seed
                    )
                )
                self._enqueue(candidate, row)

    def _apply(self, actions: list[Queue]) -> None:
        for action in actions:
            candidate = self.ledger.candidates[action.candidate_id]
            self._queue_stage(candidate, action.stage, action.seeds)

    def _enqueue(self, candidate: CandidateRecord, row: EvaluationRecord) -> None:
        stage = self.cascade.stage(row.stage)
        dpo = candidate.origin == "baseline" and candidate.name == "dpo"
        if candidate.graph_json is None:
            raise RuntimeError(f"candidate {candidate.id} was queued without a graph")
        job = EvalJob(
            stage=stage.name,
            task=row.task,
            seed=row.seed,
            loss_name=candidate.name,
            graph_json=candidate.graph_json,
            config=stage.config,
            # DPO's tinylm runs also train its beta grid: the frontier every score is taken at.
            frontier=dpo and stage.name == "tinylm",
            cache_dir=self.job_context.cache_dir,
            judge_api_key=self.job_context.judge_api_key,
        )
        self.evaluations.submit(job, row.id, stage_index=self.spec.stages.index(stage), dpo=dpo)

    def _finish(self, evaluation_id: int, result: RunResult) -> None:
        # LLM calls first (the hf stage's judge): they count toward the LLM-dollar budget, and a
        # crash between the two writes over-counts a re-run evaluation rather than losing a cost.
        for call in result.llm_calls:
            self.archive.record_llm_call(campaign_id=self.campaign_id, call=call)
        if result.llm_calls:
            self.budget.refresh_llm()
        status = EvaluationStatus(result.status.value)
        queued = self.ledger.evaluations[evaluation_id]
        payload = {
            "candidate": queued.candidate_id,
            "stage": queued.stage,
            "task": queued.task,
            "seed": queued.seed,
            "status": str(status),
        }
        row = self.ledger.put_evaluation(
            self.archive.finish_evaluation(  # the result and its event: one transaction
                evaluation_id,
                status=status,
                metrics=result.metrics,
                timings={"seconds": result.seconds, **result.timings},
                reason=result.reason,
                event=NewEvent(self.campaign_id, "evaluation", payload),
                curves=result.curves,  # for the per-evaluation view; selection never reads them
            )
        )
        self.budget.add_compute(result.seconds)
        # Before the cascade looks: an attempt left open keeps the runs paired with it waiting.
        if self.retries.again(row, self.ledger.candidates[row.candidate_id]):
            self._requeue(row)
        self._apply(self.cascade.finished(row))

    def _requeue(self, row: EvaluationRecord) -> None:
        """Store and queue a new attempt of `row`'s run (its worker died, or it is DPO's)."""
        tries = [
            e
            for e in self.ledger.of(row.candidate_id, row.stage)
            if (e.task, e.seed) == (row.task, row.seed)
        ]
        again = self.ledger.put_evaluation(
            self.archive.add_evaluation(
                candidate_id=row.candidate_id,
                stage=row.stage,
                task=row.task,
                seed=row.seed,
                attempt=next_attempt(tries),
            )
        )
        self._enqueue(self.ledger.candidates[row.candidate_id], again)
        log.warning(
            "candidate %s %s/%s seed %s: %s (%s); attempt %d queued",
            row.candidate_id,
            row.stage,
            row.task,
            row.seed,
            row.status,
            row.reason,
            again.attempt,
        )
        self._event(
            "retry",
            {
                "candidate": row.candidate_id,
                "stage": row.stage,
                "task": row.task,
                "seed": row.seed,
                "attempt": again.attempt,
                "after": f"{row.status}: {row.reason}",
            },
        )

    # -- start and resume --------------------------------------------------------------------

    def _ensure_baselines(self) -> None:
        """Baselines are candidates too; DPO runs at every stage (every score is relative to it)."""
        for name in ["dpo", *[b for b in self.spec.baselines if b != "dpo"]]:
            if self.ledger.baseline(name) is not None:
                continue
            record = self.ledger.put_candidate(
                self.archive.add_candidate(
                    campaign_id=self.campaign_id,
                    name=name,
                    source=BASELINES[name].source,
                    origin="baseline",
                    thought=BASELINES[name].cite,
                )
            )
            if not self._validate(record):
                log.warning("baseline %s was not accepted", name)

    def _recover(self) -> None:
        """Re-queue what a previous run left: unvalidated candidates, open evaluations."""
        for candidate in self.ledger.with_status(CandidateStatus.PROPOSED):
            self._validate(candidate)
        dpo = self.ledger.baseline("dpo")
        if dpo is None or dpo.graph_json is None:  # FAILED or UNSCORED runs go again below
            raise RuntimeError("the DPO baseline was not accepted by the sandbox; nothing to score")
        for stage in self.spec.stages:  # every score needs DPO's run of the same seed
            self._queue_stage(dpo, stage, range(stage.seeds))
        first = self.spec.stages[0]
        for candidate in self.ledger.with_status(CandidateStatus.ACCEPTED):
            self._queue_stage(candidate, first, range(first.seeds))  # accepted, never queued
        queued = {key for key, _ in self.evaluations.pending()}
        for row in self.ledger.open_evaluations():
            if row.id not in queued:
                self._enqueue(self.ledger.candidates[row.candidate_id], row)
        # Runs left failed where a retry was due (lost workers, DPO's): what left candidates
        # UNSCORED, or what a crash kept from being retried. Each gets its tries again.
        for row in self.retries.resumable(self.ledger):
            self._requeue(row)
        self._apply(self.cascade.start(dpo.id))

    # -- budgets and control -----------------------------------------------------------------

    def _end(self, reason: str) -> CampaignStatus:
        """The end of the search: FINISHED, unless runs some candidates need were lost past
        their retries. Then PAUSED, resumable, saying how many and why: never FINISHED with
        candidates silently unranked."""
        unscored = self.cascade.unscored_summary()
        if unscored is None:
            return self._stop(CampaignStatus.FINISHED, reason)
        return self._stop(
            CampaignStatus.PAUSED,
            f"{reason}, but {unscored}; resume with `lossforge run --resume {self.campaign_id}` "
            "to run what is missing",
        )

    def _candidates_left(self) -> int:
        return self.budget.candidates_left(self.ledger.proposed(), self.spec.proposer.batch_size)

    def _stop_now(self) -> tuple[CampaignStatus, str, bool] | None:
        """(status, reason, requested) when the campaign must stop now: a pause or cancel
        request (requested), the launching server gone, or a hard budget limit. LeaseLostError
        when another engine took the campaign over."""
        if self.lease is not None:
            if self.lease.lost is not None:
                raise LeaseLostError(self.lease.lost)
            if self.lease.orphaned is not None:
                return CampaignStatus.PAUSED, self.lease.orphaned, False
        requested = self._requested_stop()
        if requested is not None:
            return (*requested, True)
        reason = self.budget.hard_limit_reached()
        return (CampaignStatus.FINISHED, reason, False) if reason else None

    def _requested_stop(self) -> tuple[CampaignStatus, str] | None:
        status = self.archive.get_campaign(self.campaign_id).status
        if status is CampaignStatus.PENDING:
            # A resume request arrived before this engine saw the pause: it simply goes on.
            self.archive.transition_campaign(
                self.campaign_id, to=CampaignStatus.RUNNING, allowed_from=(status,)
            )
            return None
        if status in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
            return status, f"{status.lower()} on request"
        return None

    def _first_stage_open(self) -> int:
        """Open first-stage jobs: the bound on proposing. Later stages are few and slow; they
        drain on their own and must not stall the search."""
        first = self.spec.stages[0].name
        return sum(1 for _, job in self.evaluations.pending() if job.stage == first)

    # -- displays and events -----------------------------------------------------------------

    def _notify(self, status: str = "RUNNING", *, force: bool = False) -> None:
        now = self.clock()
        if self.observer is None or (not force and now - self._notified_at < _NOTIFY_EVERY_S):
            return
        self._notified_at = now
        self.observer(
            snapshot(
                campaign_id=self.campaign_id,
                status=status,
                ledger=self.ledger,
                cascade=self.cascade,
                open_jobs=(job for _, job in self.evaluations.pending()),
                budget=self.budget,
            )
        )

    def _event(self, kind: str, payload: dict[str, object]) -> None:
        self.archive.append_event(campaign_id=self.campaign_id, kind=kind, payload=payload)

    def _phase(self, name: str, detail: str) -> None:
        """Enter a phase: a `phase` event for the readers, and the lease's live state (the next
        heartbeat writes it). Entering the phase it is in does nothing."""
        if name == self._phase_now:
            return
        self._phase_now = name
        self._event("phase", {"phase": name, "detail": detail})
        if self.lease is not None:
            self.lease.report(phase=name)

    def _report_live(self) -> None:
        """Jobs waiting and in flight, for the lease's next heartbeat (no write of its own)."""
        if self.lease is not None:
            in_flight = self.evaluations.in_flight()
            waiting = len(self.evaluations.pending()) - in_flight
            self.lease.report(queue_depth=waiting, in_flight=in_flight)
