"""`GET /metrics` in the Prometheus text format: LLM counters from zero on an empty archive, and
on a filled one (through the archive API) rejections by reason, the best confirmed score, the
engine's heartbeat age and its queue depth and jobs in flight."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.settings import Settings
from discovery.archive import open_archive
from tests.api.conftest import recording
from tests.api.views_data import fill


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """metric sample name -> labels -> value."""
    with TestClient(create_app(Settings(database_url=url), launcher=recording)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_an_empty_archive_shows_llm_counters_at_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    open_archive(url).engine.dispose()
    samples = _scrape(url)
    calls = samples["lossforge_llm_calls_total"]
    assert {dict(k)["purpose"] for k in calls} == {"propose", "repair", "judge"}
    assert set(calls.values()) == {0.0}
    assert set(samples["lossforge_llm_cost_dollars_total"].values()) == {0.0}
    assert set(samples["lossforge_llm_tokens_total"].values()) == {0.0}
    assert "lossforge_queue_depth" not in samples  # no campaign, no engine
    assert "lossforge_rejections" not in samples


def test_a_filled_archive_shows_rejections_best_score_heartbeat_and_queue(
    database_url: str,
) -> None:
    campaign, running, _ = fill(database_url)
    samples = _scrape(database_url)
    assert samples["lossforge_rejections"] == {(("reason", "forbidden_import"),): 1.0}
    best = samples["lossforge_best_confirmed_score"]
    # alpha: held-out sentiment on fresh seeds 2 and 3 (0.2, 0.21)
    assert best == {(("campaign", str(campaign)),): pytest.approx(0.205)}
    assert samples["lossforge_queue_depth"] == {(("campaign", str(running)),): 7.0}
    assert samples["lossforge_jobs_in_flight"] == {(("campaign", str(running)),): 3.0}
    (age,) = samples["lossforge_engine_heartbeat_age_seconds"].items()
    assert age[0] == (("campaign", str(running)),) and 0.0 <= age[1] < 3600
    calls = samples["lossforge_llm_calls_total"]
    assert calls[(("model", "scripted"), ("outcome", "ok"), ("purpose", "propose"))] == 1.0
    assert calls[(("model", ""), ("outcome", "ok"), ("purpose", "repair"))] == 0.0
