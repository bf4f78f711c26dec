"""The JSON shapes of the researcher's views: a campaign's genealogy, candidates compared side by
side, the LLM transcript behind a candidate, and the per-step training curves of its runs.

Plain pydantic models, every field described; views.py and the routers build them from what
discovery.service returns. Nothing here reads the archive.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import LeaderboardRow


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class GenealogyNode(_Out):
    id: int = Field(description="The candidate's id.")
    name: str = Field(description="Its name.")
    origin: str = Field(description="baseline, evolve, llm, hf-local or user.")
    status: str = Field(description="Its status (REJECTED and DUPLICATE included).")
    island: int | None = Field(description="Its island; null: none.")
    parent_ids: list[int] = Field(description="Its parents: draw an edge parent -> child.")
    duplicate_of: int | None = Field(description="The candidate it duplicates; null: none.")
    stage: str | None = Field(description="Highest stage with a score; null: none.")
    score: float | None = Field(description="Its leaderboard score vs DPO at that stage.")
    confirmation: str = Field(description="confirmed, overfit or unconfirmed.")
    created_at: datetime | None = Field(description="When it was proposed (UTC).")


class Genealogy(_Out):
    campaign_id: int = Field(description="The campaign's id.")
    islands: list[int] = Field(description="The islands its candidates live on, ascending.")
    nodes: list[GenealogyNode] = Field(
        description="Every candidate of the campaign, baselines included, oldest first."
    )


class CompareTask(_Out):
    stage: str = Field(description="The stage.")
    task: str = Field(description="The task.")
    held_out: bool = Field(description="A held-out task (never shown to a proposer).")
    score: float | None = Field(description="Mean per-seed difference to DPO on this task.")
    low: float | None = Field(description="Low end of its 95% interval.")
    high: float | None = Field(description="High end of its 95% interval.")
    n: int = Field(description="Seeds behind the score.")
    reward: float | None = Field(description="Mean reward over its finished runs of the task.")
    kl: float | None = Field(description="Mean KL to the reference over the same runs.")


class CompareCandidate(_Out):
    id: int = Field(description="The candidate's id.")
    name: str = Field(description="Its name.")
    campaign_id: int = Field(description="Its campaign (candidates may come from several).")
    origin: str = Field(description="baseline, evolve, llm, hf-local or user.")
    status: str = Field(description="Its status.")
    source: str = Field(description="Its code as proposed.")
    row: LeaderboardRow | None = Field(description="Its row on its campaign's leaderboard.")
    tasks: list[CompareTask] = Field(description="Its score on each task of each stage it ran.")


class CompareDiff(_Out):
    base: int = Field(description="The first candidate asked for.")
    other: int = Field(description="Another one.")
    diff: str = Field(description="Unified diff of base's code to other's; empty: identical.")


class Comparison(_Out):
    candidates: list[CompareCandidate] = Field(description="The candidates, in the order asked.")
    diffs: list[CompareDiff] = Field(description="The first candidate's code against each other's.")


class Message(_Out):
    role: str = Field(description="system, user or assistant.")
    content: str = Field(description="The message's text.")


class TranscriptCall(_Out):
    id: int = Field(description="The LLM call's id.")
    purpose: str = Field(description="Why it was made: propose, repair, judge, ...")
    model: str = Field(description="The model asked.")
    messages: list[Message] = Field(description="The prompt, message by message.")
    reply: str | None = Field(description="The model's reply; null when the call failed.")
    prompt_tokens: int = Field(description="Tokens in the prompt.")
    completion_tokens: int = Field(description="Tokens in the reply.")
    cost_usd: float = Field(description="What the call cost, in dollars.")
    latency_s: float = Field(description="Seconds from request to reply.")
    error: str | None = Field(description="Why it failed; null when it did not.")
    created_at: datetime = Field(description="When it was made (UTC).")
    wrote_candidate: bool = Field(description="This call's reply is the candidate's code.")


class Transcript(_Out):
    candidate_id: int = Field(description="The candidate's id.")
    origin: str = Field(description="Its origin: only llm candidates have calls.")
    model: str | None = Field(description="The model that wrote it; null: no model did.")
    prompt_hash: str | None = Field(description="Hash of the prompt that produced it.")
    note: str | None = Field(
        description="Why there are no calls (e.g. not written by an LLM); null when there are."
    )
    calls: list[TranscriptCall] = Field(
        description="Its LLM calls in order, repair turns included. API keys are never stored."
    )


class TrainingRun(_Out):
    evaluation_id: int = Field(description="The evaluation's id.")
    stage: str = Field(description="bandit, tinylm or hf.")
    task: str = Field(description="The task.")
    seed: int = Field(description="The seed.")
    attempt: int = Field(description="The attempt (retries of lost runs count up).")
    held_out: bool = Field(description="A held-out task.")
    status: str = Field(description="The run's status.")
    steps: list[int] = Field(description="Training steps at which the series were logged.")
    series: dict[str, list[float | None]] = Field(
        description='Metric -> one value per step ("loss", "rewards/margins", "kl/ref"); null '
        "where not finite."
    )
    dpo_steps: list[int] | None = Field(
        description="Steps of DPO's run of the same task and seed; null: none recorded."
    )
    dpo: dict[str, list[float | None]] | None = Field(
        description="DPO's series at those steps, same keys; null: none recorded."
    )


class TrainingCurves(_Out):
    candidate_id: int = Field(description="The candidate's id.")
    runs: list[TrainingRun] = Field(description="Each of its runs with recorded curves.")
