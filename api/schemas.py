"""The JSON shapes of the REST API (what the OpenAPI schema documents and responses are checked
against): campaigns, leaderboards, plot series, candidates, errors. Plain pydantic models, every
field described; the researcher's views (genealogy, compare, transcripts, training curves) are in
schemas_views.py. Building them from archive records is views.py's job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, RootModel

# Archive ids are 32-bit integers on every backend; larger numbers are no id (422, not a 500).
MAX_ID = 2**31 - 1
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="A campaign id.")]
CandidateId = Annotated[int, Path(ge=1, le=MAX_ID, description="A candidate id.")]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Budget(_Out):
    used: dict[str, float] = Field(
        description="Spent so far, summed over every run: wall_time_s, compute_hours, "
        "llm_dollars, candidates (proposed, baselines excluded)."
    )
    limits: dict[str, float] = Field(description="The spec's limits, same keys.")


class Best(_Out):
    candidate_id: int = Field(description="The candidate's id.")
    name: str = Field(description="The candidate's name.")
    stage: str = Field(description="The highest stage it has a score at.")
    score: float = Field(description="Score vs DPO at that stage (public tasks).")
    spread: float = Field(description="Standard deviation of the score over seeds.")


class Owner(_Out):
    """The engine that holds a campaign's lease (one engine per campaign)."""

    host: str = Field(description="The engine's host name.")
    pid: int = Field(description="The engine's process id on that host.")
    since: datetime = Field(description="When it took the campaign.")
    heartbeat: datetime = Field(description="Its last sign of life.")
    expired: bool = Field(description="No heartbeat for longer than the TTL: the engine is gone.")


class Campaign(_Out):
    id: int = Field(description="The campaign's id.")
    name: str = Field(description="The spec's name.")
    status: str = Field(
        description="PENDING, RUNNING, PAUSED, CANCELLED, FINISHED or FAILED; INTERRUPTED when it "
        "was running but its engine stopped sending heartbeats (killed, host or database gone): "
        "resume it from any server or the CLI."
    )
    reason: str | None = Field(description="Why it stopped, failed or is waiting.")
    seed: int = Field(description="The campaign seed every random choice derives from.")
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When its status last changed (UTC).")
    finished_at: datetime | None = Field(description="When it stopped for good; null: not yet.")
    budget: Budget = Field(description="Budget used and the spec's limits.")
    counts: dict[str, int] = Field(description="Candidates by status (baselines included).")
    proposed: int = Field(
        description="Candidates proposed, baselines excluded: what the candidates limit counts."
    )
    baselines: int = Field(description="Baseline candidates (DPO and the spec's others).")
    running: bool = Field(description="An engine process started by this server is alive.")
    owner: Owner | None = Field(
        None, description="The engine that owns the campaign (wherever it runs); null: none."
    )


class Correlation(_Out):
    rho: float | None = Field(description="Spearman's rho; null below 3 candidates.")
    low: float | None = Field(description="Low end of its 95% interval (Fisher z).")
    high: float | None = Field(description="High end of its 95% interval.")
    n: int = Field(description="Candidates with both scores.")


class ProxyValidity(_Out):
    public_vs_held_out: dict[str, Correlation] = Field(
        description="Per stage: rank correlation of candidates' public and held-out scores "
        "(selection seeds). Near 0 or below: what selection sees does not predict held-out."
    )
    between_stages: dict[str, Correlation] = Field(
        description="`a->b`: rank correlation of public scores at consecutive stages."
    )


class CampaignList(RootModel[list[Campaign]]):
    """Every campaign, newest first."""

    model_config = ConfigDict(frozen=True)


class LiveState(_Out):
    """What the running engine last reported of itself."""

    phase: str | None = Field(
        description="What the engine is doing: e.g. starting Ray, proposing, evaluating."
    )
    queue_depth: int | None = Field(description="Jobs queued, not yet handed to a worker.")
    in_flight: int | None = Field(description="Jobs handed to workers and not finished.")
    updated_at: datetime | None = Field(description="When the engine last reported (UTC).")


class Actions(_Out):
    """Which controls the campaign's status allows now (the page enables only these)."""

    pause: bool = Field(description="POST .../pause is allowed (PENDING, RUNNING, INTERRUPTED).")
    resume: bool = Field(description="POST .../resume is allowed (PAUSED, FAILED, INTERRUPTED).")
    cancel: bool = Field(description="POST .../cancel is allowed (any status but a final one).")


class CampaignDetail(Campaign):
    spec: dict[str, Any] = Field(description="The campaign spec, as validated.")
    stages: list[str] = Field(description="Its stages, in order.")
    best: Best | None = Field(description="The best proposed candidate at the furthest stage.")
    confirmed: int = Field(
        description="Proposed candidates confirmed: better than DPO on held-out tasks, fresh "
        "seeds, 95% interval above 0. 0 means no discovery holds up yet."
    )
    validity: ProxyValidity = Field(description="Whether selection's proxy predicts held-out.")
    live: LiveState | None = Field(
        description="The engine's last report of itself; null: no engine has reported."
    )
    actions: Actions = Field(description="Which controls are allowed now.")


class CampaignLinks(_Out):
    self: str = Field(description="The campaign's URL.")
    events: str = Field(description="Its server-sent event stream.")
    leaderboard: str = Field(description="Its leaderboard.")


class CampaignStarted(_Out):
    id: int = Field(description="The new campaign's id.")
    status: str = Field(description="PENDING: stored; its engine is starting.")
    links: CampaignLinks = Field(description="Where to follow it.")


class LeaderboardRow(_Out):
    rank: int = Field(description="1-based rank on the whole board (filters keep it).")
    id: int = Field(description="The candidate's id.")
    name: str = Field(description="The candidate's name.")
    origin: str = Field(description="baseline, evolve, llm, hf-local or user.")
    stage: str | None = Field(description="Highest stage with a score; null if none yet.")
    score: float | None = Field(
        description="Score vs DPO at that stage: public tasks, selection seeds, the mean of "
        "per-seed paired differences (tinylm: reward minus DPO's reward-KL frontier at the "
        "candidate's KL)."
    )
    score_low: float | None = Field(description="Low end of the score's 95% interval.")
    score_high: float | None = Field(description="High end of the score's 95% interval.")
    spread: float = Field(description="Standard deviation of the per-seed differences.")
    seeds: int = Field(description="n: selection seeds behind the score.")
    held_out_score: float | None = Field(
        description="Score vs DPO on held-out tasks (never shown to the proposer), selection seeds."
    )
    held_out_low: float | None = Field(description="Low end of its 95% interval.")
    held_out_high: float | None = Field(description="High end of its 95% interval.")
    held_out_seeds: int = Field(description="n behind the held-out score.")
    fresh_score: float | None = Field(
        description="Score vs DPO on public tasks, fresh seeds (never used to select)."
    )
    fresh_low: float | None = Field(description="Low end of its 95% interval.")
    fresh_high: float | None = Field(description="High end of its 95% interval.")
    fresh_seeds: int = Field(description="n behind the fresh-seed score.")
    fresh_held_out_score: float | None = Field(
        description="The headline: score vs DPO on held-out tasks, fresh seeds."
    )
    fresh_held_out_low: float | None = Field(description="Low end of its 95% interval.")
    fresh_held_out_high: float | None = Field(description="High end of its 95% interval.")
    fresh_held_out_seeds: int = Field(description="n behind the fresh held-out score.")
    confirmation: Literal["confirmed", "overfit", "unconfirmed"] = Field(
        description="confirmed: the fresh-seed held-out interval lies above 0; overfit: public "
        "significantly above 0 and held-out significantly below; unconfirmed: anything else."
    )
    status: str = Field(description="The candidate's status (EVALUATED, REJECTED, ...).")
    island: int | None = Field(None, description="Its island of the population; null: none.")
    tasks: dict[str, TaskScore] | None = Field(
        None,
        description='Only with tasks=true: "stage/task" -> its score vs DPO on that task alone '
        "(selection seeds).",
    )


class StageMetric(_Out):
    name: str = Field(
        description='What a score at the stage measures, e.g. "frontier/area vs DPO".'
    )
    description: str = Field(description="The same in one sentence.")


class LeaderboardPage(_Out):
    campaign_id: int = Field(description="The campaign's id.")
    total: int = Field(description="Rows after filtering.")
    offset: int = Field(description="Index of the first row of this page.")
    limit: int = Field(description="Most rows per page.")
    metrics: dict[str, StageMetric] = Field(
        description="Stage -> what a row's `score` measures at that stage (the column header)."
    )
    columns: list[str] = Field(
        description='With tasks=true: the "stage/task" keys of `rows[i].tasks`, public tasks '
        "first, then held-out; else empty."
    )
    rows: list[LeaderboardRow] = Field(description="The page's rows, in the order asked for.")


class TaskScore(_Out):
    score: float | None = Field(description="Mean of per-seed differences to DPO on this task.")
    low: float | None = Field(description="Low end of its 95% interval.")
    high: float | None = Field(description="High end of its 95% interval.")
    n: int = Field(description="Seeds behind it.")
    held_out: bool = Field(description="A held-out task (never shown to a proposer).")


class BestPoint(_Out):
    time: datetime = Field(description="When the run that set it finished (UTC).")
    seconds: float = Field(description="Seconds since the campaign was created.")
    candidate_id: int = Field(description="The candidate that set it.")
    name: str = Field(description="Its name.")
    score: float = Field(description="Its mean score vs DPO over the runs finished by then.")


class RewardKLPoint(_Out):
    candidate_id: int = Field(description="The candidate's id.")
    name: str = Field(description="Its name.")
    origin: str = Field(description="baseline, evolve, llm, hf-local or user.")
    baseline: bool = Field(description="A baseline (DPO, hinge, ...).")
    task: str = Field(
        description='The public task, or "all": the mean over every public run of the candidate.'
    )
    reward: float = Field(description="Mean reward over its runs (the series' reward_metric).")
    kl: float = Field(description="Mean KL to the reference over its runs (kl/ref).")


class FrontierPoint(_Out):
    beta: float = Field(description="DPO's beta at this point of its grid.")
    kl: float = Field(description="DPO's mean KL to the reference there.")
    reward: float = Field(description="DPO's mean reward there.")


class Frontier(_Out):
    task: str = Field(description="The public task.")
    points: list[FrontierPoint] = Field(description="DPO's reward-KL points, sorted by KL.")


class Series(_Out):
    stage: str = Field(description="The stage plotted.")
    stages: list[str] = Field(description="Stages with finished evaluations (for a selector).")
    metric: StageMetric = Field(description="What a score at this stage measures.")
    reward_metric: str = Field(description="The reward metric of reward_kl.")
    kl_metric: str = Field(description="The KL metric of reward_kl.")
    best_over_time: list[BestPoint] = Field(
        description="Each time a proposed candidate beat the best so far at this stage."
    )
    reward_kl: list[RewardKLPoint] = Field(
        description="Each evaluated candidate's mean reward and KL: one point per public task "
        '(mean over seeds) and one with task "all" (mean over its public runs).'
    )
    frontier: list[Frontier] = Field(
        description="DPO's reward-KL frontier per public task, from its frontier/beta=<b> "
        "metrics (mean over seeds); empty at a stage without them (bandit)."
    )


class EvaluationOut(_Out):
    id: int = Field(description="The evaluation's id.")
    stage: str = Field(description="bandit, tinylm or hf.")
    task: str = Field(description="The task trained on.")
    seed: int = Field(description="The seed (selection seeds first, then fresh ones).")
    attempt: int = Field(description="1, or more when a lost run was retried.")
    status: str = Field(description="DONE, NAN_LOSS, DIVERGED, TIMEOUT, OOM, ERROR, LOST, ...")
    score: float | None = Field(description="This run's paired difference to DPO; null: none.")
    metrics: dict[str, float | int | str | bool | None] = Field(
        description="What the run measured (reward/mean, kl/ref, ...); null where not finite."
    )
    timings: dict[str, float | None] = Field(description="Seconds spent, by phase.")
    reason: str | None = Field(description="Why it failed; null when it did not.")
    held_out: bool = Field(description="A held-out task: never shown to a proposer.")
    created_at: datetime = Field(description="When it was queued (UTC).")
    finished_at: datetime | None = Field(description="When it finished; null: not yet.")


class Ancestor(_Out):
    id: int = Field(description="The ancestor's id.")
    name: str = Field(description="Its name.")
    origin: str = Field(description="baseline, evolve, llm, hf-local or user.")
    status: str = Field(description="Its status.")
    parent_ids: list[int] = Field(description="Its own parents.")
    depth: int = Field(description="1 for a parent, 2 for a grandparent, ...")


class CandidateDetail(_Out):
    id: int = Field(description="The candidate's id.")
    campaign_id: int = Field(description="Its campaign.")
    name: str = Field(description="Its name, as proposed.")
    thought: str = Field(description="The proposer's reasoning behind it.")
    origin: str = Field(description="baseline, evolve, llm, hf-local or user.")
    status: str = Field(
        description="PROPOSED, ACCEPTED, REJECTED, DUPLICATE, EVALUATED, FAILED or UNSCORED."
    )
    summary: str = Field(
        description='One line that is true for its status, e.g. "duplicate of #12 (same '
        'behaviour): not trained" or "rejected by the sandbox: ...".'
    )
    reason: str | None = Field(description="Why it was rejected, failed or is unscored.")
    source: str = Field(description="The code as proposed.")
    canonical_code: str | None = Field(
        description="The code as the sandbox normalised it; null before validation."
    )
    code_html: str = Field(description="`source` highlighted by pygments (HTML, escaped).")
    parent_ids: list[int] = Field(description="The candidates it was derived from.")
    diff: str | None = Field(description="Unified diff of `source` against its first parent's.")
    lineage: list[Ancestor] = Field(description="Its ancestors, parents first (up to 8 levels).")
    duplicate_of: int | None = Field(
        description="The candidate it behaves the same as (status DUPLICATE); null: none."
    )
    island: int | None = Field(description="Its island of the population; null: none.")
    verdict: dict[str, Any] | None = Field(
        description="The sandbox's verdict (status, code, reason); null before validation."
    )
    provenance: dict[str, Any] = Field(
        description="Seed, proposer, model, prompt hash, package versions, genome."
    )
    created_at: datetime = Field(description="When it was proposed (UTC).")
    evaluations: list[EvaluationOut] = Field(description="Every run, every attempt.")
    row: LeaderboardRow | None = Field(description="Its leaderboard row.")


class CurveValues(_Out):
    loss: list[float | None] = Field(description="DPO's per-example loss; null where not finite.")
    grad: list[float | None] = Field(description="DPO's d loss / d margin.")


class LossCurve(_Out):
    beta: float = Field(description="The beta of the curve.")
    margin: list[float] = Field(description="beta * delta, the x axis.")
    loss: list[float | None] = Field(description="Per-example loss; null where not finite.")
    grad: list[float | None] = Field(description="d loss / d margin; null where not finite.")
    dpo: CurveValues = Field(description="DPO's loss and gradient on the same margins.")


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        max_length=200_000,
        description="The loss source: one `def loss(...)` in the loss contract.",
        examples=[
            "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, "
            "ref_rejected_logps, beta):\n    margin = (policy_chosen_logps - ref_chosen_logps) "
            "- (policy_rejected_logps - ref_rejected_logps)\n    return -F.logsigmoid(beta * "
            "margin)\n"
        ],
    )
    name: str = Field(
        "candidate", min_length=1, max_length=200, description="A name for the candidate."
    )
    thought: str = Field("", max_length=10_000, description="The idea behind it (optional).")


class Verdict(_Out):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="accepted or rejected.")
    stage: str | None = Field(None, description="The layer that rejected it.")
    code: str | None = Field(None, description="Machine-readable rejection code.")
    reason: str | None = Field(None, description="Why, written for whoever wrote the loss.")
    fingerprint: str | None = Field(None, description="Its behaviour's fingerprint.")


class Problem(_Out):
    detail: str = Field(description="What went wrong, in one sentence.")


class FieldError(_Out):
    loc: list[str | int] = Field(description='Where: e.g. ["query", "limit"] or ["body", ...].')
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="A machine-readable kind of error.")


class ValidationProblem(_Out):
    """The one shape of every 422: each bad field, named."""

    detail: list[FieldError] = Field(description="One entry per bad field.")
