"""The leaderboard's statistics on constructed evaluations with known answers: selection and fresh
seeds kept apart, confirmed / overfit / unconfirmed, ranking by the lower bound, proxy validity."""

from __future__ import annotations

import pytest

from discovery.archive import CandidateStatus, CandidateSummary, EvaluationStatus, ScoreRecord
from discovery.scores import StageTasks, leaderboard, proxy_validity, stage_score

TINYLM = StageTasks(
    name="tinylm", public=["arithmetic", "sorting"], held_out=["sentiment"], seeds=3
)
DONE = EvaluationStatus.DONE


def runs(cid: int, task: str, scores: dict[int, float], status: EvaluationStatus = DONE):
    return [
        ScoreRecord(cid, "tinylm", task, seed, status, score if status is DONE else None)
        for seed, score in scores.items()
    ]


def candidate(cid: int, name: str, origin: str = "evolve") -> CandidateSummary:
    return CandidateSummary(id=cid, name=name, origin=origin, status=CandidateStatus.EVALUATED)


def everywhere(cid: int, public: list[float], held: list[float], first: int = 0):
    """The same per-seed score on both public tasks, and `held` on the held-out one."""
    seeds = dict(enumerate(public, first))
    return [
        *runs(cid, "arithmetic", seeds),
        *runs(cid, "sorting", seeds),
        *runs(cid, "sentiment", dict(enumerate(held, first))),
    ]


def test_a_seed_counts_once_every_task_of_it_finished() -> None:
    evals = [
        *runs(1, "arithmetic", {0: 0.1, 1: 0.3, 2: 0.2}),
        *runs(1, "sorting", {0: 0.3, 1: 0.1}),
        *runs(1, "sorting", {2: 0.0}, status=EvaluationStatus.NAN_LOSS),
    ]
    score = stage_score(evals, stage="tinylm", tasks=["arithmetic", "sorting"])
    assert (score.seeds, score.score, score.spread) == (2, pytest.approx(0.2), 0.0)
    # Seeds by purpose: a predicate or a container.
    only = stage_score(evals, stage="tinylm", tasks=["arithmetic"], seeds={1})
    assert (only.seeds, only.score) == (1, pytest.approx(0.3))


def test_selection_and_fresh_seeds_are_reported_apart() -> None:
    evals = everywhere(1, [0.10, 0.12, 0.11, 0.01, 0.0, 0.02], [0.05, 0.06, 0.04, 0.05, 0.06, 0.04])
    [row] = leaderboard([candidate(1, "a")], evals, stages=[TINYLM])
    assert (row.seeds, row.score) == (3, pytest.approx(0.11))  # seeds 0-2 selected it
    assert (row.fresh_seeds, row.fresh_score) == (3, pytest.approx(0.01))  # seeds 3-5: the truth
    assert row.fresh_low is not None and row.fresh_high is not None
    assert row.fresh_low < row.fresh_score < row.fresh_high
    assert (row.held_out_seeds, row.fresh_held_out_seeds) == (3, 3)
    assert row.confirmation == "confirmed"  # fresh held-out interval above 0


def test_confirmed_overfit_and_unconfirmed() -> None:
    evals = [
        # a: beats DPO on public, loses on held-out (selection seeds; not re-run): overfit.
        *everywhere(1, [0.10, 0.11, 0.12], [-0.10, -0.12, -0.11]),
        # b: wins on public, held-out interval spans 0 on fresh seeds: unconfirmed.
        *everywhere(2, [0.10, 0.11, 0.12], [0.02, 0.03, 0.01]),
        *runs(2, "sentiment", {3: 0.05, 4: -0.04, 5: 0.01}),
        # c: its fresh held-out seeds say worse, though its selection seeds said better: overfit.
        *everywhere(3, [0.05, 0.06, 0.07], [0.01, 0.02, 0.03]),
        *runs(3, "sentiment", {3: -0.05, 4: -0.06, 5: -0.04}),
        # d: one fresh seed only: nothing is confirmed on one seed.
        *everywhere(4, [0.05, 0.06, 0.07], [0.01, 0.02, 0.03]),
        *runs(4, "sentiment", {3: 0.5}),
    ]
    evals += [
        # e: fresh held-out above 0, but its selection-seed held-out says worse: no confirmation.
        *everywhere(5, [0.05, 0.06, 0.07], [-0.05, -0.06, -0.04]),
        *runs(5, "sentiment", {3: 0.05, 4: 0.06, 5: 0.04}),
    ]
    rows = {
        r.name: r
        for r in leaderboard(
            [candidate(i, n) for i, n in enumerate("abcde", 1)], evals, stages=[TINYLM]
        )
    }
    assert rows["a"].confirmation == "overfit"
    assert rows["b"].confirmation == "unconfirmed"
    assert rows["c"].confirmation == "overfit"
    assert rows["d"].confirmation == "unconfirmed"
    assert rows["d"].fresh_held_out_low is None and rows["d"].fresh_held_out_seeds == 1
    assert rows["e"].confirmation == "unconfirmed"
    assert rows["e"].fresh_held_out_low is not None and rows["e"].fresh_held_out_low > 0


def test_rows_rank_by_the_lower_bound() -> None:
    evals = [
        *everywhere(1, [0.6, -0.1, 0.1], [0, 0, 0]),
        *everywhere(2, [0.1, 0.1, 0.11], [0, 0, 0]),
    ]
    rows = leaderboard([candidate(1, "lucky"), candidate(2, "steady")], evals, stages=[TINYLM])
    assert [r.name for r in rows] == ["steady", "lucky"]
    assert rows[1].score is not None and rows[0].score is not None
    assert rows[1].score > rows[0].score


def test_a_held_out_only_stage_has_only_fresh_seeds() -> None:
    hf = StageTasks(name="hf", public=[], held_out=["beta=0.1"], seeds=2)
    evals = [ScoreRecord(1, "hf", "beta=0.1", s, DONE, v) for s, v in enumerate([0.2, 0.21, 0.19])]
    [row] = leaderboard([candidate(1, "a")], evals, stages=[hf])
    assert row.stage is None and row.score is None  # nothing selects at hf
    assert row.fresh_held_out_seeds == 3 and row.confirmation == "confirmed"


def test_proxy_validity_on_known_rankings() -> None:
    # Public and held-out scores in the same order over 5 candidates: rho = +1; DPO left out.
    evals = []
    for cid, (public, held) in enumerate(
        [(0.1, 0.01), (0.2, 0.02), (0.3, 0.03), (0.4, 0.05), (0.5, 0.04)], 2
    ):
        evals += everywhere(cid, [public] * 3, [held] * 3)
    evals += everywhere(1, [0.0] * 3, [0.0] * 3)
    candidates = [candidate(1, "dpo", "baseline")] + [candidate(i, f"c{i}") for i in range(2, 7)]
    bandit = StageTasks(name="bandit", public=["tabular"], held_out=[], seeds=2)
    evals += [
        ScoreRecord(c, "bandit", "tabular", s, DONE, -c / 10) for c in range(2, 7) for s in (0, 1)
    ]
    validity = proxy_validity(candidates, evals, stages=[bandit, TINYLM])
    tinylm = validity.public_vs_held_out["tinylm"]
    assert (tinylm.rho, tinylm.n) == (pytest.approx(0.9), 5)  # one swap at the top
    assert tinylm.low is not None and tinylm.low < 0.9 < tinylm.high  # type: ignore[operator]
    assert validity.between_stages["bandit->tinylm"].rho == pytest.approx(-1.0)
    assert "bandit" not in validity.public_vs_held_out  # no held-out task there
    assert validity.as_dict()["between_stages"]["bandit->tinylm"]["n"] == 5
