"""The proposer protocol and the plain data it exchanges with the discovery engine.

A proposer turns a `ProposalContext` (parents sampled by the population, best first, with their
public metrics; diverse inspirations; recent failures with their reasons; the LLM dollars left)
into up to `n` `Proposal`s. Each proposal is a candidate in the JSON form of DESIGN.md section 2
(`name`, `thought`, `code`) plus what the engine records about where it came from (parent ids,
origin, operator, genome, model, prompt hash). A proposal may arrive already rejected (`rejection`):
an LLM reply that held no readable candidate is stored that way, so it is never lost.

This module only defines shapes and the protocol. It does not sample parents (the population
does), validate code (the sandbox does) or talk to any model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Failure", "Parent", "Proposal", "ProposalContext", "Proposer"]


@dataclass(frozen=True)
class Parent:
    """A candidate from the archive offered to a proposer as material."""

    id: int  # candidate id in the archive
    name: str  # the candidate's short name
    code: str  # contract source of its loss
    score: float | None  # fitness relative to DPO at `ProposalContext.stage_metric`; higher wins
    # What the proposer that wrote it stored (an expression tree as JSON for `evolve`); None for
    # candidates written by a proposer that stores nothing, e.g. an LLM.
    genome: dict[str, Any] | None
    island: int | None  # island of the population it lives on; None without islands
    # Public metrics, each the mean over its finished runs on public tasks, keyed "stage/metric"
    # (e.g. "bandit/kl/ref"). Held-out tasks never contribute: the proposer must not see them.
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A recent rejection, fed back so a proposer can avoid repeating it."""

    name: str  # the rejected candidate's name
    code: str  # its source
    reason: str  # the sandbox's (or evaluator's) one-line reason


@dataclass(frozen=True)
class ProposalContext:
    """Everything a proposer sees for one round of proposals."""

    parents: tuple[Parent, ...]  # sampled by fitness, best first
    inspirations: tuple[Parent, ...]  # diverse others (novelty), in no particular order
    failures: tuple[Failure, ...]  # recent rejections, newest first
    island: int | None  # island the proposals are for; None without islands
    stage_metric: str  # name of what `Parent.score` measures, e.g. "bandit/score_vs_dpo"
    # LLM dollars the campaign may still spend; None when it has no dollar budget. A proposer that
    # pays per call refuses a call whose worst-case cost exceeds it (BudgetExhausted).
    dollars_left: float | None = None
    # Archive ids of the campaign's baselines by name, so that a proposal built from a baseline's
    # formula (an evolve seed) names it as its parent: lineage and diffs start there.
    baselines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """One candidate loss: the JSON an LLM would write, plus provenance."""

    name: str  # short, unique-ish, e.g. "evo-1a2b3c4d"
    thought: str  # one sentence on what was done and why
    code: str  # contract source: exactly one `def loss(...)` (DESIGN.md section 2)
    parent_ids: tuple[int, ...]  # archive ids of the parents it was derived from; () for none
    genome: dict[str, Any] | None  # what the proposer wants back when this becomes a parent
    origin: str  # which proposer wrote it: "evolve", "llm", ...
    operator: str  # how: "seed", "mutate", "crossover", "perturb", ... (proposer-specific)
    model: str | None = None  # the model that wrote it (LLM proposers); None otherwise
    prompt_hash: str | None = None  # sha256 prefix of the messages the model was sent
    # Why this is no candidate, when the proposer already knows (an unreadable reply): the engine
    # stores it REJECTED with this reason and never validates or trains it. None otherwise.
    rejection: str | None = None

    def as_candidate_json(self) -> dict[str, str]:
        """The `{name, thought, code}` object of the loss contract."""
        return {"name": self.name, "thought": self.thought, "code": self.code}


@runtime_checkable
class Proposer(Protocol):
    """Writes candidate losses. Implementations must be deterministic given their rng/client.

    `propose` returns at most `n` new ideas and may return fewer (when it runs out of distinct
    ideas, or skips parents it cannot use); it never raises for a bad parent. A proposer that
    repairs its own rejected ideas returns each rejected idea followed by its repair, so it may
    return more than `n` proposals; the engine stores them until the candidate budget is reached.
    LLM proposers may raise `ProposerUnavailable` (the engine pauses) or `BudgetExhausted` (the
    engine stops): both are states of the campaign, not bugs.
    """

    name: str  # the proposer's origin label, e.g. "evolve"

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]: ...
