"""The engine in process against real Ray, a real sandbox and a real SQLite archive."""

from __future__ import annotations

from collections import Counter

from discovery.archive import Archive, CampaignStatus, CandidateStatus, EvaluationStatus
from discovery.progress import Progress
from discovery.proposers.base import Proposal, ProposalContext
from tests.discovery.conftest import RunEngine, small_spec

DPO_SPELLED_AGAIN = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    return F.softplus(-beta * (chosen - rejected))
"""
MARGIN_HINGE = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return torch.relu(0.5 - beta * margin) - 0.1 * F.logsigmoid(beta * margin)
"""
WRONG_WAY = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return F.logsigmoid(beta * margin)
"""


class ScriptedProposer:
    """A proposer that returns fixed code, one script entry per call (a Proposer, not a fake)."""

    name = "scripted"

    def __init__(self, script: list[list[tuple[str, str]]]) -> None:
        self.script = list(script)
        self.contexts: list[ProposalContext] = []

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        self.contexts.append(context)
        if not self.script:
            return []
        return [
            Proposal(
                name=name,
                thought="scripted",
                code=code,
                parent_ids=(),
                genome=None,
                origin="scripted",
                operator="script",
            )
            for name, code in self.script.pop(0)[:n]
        ]


def dpo_id(archive: Archive, campaign_id: int) -> int:
    return next(c.id for c in archive.list_candidates(campaign_id=campaign_id) if c.name == "dpo")


def _done_twice(archive: Archive, campaign_id: int) -> list[tuple[int, str, str, int]]:
    done = Counter(
        (e.candidate_id, e.stage, e.task, e.seed)
        for e in archive.list_evaluations(campaign_id=campaign_id, status=EvaluationStatus.DONE)
    )
    return [key for key, n in done.items() if n > 1]


def test_a_ten_candidate_budget_stops_at_ten(run_engine: RunEngine, store: Archive) -> None:
    cid, status = run_engine(small_spec(budget={"candidates": 10}))
    assert status is CampaignStatus.FINISHED
    assert store.get_campaign(cid).reason == "candidate budget reached"
    proposed = [c for c in store.list_candidates(campaign_id=cid) if c.origin != "baseline"]
    assert len(proposed) == 10
    open_rows = [
        e
        for e in store.list_evaluations(campaign_id=cid)
        if e.status in (EvaluationStatus.PENDING, EvaluationStatus.RUNNING)
    ]
    assert open_rows == []  # the queue was finished before the campaign was
    assert _done_twice(store, cid) == []


def test_duplicates_and_rejections_are_stored_and_never_trained(
    run_engine: RunEngine, store: Archive
) -> None:
    proposer = ScriptedProposer(
        [
            [("dpo-again", DPO_SPELLED_AGAIN), ("hinge-mix", MARGIN_HINGE), ("wrong", WRONG_WAY)],
            [("hinge-mix-copy", MARGIN_HINGE)],
        ]
    )
    cid, status = run_engine(small_spec(budget={"candidates": 4}), proposer=proposer)
    assert status is CampaignStatus.FINISHED
    by_name = {c.name: c for c in store.list_candidates(campaign_id=cid)}
    dpo, again = by_name["dpo"], by_name["dpo-again"]
    assert again.status is CandidateStatus.DUPLICATE and again.duplicate_of == dpo.id
    copy = by_name["hinge-mix-copy"]
    assert copy.status is CandidateStatus.DUPLICATE
    assert copy.duplicate_of == by_name["hinge-mix"].id
    assert by_name["wrong"].status is CandidateStatus.REJECTED
    assert "rejected answer" in by_name["wrong"].reason
    for name in ("dpo-again", "hinge-mix-copy", "wrong"):
        assert store.list_evaluations(candidate_id=by_name[name].id) == []
    hinge_mix = store.list_evaluations(candidate_id=by_name["hinge-mix"].id)
    assert [e.status for e in hinge_mix] == [EvaluationStatus.DONE]
    assert hinge_mix[0].score is not None  # scored against DPO's run with the same seed
    # The proposer was told about the rejection, with its reason.
    assert any(f.name == "wrong" for f in proposer.contexts[-1].failures)


def test_the_cascade_promotes_the_best_fraction(run_engine: RunEngine, store: Archive) -> None:
    tiny_lm = {
        "max_steps": 3,
        "num_train_pairs": 64,
        "per_device_train_batch_size": 16,
        "num_eval_pairs": 16,
        "num_eval_prompts": 16,
    }
    spec = small_spec(
        stages=[
            {
                "name": "bandit",
                "tasks": ["tabular"],
                "seeds": 1,
                "promote_fraction": 0.5,
                "config": {"max_steps": 30},
            },
            {"name": "tinylm", "tasks": ["arithmetic"], "seeds": 1, "config": tiny_lm},
        ],
        budget={"candidates": 6},
    )
    cid, status = run_engine(spec)
    assert status is CampaignStatus.FINISHED
    finished = {
        e.payload["candidate"]: e.payload
        for e in store.list_events(campaign_id=cid, kind="stage_done", limit=1000)
        if e.payload["stage"] == "bandit"
    }
    promotions = [
        e.payload
        for e in store.list_events(campaign_id=cid, kind="promoted", limit=1000)
        if e.payload["from"] == "bandit"
    ]
    promoted = {p["candidate"] for p in promotions}
    assert promoted, "someone reaches the second stage"
    assert len(promoted) < len(finished)  # and not everyone
    # Asynchronous successive halving: each was in the top half of the field when promoted, and
    # never from a field too small to rank it.
    for p in promotions:
        assert 1 <= p["rank"] <= max(1, p["field"] // 2)
    # The best of the stage always goes on.
    scored = {c: p["score"] for c, p in finished.items() if p["score"] is not None}
    scored.pop(dpo_id(store, cid))
    assert max(scored, key=lambda c: scored[c]) in promoted
    reached = {
        e.candidate_id for e in store.list_evaluations(campaign_id=cid) if e.stage == "tinylm"
    }
    # DPO runs every stage: the scores are relative to it.
    assert reached == promoted | {dpo_id(store, cid)}
    assert _done_twice(store, cid) == []


def test_pause_then_resume_completes_without_repeating_work(
    run_engine: RunEngine, store: Archive
) -> None:
    spec = small_spec(budget={"candidates": 8})
    paused = []

    def pause_once(progress: Progress) -> None:
        if not paused and progress.counts.get("EVALUATED", 0) >= 2:
            store.set_campaign_status(progress.campaign_id, status=CampaignStatus.PAUSED)
            paused.append(True)

    cid, status = run_engine(spec, observer=pause_once)
    assert status is CampaignStatus.PAUSED
    before = len([c for c in store.list_candidates(campaign_id=cid) if c.origin != "baseline"])
    assert before < 8
    _, status = run_engine(spec, campaign_id=cid)
    assert status is CampaignStatus.FINISHED
    proposed = [c for c in store.list_candidates(campaign_id=cid) if c.origin != "baseline"]
    assert len(proposed) == 8
    assert _done_twice(store, cid) == []
    for c in proposed:
        if c.status in (CandidateStatus.ACCEPTED, CandidateStatus.EVALUATED):
            statuses = [e.status for e in store.list_evaluations(candidate_id=c.id)]
            assert statuses and EvaluationStatus.PENDING not in statuses


def test_a_wall_time_budget_stops_cleanly_with_state_saved(
    run_engine: RunEngine, store: Archive
) -> None:
    cid, status = run_engine(small_spec(budget={"wall_time_s": 2.0, "candidates": 500}))
    assert status is CampaignStatus.FINISHED
    campaign = store.get_campaign(cid)
    assert campaign.reason.startswith("wall-time budget reached")
    assert campaign.budget_used["wall_time_s"] >= 2.0
    # Nothing was lost: every evaluation is finished or still queued for a resume.
    for e in store.list_evaluations(campaign_id=cid):
        assert e.status in (EvaluationStatus.DONE, EvaluationStatus.PENDING)


def test_elites_are_re_evaluated_with_more_seeds(run_engine: RunEngine, store: Archive) -> None:
    spec = small_spec(
        stages=[
            {
                "name": "bandit",
                "tasks": ["tabular"],
                "seeds": 1,
                "elites": 2,
                "elite_seeds": 3,
                "config": {"max_steps": 30},
            }
        ],
        budget={"candidates": 6},
    )
    cid, status = run_engine(spec)
    assert status is CampaignStatus.FINISHED
    seeds = {
        c.name: sorted(e.seed for e in store.list_evaluations(candidate_id=c.id))
        for c in store.list_candidates(campaign_id=cid)
        if c.status is CandidateStatus.EVALUATED
    }
    elites = [e.payload["candidate"] for e in store.list_events(campaign_id=cid, kind="elite")]
    assert len(elites) >= 2  # the two best, and any that overtook them on more seeds
    assert seeds["dpo"] == [0, 1, 2]  # every extra seed is paired with DPO's run of it
    by_id = {c.id: c.name for c in store.list_candidates(campaign_id=cid)}
    for elite in elites:
        assert seeds[by_id[elite]] == [0, 1, 2]
    others = [n for n in seeds if n != "dpo" and n not in {by_id[e] for e in elites}]
    assert others and all(seeds[n] == [0] for n in others)
    assert _done_twice(store, cid) == []


def test_candidates_train_together_as_populations(run_engine: RunEngine, store: Archive) -> None:
    cid, status = run_engine(small_spec(budget={"candidates": 6}))
    assert status is CampaignStatus.FINISHED
    done = store.list_evaluations(campaign_id=cid, status=EvaluationStatus.DONE)
    sizes = [e.timings.get("population", 1) for e in done]  # alone: a plain job
    assert max(sizes) > 1  # jobs queued while the workers were busy left together
    assert all(e.timings["seconds"] > 0 for e in done)  # each run's share of its batch's time
    assert _done_twice(store, cid) == []
