"""The evaluation cascade: scores vs DPO, finished stages, promotion and elite confirmation.

Every evaluation is scored against DPO under the same (stage, task, seed) as soon as the DPO runs
it needs have finished (`evaluator.scoring.versus_dpo`: at tinylm, reward minus DPO's reward-KL
frontier at the candidate's KL; at hf, against the frontier through DPO's runs at every beta of
the grid). A candidate has finished a stage when none of its runs there is open and every
finished one is scored; its selection score is the paired mean over the selection seeds
(`0 .. seeds - 1`) of the per-seed score averaged over the stage's public tasks, with a 95%
interval (held-out tasks never decide anything).

A run that can never be scored does not hold a stage open for ever: when DPO's run of its (stage,
task, seed) has failed with no attempt left open (the engine retries DPO's runs and LOST ones,
`discovery.retries`), or its own run was LOST past the retries, the candidate's stage is finished
without it. The stage is then recorded in `unscored` with the reason ("DPO's bandit run on task
tabular seed 2 failed 3 times: ..."), and a candidate left with no score anywhere is UNSCORED with
that reason: never silently unranked. The engine does not end such a campaign FINISHED (it stops
it resumable); a resume re-runs what is missing, and the scores then come in as usual.

Promotion is asynchronous successive halving (ASHA, arXiv 1810.05934) ranked by the lower end of
that interval, not the mean (a gain on two lucky seeds does not beat a steady one): whenever a
candidate finishes a stage, the best `floor(promote_fraction * n)` of the `n` candidates that have
finished it are promoted to the next stage, if they are not already. A candidate that did not
make the cut when it finished can still be promoted later as the field grows, and none is
promoted from a field too small to rank it; once nothing more can join a stage, a final pass
promotes at least one.

Elites: the best `elites` proposed candidates of a stage with `elite_seeds` set, at most one per
lineage (first-parent line), are re-run with DPO on fresh seeds `seeds .. elite_seeds - 1`, every
task of the stage included: the confirmation. Fresh seeds never change a selection score; the
leaderboard reports them apart (`discovery.scores`).

All decisions are written to the archive before the engine acts on them; on resume everything is
derived again from stored evaluations (promoted = has evaluations at the next stage; elite = has
seeds beyond the stage's `seeds`), so nothing is decided twice. The cascade queues nothing itself:
it returns `Queue` actions for the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from discovery.archive import CandidateStatus, EvaluationRecord, EvaluationStatus
from discovery.ledger import OPEN, Ledger
from discovery.scores import stage_score
from discovery.spec import CampaignSpec, StageSpec
from discovery.store import CampaignStore
from evaluator import StageScore, frontier_tasks, score_metric, versus_dpo

# Statuses a score moves to EVALUATED: waiting, unscored until a resume, or failed before a retry
# (DPO's runs are retried whatever their failure).
_UNFINISHED = (CandidateStatus.ACCEPTED, CandidateStatus.UNSCORED, CandidateStatus.FAILED)


@dataclass(frozen=True)
class Queue:
    """Evaluate `candidate_id` at `stage` with these seeds (those it already has are skipped)."""

    candidate_id: int
    stage: StageSpec
    seeds: range


class Cascade:
    def __init__(
        self, *, campaign_id: int, spec: CampaignSpec, ledger: Ledger, archive: CampaignStore
    ) -> None:
        self.campaign_id = campaign_id
        self.spec = spec
        self.ledger = ledger
        self.archive = archive
        # Stage scores of candidates at the last time they finished the stage: the field
        # promotion and elites rank. (candidate id, stage name) -> score.
        self.scores: dict[tuple[int, str], StageScore] = {}
        self._reported: set[tuple[int, str, int]] = set()  # stage_done events written
        # Decisions taken by this cascade, (candidate id, stage name): promoted *from* the stage,
        # elected at it. Before they are acted on only memory holds them; after, the ledger does.
        self._promoted: set[tuple[int, str]] = set()
        self._elected: set[tuple[int, str]] = set()
        self.dpo_id = -1  # set by `start`, once the baselines are stored
        # Stages finished with runs that can never be scored (until a resume re-runs them):
        # (candidate id, stage name) -> why, naming the first such run.
        self.unscored: dict[tuple[int, str], str] = {}
        # The metric each stage ranks by (the hf stage's depends on its scoring config).
        self._metrics = {s.name: score_metric(s.name, s.config) for s in spec.stages}

    # -- start -------------------------------------------------------------------------------

    def start(self, dpo_id: int) -> list[Queue]:
        """Catch up with what is stored (a resume): score, finish stages, then promote."""
        self.dpo_id = dpo_id
        for event in self.archive.list_events(
            campaign_id=self.campaign_id, kind="stage_done", limit=10**9
        ):
            p = event.payload
            self._reported.add((p["candidate"], p["stage"], p.get("seeds", 0)))
        for row in list(self.ledger.evaluations.values()):
            self.score(row)
        for candidate_id in list(self.ledger.candidates):
            for stage in self.spec.stages:
                self._finish_stage(candidate_id, stage)
        return [q for stage in self.spec.stages for q in self._promote_and_elect(stage)]

    # -- a finished evaluation ---------------------------------------------------------------

    def finished(self, row: EvaluationRecord) -> list[Queue]:
        """Everything that follows from `row` having finished: scores, stages, promotions."""
        touched = {(row.candidate_id, row.stage)}
        touched |= {(e.candidate_id, e.stage) for e in self.score(row)}
        changed = {
            stage_name
            for candidate_id, stage_name in touched
            if self._finish_stage(candidate_id, self.stage(stage_name))
        }
        return [
            q
            for stage in self.spec.stages
            if stage.name in changed
            for q in self._promote_and_elect(stage)
        ]

    def score(self, row: EvaluationRecord) -> list[EvaluationRecord]:
        """Score the DONE rows that `row` makes scorable (itself, or, when it is DPO's, every
        row of its stage and seed that waited for it); returns them as stored."""
        if row.status is not EvaluationStatus.DONE:
            return []
        if row.candidate_id == self.dpo_id:
            # An hf frontier needs DPO's runs at every beta of the seed: any row of the seed
            # may have waited for this one.
            waiting = [
                e
                for task in self.stage(row.stage).task_names()
                for e in self.ledger.at((row.stage, task, row.seed))
            ]
        else:
            waiting = [row]
        scored = []
        for e in waiting:
            if e.status is not EvaluationStatus.DONE or e.score is not None:
                continue
            value = self._versus_dpo(e)
            if value is not None:
                scored.append(self.ledger.put_evaluation(self.archive.set_score(e.id, value)))
        return scored

    def _versus_dpo(self, e: EvaluationRecord) -> float | None:
        """`e`'s paired difference to DPO under the same seed; None while DPO's runs it needs
        are open (or DPO's run of its task failed: there is nothing to pair it with, see
        `_unpaired`)."""
        metric = self.metric(e.stage)
        tasks = frontier_tasks(e.stage, e.task, self.stage(e.stage).task_names(), metric)
        runs = {}
        for task in tasks:
            dpo = [
                r for r in self.ledger.at((e.stage, task, e.seed)) if r.candidate_id == self.dpo_id
            ]
            if not dpo or any(r.status in OPEN for r in dpo):
                return None
            done = next((r for r in dpo if r.status is EvaluationStatus.DONE), None)
            if done is not None:
                runs[task] = done
        if e.task not in runs:
            return None
        grid = [r.metrics for r in runs.values()]
        return versus_dpo(e.stage, metric, e.metrics, runs[e.task].metrics, grid=grid)

    def _unpaired(self, e: EvaluationRecord) -> str | None:
        """Why the DONE, unscored `e` can never be scored: DPO's run of its stage, task and seed
        ended failed with no attempt open. None while it may still be (DPO's run is to come)."""
        dpo = [
            r for r in self.ledger.at((e.stage, e.task, e.seed)) if r.candidate_id == self.dpo_id
        ]
        if not dpo or any(r.status in OPEN or r.status is EvaluationStatus.DONE for r in dpo):
            return None
        last = max(dpo, key=lambda r: r.attempt)
        return (
            f"DPO's {e.stage} run on task {e.task} seed {e.seed} failed "
            f"{_times(len(dpo))}: {last.reason or last.status}"
        )

    @staticmethod
    def _lost(mine: list[EvaluationRecord]) -> list[str]:
        """The candidate's own runs whose last attempt was LOST (its worker died) and none
        finished: they may yet be scored, by a resume."""
        runs: dict[tuple[str, int], list[EvaluationRecord]] = {}
        for e in mine:
            runs.setdefault((e.task, e.seed), []).append(e)
        out = []
        for (task, seed), rows in sorted(runs.items()):
            last = max(rows, key=lambda r: r.attempt)
            done = any(r.status is EvaluationStatus.DONE for r in rows)
            if last.status is EvaluationStatus.LOST and not done:
                out.append(
                    f"its {last.stage} run on task {task} seed {seed} was lost "
                    f"{_times(len(rows))}: {last.reason}"
                )
        return out

    def _finish_stage(self, candidate_id: int, stage: StageSpec) -> bool:
        """If the candidate has just finished `stage`, record it; True when its score changed."""
        mine = self.ledger.of(candidate_id, stage.name)
        if not mine or any(e.status in OPEN for e in mine):
            return False  # not entitled to the stage, or still running
        missing = []
        for e in mine:
            if e.status is EvaluationStatus.DONE and e.score is None:
                why = self._unpaired(e)
                if why is None:
                    return False  # waits for DPO's run of the same seed
                missing.append(why)
        if candidate_id != self.dpo_id:  # DPO's own losses show as its dependants' reasons
            missing += self._lost(mine)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            self.unscored[(candidate_id, stage.name)] = missing[0] + more
        else:
            self.unscored.pop((candidate_id, stage.name), None)
        # Selection ranks on the selection seeds only: an elite's fresh seeds confirm, they
        # never lift it in the field (EVALUATION.md, rule 4).
        score = stage_score(
            mine,
            stage=stage.name,
            tasks=self.public_tasks(stage),
            seeds=lambda seed: seed < stage.seeds,
        )
        seeds = len({e.seed for e in mine})
        before = self.scores.get((candidate_id, stage.name))
        if score.score is not None:
            self.scores[(candidate_id, stage.name)] = score
        self._set_status(candidate_id, stage, score, mine)
        if missing and (candidate_id, stage.name, seeds) not in self._reported:
            self._event(
                "unscored",
                {"candidate": candidate_id, "stage": stage.name, "reason": missing[0]},
            )
        if (candidate_id, stage.name, seeds) not in self._reported:
            self._reported.add((candidate_id, stage.name, seeds))
            self._event(
                "stage_done",
                {
                    "candidate": candidate_id,
                    "stage": stage.name,
                    "seeds": seeds,
                    "score": score.score,
                    "score_low": score.low,
                    "score_high": score.high,
                    "n": score.seeds,
                    "spread": score.spread,
                },
            )
        return score.score is not None and score != before

    def _set_status(
        self,
        candidate_id: int,
        stage: StageSpec,
        score: StageScore,
        mine: list[EvaluationRecord],
    ) -> None:
        candidate = self.ledger.candidates[candidate_id]
        # A stage whose tasks are all held out (hf on IMDb) has no selection score: a finished run
        # is enough to count as evaluated there.
        held_out_only = not self.public_tasks(stage)
        finished = any(e.status is EvaluationStatus.DONE for e in mine)
        if score.score is not None or (held_out_only and finished):
            if candidate.status in _UNFINISHED:
                stored = self.archive.update_candidate(
                    candidate_id, status=CandidateStatus.EVALUATED
                )
                self.ledger.put_candidate(stored)
            return
        if any(cid == candidate_id for cid, _ in self.scores):
            return  # scored at another stage: it stays EVALUATED; the runs keep their reasons
        if candidate.status is CandidateStatus.FAILED:
            return
        why = self.unscored.get((candidate_id, stage.name))
        if why is not None:  # not the loss's fault: a resume runs what is missing
            reason = f"{stage.name}: {why}"
            if (candidate.status, candidate.reason) != (CandidateStatus.UNSCORED, reason):
                stored = self.archive.update_candidate(
                    candidate_id, status=CandidateStatus.UNSCORED, reason=reason
                )
                self.ledger.put_candidate(stored)
            return
        failed = [e for e in mine if e.status is not EvaluationStatus.DONE]
        reason = failed[0].reason if failed else "no seed finished every public task"
        stored = self.archive.update_candidate(
            candidate_id, status=CandidateStatus.FAILED, reason=f"{stage.name}: {reason}"
        )
        self.ledger.put_candidate(stored)

    # -- promotion and elites ----------------------------------------------------------------

    def _field(self, stage: StageSpec) -> list[tuple[float, int]]:
        """(score, candidate id) of the candidates that finished `stage`, best first by the
        lower end of the score's 95% interval (a mean lifted by one lucky seed does not win);
        DPO, the yardstick, is not in the race. Ties go to the older candidate."""
        field = [
            (s, cid)
            for (cid, name), s in self.scores.items()
            if name == stage.name and cid != self.dpo_id and s.score is not None
        ]
        field.sort(key=lambda t: (-t[0].paired.rank_key[0], -t[0].paired.rank_key[1], t[1]))
        return [(s.score, cid) for s, cid in field]  # type: ignore[misc]

    def _promote_and_elect(self, stage: StageSpec, *, final: bool = False) -> list[Queue]:
        return self._promote(stage, final=final) + self._elect(stage)

    def _promote(self, stage: StageSpec, *, final: bool = False) -> list[Queue]:
        index = self.spec.stages.index(stage)
        if index + 1 >= len(self.spec.stages):
            return []
        following = self.spec.stages[index + 1]
        field = self._field(stage)
        keep = math.floor(stage.promote_fraction * len(field))
        if final and field:
            keep = max(1, keep)
        actions = []
        for rank, (score, cid) in enumerate(field[:keep], 1):
            if (cid, stage.name) in self._promoted or self.ledger.of(cid, following.name):
                continue  # promoted before
            self._promoted.add((cid, stage.name))
            actions.append(Queue(cid, following, range(following.seeds)))
            self._event(
                "promoted",
                {
                    "candidate": cid,
                    "from": stage.name,
                    "to": following.name,
                    "score": score,
                    "rank": rank,
                    "field": len(field),
                },
            )
        return actions

    def _elect(self, stage: StageSpec) -> list[Queue]:
        """Re-run the stage's best `elites` with DPO on fresh seeds (`seeds .. elite_seeds - 1`),
        on every task of the stage, held-out ones included: the confirmation. Elites are drawn
        across lineages (the best of each), so the fresh seeds are not spent on one idea five
        times."""
        if stage.elite_seeds is None:
            return []
        extra = range(stage.seeds, stage.elite_seeds)
        actions = []
        # Discoveries only: a baseline's standing against DPO is context, not worth fresh seeds.
        proposed = [
            (score, cid)
            for score, cid in self._field(stage)
            if self.ledger.candidates[cid].origin != "baseline"
        ]
        for score, cid in self._diverse(proposed)[: stage.elites]:
            mine = self.ledger.of(cid, stage.name)
            if (cid, stage.name) in self._elected or any(e.seed >= stage.seeds for e in mine):
                continue  # re-evaluated before
            self._elected.add((cid, stage.name))
            # DPO's runs of the extra seeds first: every score is paired with one.
            actions += [Queue(self.dpo_id, stage, extra), Queue(cid, stage, extra)]
            self._event(
                "elite",
                {
                    "candidate": cid,
                    "stage": stage.name,
                    "score": score,
                    "seeds": len(extra),
                    "lineage": self.lineage(cid),
                },
            )
        return actions

    def _diverse(self, field: list[tuple[float, int]]) -> list[tuple[float, int]]:
        """The best of each lineage in `field`, in rank order."""
        seen: set[int] = set()
        out = []
        for entry in field:
            root = self.lineage(entry[1])
            if root not in seen:
                seen.add(root)
                out.append(entry)
        return out

    def lineage(self, candidate_id: int) -> int:
        """The root of a candidate's first-parent line: the baseline or seed formula (or the
        first proposal) an idea descends from."""
        seen = set()
        current = candidate_id
        while current not in seen:
            seen.add(current)
            record = self.ledger.candidates.get(current)
            if record is None or not record.parent_ids or record.origin == "baseline":
                return current
            current = record.parent_ids[0]
        return current

    def final_pass(self) -> list[Queue]:
        """Once nothing more can join any stage: promote at least one from each field."""
        for stage in self.spec.stages:
            actions = self._promote(stage, final=True)
            if actions:
                return actions  # later stages are decided when these finish
        return []

    # -- helpers -----------------------------------------------------------------------------

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.spec.stages if s.name == name)

    def metric(self, stage_name: str) -> str:
        """The metric a stage ranks by (higher is better)."""
        return self._metrics[stage_name]

    def public_tasks(self, stage: StageSpec) -> list[str]:
        held_out = stage.held_out()
        return [t for t in stage.task_names() if not held_out.get(t, False)]

    def best(self) -> tuple[str, int, StageScore] | None:
        """(stage, candidate id, score) of the best proposed candidate at the furthest stage any
        proposed candidate has finished."""
        for stage in reversed(self.spec.stages):
            field = [
                (cid, self.scores[(cid, stage.name)])
                for _, cid in self._field(stage)
                if self.ledger.candidates[cid].origin != "baseline"
            ]
            if field:
                return stage.name, field[0][0], field[0][1]
        return None

    def unscored_summary(self) -> str | None:
        """`3 candidates could not be scored: <the first one's reason>`; None when every
        finished stage of every candidate is scored."""
        if not self.unscored:
            return None
        candidates = sorted({cid for cid, _ in self.unscored})
        (cid, stage), why = min(self.unscored.items())
        name = self.ledger.candidates[cid].name
        n = len(candidates)
        return (
            f"{n} candidate{'s' if n != 1 else ''} could not be fully scored "
            f"(#{cid} {name} at {stage}: {why})"
        )

    def _event(self, kind: str, payload: dict[str, object]) -> None:
        self.archive.append_event(campaign_id=self.campaign_id, kind=kind, payload=payload)


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"
