"""Bad input and missing rights: 401 without the token, 422 naming the field, 404 for unknown ids,
409 for requests the campaign's status refuses; the token never shows. On SQLite and PostgreSQL,
with a launcher that records instead of starting engines (the flow tests start real ones)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.deps import get_validator
from api.settings import Settings
from discovery.archive import CampaignStatus, CandidateStatus, open_archive
from discovery.runner import create_campaign
from discovery.service.validation import (
    Candidate,
    SandboxConfig,
    SandboxUnavailableError,
    SharedValidator,
    Verdict,
)
from discovery.spec import parse_spec
from evaluator import LLMCall
from tests.api.conftest import SMALL_SPEC, RecordingLauncher
from tests.factories import DPO_SOURCE, scored_candidate

TOKEN = "s3cr3t-t0ken-for-the-tests-0123456789"
DPO = DPO_SOURCE


@pytest.fixture
def client(database_url: str, tmp_path: object) -> Iterator[TestClient]:
    launcher = RecordingLauncher()
    app = create_app(
        Settings(database_url=database_url, api_token=TOKEN), launcher=lambda _: launcher
    )
    with TestClient(app) as test_client:
        test_client.app_state = app.state  # type: ignore[attr-defined]
        yield test_client


def _seed(client: TestClient) -> dict[str, int]:
    """A PENDING campaign, a FINISHED one, and a rejected candidate in it."""
    archive = client.app_state.archive  # type: ignore[attr-defined]
    pending = create_campaign(archive, parse_spec(SMALL_SPEC))
    finished = create_campaign(archive, parse_spec({**SMALL_SPEC, "name": "done"}))
    archive.set_campaign_status(finished, status=CampaignStatus.FINISHED, reason="budget")
    rejected = archive.add_candidate(
        campaign_id=finished, name="bad", source="import os", origin="evolve"
    )
    archive.update_candidate(
        rejected.id, status=CandidateStatus.REJECTED, reason="imports are not allowed"
    )
    return {"pending": pending, "finished": finished, "rejected": rejected.id}


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_writes_need_the_token_and_reads_do_not(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ids = _seed(client)
    writes = [
        ("/api/campaigns", SMALL_SPEC),
        (f"/api/campaigns/{ids['pending']}/pause", None),
        (f"/api/campaigns/{ids['pending']}/resume", None),
        (f"/api/campaigns/{ids['pending']}/cancel", None),
        ("/api/validate", {"code": DPO}),
    ]
    for path, body in writes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert TOKEN not in response.text
    assert (
        client.post("/api/campaigns", json=SMALL_SPEC)
        .json()["detail"]
        .startswith("this server needs an API token")
    )
    # Reads are open by default.
    for path in ("/api/campaigns", f"/api/campaigns/{ids['pending']}", "/metrics", "/healthz"):
        assert client.get(path).status_code == 200, path
    # With the token, the write goes through: the campaign is stored PENDING and handed over.
    response = client.post("/api/campaigns", json=SMALL_SPEC, headers=AUTH)
    assert response.status_code == 202
    new_id = response.json()["id"]
    assert response.json()["links"]["events"] == f"/api/campaigns/{new_id}/events"
    assert client.app.state.launcher.started == [new_id]
    assert client.get(f"/api/campaigns/{new_id}").json()["status"] == "PENDING"
    assert TOKEN not in caplog.text


def test_reads_need_the_token_when_read_auth_is_on(database_url: str) -> None:
    settings = Settings(database_url=database_url, api_token=TOKEN, api_read_auth=True)
    with TestClient(create_app(settings, launcher=lambda _: RecordingLauncher())) as client:
        for path in ("/api/campaigns", "/api/campaigns/1/leaderboard", "/metrics"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=AUTH).status_code in (200, 404), path
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "loc", "message"),
    [
        ("{not json", "application/json", ["body"], "not valid JSON"),
        ("name: [unclosed", "application/yaml", ["body"], "not valid YAML"),
        ('"a string"', "application/json", ["body"], "holds a string, not a mapping of fields"),
        ("[1, 2]", "application/json", ["body"], "holds a list, not a mapping of fields"),
        ("null", "application/json", ["body"], "the spec is empty"),
        ("", "application/yaml", ["body"], "the spec is empty"),
        (b"\xff\xfename", "application/yaml", ["body"], "not UTF-8 text (byte 0xff at offset 0)"),
        ("[" * 100_000, "application/json", ["body"], "nests more than 64 levels deep"),
        (
            "a:\n" + "".join(f"{' ' * i}a:\n" for i in range(1, 1_000)),
            "application/yaml",
            ["body"],
            "nests more than 64 levels deep",
        ),
        (  # the CLI's loader names the fields that are known there
            {**SMALL_SPEC, "budgett": {"candidates": 3}},
            None,
            ["body", "budgett"],
            "unknown field; known: baselines, budget,",
        ),
        ({**SMALL_SPEC, "budget": {}}, None, ["body", "budget"], "set at least one budget"),
        (
            {**SMALL_SPEC, "stages": [{"name": "bandit", "promote_fraction": 2}]},
            None,
            ["body", "stages", 0, "promote_fraction"],
            "less than or equal to 1",
        ),
        (  # a stage config typo, named as the CLI names it
            {**SMALL_SPEC, "stages": [{"name": "bandit", "config": {"bta": 0.1}}]},
            None,
            ["body", "stages", 0, "config", "bta"],
            "unknown field; BanditConfig has ['beta',",
        ),
        (
            {**SMALL_SPEC, "proposer": {"kind": "llm", "llm": {"api_key": "sk-x"}}},
            None,
            ["body", "proposer"],
            "key",
        ),
    ],
)
def test_malformed_specs_get_422_naming_the_field(
    client: TestClient, body: object, content_type: str | None, loc: list[object], message: str
) -> None:
    if content_type is None:
        response = client.post("/api/campaigns", json=body, headers=AUTH)
    else:
        response = client.post(
            "/api/campaigns", content=body, headers={**AUTH, "content-type": content_type}
        )
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and message in e["msg"] for e in errors), errors
    assert client.app.state.launcher.started == []


def test_bodies_over_the_cap_get_413(client: TestClient) -> None:
    """413, not 422 (tests/test_bad_input.py shows on a real server that the body is not read)."""

    def chunks():  # a chunked body (no Content-Length) of 3 MB
        yield from (b" " * 1_000_000 for _ in range(3))

    for path, cap in (("/api/campaigns", "1,000,000"), ("/api/validate", "2,000,000")):
        for body in (b"{" + b" " * 2_000_000 + b"}", chunks()):
            response = client.post(
                path, content=body, headers={**AUTH, "content-type": "application/json"}
            )
            assert response.status_code == 413, response.text
            assert f"is larger than {cap} bytes" in response.json()["detail"]
    assert client.app.state.launcher.started == []


def test_a_yaml_spec_is_accepted(client: TestClient) -> None:
    text = "name: from-yaml\nstages: [{name: bandit}]\nbudget: {candidates: 2}\n"
    response = client.post(
        "/api/campaigns", content=text, headers={**AUTH, "content-type": "application/yaml"}
    )
    assert response.status_code == 202, response.text
    assert client.get(f"/api/campaigns/{response.json()['id']}").json()["name"] == "from-yaml"


def test_unknown_ids_get_404(client: TestClient) -> None:
    for path in (
        "/api/campaigns/999",
        "/api/campaigns/999/leaderboard",
        "/api/campaigns/999/series",
        "/api/campaigns/999/events",
        "/api/candidates/999",
        "/api/candidates/999/loss-curve",
        "/api/candidates/999/export",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "999" in response.json()["detail"]
    for action in ("pause", "resume", "cancel"):
        assert client.post(f"/api/campaigns/999/{action}", headers=AUTH).status_code == 404


class _BrokenSandbox(SharedValidator):
    """Passes the text checks, then cannot start: what a host without the sandbox's isolation
    gives."""

    def validate(self, candidate: Candidate | str) -> Verdict:
        raise SandboxUnavailableError("no worker could start (seccomp is unavailable)")


def test_a_sandbox_that_cannot_run_is_a_503_with_the_reason(client: TestClient) -> None:
    client.app.dependency_overrides[get_validator] = lambda: _BrokenSandbox(SandboxConfig())
    try:
        response = client.post("/api/validate", json={"code": DPO}, headers=AUTH)
        assert response.status_code == 503
        assert response.json()["detail"] == (
            "the sandbox could not run: no worker could start (seccomp is unavailable)"
        )
        # Text the sandbox's text checks refuse never reaches it: a verdict, not a 503.
        response = client.post("/api/validate", json={"code": "x = '\u202e'"}, headers=AUTH)
        assert response.status_code == 200 and response.json()["code"] == "unsafe_text"
    finally:
        client.app.dependency_overrides.clear()


def test_bad_queries_and_bodies_get_422(client: TestClient) -> None:
    ids = _seed(client)
    board = f"/api/campaigns/{ids['finished']}/leaderboard"
    for query in ("limit=0", "limit=501", "offset=-1", "limit=abc"):
        assert client.get(f"{board}?{query}").status_code == 422, query
    assert client.get("/api/campaigns/abc").status_code == 422
    assert client.get(f"/api/campaigns/{ids['finished']}/series?stage=nope").status_code == 404
    for body in ({}, {"code": 3}, {"code": DPO, "extra": 1}, {"code": "x" * 200_001}):
        assert client.post("/api/validate", json=body, headers=AUTH).status_code == 422, body


def test_requests_the_status_refuses_get_409(client: TestClient) -> None:
    ids = _seed(client)
    finished, pending = ids["finished"], ids["pending"]
    for action in ("pause", "resume", "cancel"):
        response = client.post(f"/api/campaigns/{finished}/{action}", headers=AUTH)
        assert response.status_code == 409, action
        assert f"campaign {finished} is FINISHED" in response.json()["detail"]
    assert client.post(f"/api/campaigns/{pending}/resume", headers=AUTH).status_code == 409
    for path in ("export", "loss-curve"):
        response = client.get(f"/api/candidates/{ids['rejected']}/{path}")
        assert response.status_code == 409, path
        assert "rejected" in response.json()["detail"].lower()


def test_pause_then_resume_then_cancel_a_campaign_without_an_engine(client: TestClient) -> None:
    pending = _seed(client)["pending"]
    launcher = client.app.state.launcher
    paused = client.post(f"/api/campaigns/{pending}/pause", headers=AUTH)
    assert paused.status_code == 202 and paused.json()["status"] == "PAUSED"
    assert "paused on request (API)" in paused.json()["reason"]
    resumed = client.post(f"/api/campaigns/{pending}/resume", headers=AUTH)
    assert resumed.status_code == 202 and resumed.json()["status"] == "PENDING"
    assert launcher.started == [pending]
    cancelled = client.post(f"/api/campaigns/{pending}/cancel", headers=AUTH)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "CANCELLED"
    # Followers of the stream learn the end even though no engine wrote it.
    stream = client.get(f"/api/campaigns/{pending}/events", params={"follow": "false"})
    assert stream.text.rstrip().splitlines()[-2] == "event: finish"


def test_validate_gives_the_sandbox_verdict(client: TestClient) -> None:
    accepted = client.post("/api/validate", json={"code": DPO, "name": "mine"}, headers=AUTH)
    assert accepted.status_code == 200
    body = accepted.json()
    assert body["status"] == "accepted" and len(body["fingerprint"]) == 32
    hostile = "def loss(a, b, c, d, beta):\n    return open('/etc/passwd').read()\n"
    rejected = client.post("/api/validate", json={"code": hostile}, headers=AUTH)
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected" and rejected.json()["reason"]


def test_metrics_count_campaigns_candidates_and_llm_spending(client: TestClient) -> None:
    ids = _seed(client)
    archive = client.app_state.archive  # type: ignore[attr-defined]
    archive.record_llm_call(
        campaign_id=ids["finished"],
        call=LLMCall(
            "propose", "m1", prompt_tokens=120, completion_tokens=30, cost_usd=0.25, latency_s=1.0
        ),
    )
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("lossforge_campaigns", (("status", "FINISHED"),))] == 1
    assert samples[("lossforge_campaigns", (("status", "PENDING"),))] == 1
    assert samples[("lossforge_candidates", (("origin", "evolve"), ("status", "REJECTED")))] == 1
    assert (
        samples[
            (
                "lossforge_llm_tokens_total",
                (("kind", "prompt"), ("model", "m1"), ("purpose", "propose")),
            )
        ]
        == 120
    )
    assert (
        samples[("lossforge_llm_cost_dollars_total", (("model", "m1"), ("purpose", "propose")))]
        == 0.25
    )


def test_the_engine_process_dying_marks_the_campaign_failed_with_why(
    database_url: str, tmp_path: object
) -> None:
    from pathlib import Path

    from api.app import mark_engine_exit

    archive = open_archive(database_url)
    try:
        cid = create_campaign(archive, parse_spec(SMALL_SPEC))
        archive.set_campaign_status(cid, status=CampaignStatus.RUNNING)
        mark_engine_exit(archive, cid, -9, Path("/logs/campaign-1.log"))
        record = archive.get_campaign(cid)
        assert record.status is CampaignStatus.FAILED
        assert "killed by signal 9" in (record.reason or "")
        assert "/logs/campaign-1.log" in (record.reason or "")
        # A campaign that stopped on its own is left as it is.
        done = create_campaign(archive, parse_spec(SMALL_SPEC))
        archive.set_campaign_status(done, status=CampaignStatus.FINISHED)
        mark_engine_exit(archive, done, 1, Path("/x.log"))
        assert archive.get_campaign(done).status is CampaignStatus.FINISHED
    finally:
        archive.engine.dispose()


def test_a_candidate_shows_its_lineage_generation_by_generation(client: TestClient) -> None:
    archive = client.app_state.archive  # type: ignore[attr-defined]
    campaign = create_campaign(archive, parse_spec(SMALL_SPEC))

    def add(name: str, *parents: int) -> int:
        return archive.add_candidate(
            campaign_id=campaign, name=name, source=DPO, origin="evolve", parent_ids=parents
        ).id

    root = add("root")
    left = add("left", root)
    right = add("right", root, left)
    child = add("child", right, 2_000_000_000, left)  # one parent is gone (deleted campaign)
    body = client.get(f"/api/candidates/{child}").json()
    # Parents at depth 1 in the child's order (the missing one left out), then their parents
    # not seen yet; every ancestor once, at its nearest depth.
    assert [(a["name"], a["depth"]) for a in body["lineage"]] == [
        ("right", 1),
        ("left", 1),
        ("root", 2),
    ]
    assert body["lineage"][0]["parent_ids"] == [root, left]
    assert [a["name"] for a in client.get(f"/api/candidates/{root}").json()["lineage"]] == []


def test_the_leaderboard_can_leave_out_candidates_without_a_score(client: TestClient) -> None:
    archive = client.app_state.archive  # type: ignore[attr-defined]
    campaign = create_campaign(archive, parse_spec(SMALL_SPEC))
    scored_candidate(archive, campaign, "dpo", scores=(0.0, 0.0))
    scored_candidate(archive, campaign, "bad", status=CandidateStatus.REJECTED)
    scored_candidate(archive, campaign, "good", scores=(0.02, 0.02))
    scored_candidate(archive, campaign, "copy", status=CandidateStatus.DUPLICATE)
    url = f"/api/campaigns/{campaign}/leaderboard"
    everything = client.get(url).json()
    assert everything["total"] == 4
    assert [r["name"] for r in everything["rows"][:2]] == ["good", "dpo"]
    scored = client.get(url, params={"scored": "true"}).json()
    assert scored["total"] == 2
    assert [(r["rank"], r["name"]) for r in scored["rows"]] == [(1, "good"), (2, "dpo")]
    page = client.get(url, params={"scored": "true", "offset": 1, "limit": 1}).json()
    assert [r["name"] for r in page["rows"]] == ["dpo"] and page["total"] == 2
    assert client.get(url, params={"scored": "perhaps"}).status_code == 422
