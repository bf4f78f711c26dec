"""`GET /metrics`: the archive's totals in the Prometheus text format.

Read from the archive at each scrape (a few grouped queries), so every server sees the same
numbers whichever process ran the campaigns: campaigns by status, candidates by origin and status,
evaluation durations by stage and status (a histogram), and LLM calls, tokens and dollars by model
and purpose. No label ever carries a key or a token.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from api.deps import ArchiveDep, RequireRead
from discovery.archive import Archive

router = APIRouter(tags=["monitoring"])

# Evaluation run times span a bandit run (under a second) to an hf run (hours).
BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ArchiveCollector(Collector):
    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        campaigns = GaugeMetricFamily(
            "lossforge_campaigns", "Campaigns in the archive by status.", labels=["status"]
        )
        for status, n in sorted(self.archive.campaign_counts().items()):
            campaigns.add_metric([status], n)
        yield campaigns

        candidates = GaugeMetricFamily(
            "lossforge_candidates",
            "Candidates in the archive by origin and status.",
            labels=["origin", "status"],
        )
        for (origin, status), n in sorted(self.archive.candidate_counts().items()):
            candidates.add_metric([origin, status], n)
        yield candidates

        yield _durations(self.archive.evaluation_durations())

        calls = CounterMetricFamily(
            "lossforge_llm_calls", "LLM calls.", labels=["model", "purpose", "outcome"]
        )
        tokens = CounterMetricFamily(
            "lossforge_llm_tokens", "LLM tokens.", labels=["model", "purpose", "kind"]
        )
        dollars = CounterMetricFamily(
            "lossforge_llm_cost_dollars", "Dollars spent on LLM calls.", labels=["model", "purpose"]
        )
        rows = self.archive.llm_totals()
        spent: dict[tuple[str, str], float] = {}
        for row in rows:
            labels = [row["model"], row["purpose"]]
            calls.add_metric([*labels, "error" if row["failed"] else "ok"], row["calls"])
            key = (row["model"], row["purpose"])
            spent[key] = spent.get(key, 0.0) + row["cost_usd"]
        for (model, purpose), value in sorted(spent.items()):
            dollars.add_metric([model, purpose], value)
        token_sums: dict[tuple[str, str, str], int] = {}
        for row in rows:
            for kind in ("prompt", "completion"):
                key = (row["model"], row["purpose"], kind)
                token_sums[key] = token_sums.get(key, 0) + row[f"{kind}_tokens"]
        for labels, value in sorted(token_sums.items()):
            tokens.add_metric(list(labels), value)
        yield calls
        yield tokens
        yield dollars


def _durations(rows: list[tuple[str, str, float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "lossforge_evaluation_seconds",
        "Run time of finished evaluations.",
        labels=["stage", "status"],
    )
    groups: dict[tuple[str, str], list[float]] = {}
    for stage, status, seconds in rows:
        groups.setdefault((stage, status), []).append(seconds)
    for (stage, status), values in sorted(groups.items()):
        cumulative = [(str(b), float(sum(1 for v in values if v <= b))) for b in BUCKETS]
        cumulative.append(("+Inf", float(len(values))))
        family.add_metric([stage, status], cumulative, sum_value=sum(values))
    return family


def render(archive: Archive) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ArchiveCollector(archive))
    return generate_latest(registry)


@router.get(
    "/metrics",
    dependencies=[RequireRead],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(archive: ArchiveDep) -> Response:
    body = await run_in_threadpool(render, archive)
    return Response(body, media_type=CONTENT_TYPE)
