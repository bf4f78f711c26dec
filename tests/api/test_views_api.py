"""The researcher's views through the HTTP API, on a campaign filled through the archive API (no
Ray, no engine): the leaderboard sorted, filtered and downloaded, per-task scores, what each
stage's score measures, plot series with DPO's frontier, the genealogy, compare, a transcript,
training curves, a campaign's live state and allowed actions, and a duplicate's summary.

One archive per backend for the whole module (SQLite and PostgreSQL), read by every test: the
tests only read it, so none can disturb another.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.views import actions
from discovery.archive import CampaignStatus
from tests.api.conftest import recording
from tests.api.views_data import fill
from tests.conftest import BACKENDS


@dataclass
class World:
    client: TestClient
    campaign: int
    running: int  # a second campaign, RUNNING with a lease and a live report
    ids: dict[str, int]


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('views')) / 'a.db'}"
    else:
        url = request.getfixturevalue("postgres_server")()
    cid, running, ids = fill(url)
    with TestClient(create_app(Settings(database_url=url), launcher=recording)) as client:
        yield World(client, cid, running, ids)


def _rows(world: World, **params: object) -> list[dict]:
    response = world.client.get(f"/api/campaigns/{world.campaign}/leaderboard", params=params)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def _names(world: World, **params: object) -> list[str]:
    return [r["name"] for r in _rows(world, **params)]


def test_the_page_names_each_stages_metric_and_ranks_the_furthest_stage_first(
    world: World,
) -> None:
    page = world.client.get(f"/api/campaigns/{world.campaign}/leaderboard").json()
    assert page["metrics"]["bandit"]["name"] == "frontier/area vs DPO"
    assert "frontier" in page["metrics"]["tinylm"]["name"]
    assert page["columns"] == [] and page["total"] == 6
    rows = page["rows"]
    assert [r["name"] for r in rows][:2] == ["alpha", "dpo"]  # both reached tinylm
    assert rows[0]["stage"] == "tinylm" and rows[0]["confirmation"] == "confirmed"
    assert {r["name"]: r["island"] for r in rows}["beta"] == 1


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("rank", None, ["alpha", "dpo", "beta", "hinge", "gamma", "delta"]),
        ("rank", "desc", ["delta", "gamma", "hinge", "beta", "dpo", "alpha"]),
        ("name", None, ["alpha", "beta", "delta", "dpo", "gamma", "hinge"]),
        ("id", "desc", ["delta", "gamma", "beta", "alpha", "hinge", "dpo"]),
        ("created", None, ["dpo", "hinge", "alpha", "beta", "gamma", "delta"]),
        # scores: best first by default; rows without one last, whichever the order
        ("score", None, ["alpha", "beta", "dpo", "hinge", "gamma", "delta"]),
        ("score", "asc", ["hinge", "dpo", "beta", "alpha", "gamma", "delta"]),
        ("held_out", None, ["alpha", "dpo", "beta", "hinge", "gamma", "delta"]),
        ("fresh_held_out", None, ["alpha", "dpo", "beta", "hinge", "gamma", "delta"]),
        ("island", None, ["alpha", "delta", "beta", "gamma", "dpo", "hinge"]),
        ("stage", "desc", ["alpha", "dpo", "beta", "hinge", "gamma", "delta"]),
    ],
)
def test_each_sort_key(world: World, sort: str, order: str | None, expected: list[str]) -> None:
    params = {"sort": sort, **({"order": order} if order else {})}
    assert _names(world, **params) == expected


def test_each_filter_and_the_text_search(world: World) -> None:
    assert _names(world, stage="tinylm") == ["alpha", "dpo"]
    assert _names(world, status="rejected") == ["gamma"]
    assert _names(world, origin="baseline") == ["dpo", "hinge"]
    assert _names(world, confirmation="confirmed") == ["alpha"]
    assert _names(world, island=1) == ["beta", "gamma"]
    assert _names(world, q="ELT") == ["delta"]
    assert _names(world, q=f"#{world.ids['beta']}") == ["beta"]
    assert _names(world, scored=True, origin="evolve") == ["alpha"]
    page = world.client.get(
        f"/api/campaigns/{world.campaign}/leaderboard", params={"island": 0, "limit": 1}
    ).json()
    assert page["total"] == 2 and len(page["rows"]) == 1  # total counts after filtering
    assert page["rows"][0]["rank"] == 1  # ranks stay those of the whole board


def test_per_task_scores_on_demand(world: World) -> None:
    page = world.client.get(
        f"/api/campaigns/{world.campaign}/leaderboard", params={"tasks": "true"}
    ).json()
    assert page["columns"] == [
        "bandit/tabular",
        "bandit/noisy",
        "tinylm/arithmetic",
        "tinylm/sentiment",
    ]
    alpha = next(r for r in page["rows"] if r["name"] == "alpha")
    tabular = alpha["tasks"]["bandit/tabular"]
    assert tabular["score"] == pytest.approx(0.06) and tabular["n"] == 2
    assert tabular["low"] < 0.06 < tabular["high"] and tabular["held_out"] is False
    # held-out sentiment on the selection seeds (0, 1) only
    sentiment = alpha["tasks"]["tinylm/sentiment"]
    assert sentiment["held_out"] is True and sentiment["score"] == pytest.approx(0.11)
    assert sentiment["n"] == 2
    gamma = next(r for r in page["rows"] if r["name"] == "gamma")
    assert gamma["tasks"]["bandit/tabular"] == {
        "score": None,
        "low": None,
        "high": None,
        "n": 0,
        "held_out": False,
    }
    assert "tasks" not in _rows(world)[0]


def test_csv_and_json_downloads_hold_exactly_the_page(world: World) -> None:
    params = {"sort": "name", "offset": 1, "limit": 3, "tasks": "true", "origin": "evolve"}
    base = f"/api/campaigns/{world.campaign}/leaderboard"
    page = world.client.get(base, params=params).json()
    as_json = world.client.get(f"{base}.json", params=params)
    assert as_json.json() == page
    assert as_json.headers["content-disposition"] == (
        f'attachment; filename="campaign-{world.campaign}-leaderboard.json"'
    )
    as_csv = world.client.get(f"{base}.csv", params=params)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert f"campaign-{world.campaign}-leaderboard.csv" in as_csv.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(as_csv.text)))
    fields = [k for k in page["rows"][0] if k != "tasks"]
    assert table[0][: len(fields)] == fields
    assert table[0][len(fields) : len(fields) + 4] == [
        "bandit/tabular",
        "bandit/tabular low",
        "bandit/tabular high",
        "bandit/tabular n",
    ]
    assert [line[fields.index("name")] for line in table[1:]] == [r["name"] for r in page["rows"]]
    assert [r["name"] for r in page["rows"]] == ["delta", "gamma"]  # evolve by name, from 2nd
    empty = world.client.get(f"{base}.csv", params={"q": "no such name"}).text
    assert empty.splitlines() == [",".join(fields)]  # the header alone
    first = page["rows"][0]
    assert table[1][fields.index("score")] == (
        "" if first["score"] is None else str(first["score"])
    )


def test_series_defaults_to_the_highest_stage_reached_and_draws_dpos_frontier(
    world: World,
) -> None:
    series = world.client.get(f"/api/campaigns/{world.campaign}/series").json()
    assert series["stage"] == "tinylm" and series["stages"] == ["bandit", "tinylm"]
    assert series["metric"]["name"].startswith("reward/mean above DPO")
    (frontier,) = series["frontier"]  # public tasks only: arithmetic
    assert frontier["task"] == "arithmetic"
    assert [(p["beta"], p["kl"], p["reward"]) for p in frontier["points"]] == [
        (1.0, 1.0, 0.5),
        (0.1, 4.0, 0.9),
    ]
    points = {(p["name"], p["task"]) for p in series["reward_kl"]}
    assert ("alpha", "arithmetic") in points and ("alpha", "all") in points
    assert not any(task == "sentiment" for _, task in points)
    bandit = world.client.get(
        f"/api/campaigns/{world.campaign}/series", params={"stage": "bandit"}
    ).json()
    assert bandit["frontier"] == [] and bandit["metric"]["name"] == "frontier/area vs DPO"
    assert {p["task"] for p in bandit["reward_kl"]} == {"tabular", "noisy", "all"}


def test_genealogy_has_every_candidate_with_parents_islands_and_scores(world: World) -> None:
    body = world.client.get(f"/api/campaigns/{world.campaign}/genealogy").json()
    assert body["islands"] == [0, 1]
    nodes = {n["name"]: n for n in body["nodes"]}
    assert set(nodes) == {"dpo", "hinge", "alpha", "beta", "gamma", "delta"}
    alpha = world.ids["alpha"]
    assert nodes["beta"]["parent_ids"] == [alpha] and nodes["gamma"]["status"] == "REJECTED"
    assert nodes["delta"]["duplicate_of"] == alpha
    assert nodes["alpha"]["stage"] == "tinylm" and nodes["alpha"]["confirmation"] == "confirmed"
    assert nodes["gamma"]["score"] is None
    assert world.client.get("/api/campaigns/999/genealogy").status_code == 404


def test_compare_two_candidates_and_refuse_bad_counts(world: World) -> None:
    alpha, beta = world.ids["alpha"], world.ids["beta"]
    body = world.client.get("/api/compare", params={"ids": f"{alpha},{beta}"}).json()
    assert [c["name"] for c in body["candidates"]] == ["alpha", "beta"]
    tasks = {(t["stage"], t["task"]): t for t in body["candidates"][0]["tasks"]}
    assert tasks[("tinylm", "sentiment")]["held_out"] is True
    assert tasks[("bandit", "tabular")]["score"] == pytest.approx(0.06)
    assert tasks[("tinylm", "arithmetic")]["kl"] == pytest.approx(2.0)
    assert body["candidates"][1]["row"]["name"] == "beta"
    (diff,) = body["diffs"]
    assert (diff["base"], diff["other"]) == (alpha, beta)
    assert "relu" in diff["diff"] and diff["diff"].startswith(f"--- #{alpha} alpha")
    for ids in (f"{alpha}", ",".join([str(alpha)] * 7), "x,y"):
        refused = world.client.get("/api/compare", params={"ids": ids})
        assert refused.status_code == 422, ids
        assert set(refused.json()["detail"][0]) == {"loc", "msg", "type"}
    missing = world.client.get("/api/compare", params={"ids": f"{alpha},99999"})
    assert missing.status_code == 404 and "99999" in missing.json()["detail"]


def test_transcript_of_an_llm_candidate_and_the_note_of_another(world: World) -> None:
    body = world.client.get(f"/api/candidates/{world.ids['beta']}/transcript").json()
    assert body["model"] == "scripted" and body["note"] is None
    (call,) = body["calls"]
    assert call["wrote_candidate"] is True and call["messages"][0]["content"] == "write a loss"
    assert (call["prompt_tokens"], call["completion_tokens"], call["cost_usd"]) == (120, 80, 0.002)
    evolved = world.client.get(f"/api/candidates/{world.ids['alpha']}/transcript").json()
    assert evolved["calls"] == [] and "evolve" in evolved["note"]
    assert world.client.get("/api/candidates/99999/transcript").status_code == 404


def test_training_curves_with_dpos_run_of_the_same_seed(world: World) -> None:
    body = world.client.get(f"/api/candidates/{world.ids['alpha']}/training-curves").json()
    assert len(body["runs"]) == 6  # its tinylm runs recorded curves; bandit ones did not
    run = body["runs"][0]
    assert run["steps"] == [0, 10] and run["series"]["rewards/margins"] == [0.0, 1.5]
    assert run["dpo_steps"] == [0, 10] and run["dpo"]["loss"] == [0.69, 0.4]
    assert world.client.get("/api/candidates/99999/training-curves").status_code == 404


def test_candidate_summary_is_true_for_its_status(world: World) -> None:
    get = world.client.get
    delta = get(f"/api/candidates/{world.ids['delta']}").json()
    assert delta["summary"] == f"duplicate of #{world.ids['alpha']} (same behaviour): not trained"
    gamma = get(f"/api/candidates/{world.ids['gamma']}").json()
    assert gamma["summary"] == "rejected by the sandbox: imports are not allowed"
    alpha = get(f"/api/candidates/{world.ids['alpha']}").json()
    assert alpha["summary"].startswith("evaluated up to tinylm: ")
    assert alpha["summary"].endswith(", confirmed") and alpha["row"]["island"] == 0


def test_campaign_counts_live_state_and_allowed_actions(world: World) -> None:
    detail = world.client.get(f"/api/campaigns/{world.campaign}").json()
    assert (detail["proposed"], detail["baselines"]) == (4, 2)
    assert detail["live"] is None
    assert detail["actions"] == {"pause": True, "resume": False, "cancel": True}  # PENDING
    running = world.client.get(f"/api/campaigns/{world.running}").json()
    assert running["status"] == "RUNNING"
    assert running["live"]["queue_depth"] == 7 and running["live"]["phase"] == "evaluating"
    assert running["actions"] == {"pause": True, "resume": False, "cancel": True}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("PENDING", (True, False, True)),
        ("RUNNING", (True, False, True)),
        ("INTERRUPTED", (True, True, True)),
        ("PAUSED", (False, True, True)),
        ("FAILED", (False, True, True)),
        ("CANCELLED", (False, False, False)),
        ("FINISHED", (False, False, False)),
    ],
)
def test_actions_per_status(status: str, expected: tuple[bool, bool, bool]) -> None:
    allowed = actions(CampaignStatus(status))
    assert (allowed.pause, allowed.resume, allowed.cancel) == expected


def test_the_list_of_campaigns_is_newest_first(world: World) -> None:
    listed = world.client.get("/api/campaigns").json()
    assert [c["id"] for c in listed] == [world.running, world.campaign]
