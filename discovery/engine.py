"""The campaign engine: the DiscoPOP loop, run from and into the archive.

One loop, in one process: ask the proposer for candidates, validate them in the sandbox, drop
duplicates (same normalized source, or same behavioural fingerprint: stored as DUPLICATE with a
link to the original, never trained), store them, and queue their first-stage evaluations on Ray.
Evaluations run while the loop keeps proposing, up to `max_in_flight` queued jobs. A finished
evaluation is stored, scored against DPO's run with the same stage, task and seed, and when a
candidate has finished a stage its score decides promotion: it goes on if it ranks in the stage's
`promote_fraction` among the candidates that finished that stage so far (successive halving).

Crash safety: every decision is written before it is acted on. Evaluations are stored PENDING
when queued and finished in place, so a resumed campaign re-queues exactly the PENDING ones, and
the database refuses a second DONE row for one (candidate, stage, task, seed). Promotion decisions
are events; a candidate that finished a stage without one is decided again on resume.

Stops: when a budget is reached (candidates: stop proposing and finish the queue; wall time,
compute hours, LLM dollars: stop at once, leaving the queue PENDING), when the campaign is paused
or cancelled in the archive (by the CLI or the API), or when the proposer has nothing new.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from discovery.archive import (
    Archive,
    CampaignStatus,
    CandidateRecord,
    CandidateStatus,
    EvaluationRecord,
    EvaluationStatus,
)
from discovery.population import Member, Population
from discovery.proposers.base import Failure, Proposal, ProposalContext, Proposer
from discovery.scores import stage_score
from discovery.spec import CampaignSpec, StageSpec
from evaluator.baselines import BASELINES
from evaluator.compare import stage_tasks
from evaluator.dispatch import RayDispatcher
from evaluator.jobs import EvalJob
from evaluator.results import RunResult
from evaluator.scoring import score_metric
from sandbox import Candidate, Sandbox, Verdict

log = logging.getLogger(__name__)

_IDLE_PROPOSALS = 5  # consecutive proposal calls with nothing new before the search is over
_BUDGET_SAVE_S = 2.0  # how often spent budget is written back


@dataclass
class Progress:
    """A snapshot for displays (the CLI's live view, logs)."""

    campaign_id: int
    status: str
    candidates: int = 0  # proposed (not baselines)
    counts: dict[str, int] = field(default_factory=dict)  # candidates by status
    in_flight: int = 0
    best_name: str | None = None
    best_score: float | None = None  # vs DPO at the first stage
    budget_used: dict[str, float] = field(default_factory=dict)


class Engine:
    """Runs one campaign until it finishes, is paused or cancelled, or a budget is reached."""

    def __init__(
        self,
        *,
        campaign_id: int,
        spec: CampaignSpec,
        archive: Archive,
        sandbox: Sandbox,
        dispatcher: RayDispatcher,
        proposer: Proposer,
        rng: np.random.Generator,
        stage_extra: dict[str, dict[str, object]] | None = None,
        observer: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.campaign_id = campaign_id
        self.spec = spec
        self.archive = archive
        self.sandbox = sandbox
        self.dispatcher = dispatcher
        self.proposer = proposer
        self.rng = rng
        self.stage_extra = stage_extra or {}
        self.observer = observer
        self.clock = clock
        self.population = Population(**spec.population.model_dump())
        # The metric each stage ranks by (the hf stage's depends on its scoring config).
        self.metrics = {s.name: score_metric(s.name, s.config) for s in spec.stages}

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> CampaignStatus:
        campaign = self.archive.get_campaign(self.campaign_id)
        self._used = dict(campaign.budget_used)
        self._started = self.clock()
        self._saved_at = self._started
        self._queued: dict[int, tuple[EvalJob, int]] = {}  # id(job) -> (job, evaluation id)
        self._decided: set[tuple[int, str]] = self._decisions()
        self.archive.set_campaign_status(self.campaign_id, status=CampaignStatus.RUNNING)
        self._event("started", {"resumed": bool(campaign.budget_used)})
        self._ensure_baselines()
        self._recover()
        idle = 0
        proposing = True
        try:
            while True:
                stop = self._external_stop() or self._hard_budget_reached()
                if stop is not None:
                    return self._stop(*stop)
                if proposing and self._candidate_budget_left() <= 0:
                    proposing = False
                if proposing and self._first_stage_in_flight() < self.spec.max_in_flight:
                    new = self._propose_round()
                    idle = 0 if new else idle + 1
                    if idle >= _IDLE_PROPOSALS:
                        proposing = False
                for job, result in self.dispatcher.collect(timeout_s=0.0 if proposing else 0.5):
                    self._finish(job, result)
                self._save_budget()
                self._notify()
                if not proposing and not self._queued:
                    reason = (
                        "candidate budget reached"
                        if self._candidate_budget_left() <= 0
                        else "the proposer found nothing new"
                    )
                    return self._stop(CampaignStatus.FINISHED, reason)
        except BaseException:
            # KeyboardInterrupt or a bug: leave queued work PENDING so `--resume` picks it up.
            self.dispatcher.close()
            self._save_budget(force=True)
            raise

    def _stop(self, status: CampaignStatus, reason: str) -> CampaignStatus:
        self.dispatcher.close()  # kills what is running; its rows stay PENDING, resumable
        if status is CampaignStatus.CANCELLED:
            for _, evaluation_id in self._queued.values():
                self.archive.finish_evaluation(
                    evaluation_id, status=EvaluationStatus.CANCELLED, reason="campaign cancelled"
                )
        self._queued.clear()
        self._save_budget(force=True)
        self.archive.set_campaign_status(self.campaign_id, status=status, reason=reason)
        self._event("finish", {"status": str(status), "reason": reason, "budget": self._used})
        self._notify(status=str(status))
        log.info("campaign %s %s: %s", self.campaign_id, status, reason)
        return status

    # -- proposing ---------------------------------------------------------------------------

    def _propose_round(self) -> int:
        """One proposal call; returns how many new accepted candidates it gave."""
        members = self._members()
        accepted = len(members)
        island = self.population.island_for(self._proposal_calls())
        parents, inspirations = self.population.sample(
            members, island=island, accepted=accepted, rng=self.rng
        )
        context = ProposalContext(
            parents=parents,
            inspirations=inspirations,
            failures=self._recent_failures(),
            island=island,
            stage_metric=f"{self.spec.stages[0].name}/{self.metrics[self.spec.stages[0].name]}",
        )
        n = min(self.spec.proposer.batch_size, self._candidate_budget_left())
        proposals = self.proposer.propose(context, n)
        self._event("proposal", {"island": island, "asked": n, "got": len(proposals)})
        new = 0
        for proposal in proposals[:n]:
            if self._candidate_budget_left() <= 0:
                break
            new += self._admit(proposal, island)
        return new

    def _admit(self, proposal: Proposal, island: int) -> int:
        record = self.archive.add_candidate(
            campaign_id=self.campaign_id,
            name=proposal.name,
            source=proposal.code,
            origin=proposal.origin,
            thought=proposal.thought,
            parent_ids=proposal.parent_ids,
            island=island,
            provenance={
                "seed": self.spec.seed,
                "proposer": self.proposer.name,
                "operator": proposal.operator,
                "genome": proposal.genome,
            },
        )
        return 1 if self._validate(record) else 0

    def _validate(self, record: CandidateRecord) -> bool:
        verdict: Verdict = self.sandbox.validate(
            Candidate(name=record.name, thought=record.thought, code=record.source)
        )
        self._event(
            "verdict",
            {"candidate": record.id, "status": str(verdict.status), "reason": verdict.reason},
        )
        if not verdict.accepted:
            self.archive.update_candidate(
                record.id,
                status=CandidateStatus.REJECTED,
                reason=verdict.reason,
                verdict=verdict.to_dict(),
            )
            return False
        original = self.archive.find_by_canonical_code(
            campaign_id=self.campaign_id, canonical_code=verdict.canonical_code or ""
        ) or self.archive.find_by_fingerprint(
            campaign_id=self.campaign_id, fingerprint=verdict.fingerprint or ""
        )
        if original is not None and original.id != record.id:
            self.archive.update_candidate(
                record.id,
                status=CandidateStatus.DUPLICATE,
                reason=f"behaves like candidate {original.id} ({original.name}); not trained",
                duplicate_of=original.id,
                fingerprint=verdict.fingerprint,
                canonical_code=verdict.canonical_code,
                verdict=verdict.to_dict(),
            )
            return False
        accepted = self.archive.update_candidate(
            record.id,
            status=CandidateStatus.ACCEPTED,
            fingerprint=verdict.fingerprint,
            canonical_code=verdict.canonical_code,
            graph={"json": verdict.graph_json},
            verdict=verdict.to_dict(),
        )
        self._queue_stage(accepted, self.spec.stages[0], range(self.spec.stages[0].seeds))
        return True

    # -- evaluations -------------------------------------------------------------------------

    def _queue_stage(self, candidate: CandidateRecord, stage: StageSpec, seeds: range) -> None:
        """Store and submit the stage's evaluations that the candidate does not have yet."""
        have = {
            (e.task, e.seed)
            for e in self.archive.list_evaluations(candidate_id=candidate.id)
            if e.stage == stage.name
        }
        for task in stage.task_names():
            for seed in seeds:
                if (task, seed) in have:
                    continue
                row = self.archive.add_evaluation(
                    candidate_id=candidate.id, stage=stage.name, task=task, seed=seed
                )
                self._submit(candidate, row)

    def _submit(self, candidate: CandidateRecord, row: EvaluationRecord) -> None:
        stage = self._stage(row.stage)
        config = {**self.stage_extra.get(stage.name, {}), **stage.config}
        job = EvalJob(
            stage=stage.name,
            task=row.task,
            seed=row.seed,
            loss_name=candidate.name,
            graph_json=(candidate.graph or {})["json"],
            config=config,
        )
        self.dispatcher.submit(job)
        self._queued[id(job)] = (job, row.id)

    def _finish(self, job: EvalJob, result: RunResult) -> None:
        _, evaluation_id = self._queued.pop(id(job))
        # LLM calls first (the hf stage's judge): they count toward the LLM-dollar budget, and
        # a crash between the two over-counts a re-run evaluation rather than losing its cost.
        for call in result.llm_calls:
            self.archive.record_llm_call(
                campaign_id=self.campaign_id,
                purpose=str(call.get("purpose", "judge")),
                model=str(call.get("model", "")),
                prompt_tokens=int(call.get("prompt_tokens", 0)),
                completion_tokens=int(call.get("completion_tokens", 0)),
                cost_usd=float(call.get("cost_usd", 0.0)),
                latency_s=float(call.get("latency_s", 0.0)),
                error=call.get("error"),
            )
        status = EvaluationStatus(result.status.value)
        row = self.archive.finish_evaluation(
            evaluation_id,
            status=status,
            metrics=result.metrics,
            timings={"seconds": result.seconds, **result.timings},
            reason=result.reason,
        )
        self._used["compute_hours"] = self._used.get("compute_hours", 0.0) + result.seconds / 3600
        self._event(
            "evaluation",
            {
                "candidate": row.candidate_id,
                "stage": row.stage,
                "task": row.task,
                "seed": row.seed,
                "status": str(status),
            },
        )
        waiting = self._score_pending()
        for candidate_id, stage in {(row.candidate_id, row.stage), *waiting}:
            self._decide(candidate_id, stage)

    def _score_pending(self) -> set[tuple[int, str]]:
        """Score every DONE evaluation whose DPO counterpart has finished; returns the
        (candidate, stage) pairs that got a score, whose promotion may now be decided."""
        dpo = self._dpo_results()
        scored = set()
        for row in self.archive.list_evaluations(
            campaign_id=self.campaign_id, status=EvaluationStatus.DONE
        ):
            key = (row.stage, row.task, row.seed)
            if row.score is None and key in dpo:
                metric = self.metrics[row.stage]
                self.archive.set_score(row.id, row.metrics[metric] - dpo[key])
                scored.add((row.candidate_id, row.stage))
        return scored

    def _dpo_results(self) -> dict[tuple[str, str, int], float]:
        dpo = self._dpo_id()
        return {
            (e.stage, e.task, e.seed): e.metrics[self.metrics[e.stage]]
            for e in self.archive.list_evaluations(candidate_id=dpo, status=EvaluationStatus.DONE)
        }

    def _decide(self, candidate_id: int, stage_name: str) -> None:
        """Promote (or not) a candidate that has finished `stage_name`; once per candidate."""
        if (candidate_id, stage_name) in self._decided:
            return
        evaluations = self.archive.list_evaluations(candidate_id=candidate_id)
        stage = self._stage(stage_name)
        mine = [e for e in evaluations if e.stage == stage_name]
        if not mine:
            return  # not entitled to this stage (not promoted to it)
        if any(e.status in (EvaluationStatus.PENDING, EvaluationStatus.RUNNING) for e in mine):
            return
        if any(e.status is EvaluationStatus.DONE and e.score is None for e in mine):
            return  # waits for DPO's run of the same seed
        public = self._public_tasks(stage)
        if not public:  # held out only: scored on the leaderboard, never used to select
            self._decide_held_out(candidate_id, stage, mine)
            return
        score = stage_score(evaluations, stage=stage_name, tasks=public)
        candidate = self.archive.get_candidate(candidate_id)
        if score.score is None:
            failed = [e for e in mine if e.status is not EvaluationStatus.DONE]
            reason = failed[0].reason if failed else "no seed finished"
            self.archive.update_candidate(
                candidate_id, status=CandidateStatus.FAILED, reason=f"{stage_name}: {reason}"
            )
            self._record_decision(candidate_id, stage_name, promoted=False, score=None)
            return
        if candidate.status is CandidateStatus.ACCEPTED:
            self.archive.update_candidate(candidate_id, status=CandidateStatus.EVALUATED)
        index = [s.name for s in self.spec.stages].index(stage_name)
        promoted = (
            candidate_id != self._dpo_id()  # DPO runs every stage from the start
            and index + 1 < len(self.spec.stages)
            and self._ranks_in(score.score, stage, candidate_id)
        )
        if promoted:  # queue first: a crash before the decision is stored just decides again
            following = self.spec.stages[index + 1]
            self._queue_stage(candidate, following, range(following.seeds))
        self._record_decision(candidate_id, stage_name, promoted=promoted, score=score.score)

    def _decide_held_out(
        self, candidate_id: int, stage: StageSpec, mine: list[EvaluationRecord]
    ) -> None:
        """A stage with only held-out tasks (the spec makes it the last one): no promotion and no
        selection score; a candidate fails it only when none of its runs finished."""
        if not any(e.status is EvaluationStatus.DONE for e in mine):
            reason = mine[0].reason or "no run finished"
            self.archive.update_candidate(
                candidate_id, status=CandidateStatus.FAILED, reason=f"{stage.name}: {reason}"
            )
        elif self.archive.get_candidate(candidate_id).status is CandidateStatus.ACCEPTED:
            self.archive.update_candidate(candidate_id, status=CandidateStatus.EVALUATED)
        self._record_decision(candidate_id, stage.name, promoted=False, score=None)

    def _ranks_in(self, score: float, stage: StageSpec, candidate_id: int) -> bool:
        """Is `score` within the top `promote_fraction` of the stage's finished candidates?"""
        public = self._public_tasks(stage)
        by_candidate: dict[int, list[EvaluationRecord]] = {}
        for e in self.archive.list_evaluations(campaign_id=self.campaign_id):
            by_candidate.setdefault(e.candidate_id, []).append(e)
        scores = [
            s.score
            for cid, evals in by_candidate.items()
            if (s := stage_score(evals, stage=stage.name, tasks=public)).score is not None
            and cid != self._dpo_id()
        ]
        keep = max(1, math.ceil(stage.promote_fraction * len(scores)))
        return score >= sorted(scores, reverse=True)[min(keep, len(scores)) - 1]

    # -- start and resume --------------------------------------------------------------------

    def _ensure_baselines(self) -> None:
        """Baselines are candidates too; DPO runs at every stage (every score is relative to it)."""
        existing = {
            c.name
            for c in self.archive.list_candidates(campaign_id=self.campaign_id)
            if c.origin == "baseline"
        }
        for name in ["dpo", *[b for b in self.spec.baselines if b != "dpo"]]:
            if name in existing:
                continue
            record = self.archive.add_candidate(
                campaign_id=self.campaign_id,
                name=name,
                source=BASELINES[name].source,
                origin="baseline",
                thought=BASELINES[name].cite,
            )
            if not self._validate(record):
                log.warning("baseline %s was not accepted: %s", name, record.reason)

    def _recover(self) -> None:
        """Re-queue what a previous run left: unvalidated candidates, PENDING evaluations."""
        for candidate in self.archive.list_candidates(
            campaign_id=self.campaign_id, status=CandidateStatus.PROPOSED
        ):
            self._validate(candidate)
        by_id = {c.id: c for c in self.archive.list_candidates(campaign_id=self.campaign_id)}
        dpo = by_id[self._dpo_id()]
        for stage in self.spec.stages:  # every score needs DPO's run of the same seed
            self._queue_stage(dpo, stage, range(stage.seeds))
        for candidate in by_id.values():  # accepted just before a crash, never queued
            if candidate.status is CandidateStatus.ACCEPTED:
                self._queue_stage(candidate, self.spec.stages[0], range(self.spec.stages[0].seeds))
        queued = {row_id for _, row_id in self._queued.values()}
        for row in self.archive.list_evaluations(campaign_id=self.campaign_id):
            open_row = row.status in (EvaluationStatus.PENDING, EvaluationStatus.RUNNING)
            if open_row and row.id not in queued:
                self._submit(by_id[row.candidate_id], row)
        self._score_pending()
        for candidate in by_id.values():
            for stage in self.spec.stages:
                self._decide(candidate.id, stage.name)

    # -- budgets and control -----------------------------------------------------------------

    def _candidate_budget_left(self) -> int:
        limit = self.spec.budget.candidates
        if limit is None:
            return self.spec.proposer.batch_size
        proposed = sum(
            1
            for c in self.archive.list_candidates(campaign_id=self.campaign_id)
            if c.origin != "baseline"
        )
        return limit - proposed

    def _hard_budget_reached(self) -> tuple[CampaignStatus, str] | None:
        used = self._spent()
        budget = self.spec.budget
        checks = (
            ("wall_time_s", budget.wall_time_s, "wall-time"),
            ("compute_hours", budget.compute_hours, "compute-hours"),
            ("llm_dollars", budget.llm_dollars, "LLM-dollar"),
        )
        for key, limit, label in checks:
            if limit is not None and used.get(key, 0.0) >= limit:
                return CampaignStatus.FINISHED, f"{label} budget reached ({used[key]:.3g})"
        return None

    def _external_stop(self) -> tuple[CampaignStatus, str] | None:
        status = self.archive.get_campaign(self.campaign_id).status
        if status is CampaignStatus.PAUSED:
            return CampaignStatus.PAUSED, "paused on request; resume with --resume"
        if status is CampaignStatus.CANCELLED:
            return CampaignStatus.CANCELLED, "cancelled on request"
        return None

    def _spent(self) -> dict[str, float]:
        used = dict(self._used)
        used["wall_time_s"] = used.get("wall_time_s", 0.0) + (self.clock() - self._started)
        used["llm_dollars"] = self.archive.llm_cost(campaign_id=self.campaign_id)
        return used

    def _save_budget(self, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._saved_at >= _BUDGET_SAVE_S:
            self.archive.set_budget_used(self.campaign_id, self._spent())
            self._saved_at = now

    def _first_stage_in_flight(self) -> int:
        """Queued first-stage jobs: the bound on proposing. Later stages are few and slow; they
        drain on their own and must not stall the search."""
        first = self.spec.stages[0].name
        return sum(1 for job, _ in self._queued.values() if job.stage == first)

    # -- helpers -----------------------------------------------------------------------------

    def _stage(self, name: str) -> StageSpec:
        return next(s for s in self.spec.stages if s.name == name)

    def _public_tasks(self, stage: StageSpec) -> list[str]:
        held_out = stage_tasks(stage.name, stage.config)
        return [t for t in stage.task_names() if not held_out.get(t, False)]

    def _dpo_id(self) -> int:
        if not hasattr(self, "_dpo"):
            self._dpo = next(
                c.id
                for c in self.archive.list_candidates(campaign_id=self.campaign_id)
                if c.origin == "baseline" and c.name == "dpo"
            )
        return self._dpo

    def _members(self) -> list[Member]:
        first = self.spec.stages[0]
        public = self._public_tasks(first)
        by_candidate: dict[int, list[EvaluationRecord]] = {}
        for e in self.archive.list_evaluations(campaign_id=self.campaign_id):
            by_candidate.setdefault(e.candidate_id, []).append(e)
        members = []
        for c in self.archive.list_candidates(campaign_id=self.campaign_id):
            if c.status in (CandidateStatus.ACCEPTED, CandidateStatus.EVALUATED):
                score = stage_score(by_candidate.get(c.id, []), stage=first.name, tasks=public)
                members.append(
                    Member(
                        id=c.id,
                        name=c.name,
                        code=c.source,
                        island=c.island or 0,
                        score=score.score,
                        genome=(c.provenance or {}).get("genome"),
                    )
                )
        return members

    def _recent_failures(self, k: int = 5) -> tuple[Failure, ...]:
        rejected = self.archive.list_candidates(
            campaign_id=self.campaign_id, status=CandidateStatus.REJECTED
        )
        return tuple(
            Failure(name=c.name, code=c.source, reason=c.reason or "") for c in rejected[-k:][::-1]
        )

    def _proposal_calls(self) -> int:
        events = self.archive.list_events(
            campaign_id=self.campaign_id, limit=10**9, kind="proposal"
        )
        return len(events)

    def _decisions(self) -> set[tuple[int, str]]:
        events = self.archive.list_events(
            campaign_id=self.campaign_id, limit=10**9, kind="stage_done"
        )
        return {(e.payload["candidate"], e.payload["stage"]) for e in events}

    def _record_decision(
        self, candidate_id: int, stage: str, *, promoted: bool, score: float | None
    ) -> None:
        self._decided.add((candidate_id, stage))
        self._event(
            "stage_done",
            {"candidate": candidate_id, "stage": stage, "promoted": promoted, "score": score},
        )

    def _event(self, kind: str, payload: dict[str, object]) -> None:
        self.archive.append_event(campaign_id=self.campaign_id, kind=kind, payload=payload)

    def _notify(self, status: str = "RUNNING") -> None:
        if self.observer is None:
            return
        members = self._members()
        best = max((m for m in members if m.score is not None), key=lambda m: m.score, default=None)
        counts = self.archive.count_candidates(campaign_id=self.campaign_id)
        self.observer(
            Progress(
                campaign_id=self.campaign_id,
                status=status,
                candidates=sum(v for k, v in counts.items()) - len(self.spec.baselines),
                counts={str(k): v for k, v in counts.items()},
                in_flight=self.dispatcher.in_flight,
                best_name=best.name if best else None,
                best_score=best.score if best else None,
                budget_used=self._spent(),
            )
        )
