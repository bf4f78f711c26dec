"""A campaign for the API's view tests, filled through the archive API (no Ray, no engine):
baselines dpo and hinge, `alpha` (evolve, island 0) confirmed at tinylm, `beta` (llm, island 1,
alpha's child) with a stored LLM call, `gamma` rejected, `delta` a duplicate of alpha; and a
second campaign RUNNING under a lease with a live report (queue 7, in flight 3)."""

from __future__ import annotations

from discovery.archive import (
    Archive,
    CampaignStatus,
    CandidateStatus,
    EvaluationStatus,
    LLMCall,
    open_archive,
)
from discovery.runner import create_campaign
from discovery.spec import parse_spec
from tests.factories import DPO_SOURCE

SPEC = {
    "name": "views",
    "seed": 1,
    "proposer": {"kind": "evolve"},
    "stages": [
        {"name": "bandit", "tasks": ["tabular", "noisy"], "seeds": 2},
        # arithmetic is public, sentiment held out; seeds 2 and 3 are fresh (elite) seeds
        {"name": "tinylm", "tasks": ["arithmetic", "sentiment"], "seeds": 2, "elite_seeds": 4},
    ],
    "budget": {"candidates": 10},
    "baselines": ["dpo", "hinge"],
}
HINGE = DPO_SOURCE.replace("-F.logsigmoid(beta * margin)", "torch.relu(1 - beta * margin)")
BLEND = DPO_SOURCE.replace("-F.logsigmoid(beta * margin)", "-F.logsigmoid(2 * beta * margin)")
DPO_FRONTIER = {  # DPO's beta grid: (kl, reward) per beta, the same on every seed
    "frontier/beta=0.1/kl": 4.0,
    "frontier/beta=0.1/reward": 0.9,
    "frontier/beta=1.0/kl": 1.0,
    "frontier/beta=1.0/reward": 0.5,
}
CURVES = {"step": [0, 10], "loss": [0.69, 0.4], "rewards/margins": [0.0, 1.5], "kl/ref": [0, 2]}


def _bandit(archive: Archive, cid: int, scores: dict[str, tuple[float, float]]) -> None:
    for task, per_seed in scores.items():
        for seed, score in enumerate(per_seed):
            archive.add_evaluation(
                candidate_id=cid,
                stage="bandit",
                task=task,
                seed=seed,
                status=EvaluationStatus.DONE,
                score=score,
                metrics={"reward/normalized": 0.5 + score, "kl/ref": 1.0 + seed},
            )


def _tinylm(archive: Archive, cid: int, scores: dict[str, list[float]], **extra: object) -> None:
    for task, per_seed in scores.items():
        for seed, score in enumerate(per_seed):
            archive.add_evaluation(
                candidate_id=cid,
                stage="tinylm",
                task=task,
                seed=seed,
                status=EvaluationStatus.DONE,
                score=score,
                metrics={"reward/mean": 0.6 + score, "kl/ref": 2.0, **extra},
                curves=CURVES,
            )


def fill(url: str) -> tuple[int, int, dict[str, int]]:
    archive = open_archive(url)
    cid = create_campaign(archive, parse_spec(SPEC))
    add = archive.add_candidate
    ids: dict[str, int] = {}
    ids["dpo"] = add(campaign_id=cid, name="dpo", source=DPO_SOURCE, origin="baseline").id
    ids["hinge"] = add(campaign_id=cid, name="hinge", source=HINGE, origin="baseline").id
    ids["alpha"] = add(campaign_id=cid, name="alpha", source=BLEND, origin="evolve", island=0).id
    ids["beta"] = add(
        campaign_id=cid,
        name="beta",
        source=HINGE,
        origin="llm",
        island=1,
        parent_ids=[ids["alpha"]],
        provenance={"model": "scripted", "prompt_hash": "abc123"},
    ).id
    ids["gamma"] = add(
        campaign_id=cid,
        name="gamma",
        source="import os",
        origin="evolve",
        island=1,
        parent_ids=[ids["alpha"]],
    ).id
    ids["delta"] = add(
        campaign_id=cid,
        name="delta",
        source=BLEND,
        origin="evolve",
        island=0,
        parent_ids=[ids["alpha"]],
    ).id
    for name in ("dpo", "hinge", "alpha", "beta"):
        archive.update_candidate(ids[name], status=CandidateStatus.EVALUATED)
    archive.update_candidate(
        ids["gamma"],
        status=CandidateStatus.REJECTED,
        reason="imports are not allowed",
        verdict={"status": "rejected", "code": "forbidden_import", "reason": "no imports"},
    )
    archive.update_candidate(
        ids["delta"],
        status=CandidateStatus.DUPLICATE,
        duplicate_of=ids["alpha"],
        verdict={"status": "accepted"},
    )
    _bandit(archive, ids["dpo"], {"tabular": (0.0, 0.0), "noisy": (0.0, 0.0)})
    _bandit(archive, ids["hinge"], {"tabular": (-0.02, -0.01), "noisy": (-0.03, -0.02)})
    _bandit(archive, ids["alpha"], {"tabular": (0.05, 0.07), "noisy": (0.01, 0.03)})
    _bandit(archive, ids["beta"], {"tabular": (0.02, 0.03), "noisy": (0.10, 0.12)})
    zeros = [0.0, 0.0, 0.0, 0.0]
    _tinylm(archive, ids["dpo"], {"arithmetic": zeros, "sentiment": zeros}, **DPO_FRONTIER)
    # alpha reaches tinylm and holds up on held-out sentiment, fresh seeds 2 and 3: confirmed
    _tinylm(archive, ids["alpha"], {"arithmetic": [0.2, 0.21], "sentiment": [0.1, 0.12, 0.2, 0.21]})
    hashed = "abc123"
    archive.record_llm_call(
        campaign_id=cid,
        call=LLMCall(
            purpose="propose",
            model="scripted",
            prompt_tokens=120,
            completion_tokens=80,
            cost_usd=0.002,
            latency_s=1.5,
            messages=({"role": "user", "content": "write a loss"},),
            reply="def loss(...): ...",
            prompt_hash=hashed,
        ),
    )
    other = archive.create_campaign(name="live", spec=parse_spec(SPEC).model_dump(), seed=2)
    archive.acquire_lease(other.id, owner="engine-1", host="h", pid=1)
    archive.set_campaign_status(other.id, status=CampaignStatus.RUNNING)
    live = {"phase": "evaluating", "queue_depth": 7, "in_flight": 3, "updated_at": None}
    archive.renew_lease(other.id, "engine-1", live=live)
    archive.engine.dispose()
    return cid, other.id, ids
