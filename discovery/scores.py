"""Candidate scores at a stage, read from stored evaluations, and the leaderboard built on them.

A stage score is a paired statistic: per seed, the score vs DPO averaged over a set of tasks (a
seed counts only when every one of them finished), then the mean over seeds with its 95% interval
and n (`evaluator.stats`). Seeds are kept apart by purpose (EVALUATION.md, rules 3-5):

- selection seeds, `0 .. stage.seeds - 1`: every candidate of the stage has them, so candidates
  are compared on the seeds they share; promotion and elites are decided on these;
- fresh seeds, from `stage.seeds` on: only elites (and DPO) run them, and nothing is selected on
  them, so they give the headline numbers. A stage without public tasks selects nothing, so all
  of its seeds are fresh.

A candidate is `confirmed` when its fresh-seed held-out interval lies above 0 (and its held-out
interval on the selection seeds does not lie below 0), `overfit` when its public (selection)
score is significantly above 0 and its held-out score significantly below (fresh seeds where it
has 2 or more, else the selection seeds), and `unconfirmed` otherwise.

`proxy_validity` says whether selection's proxy predicts held-out results: Spearman's rho between
public and held-out scores over a stage's candidates, and between consecutive stages' public
scores. `public_metrics` gives the raw metrics a proposer may see, from public tasks only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from discovery.archive import (
    CandidateRecord,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    ScoreRecord,
)
from evaluator import NO_SCORE, Correlation, StageScore, aggregate, spearman

# Full records, or the lean ones a leaderboard reads (the same fields where these functions look).
Scored = EvaluationRecord | ScoreRecord
Confirmation = Literal["confirmed", "overfit", "unconfirmed"]


@dataclass(frozen=True)
class StageTasks:
    """What the leaderboard needs of a stage: its tasks by kind and its selection seeds."""

    name: str
    public: list[str]
    held_out: list[str]
    seeds: int  # selection seeds are 0 .. seeds - 1; later seeds are fresh

    def selection(self) -> Callable[[int], bool]:
        return (lambda seed: seed < self.seeds) if self.public else (lambda seed: False)

    def fresh(self) -> Callable[[int], bool]:
        return (lambda seed: seed >= self.seeds) if self.public else (lambda seed: True)


def stage_score(
    evaluations: Sequence[Scored],
    *,
    stage: str,
    tasks: Sequence[str],
    seeds: Callable[[int], bool] | Container[int] | None = None,
) -> StageScore:
    """Score over `tasks` at `stage` from one candidate's evaluations, on the seeds `seeds`
    admits (a predicate or a container; None: every seed)."""
    admits = (
        (lambda s: True) if seeds is None else seeds if callable(seeds) else seeds.__contains__  # type: ignore[union-attr]
    )
    by_seed: dict[int, dict[str, float]] = {}
    for e in evaluations:
        done = e.status is EvaluationStatus.DONE and e.score is not None
        if done and e.stage == stage and e.task in tasks and admits(e.seed):
            by_seed.setdefault(e.seed, {})[e.task] = e.score  # type: ignore[assignment]
    per_seed = [
        sum(scores.values()) / len(scores)
        for _, scores in sorted(by_seed.items())
        if set(scores) == set(tasks)
    ]
    return aggregate(per_seed)


def public_metrics(
    evaluations: Sequence[EvaluationRecord], *, public_tasks: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Each metric's mean over a candidate's finished runs on public tasks, keyed "stage/metric".

    `public_tasks` maps each stage to its public tasks; runs of any other task (the held-out ones)
    or stage are left out, so nothing private can reach a proposer through these numbers.
    Non-finite values are skipped.
    """
    sums: dict[str, list[float]] = {}
    for e in evaluations:
        if e.status is not EvaluationStatus.DONE or e.task not in public_tasks.get(e.stage, ()):
            continue
        for name, value in e.metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                sums.setdefault(f"{e.stage}/{name}", []).append(float(value))
    return {name: sum(values) / len(values) for name, values in sorted(sums.items())}


def confirmation(
    public: StageScore, held_out: StageScore, fresh_held_out: StageScore
) -> Confirmation:
    """confirmed / overfit / unconfirmed, from the three paired scores (see the module doc)."""
    # Held-out evidence against it on the selection seeds vetoes a confirmation: the claim must
    # survive every look that was not used to select it.
    if fresh_held_out.paired.above_zero and not held_out.paired.below_zero:
        return "confirmed"
    held = fresh_held_out if fresh_held_out.seeds >= 2 else held_out
    if public.paired.above_zero and held.paired.below_zero:
        return "overfit"
    return "unconfirmed"


@dataclass(frozen=True)
class LeaderboardRow:
    id: int
    name: str
    origin: str
    stage: str | None  # highest stage with a public (selection) score; None if none yet
    # vs DPO at that stage, public tasks, selection seeds: mean, 95% interval, n
    score: float | None
    score_low: float | None
    score_high: float | None
    spread: float
    seeds: int
    # vs DPO on the held-out tasks of the highest stage that scored any (that stage, or a later
    # stage whose tasks are all held out), selection seeds
    held_out_score: float | None
    held_out_low: float | None
    held_out_high: float | None
    held_out_seeds: int
    # The headline: the same on fresh seeds (never used to select), where the candidate has any
    fresh_score: float | None  # public tasks
    fresh_low: float | None
    fresh_high: float | None
    fresh_seeds: int
    fresh_held_out_score: float | None
    fresh_held_out_low: float | None
    fresh_held_out_high: float | None
    fresh_held_out_seeds: int
    confirmation: str  # confirmed / overfit / unconfirmed
    status: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    @property
    def has_score(self) -> bool:
        """Scored vs DPO on public or held-out tasks (not rejected, duplicate, failed or
        still waiting)."""
        return self.score is not None or self.held_out_score is not None

    @property
    def rank_key(self) -> tuple[int, float]:
        return StageScore(
            self.score, self.spread, self.seeds, self.score_low, self.score_high
        ).paired.rank_key


def _row(
    c: CandidateRecord | CandidateSummary, evals: list[Scored], stages: Sequence[StageTasks]
) -> LeaderboardRow:
    stage: str | None = None
    public, held, fresh, fresh_held = NO_SCORE, NO_SCORE, NO_SCORE, NO_SCORE
    for s in stages:
        if s.public:
            score = stage_score(evals, stage=s.name, tasks=s.public, seeds=s.selection())
            if score.score is not None:
                stage, public = s.name, score
                fresh_public = stage_score(evals, stage=s.name, tasks=s.public, seeds=s.fresh())
                if fresh_public.score is not None:
                    fresh = fresh_public
        if s.held_out:
            # A stage with only held-out tasks (hf on IMDb) has no public score; its held-out
            # score still shows.
            # A stage without public tasks selects nothing: its held-out score is all its seeds.
            seeds = s.selection() if s.public else None
            score = stage_score(evals, stage=s.name, tasks=s.held_out, seeds=seeds)
            if score.score is not None:
                held = score
            score = stage_score(evals, stage=s.name, tasks=s.held_out, seeds=s.fresh())
            if score.score is not None:
                fresh_held = score
    return LeaderboardRow(
        id=c.id,
        name=c.name,
        origin=c.origin,
        stage=stage,
        score=public.score,
        score_low=public.low,
        score_high=public.high,
        spread=public.spread,
        seeds=public.seeds,
        held_out_score=held.score,
        held_out_low=held.low,
        held_out_high=held.high,
        held_out_seeds=held.seeds,
        fresh_score=fresh.score,
        fresh_low=fresh.low,
        fresh_high=fresh.high,
        fresh_seeds=fresh.seeds,
        fresh_held_out_score=fresh_held.score,
        fresh_held_out_low=fresh_held.low,
        fresh_held_out_high=fresh_held.high,
        fresh_held_out_seeds=fresh_held.seeds,
        confirmation=confirmation(public, held, fresh_held),
        status=str(c.status),
    )


def _by_candidate(evaluations: Sequence[Scored]) -> dict[int, list[Scored]]:
    out: dict[int, list[Scored]] = {}
    for e in evaluations:
        out.setdefault(e.candidate_id, []).append(e)
    return out


def leaderboard(
    candidates: Sequence[CandidateRecord | CandidateSummary],
    evaluations: Sequence[Scored],
    *,
    stages: Sequence[StageTasks],
) -> list[LeaderboardRow]:
    """Rows ranked by highest stage reached, then by the lower end of the score's 95% interval
    (what selection ranks by: a mean on two lucky seeds does not top a steady gain)."""
    by_candidate = _by_candidate(evaluations)
    rows = [_row(c, by_candidate.get(c.id, []), stages) for c in candidates]
    order = {s.name: i for i, s in enumerate(stages)}
    rows.sort(key=lambda r: (order.get(r.stage, -1) if r.stage else -1, r.rank_key), reverse=True)
    return rows


@dataclass(frozen=True)
class ProxyValidity:
    """Does what selection sees predict what it does not? Spearman's rho with 95% intervals."""

    # stage -> rho(public score, held-out score) over its candidates, selection seeds
    public_vs_held_out: dict[str, Correlation]
    # "bandit->tinylm" -> rho(public score at one stage, public score at the next)
    between_stages: dict[str, Correlation]

    def as_dict(self) -> dict[str, dict[str, dict[str, float | int | None]]]:
        return {
            "public_vs_held_out": {k: v.as_dict() for k, v in self.public_vs_held_out.items()},
            "between_stages": {k: v.as_dict() for k, v in self.between_stages.items()},
        }


def selection_scores(
    candidates: Sequence[CandidateRecord | CandidateSummary],
    evaluations: Sequence[Scored],
    *,
    stages: Sequence[StageTasks],
) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """(public, held-out): stage -> candidate id -> its score on selection seeds, for the
    candidates other than DPO (the yardstick, 0 by construction) that have one."""
    by_candidate = _by_candidate(evaluations)
    public: dict[str, dict[int, float]] = {s.name: {} for s in stages}
    held: dict[str, dict[int, float]] = {s.name: {} for s in stages}
    for c in candidates:
        if c.origin == "baseline" and c.name == "dpo":
            continue
        evals = by_candidate.get(c.id, [])
        for s in stages:
            for tasks, into in ((s.public, public), (s.held_out, held)):
                if tasks:
                    score = stage_score(evals, stage=s.name, tasks=tasks, seeds=s.selection())
                    if score.score is not None:
                        into[s.name][c.id] = score.score
    return public, held


def shared(a: Mapping[int, float], b: Mapping[int, float]) -> list[tuple[float, float]]:
    """(a, b) score pairs of the candidates both maps hold, by candidate id."""
    return [(a[i], b[i]) for i in sorted(a.keys() & b.keys())]


def proxy_validity(
    candidates: Sequence[CandidateRecord | CandidateSummary],
    evaluations: Sequence[Scored],
    *,
    stages: Sequence[StageTasks],
) -> ProxyValidity:
    """Rank correlations over the campaign's candidates other than DPO, on selection seeds."""
    public, held = selection_scores(candidates, evaluations, stages=stages)

    def rho(a: dict[int, float], b: dict[int, float]) -> Correlation:
        pairs = shared(a, b)
        return spearman([x for x, _ in pairs], [y for _, y in pairs])

    return ProxyValidity(
        public_vs_held_out={
            s.name: rho(public[s.name], held[s.name]) for s in stages if s.public and s.held_out
        },
        between_stages={
            f"{a.name}->{b.name}": rho(public[a.name], public[b.name])
            for a, b in itertools.pairwise(stages)
            if a.public and b.public
        },
    )
