"""`GET /metrics`: the archive's totals in the Prometheus text format.

Read from the archive at each scrape (a few grouped queries), so every server sees the same
numbers whichever process ran the campaigns: campaigns by status, candidates by origin and status,
rejected candidates by reason, evaluation durations by stage and status (a histogram), LLM calls,
tokens and dollars by model and purpose (present at 0 before the first call, so alerts and rates
need no special case), and per campaign: the engine's queue depth and jobs in flight (what it last
reported, `CampaignRecord.live`), the age of its heartbeat while it runs, and the best fresh
held-out score of a confirmed candidate (from the shared leaderboard cache). No label ever carries
a key or a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from api.boards import Boards
from api.deps import ArchiveDep, BoardsDep, RequireRead
from discovery.archive import Archive, CampaignRecord, CampaignStatus

router = APIRouter(tags=["monitoring"])

# Evaluation run times span a bandit run (under a second) to an hf run (hours).
BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Why LLM calls are made (proposers: propose, repair; the hf stage: judge): each shows at 0
# before its first call.
LLM_PURPOSES = ("propose", "repair", "judge")
_ENGINE_ALIVE = (CampaignStatus.RUNNING, CampaignStatus.INTERRUPTED)

Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily


class ArchiveCollector(Collector):
    def __init__(self, archive: Archive, boards: Boards | None = None) -> None:
        self.archive = archive
        self.boards = boards  # None: no best-score gauge (it needs the leaderboards)

    def collect(self) -> Iterator[Family]:
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

        rejections = GaugeMetricFamily(
            "lossforge_rejections",
            "Candidates the sandbox (or the reply parser) rejected, by reason code.",
            labels=["reason"],
        )
        for reason, n in sorted(self.archive.rejection_counts().items()):
            rejections.add_metric([reason], n)
        yield rejections

        yield _durations(self.archive.evaluation_durations())
        yield from _campaign_families(self.archive.list_campaigns(), self.boards)

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
        seen = {row["purpose"] for row in rows}
        for purpose in (p for p in LLM_PURPOSES if p not in seen):
            # No call of this purpose yet: a 0 (no model label value) rather than no line.
            calls.add_metric(["", purpose, "ok"], 0)
            calls.add_metric(["", purpose, "error"], 0)
            dollars.add_metric(["", purpose], 0.0)
            for kind in ("prompt", "completion"):
                tokens.add_metric(["", purpose, kind], 0)
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


def _campaign_families(campaigns: list[CampaignRecord], boards: Boards | None) -> Iterator[Family]:
    labels = ["campaign"]
    queue = GaugeMetricFamily(
        "lossforge_queue_depth",
        "Jobs queued, not yet on a worker (engine's report).",
        labels=labels,
    )
    in_flight = GaugeMetricFamily(
        "lossforge_jobs_in_flight", "Jobs on workers (engine's report).", labels=labels
    )
    heartbeat = GaugeMetricFamily(
        "lossforge_engine_heartbeat_age_seconds",
        "Seconds since the engine of a running campaign last renewed its lease.",
        labels=labels,
    )
    best = GaugeMetricFamily(
        "lossforge_best_confirmed_score",
        "Best fresh-seed held-out score vs DPO among a campaign's confirmed candidates.",
        labels=labels,
    )
    now = datetime.now(UTC)
    for c in campaigns:
        label = [str(c.id)]
        live = c.live or {}
        if isinstance(live.get("queue_depth"), int):
            queue.add_metric(label, live["queue_depth"])
        if isinstance(live.get("in_flight"), int):
            in_flight.add_metric(label, live["in_flight"])
        if c.status in _ENGINE_ALIVE and c.lease is not None:
            beat = c.lease.heartbeat
            beat = beat if beat.tzinfo is not None else beat.replace(tzinfo=UTC)
            heartbeat.add_metric(label, max(0.0, (now - beat).total_seconds()))
        if boards is not None:
            confirmed = [
                r.fresh_held_out_score
                for r in boards.get(c.id).rows
                if r.origin != "baseline"
                and r.confirmation == "confirmed"
                and r.fresh_held_out_score is not None
            ]
            if confirmed:
                best.add_metric(label, max(confirmed))
    yield queue
    yield in_flight
    yield heartbeat
    yield best


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


def render(archive: Archive, boards: Boards | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ArchiveCollector(archive, boards))
    return generate_latest(registry)


@router.get(
    "/metrics",
    dependencies=[RequireRead],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(archive: ArchiveDep, boards: BoardsDep) -> Response:
    body = await run_in_threadpool(render, archive, boards)
    return Response(body, media_type=CONTENT_TYPE)
