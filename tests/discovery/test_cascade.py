"""The cascade on a real SQLite archive: scores vs DPO, successive halving, elites, resume."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from discovery.archive import Archive, CandidateStatus, EvaluationRecord, EvaluationStatus
from discovery.cascade import Cascade, Queue
from discovery.ledger import Ledger
from discovery.retries import Retries, retryable
from discovery.spec import CampaignSpec, parse_spec
from evaluator.frontier import point_metrics
from tests.factories import DPO_SOURCE, make_campaign


def two_stage_spec(**bandit: object) -> CampaignSpec:
    return parse_spec(
        {
            "name": "cascade",
            "stages": [
                {"name": "bandit", "tasks": ["tabular"], "seeds": 1, **bandit},
                {"name": "tinylm", "tasks": ["arithmetic"], "seeds": 1},
            ],
            "budget": {"candidates": 10},
        }
    )


@dataclass
class World:
    """A campaign in the archive, its ledger, and a cascade over them."""

    archive: Archive
    spec: CampaignSpec
    campaign_id: int
    ledger: Ledger
    cascade: Cascade

    def candidate(self, name: str, origin: str = "evolve", parents: list[int] | None = None) -> int:
        record = self.archive.add_candidate(
            campaign_id=self.campaign_id,
            name=name,
            source=DPO_SOURCE,
            origin=origin,
            parent_ids=parents or [],
        )
        accepted = self.archive.update_candidate(record.id, status=CandidateStatus.ACCEPTED)
        return self.ledger.put_candidate(accepted).id

    def run(self, candidate_id: int, area: float, *, seed: int = 0) -> list[Queue]:
        """A bandit run of `candidate_id` finishes with frontier area `area`."""
        row = self.archive.add_evaluation(
            candidate_id=candidate_id, stage="bandit", task="tabular", seed=seed
        )
        self.ledger.put_evaluation(row)
        done = self.archive.finish_evaluation(
            row.id, status=EvaluationStatus.DONE, metrics={"frontier/area": area}
        )
        return self.cascade.finished(self.ledger.put_evaluation(done))

    def fail(
        self,
        candidate_id: int,
        status: EvaluationStatus,
        reason: str,
        *,
        seed: int = 0,
        attempt: int = 0,
    ) -> list[Queue]:
        """A bandit run (attempt) of `candidate_id` ends with `status` and `reason`."""
        row = self.archive.add_evaluation(
            candidate_id=candidate_id, stage="bandit", task="tabular", seed=seed, attempt=attempt
        )
        self.ledger.put_evaluation(row)
        failed = self.archive.finish_evaluation(row.id, status=status, reason=reason)
        return self.cascade.finished(self.ledger.put_evaluation(failed))

    def retry(self, candidate_id: int, *, seed: int, attempt: int) -> EvaluationRecord:
        """A new attempt of a run, queued (PENDING), as the engine stores one."""
        return self.ledger.put_evaluation(
            self.archive.add_evaluation(
                candidate_id=candidate_id,
                stage="bandit",
                task="tabular",
                seed=seed,
                attempt=attempt,
            )
        )

    def finish(self, row: EvaluationRecord, area: float) -> list[Queue]:
        done = self.archive.finish_evaluation(
            row.id, status=EvaluationStatus.DONE, metrics={"frontier/area": area}
        )
        return self.cascade.finished(self.ledger.put_evaluation(done))

    def fresh(self) -> World:
        """What a resumed engine would build from the same archive."""
        ledger = Ledger()
        ledger.put_candidates(self.archive.list_candidates(campaign_id=self.campaign_id))
        ledger.put_evaluations(self.archive.list_evaluations(campaign_id=self.campaign_id))
        cascade = Cascade(
            campaign_id=self.campaign_id, spec=self.spec, ledger=ledger, archive=self.archive
        )
        return World(self.archive, self.spec, self.campaign_id, ledger, cascade)


@pytest.fixture
def world(store: Archive) -> World:
    return build(store, two_stage_spec(promote_fraction=0.5))


def build(store: Archive, spec: CampaignSpec) -> World:
    campaign = make_campaign(store)
    ledger = Ledger()
    cascade = Cascade(campaign_id=campaign.id, spec=spec, ledger=ledger, archive=store)
    w = World(store, spec, campaign.id, ledger, cascade)
    dpo = w.candidate("dpo", origin="baseline")
    assert cascade.start(dpo) == []
    assert w.run(dpo, 0.5) == []  # DPO is the yardstick, never promoted
    return w


def promoted(actions: list[Queue]) -> list[int]:
    return [a.candidate_id for a in actions if a.stage.name == "tinylm"]


def test_scores_are_paired_differences_with_dpo(world: World) -> None:
    a = world.candidate("a")
    world.run(a, 0.8)
    [row] = world.ledger.of(a, "bandit")
    assert row.score == pytest.approx(0.3)
    assert world.cascade.scores[(a, "bandit")].score == pytest.approx(0.3)
    assert world.archive.get_candidate(a).status is CandidateStatus.EVALUATED


def test_a_run_waits_for_dpo_of_the_same_seed(world: World) -> None:
    a = world.candidate("a")
    assert world.run(a, 0.9, seed=5) == []  # DPO has no seed 5: nothing to compare with
    assert world.ledger.of(a, "bandit")[0].score is None
    assert (a, "bandit") not in world.cascade.scores
    assert world.run(world.cascade.dpo_id, 0.4, seed=5) == []  # DPO's run scores the waiting one
    assert world.ledger.of(a, "bandit")[0].score == pytest.approx(0.5)


def test_successive_halving_waits_for_a_field_and_promotes_late(world: World) -> None:
    a, b, c, d = (world.candidate(n) for n in "abcd")
    assert world.run(a, 0.8) == []  # a field of one ranks nothing
    assert promoted(world.run(b, 0.6)) == [a]  # top half of two
    assert promoted(world.run(c, 1.0)) == [c]  # c leads a field of three: top 1 is c
    assert promoted(world.run(d, 0.1)) == []  # top 2 of four: c and a, both already promoted
    events = world.archive.list_events(campaign_id=world.campaign_id, kind="promoted")
    assert [(e.payload["candidate"], e.payload["rank"], e.payload["field"]) for e in events] == [
        (a, 1, 2),
        (c, 1, 3),
    ]


def test_a_candidate_left_out_early_is_promoted_when_the_field_grows(world: World) -> None:
    a, b, c, d = (world.candidate(n) for n in "abcd")
    world.run(a, 0.9)
    assert promoted(world.run(b, 0.7)) == [a]
    assert promoted(world.run(c, 0.2)) == []  # top 1 of three: a
    assert promoted(world.run(d, 0.1)) == [b]  # top 2 of four: b's turn


def test_the_final_pass_promotes_at_least_one(store: Archive) -> None:
    world = build(store, two_stage_spec(promote_fraction=0.25))
    a, b = world.candidate("a"), world.candidate("b")
    assert world.run(a, 0.7) == [] and world.run(b, 0.6) == []  # floor(0.25 * 2) = 0
    assert promoted(world.cascade.final_pass()) == [a]
    assert world.cascade.final_pass() == []  # once


def test_elites_get_more_seeds_and_dpo_runs_them_too(store: Archive) -> None:
    world = build(store, two_stage_spec(promote_fraction=0.5, elites=1, elite_seeds=3))
    a, b = world.candidate("a"), world.candidate("b")
    actions = world.run(a, 0.9)
    assert [(q.candidate_id, q.stage.name, q.seeds) for q in actions] == [
        (world.cascade.dpo_id, "bandit", range(1, 3)),
        (a, "bandit", range(1, 3)),
    ]
    assert world.run(b, 0.6) == [Queue(a, world.spec.stages[1], range(1))]  # b is no elite
    # The extra seeds are fresh: they confirm a, and never lift it in the field (its selection
    # score stays the one of seed 0; the leaderboard shows the fresh ones apart).
    world.run(world.cascade.dpo_id, 0.5, seed=1)
    world.run(world.cascade.dpo_id, 0.5, seed=2)
    world.run(a, 0.5, seed=1)
    world.run(a, 0.6, seed=2)
    score = world.cascade.scores[(a, "bandit")]
    assert (score.seeds, score.score) == (1, pytest.approx(0.4))
    assert [e.score for e in world.ledger.of(a, "bandit") if e.seed > 0] == [
        pytest.approx(0.0),
        pytest.approx(0.1),
    ]


def add_runs(world: World, candidate_id: int, areas: list[float], first: int = 0) -> list[Queue]:
    actions = []
    for seed, area in enumerate(areas, first):
        actions += world.run(candidate_id, area, seed=seed)
    return actions


def test_promotion_ranks_by_the_lower_bound_not_the_mean(store: Archive) -> None:
    spec = two_stage_spec(promote_fraction=0.5, seeds=3)
    world = build(store, spec)
    add_runs(world, world.cascade.dpo_id, [0.5, 0.5], first=1)  # seed 0 ran in build
    steady, lucky = world.candidate("steady"), world.candidate("lucky")
    # steady: +0.10 on every seed; lucky: mean +0.20 from one lucky seed (+0.6, -0.1, +0.1).
    add_runs(world, steady, [0.6, 0.6, 0.6])
    actions = add_runs(world, lucky, [1.1, 0.4, 0.6])
    assert (
        world.cascade.scores[(lucky, "bandit")].score
        > world.cascade.scores[(steady, "bandit")].score
    )
    assert promoted(actions) == [steady]  # the top half of two, by the interval's low end
    lucky_score = world.cascade.scores[(lucky, "bandit")]
    assert lucky_score.low is not None and lucky_score.low < 0 < lucky_score.high


def test_elites_are_drawn_across_lineages(store: Archive) -> None:
    world = build(store, two_stage_spec(promote_fraction=1.0, elites=2, elite_seeds=2))
    root = world.candidate("root")
    child = world.candidate("child", parents=[root])  # one idea, twice
    other = world.candidate("other")
    actions = world.run(root, 0.9) + world.run(child, 0.8) + world.run(other, 0.6)
    elected = [q.candidate_id for q in actions if q.stage.name == "bandit"]
    assert world.cascade.lineage(child) == root
    # root leads; child is second best but of root's line, so other is the second elite.
    assert set(elected) - {world.cascade.dpo_id} == {root, other}


def test_a_resumed_cascade_repeats_no_decision(world: World) -> None:
    a, b = world.candidate("a"), world.candidate("b")
    world.run(a, 0.9)
    assert promoted(world.run(b, 0.7)) == [a]
    # The promotion was acted on before the crash: a has its tinylm run stored.
    world.ledger.put_evaluation(
        world.archive.add_evaluation(candidate_id=a, stage="tinylm", task="arithmetic", seed=0)
    )
    again = world.fresh()
    assert again.cascade.start(world.cascade.dpo_id) == []
    assert again.cascade.scores == world.cascade.scores


def test_a_resumed_cascade_acts_on_a_decision_lost_in_a_crash(world: World) -> None:
    a, b = world.candidate("a"), world.candidate("b")
    world.run(a, 0.9)
    assert promoted(world.run(b, 0.7)) == [a]  # ... and the engine died before queueing it
    again = world.fresh()
    assert promoted(again.cascade.start(world.cascade.dpo_id)) == [a]


def test_a_candidate_whose_runs_all_failed_is_failed_with_the_reason(world: World) -> None:
    a = world.candidate("a")
    row = world.ledger.put_evaluation(
        world.archive.add_evaluation(candidate_id=a, stage="bandit", task="tabular", seed=0)
    )
    failed = world.archive.finish_evaluation(
        row.id, status=EvaluationStatus.NAN_LOSS, reason="loss is non-finite at step 3"
    )
    assert world.cascade.finished(world.ledger.put_evaluation(failed)) == []
    candidate = world.archive.get_candidate(a)
    assert candidate.status is CandidateStatus.FAILED
    assert candidate.reason == "bandit: loss is non-finite at step 3"


def test_a_tinylm_run_is_scored_against_dpos_frontier(store: Archive) -> None:
    world = build(store, two_stage_spec(promote_fraction=0.5))
    dpo_metrics = {
        "reward/mean": 0.8,
        "kl/ref": 2.0,
        "reward/ref_mean": 0.5,
        **point_metrics(1.0, 2.0, 0.8),
        **point_metrics(4.0, 1.0, 0.7),
    }

    def tinylm(candidate_id: int, metrics: dict[str, float]) -> None:
        row = world.ledger.put_evaluation(
            world.archive.add_evaluation(
                candidate_id=candidate_id, stage="tinylm", task="arithmetic", seed=0
            )
        )
        done = world.archive.finish_evaluation(
            row.id, status=EvaluationStatus.DONE, metrics=metrics
        )
        world.cascade.finished(world.ledger.put_evaluation(done))

    beta4, better = world.candidate("dpo-x4"), world.candidate("better")
    tinylm(beta4, {"reward/mean": 0.7, "kl/ref": 1.0, "reward/ref_mean": 0.5})
    tinylm(better, {"reward/mean": 0.75, "kl/ref": 1.0, "reward/ref_mean": 0.5})
    assert world.ledger.of(beta4, "tinylm")[0].score is None  # waits for DPO's frontier
    tinylm(world.cascade.dpo_id, dpo_metrics)
    scores = {cid: world.ledger.of(cid, "tinylm")[0].score for cid in (beta4, better)}
    # DPO at beta x4 is on the frontier: 0, where reward minus DPO's (at beta 1) said -0.1.
    assert scores == {beta4: pytest.approx(0.0), better: pytest.approx(0.05)}
    assert world.ledger.of(world.cascade.dpo_id, "tinylm")[0].score == 0.0


# -- runs that cannot be scored -----------------------------------------------------------------

LOST = "the worker process died 3 times (Ray retried it 2 times): SIGKILL"


def test_a_run_waits_for_a_retried_dpo_run_and_is_scored_when_it_finishes(store: Archive) -> None:
    world = build(store, two_stage_spec(seeds=2))
    dpo, a = world.cascade.dpo_id, world.candidate("a")
    world.fail(dpo, EvaluationStatus.LOST, LOST, seed=1)
    again = world.retry(dpo, seed=1, attempt=1)  # the engine queued it before the cascade looked
    assert add_runs(world, a, [0.8, 0.9]) == []
    # Seed 0 was scored as it came; seed 1 waits for DPO's open attempt, and is not missing.
    assert world.cascade.scores[(a, "bandit")].seeds == 1
    assert world.ledger.of(a, "bandit")[1].score is None
    assert world.cascade.unscored == {}
    world.finish(again, 0.5)
    score = world.cascade.scores[(a, "bandit")]
    assert (score.seeds, score.score) == (2, pytest.approx(0.35))
    assert world.archive.get_candidate(a).status is CandidateStatus.EVALUATED
    assert world.cascade.unscored_summary() is None


def test_a_dpo_run_failed_for_good_leaves_its_candidates_unscored_with_the_reason(
    store: Archive,
) -> None:
    world = build(store, two_stage_spec(seeds=2))
    dpo, a, b = world.cascade.dpo_id, world.candidate("a"), world.candidate("b")
    for attempt in range(3):  # past the engine's retries: no attempt left open
        world.fail(dpo, EvaluationStatus.LOST, LOST, seed=1, attempt=attempt)
    add_runs(world, a, [0.8, 0.9])
    add_runs(world, b, [0.7, 0.6])
    why = f"DPO's bandit run on task tabular seed 1 failed 3 times: {LOST}"
    assert world.cascade.unscored == {(a, "bandit"): why, (b, "bandit"): why}
    # Ranked on the seed DPO has (n = 1, not 2), and said so: not silently.
    assert world.cascade.scores[(a, "bandit")].seeds == 1
    summary = world.cascade.unscored_summary()
    assert summary is not None and summary.startswith("2 candidates could not be fully scored")
    assert why in summary
    events = world.archive.list_events(campaign_id=world.campaign_id, kind="unscored")
    assert {e.payload["candidate"] for e in events} == {a, b}


def test_a_candidate_with_no_scorable_run_is_unscored_not_failed_and_a_resume_scores_it(
    store: Archive,
) -> None:
    world = build(store, two_stage_spec())
    dpo = world.cascade.dpo_id
    a = world.candidate("a")
    # Seed 0 of a: its worker died on every try. Not the loss's fault: UNSCORED, not FAILED.
    world.fail(a, EvaluationStatus.LOST, LOST)
    world.fail(a, EvaluationStatus.LOST, LOST, attempt=1)
    candidate = world.archive.get_candidate(a)
    assert candidate.status is CandidateStatus.UNSCORED
    lost = f"its bandit run on task tabular seed 0 was lost twice: {LOST}"
    assert candidate.reason == f"bandit: {lost}"
    # A resume queues the lost runs again (the engine, retries.py); they finish this time.
    again = world.fresh()
    retries = Retries(max_attempts=3)
    resumed = retries.resumable(again.ledger)
    assert [(r.candidate_id, r.seed, r.attempt) for r in resumed] == [(a, 0, 1)]
    row = again.retry(a, seed=0, attempt=2)
    assert again.cascade.start(dpo) == []
    assert again.archive.get_candidate(a).status is CandidateStatus.UNSCORED  # until it ends
    again.finish(row, 0.9)
    assert again.archive.get_candidate(a).status is CandidateStatus.EVALUATED
    assert again.archive.get_candidate(a).reason is None
    assert again.cascade.unscored == {}


def test_failures_of_the_loss_are_not_retried_lost_runs_and_dpos_are_up_to_the_limit(
    world: World,
) -> None:
    dpo = world.archive.get_candidate(world.cascade.dpo_id)
    a = world.archive.get_candidate(world.candidate("a"))

    def ended(candidate_id: int, status: EvaluationStatus, attempt: int = 0) -> EvaluationRecord:
        row = world.archive.add_evaluation(
            candidate_id=candidate_id, stage="bandit", task="tabular", seed=7, attempt=attempt
        )
        return world.archive.finish_evaluation(row.id, status=status, reason="why")

    assert not retryable(ended(a.id, EvaluationStatus.NAN_LOSS), a)
    assert retryable(ended(dpo.id, EvaluationStatus.NAN_LOSS), dpo)  # every score needs DPO's
    retries = Retries(max_attempts=2)
    first = ended(a.id, EvaluationStatus.LOST, attempt=1)
    assert retries.again(first, a)  # the 2nd try
    assert not retries.again(ended(a.id, EvaluationStatus.LOST, attempt=2), a)  # no 3rd
