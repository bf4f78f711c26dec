"""Held-out metrics never reach a proposer: not the ProposalContext, not an LLM's prompt.

A campaign whose tinylm stage includes the held-out `sentiment` task is stored with finished runs
carrying sentinel values on that task; the engine builds a proposal round from the archive, once
for a recording proposer and once for the LLM proposer talking to a scripted server, and neither
the context nor any request body contains a sentinel.
"""

from __future__ import annotations

import json

import numpy as np

from discovery.archive import Archive, CandidateStatus, EvaluationStatus
from discovery.engine import Engine
from discovery.proposers.base import Proposal, ProposalContext
from discovery.proposers.llm.wiring import LLMSettings
from discovery.runner import build_proposer, call_recorder, create_campaign
from discovery.scores import public_metrics
from evaluator.baselines import BASELINES
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.queue import JobQueue
from sandbox import Sandbox, SandboxConfig
from tests.discovery.conftest import small_spec
from tests.discovery.llm_sources import BLEND
from tests.openai_server import Reply, ScriptedServer

SECRET_VALUES = ("0.987654", "0.123456")
SECRET_NAMES = ("secret_metric", "sentiment")


class Recording:
    name = "recording"

    def __init__(self) -> None:
        self.contexts: list[ProposalContext] = []

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        self.contexts.append(context)
        return []


def _prepared_campaign(store: Archive, server: ScriptedServer) -> tuple[int, Engine]:
    spec = small_spec(
        proposer={"kind": "llm", "batch_size": 2, "llm": {"base_url": server.base_url}},
        stages=[{"name": "tinylm", "tasks": ["arithmetic", "sentiment"], "seeds": 1}],
        baselines=["dpo"],
    )
    cid = create_campaign(store, spec)
    rows = {}
    for name, source, origin, public in (
        ("dpo", BASELINES["dpo"].source, "baseline", 0.40),
        ("blend", BLEND, "llm", 0.45),
    ):
        c = store.add_candidate(campaign_id=cid, name=name, source=source, origin=origin, island=0)
        rows[name] = store.update_candidate(c.id, status=CandidateStatus.ACCEPTED)
        for task, metrics in (
            ("arithmetic", {"reward/mean": public, "kl/ref": 1.5}),
            ("sentiment", {"reward/mean": 0.987654, "secret_metric": 0.123456}),
        ):
            e = store.add_evaluation(candidate_id=c.id, stage="tinylm", task=task, seed=0)
            store.finish_evaluation(e.id, status=EvaluationStatus.DONE, metrics=metrics)
    engine = Engine(
        campaign_id=cid,
        spec=spec,
        archive=store,
        sandbox=Sandbox(SandboxConfig()),  # never started: this round validates nothing
        evaluations=JobQueue(RayDispatcher(DispatchConfig())),  # never started: nothing is queued
        proposer=Recording(),
        rng=np.random.default_rng(0),
    )
    engine.ledger.put_candidates(store.list_candidates(campaign_id=cid))
    engine.ledger.put_evaluations(store.list_evaluations(campaign_id=cid))
    engine.cascade.start(rows["dpo"].id)
    return cid, engine


def test_held_out_metrics_never_reach_a_context_or_a_prompt(
    store: Archive, openai_server: ScriptedServer
) -> None:
    cid, engine = _prepared_campaign(store, openai_server)
    recording = engine.proposer
    assert isinstance(recording, Recording)
    engine._propose_round()
    [context] = recording.contexts
    shown = [*context.parents, *context.inspirations]
    assert {p.name for p in shown} == {"dpo", "blend"}
    blend = next(p for p in shown if p.name == "blend")
    assert blend.metrics == {"tinylm/kl/ref": 1.5, "tinylm/reward/mean": 0.45}
    assert blend.score is not None and abs(blend.score - 0.05) < 1e-9
    assert not any(s in repr(context) for s in (*SECRET_VALUES, *SECRET_NAMES))

    openai_server.push(Reply(content='{"candidates": []}'))
    engine.proposer = build_proposer(
        engine.spec.proposer,
        np.random.default_rng(0),
        llm=LLMSettings(model="scripted"),
        recorder=call_recorder(store, cid),
        validator=None,
    )
    engine._propose_round()
    assert openai_server.requests  # the request, and a repair turn (the reply held nothing)
    sent = json.dumps(openai_server.requests)
    assert "tinylm/reward/mean 0.45" in sent and "score +0.0500 vs DPO" in sent
    for secret in (*SECRET_VALUES, *SECRET_NAMES):
        assert secret not in sent, secret


def test_public_metrics_leave_out_held_out_tasks_and_failed_runs(store: Archive) -> None:
    campaign = store.create_campaign(name="m", spec={}, seed=0)
    c = store.add_candidate(campaign_id=campaign.id, name="c", source="x", origin="llm")
    runs = [
        ("arithmetic", 0, EvaluationStatus.DONE, {"reward/mean": 0.2, "kl/ref": float("nan")}),
        ("arithmetic", 1, EvaluationStatus.DONE, {"reward/mean": 0.4}),
        ("sorting", 0, EvaluationStatus.NAN_LOSS, {"reward/mean": 9.0}),
        ("sentiment", 0, EvaluationStatus.DONE, {"reward/mean": 0.987654}),
    ]
    for task, seed, status, metrics in runs:
        e = store.add_evaluation(candidate_id=c.id, stage="tinylm", task=task, seed=seed)
        store.finish_evaluation(e.id, status=status, metrics=metrics)
    metrics = public_metrics(
        store.list_evaluations(candidate_id=c.id),
        public_tasks={"tinylm": ["arithmetic", "sorting"]},
    )
    assert metrics.keys() == {"tinylm/reward/mean"}
    assert abs(metrics["tinylm/reward/mean"] - 0.3) < 1e-12
