"""The JSON shapes of the REST API (what the OpenAPI schema documents and responses are checked
against). Plain pydantic models; building them from archive records is views.py's job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

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
    candidate_id: int
    name: str
    stage: str
    score: float = Field(description="Score vs DPO at that stage (public tasks).")
    spread: float = Field(description="Standard deviation of the score over seeds.")


class Owner(_Out):
    """The engine that holds a campaign's lease (one engine per campaign)."""

    host: str
    pid: int
    since: datetime = Field(description="When it took the campaign.")
    heartbeat: datetime = Field(description="Its last sign of life.")
    expired: bool = Field(description="No heartbeat for longer than the TTL: the engine is gone.")


class Campaign(_Out):
    id: int
    name: str
    status: str = Field(
        description="PENDING, RUNNING, PAUSED, CANCELLED, FINISHED or FAILED; INTERRUPTED when it "
        "was running but its engine stopped sending heartbeats (killed, host or database gone): "
        "resume it from any server or the CLI."
    )
    reason: str | None = Field(description="Why it stopped, failed or is waiting.")
    seed: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    budget: Budget
    counts: dict[str, int] = Field(description="Candidates by status (baselines included).")
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


class CampaignDetail(Campaign):
    spec: dict[str, Any] = Field(description="The campaign spec, as validated.")
    stages: list[str]
    best: Best | None = Field(description="The best proposed candidate at the furthest stage.")
    confirmed: int = Field(
        description="Proposed candidates confirmed: better than DPO on held-out tasks, fresh "
        "seeds, 95% interval above 0. 0 means no discovery holds up yet."
    )
    validity: ProxyValidity = Field(description="Whether selection's proxy predicts held-out.")


class CampaignLinks(_Out):
    self: str
    events: str
    leaderboard: str


class CampaignStarted(_Out):
    id: int
    status: str
    links: CampaignLinks


class LeaderboardRow(_Out):
    rank: int
    id: int
    name: str
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
    status: str


class LeaderboardPage(_Out):
    campaign_id: int
    total: int
    offset: int
    limit: int
    rows: list[LeaderboardRow]


class BestPoint(_Out):
    time: datetime
    seconds: float = Field(description="Seconds since the campaign was created.")
    candidate_id: int
    name: str
    score: float


class RewardKLPoint(_Out):
    candidate_id: int
    name: str
    origin: str
    baseline: bool
    reward: float
    kl: float


class Series(_Out):
    stage: str
    reward_metric: str
    kl_metric: str
    best_over_time: list[BestPoint] = Field(
        description="Each time a proposed candidate beat the best so far at this stage."
    )
    reward_kl: list[RewardKLPoint] = Field(
        description="Each evaluated candidate's mean reward and KL over its public runs."
    )


class EvaluationOut(_Out):
    id: int
    stage: str
    task: str
    seed: int
    attempt: int
    status: str
    score: float | None
    metrics: dict[str, float | int | str | bool | None]
    timings: dict[str, float | None]
    reason: str | None
    held_out: bool = Field(description="A held-out task: never shown to a proposer.")
    created_at: datetime
    finished_at: datetime | None


class Ancestor(_Out):
    id: int
    name: str
    origin: str
    status: str
    parent_ids: list[int]
    depth: int = Field(description="1 for a parent, 2 for a grandparent, ...")


class CandidateDetail(_Out):
    id: int
    campaign_id: int
    name: str
    thought: str
    origin: str
    status: str
    reason: str | None
    source: str = Field(description="The code as proposed.")
    canonical_code: str | None
    code_html: str = Field(description="`source` highlighted by pygments (HTML, escaped).")
    parent_ids: list[int]
    diff: str | None = Field(description="Unified diff of `source` against its first parent's.")
    lineage: list[Ancestor]
    duplicate_of: int | None
    island: int | None
    verdict: dict[str, Any] | None
    provenance: dict[str, Any]
    created_at: datetime
    evaluations: list[EvaluationOut]
    row: LeaderboardRow | None = Field(description="Its leaderboard row.")


class CurveValues(_Out):
    loss: list[float | None]
    grad: list[float | None]


class LossCurve(_Out):
    beta: float
    margin: list[float] = Field(description="beta * delta, the x axis.")
    loss: list[float | None] = Field(description="Per-example loss; null where not finite.")
    grad: list[float | None] = Field(description="d loss / d margin; null where not finite.")
    dpo: CurveValues


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
    name: str = Field("candidate", min_length=1, max_length=200)
    thought: str = Field("", max_length=10_000)


class Verdict(_Out):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="accepted or rejected.")
    stage: str | None = Field(None, description="The layer that rejected it.")
    code: str | None = Field(None, description="Machine-readable rejection code.")
    reason: str | None = Field(None, description="Why, written for whoever wrote the loss.")
    fingerprint: str | None = None


class Problem(_Out):
    detail: str


class FieldError(_Out):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(_Out):
    detail: list[FieldError]
