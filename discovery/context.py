"""What a proposer is shown for one round: parents, inspirations and failures from the ledger.

Members of the population are the accepted and evaluated candidates with their first-stage score
vs DPO. Parents and inspirations are sampled by the population (islands, rank, novelty) and given
their public metrics, every stage's, averaged over finished runs; held-out tasks never reach this
module's output, so no prompt can leak them. Failures are the latest rejections with their
reasons.

It reads only; it does not call the proposer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from discovery.archive import CandidateStatus
from discovery.cascade import Cascade
from discovery.ledger import Ledger
from discovery.population import Member, Population
from discovery.proposers.base import Failure, Parent, ProposalContext
from discovery.scores import public_metrics


def members(ledger: Ledger, cascade: Cascade) -> list[Member]:
    """Candidates a proposer may build on, oldest first, with their first-stage scores."""
    first = cascade.spec.stages[0].name
    out = []
    for c in ledger.with_status(CandidateStatus.ACCEPTED, CandidateStatus.EVALUATED):
        score = cascade.scores.get((c.id, first))
        out.append(
            Member(
                id=c.id,
                name=c.name,
                code=c.source,
                island=c.island or 0,
                score=score.score if score else None,
                genome=(c.provenance or {}).get("genome"),
            )
        )
    return sorted(out, key=lambda m: m.id)


def build_context(
    *,
    ledger: Ledger,
    cascade: Cascade,
    population: Population,
    island: int,
    rng: np.random.Generator,
    dollars_left: float | None,
) -> ProposalContext:
    pool = members(ledger, cascade)
    parents, inspirations = population.sample(pool, island=island, accepted=len(pool), rng=rng)
    public = {s.name: cascade.public_tasks(s) for s in cascade.spec.stages}

    def with_metrics(parent: Parent) -> Parent:
        metrics = public_metrics(ledger.of(parent.id), public_tasks=public)
        return dataclasses.replace(parent, metrics=metrics)

    first = cascade.spec.stages[0].name
    return ProposalContext(
        parents=tuple(with_metrics(p) for p in parents),
        inspirations=tuple(with_metrics(p) for p in inspirations),
        failures=recent_failures(ledger),
        island=island,
        stage_metric=f"{first}/{cascade.metric(first)}",
        dollars_left=dollars_left,
        baselines={c.name: c.id for c in ledger.candidates.values() if c.origin == "baseline"},
    )


def recent_failures(ledger: Ledger, k: int = 5) -> tuple[Failure, ...]:
    """The last `k` rejections, newest first."""
    rejected = sorted(ledger.with_status(CandidateStatus.REJECTED), key=lambda c: c.id)
    return tuple(
        Failure(name=c.name, code=c.source, reason=c.reason or "") for c in rejected[-k:][::-1]
    )
