"""LLM campaigns end to end: the real engine, sandbox, local Ray and SQLite archive, with the
`llm` proposer talking HTTP to a scripted OpenAI-compatible server on loopback (and `hf-local`
running a tiny model built on the spot)."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from discovery.archive import Archive, CampaignStatus, CandidateStatus, EvaluationStatus
from discovery.archive.models import Base
from discovery.proposers.base import Proposer
from discovery.proposers.llm.wiring import LLMSettings
from discovery.runner import build_proposer, call_recorder, create_campaign
from discovery.service.transcripts import candidate_transcript
from discovery.spec import CampaignSpec
from sandbox import Sandbox
from tests.discovery.conftest import RunEngine, small_spec
from tests.discovery.llm_sources import (
    BLEND,
    DPO_AGAIN,
    HOSTILE,
    SCALED,
    SHIFTED,
    SOFT_HINGE,
    SQUARED,
    TANH,
    VALUE_READ,
    WRONG_WAY,
)
from tests.discovery.tiny_lm import save_tiny_causal_lm
from tests.openai_server import Reply, ScriptedServer, candidates

KEY = "sk-lossforge-test-5e1f0c9a77"
GOOD = [SOFT_HINGE, BLEND, SQUARED, SCALED, TANH, SHIFTED]


def llm_spec(server: ScriptedServer, *, batch_size: int = 3, **llm: object) -> dict:
    section = {
        "base_url": server.base_url,
        "model": "scripted",
        "backoff_s": 0.01,
        "timeout_s": 1.0,
        **llm,
    }
    return {"kind": "llm", "batch_size": batch_size, "llm": section}


def wire(store: Archive, spec: CampaignSpec, sandbox: Sandbox) -> tuple[int, Proposer]:
    cid = create_campaign(store, spec)
    proposer = build_proposer(
        spec.proposer,
        np.random.default_rng(spec.seed),
        llm=LLMSettings(api_key=SecretStr(KEY)),
        recorder=call_recorder(store, cid),
        validator=sandbox,
        dollar_budget=spec.budget.llm_dollars is not None,
    )
    return cid, proposer


def by_name(store: Archive, cid: int) -> dict[str, list]:
    named: dict[str, list] = {}
    for c in store.list_candidates(campaign_id=cid):
        named.setdefault(c.name, []).append(c)
    return named


def archive_text(store: Archive) -> str:
    """Every row of every table, as text."""
    with store.engine.connect() as connection:
        return "\n".join(
            repr(connection.execute(select(table)).all()) for table in Base.metadata.sorted_tables
        )


def test_a_scripted_llm_campaign_completes_through_everything_an_endpoint_does(
    run_engine: RunEngine,
    store: Archive,
    sandbox: Sandbox,
    openai_server: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    round_1 = candidates(("soft-hinge", SOFT_HINGE), ("blend", BLEND), ("reads-value", VALUE_READ))
    repair_1 = candidates(("reads-value", SQUARED))
    openai_server.push(
        # Round 1: rate limited, then three candidates, one of which reads a value; its repair.
        Reply(status=429, headers={"Retry-After": "0.05"}, error="slow down"),
        Reply(content=round_1),
        Reply(content=repair_1),
        # Round 2: a server error, then garbage; the repair comes as a fenced code block.
        Reply(status=500, error="internal error"),
        Reply(content="As an AI language model I find losses fascinating!!! ]]}"),
        Reply(content=f"Apologies, here it is:\n```python\n{SCALED}```\n"),
        # Round 3: slower than the timeout, then hostile code, a copy of DPO, a wrong-way loss.
        Reply(content="too late", delay_s=2.5),
        Reply(
            content=candidates(("evil", HOSTILE), ("dpo-again", DPO_AGAIN), ("wrong", WRONG_WAY))
        ),
        Reply(content=candidates(("evil", TANH), ("wrong", SHIFTED))),
    )
    spec = small_spec(proposer=llm_spec(openai_server), budget={"candidates": 11})
    cid, proposer = wire(store, spec, sandbox)
    _, status = run_engine(spec, campaign_id=cid, proposer=proposer)

    assert status is CampaignStatus.FINISHED
    assert store.get_campaign(cid).reason == "candidate budget reached"
    named = by_name(store, cid)
    # Every request the server saw is one row of llm_calls, failed ones with their error.
    calls = store.list_llm_calls(campaign_id=cid)
    assert len(calls) == len(openai_server.requests) == 9
    errors = [c.error for c in calls]
    assert "HTTP 429" in errors[0] and "HTTP 500" in errors[3] and "no reply within" in errors[6]
    assert [e is None for e in errors] == [False, True, True, False, True, True, False, True, True]
    assert [c.purpose for c in calls if c.error is None] == ["propose", "repair"] * 3
    assert all(c.prompt_tokens > 0 and c.completion_tokens > 0 for c in calls if not c.error)
    # Invalid, hostile, wrong-way and garbage candidates are stored with their reasons.
    reasons = {n: named[n][0].reason or "" for n in ("reads-value", "evil", "wrong")}
    assert ".item" in reasons["reads-value"] and "import os" in reasons["evil"]
    assert "rejected answer" in reasons["wrong"]
    for name in ("evil", "wrong"):
        assert named[name][0].status is CandidateStatus.REJECTED
    [junk] = [c for c in store.list_candidates(campaign_id=cid) if "unreadable" in c.name]
    assert junk.status is CandidateStatus.REJECTED and "no candidate found" in (junk.reason or "")
    # The copy of DPO is caught before training.
    [again] = named["dpo-again"]
    assert again.status is CandidateStatus.DUPLICATE and again.duplicate_of == named["dpo"][0].id
    assert store.list_evaluations(candidate_id=again.id) == []
    # The repair turn showed the model the sandbox's reason, and repairs were trained.
    repair_request = openai_server.requests[2]["messages"]
    assert reasons["reads-value"] in repair_request[-1]["content"]
    repaired = [c for c in named["reads-value"] if c.provenance["operator"] == "repair"]
    assert repaired and repaired[0].status is CandidateStatus.EVALUATED
    evaluated = [
        c
        for c in store.list_candidates(campaign_id=cid, status=CandidateStatus.EVALUATED)
        if c.origin == "llm"
    ]
    assert len(evaluated) == 6  # soft-hinge, blend, the three repairs, the fenced block
    for c in evaluated:
        assert c.provenance["model"] == "scripted" and c.provenance["prompt_hash"]
        assert c.provenance["proposer"] == "llm"
        assert [e.status for e in store.list_evaluations(candidate_id=c.id)] == [
            EvaluationStatus.DONE
        ]
    # Transcripts: the prompt the server received and the reply it sent, the failed try before
    # them, and the repair turn that followed.
    transcript = candidate_transcript(store, named["soft-hinge"][0].id)
    assert [c.purpose for c in transcript.calls] == ["propose", "propose", "repair"]
    assert [c.wrote_candidate for c in transcript.calls] == [False, True, False]
    tried, wrote, repair = transcript.calls
    assert "HTTP 429" in (tried.error or "") and tried.reply is None
    assert tried.messages == wrote.messages == openai_server.requests[1]["messages"]
    assert wrote.reply == round_1 and wrote.model == transcript.model == "scripted"
    assert wrote.prompt_tokens > 0 and wrote.completion_tokens > 0
    assert repair.messages == openai_server.requests[2]["messages"]
    assert repair.reply == repair_1
    [fixed] = repaired
    assert [
        (c.purpose, c.wrote_candidate) for c in candidate_transcript(store, fixed.id).calls
    ] == [("repair", True)]
    # The key was used, and is nowhere else: not in the archive (transcripts included), not in
    # the logs.
    assert set(openai_server.authorizations) == {f"Bearer {KEY}"}
    stored = store.list_llm_calls(campaign_id=cid)
    assert all(c.messages for c in stored) and all(KEY not in repr(c) for c in stored)
    assert KEY not in archive_text(store)
    assert KEY not in caplog.text


def test_the_dollar_budget_stops_the_campaign_before_it_is_exceeded(
    run_engine: RunEngine, store: Archive, sandbox: Sandbox, openai_server: ScriptedServer
) -> None:
    codes = itertools.cycle(GOOD)
    openai_server.default = lambda body: Reply(
        content=candidates((f"c{len(openai_server.requests)}", next(codes)))
    )
    prices = {"scripted": {"prompt": 2000.0, "completion": 2000.0}}  # $0.002 a token
    spec = small_spec(
        proposer=llm_spec(openai_server, batch_size=1, max_tokens=256, prices=prices),
        budget={"llm_dollars": 10.0},
    )
    cid, proposer = wire(store, spec, sandbox)
    _, status = run_engine(spec, campaign_id=cid, proposer=proposer)
    campaign = store.get_campaign(cid)
    assert status is CampaignStatus.FINISHED
    assert campaign.reason.startswith("LLM-dollar budget reached: a propose call to scripted")
    spent = store.llm_cost(campaign_id=cid)
    calls = store.list_llm_calls(campaign_id=cid)
    assert len(calls) >= 2 and all(c.cost_usd > 0 for c in calls)
    assert spent <= 10.0 and campaign.budget_used["llm_dollars"] == pytest.approx(spent)
    assert len(openai_server.requests) == len(calls)  # the refused call was never sent
    # The candidates paid for are still evaluated: the queue is finished, then the campaign.
    assert {e.status for e in store.list_evaluations(campaign_id=cid)} == {EvaluationStatus.DONE}


def test_an_endpoint_that_stays_down_pauses_the_campaign_for_a_resume(
    run_engine: RunEngine, store: Archive, sandbox: Sandbox, openai_server: ScriptedServer
) -> None:
    openai_server.push(Reply(content=candidates(("soft-hinge", SOFT_HINGE), ("blend", BLEND))))
    openai_server.default = Reply(status=503, error="upstream unavailable")
    spec = small_spec(
        proposer=llm_spec(openai_server, batch_size=2, max_retries=1, breaker_calls=2),
        budget={"candidates": 6},
    )
    cid, proposer = wire(store, spec, sandbox)
    _, status = run_engine(spec, campaign_id=cid, proposer=proposer)
    assert status is CampaignStatus.PAUSED
    reason = store.get_campaign(cid).reason or ""
    assert f"LLM endpoint {openai_server.base_url} unreachable or failing" in reason
    assert "4 attempts in 2 calls" in reason and "HTTP 503" in reason
    assert reason.endswith(f"resume with `lossforge run --resume {cid}`")
    assert len(store.list_llm_calls(campaign_id=cid)) == len(openai_server.requests) == 5
    # Nothing was lost: what was queued is finished or still PENDING for the resume.
    assert {e.status for e in store.list_evaluations(campaign_id=cid)} <= {
        EvaluationStatus.DONE,
        EvaluationStatus.PENDING,
    }

    codes = itertools.cycle(GOOD[2:])
    openai_server.default = lambda body: Reply(
        content=candidates(
            (f"r{len(openai_server.requests)}a", next(codes)),
            (f"r{len(openai_server.requests)}b", next(codes)),
        )
    )
    _, proposer = wire(store, spec, sandbox)
    _, status = run_engine(spec, campaign_id=cid, proposer=proposer)
    assert status is CampaignStatus.FINISHED
    proposed = [c for c in store.list_candidates(campaign_id=cid) if c.origin != "baseline"]
    assert len(proposed) == 6
    done = Counter(
        (e.candidate_id, e.task, e.seed)
        for e in store.list_evaluations(campaign_id=cid, status=EvaluationStatus.DONE)
    )
    assert max(done.values()) == 1


def test_a_local_hugging_face_model_writing_junk_still_completes(
    run_engine: RunEngine, store: Archive, sandbox: Sandbox, tmp_path: Path
) -> None:
    model = save_tiny_causal_lm(tmp_path / "tiny-lm")
    spec = small_spec(
        proposer={
            "kind": "hf-local",
            "batch_size": 2,
            "hf_local": {"path": str(model), "max_new_tokens": 48},
        },
        budget={"candidates": 4},
    )
    cid, proposer = wire(store, spec, sandbox)
    _, status = run_engine(spec, campaign_id=cid, proposer=proposer)
    assert status is CampaignStatus.FINISHED
    assert store.get_campaign(cid).reason == "candidate budget reached"
    proposed = [c for c in store.list_candidates(campaign_id=cid) if c.origin != "baseline"]
    assert len(proposed) == 4
    for c in proposed:
        assert c.origin == "hf-local" and c.status is CandidateStatus.REJECTED and c.reason
    calls = store.list_llm_calls(campaign_id=cid)
    assert calls and all(c.cost_usd == 0 and c.model == "tiny-lm" for c in calls)
